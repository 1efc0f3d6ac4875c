package main

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-fhir/herald/internal/notify"
)

// fault is how a receiver misbehaves while faults are on.
type fault string

const (
	steady   fault = "steady"   // always 200
	flapping fault = "flapping" // 503 and 200 in alternating 1.5 s spells
	errors5x fault = "5xx"      // 30% of answers are 500
	hanging  fault = "hang"     // 15% hang past the channel timeout, then 200
	dropping fault = "drop"     // 15% close the connection mid-response
)

var faults = []fault{steady, flapping, errors5x, hanging, dropping}

// receipt is one notification a receiver got.
type receipt struct {
	at     time.Time
	kind   string  // handshake, heartbeat, event-notification
	events []int64 // event numbers
	acked  bool    // answered 2xx in full, in time
}

// receiver is one subscriber endpoint with a fault behaviour; it records
// every notification per Subscription.
type receiver struct {
	fault   fault
	healthy atomic.Bool // faults off: answer 200 at once
	timeout time.Duration
	srv     *http.Server
	url     string

	mu  sync.Mutex
	got map[string][]receipt // by Subscription id
}

func newReceiver(f fault, timeout time.Duration) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{fault: f, timeout: timeout, url: "http://" + ln.Addr().String(), got: map[string][]receipt{}}
	r.healthy.Store(true)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	sub, kind, events := parseNotification(body)
	rc := receipt{at: time.Now(), kind: kind, events: events}
	defer func() {
		r.mu.Lock()
		r.got[sub] = append(r.got[sub], rc)
		r.mu.Unlock()
	}()
	if !r.healthy.Load() {
		switch r.fault {
		case flapping:
			if time.Now().UnixMilli()/1500%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case errors5x:
			if rand.N(10) < 3 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		case hanging:
			if rand.N(100) < 15 {
				// Past Herald's timeout: Herald has given up, whatever we say.
				select {
				case <-time.After(r.timeout + 500*time.Millisecond):
				case <-req.Context().Done():
				}
				w.WriteHeader(http.StatusOK)
				return
			}
		case dropping:
			if rand.N(100) < 15 {
				if hj, ok := w.(http.Hijacker); ok {
					if conn, buf, err := hj.Hijack(); err == nil {
						_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Len")
						_ = buf.Flush()
						_ = conn.Close()
					}
				}
				return
			}
		}
	}
	w.WriteHeader(http.StatusOK)
	rc.acked = true
}

func (r *receiver) receipts() map[string][]receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]receipt, len(r.got))
	for k, v := range r.got {
		out[k] = append([]receipt(nil), v...)
	}
	return out
}

func (r *receiver) close() { _ = r.srv.Close() }

// parseNotification reads the Subscription id, the notification type and
// the event numbers from a notification Bundle's status Parameters.
func parseNotification(body []byte) (sub, kind string, events []int64) {
	sum, err := notify.Summarize(body)
	if err != nil {
		return "", "", nil
	}
	return sum.SubscriptionID, string(sum.Type), sum.Numbers()
}

func (f fault) describe() string {
	switch f {
	case flapping:
		return "503 and 200 in alternating 1.5 s spells"
	case errors5x:
		return "30% of answers 500"
	case hanging:
		return "15% hang past the 1 s channel timeout"
	case dropping:
		return "15% close the connection mid-response"
	}
	return "always 200"
}
