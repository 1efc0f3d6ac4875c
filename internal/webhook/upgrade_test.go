package webhook

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSendDoesNotHangOnSwitchingProtocols: a receiver that answers 101
// Switching Protocols (Herald asked for no upgrade) and then says nothing
// gets a failed attempt at the attempt's timeout at the latest. Failed on
// main: net/http hands the raw connection over as the body of a 101, which
// neither the request's context nor ResponseBodyWait's cancel closes, so
// Send read it for as long as the receiver kept it open (a worker held for
// ever; this test's 15 s bound with a 2 s attempt timeout).
func TestSendDoesNotHangOnSwitchingProtocols(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"))
				// and then nothing, with the connection left open
			}()
		}
	}()
	r := request("http://" + ln.Addr().String() + "/hook")
	r.AllowPrivateNetwork = true
	r.Timeout = 2 * time.Second

	type sent struct {
		res Result
		err error
	}
	done := make(chan sent, 1)
	go func() {
		res, err := New(Options{}).Send(testContext(t), r)
		done <- sent{res, err}
	}()
	select {
	case got := <-done:
		require.Error(t, got.err, "a 101 is no 2xx")
	case <-time.After(15 * time.Second):
		t.Fatal("Send still reading a 101's connection 15 s after it began, with a 2 s attempt timeout")
	}
}
