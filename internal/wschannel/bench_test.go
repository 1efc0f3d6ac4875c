package wschannel_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// BenchmarkWebsocketLatency: one socket bound to 100 Subscriptions (one
// patient each) on PostgreSQL, writes offered open-loop at a fixed rate over
// HTTP, each firing for one Subscription; it prints the write-to-message
// latency (from sending the write to reading its notification) p50 and p99.
// make bench runs it; it asserts no timing.
func BenchmarkWebsocketLatency(b *testing.B) {
	for _, rate := range []int{200, 1000} {
		b.Run(fmt.Sprintf("writes=%d/s", rate), func(b *testing.B) {
			// herald serve's pools: 16 connections for writes and reads.
			st, err := postgres.Open(b.Context(), pgtestURL(b), postgres.WithMaxConns(16))
			require.NoError(b, err)
			b.Cleanup(st.Close)
			in := newInstance(b, st, wschannel.Limits{QueueLength: 4096})
			const subs = 100
			for i := range subs {
				in.subscribeFor("app", "id-only", 0, fmt.Sprintf("p%d", i))
			}
			p := in.bindingToken("app", "")
			require.Len(b, p["subscription"], subs)
			c := dial(b, p["websocket-url"][0])
			c.send("bind-with-token " + p["token"][0])
			for range subs {
				c.nextOf(notify.Handshake)
			}

			duration := 5 * time.Second
			writes := rate * int(duration/time.Second)
			var mu sync.Mutex
			sent := make(map[string]time.Time, writes)
			latencies := make([]time.Duration, 0, writes)
			writeTimes := make([]time.Duration, 0, writes) // the PUT's own answer time, for comparison
			received := make(chan struct{})
			go func() {
				defer close(received)
				for len(latencies) < writes {
					m, err := c.read(30 * time.Second)
					if err != nil {
						return
					}
					at := time.Now()
					if m.Type != notify.EventNotification {
						continue
					}
					for _, e := range m.Events {
						id := e.Focus[strings.LastIndex(e.Focus, "/")+1:]
						mu.Lock()
						latencies = append(latencies, at.Sub(sent[id]))
						mu.Unlock()
					}
				}
			}()

			pub := publisherToken(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			slots := make(chan struct{}, 16) // writes in flight, as herald-load's delivery phase
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			b.ResetTimer()
			var errs sync.WaitGroup
			failed := 0
			for i := range writes {
				<-tick.C
				id := fmt.Sprintf("b%d", i)
				slots <- struct{}{}
				mu.Lock()
				sent[id] = time.Now()
				mu.Unlock()
				errs.Go(func() {
					defer func() { <-slots }()
					req, _ := http.NewRequest("PUT", in.srv.URL+"/fhir/Encounter/"+id, strings.NewReader(encounterJSON(id, fmt.Sprintf("p%d", i%subs))))
					req.Header.Set("Authorization", "Bearer "+pub)
					req.Header.Set("Content-Type", "application/fhir+json")
					start := time.Now()
					res, err := client.Do(req)
					mu.Lock()
					writeTimes = append(writeTimes, time.Since(start))
					mu.Unlock()
					if err != nil || res.StatusCode > 299 {
						mu.Lock()
						failed++
						mu.Unlock()
					}
					if res != nil {
						res.Body.Close()
					}
				})
			}
			errs.Wait()
			<-received
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(latencies)
			slices.Sort(writeTimes)
			pctOf := func(d []time.Duration, q float64) time.Duration {
				if len(d) == 0 {
					return 0
				}
				return d[min(len(d)-1, int(q*float64(len(d))))]
			}
			pct := func(q float64) time.Duration { return pctOf(latencies, q) }
			b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
			fmt.Printf("websocket latency: 1 socket, %d Subscriptions, %d writes/s offered for %s: %d of %d notifications, write-to-message p50 %s p99 %s max %s (the write's own answer p50 %s p99 %s), %d writes failed\n",
				subs, rate, duration, len(latencies), writes, pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond),
				pctOf(writeTimes, 0.5).Round(time.Microsecond), pctOf(writeTimes, 0.99).Round(time.Microsecond), failed)
		})
	}
}

// BenchmarkWebsocketIdleMemory: 1,000 bound, idle sockets on one instance
// (the embedded store); it prints the heap and stack they hold per socket.
// The clients live in the same process, so the figure is for both ends of
// each socket: an upper bound of the server's share.
func BenchmarkWebsocketIdleMemory(b *testing.B) {
	const sockets = 1000
	in := newInstance(b, memory.New(), wschannel.Limits{SocketsPerClient: 2 * sockets})
	id := in.subscribe("app", "id-only", 0)
	url := wschannel.WebsocketURL(in.base)
	before := memoryInUse()
	clients := make([]*wsClient, 0, sockets)
	b.ResetTimer()
	for range sockets {
		tok, _, err := in.tokens.Mint("app", "system", []string{id})
		require.NoError(b, err)
		c := dial(b, url)
		c.send("bind-with-token " + tok)
		c.nextOf(notify.Handshake)
		clients = append(clients, c)
	}
	b.StopTimer()
	after := memoryInUse()
	require.Equal(b, sockets, in.sockets.Sockets())
	perSocket := float64(after-before) / sockets
	b.ReportMetric(perSocket/1024, "KiB/socket")
	fmt.Printf("websocket idle memory: %d bound idle sockets, %.1f KiB per socket (heap+stacks, server and client ends together)\n", sockets, perSocket/1024)
	runtime.KeepAlive(clients)
}

func memoryInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
