package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-fhir/herald/internal/notify"
)

// hookNote is one notification a hookReceiver got.
type hookNote struct {
	Kind         string  // handshake, heartbeat, event-notification
	Subscription string  // the Subscription's id
	Events       []int64 // event numbers (event-notification)
	Total        int64   // events-since-subscription-start
	Acked        bool    // answered 200 at once; a request that hung is not acknowledged
	At           time.Time
}

func (n hookNote) String() string {
	s := n.Kind
	if len(n.Events) > 0 {
		s += fmt.Sprint(n.Events)
	}
	if !n.Acked {
		s += "(hung)"
	}
	return s
}

// hookReceiver is a subscriber endpoint on loopback that records every
// notification and answers 200, except that it can be told to hang on the
// next event-notification until released.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      []hookNote
	armed    bool          // hang on the next event-notification
	hanging  chan struct{} // closed when the armed hang starts
	release  chan struct{} // closed to end every hang (and at cleanup)
	released sync.Once
	changed  chan struct{} // coalesced: something was recorded
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	r := &hookReceiver{release: make(chan struct{}), changed: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	// Release hanging handlers first: Close waits for them.
	t.Cleanup(func() { r.releaseHang(); r.srv.Close() })
	return r
}

// hangOnNextEvent makes the next event-notification hang until releaseHang;
// the returned channel closes when that request has arrived (the send is in
// flight).
func (r *hookReceiver) hangOnNextEvent() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = true
	r.hanging = make(chan struct{})
	return r.hanging
}

// releaseHang lets hanging requests answer 200 (to a connection that may be
// dead by then).
func (r *hookReceiver) releaseHang() { r.released.Do(func() { close(r.release) }) }

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	n := parseNote(body)
	n.At = time.Now()
	r.mu.Lock()
	hang := r.armed && n.Kind == "event-notification"
	n.Acked = !hang
	r.got = append(r.got, n)
	if hang {
		r.armed = false
		close(r.hanging)
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	if hang {
		<-r.release
	}
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) notes() []hookNote {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookNote(nil), r.got...)
}

// waitFor waits until cond holds for the notifications so far, or fails the
// test after timeout.
func (r *hookReceiver) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]hookNote) bool) []hookNote {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		got := r.notes()
		if cond(got) {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; the receiver got %d notifications:\n%s", timeout, what, len(got), describeNotes(got))
		}
	}
}

// bySubscription groups notifications per Subscription id, in arrival order.
func bySubscription(got []hookNote) map[string][]hookNote {
	out := map[string][]hookNote{}
	for _, n := range got {
		out[n.Subscription] = append(out[n.Subscription], n)
	}
	return out
}

// ackedEventNumbers lists the event numbers of the acknowledged event
// notifications, in arrival order.
func ackedEventNumbers(got []hookNote) []int64 {
	var out []int64
	for _, n := range got {
		if n.Kind == "event-notification" && n.Acked {
			out = append(out, n.Events...)
		}
	}
	return out
}

func describeNotes(got []hookNote) string {
	var b strings.Builder
	for sub, ns := range bySubscription(got) {
		fmt.Fprintf(&b, "  %s:", sub)
		for _, n := range ns {
			b.WriteString(" " + n.String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func numbers(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// parseNote reads the SubscriptionStatus Parameters that is the first entry
// of a notification Bundle (and of a $status searchset Bundle).
func parseNote(body []byte) hookNote {
	sum, err := notify.Summarize(body)
	if err != nil {
		return hookNote{}
	}
	return hookNote{Kind: string(sum.Type), Subscription: sum.SubscriptionID, Events: sum.Numbers(), Total: sum.EventsSinceStart}
}
