package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCheckReceipts: the checker itself must catch what it claims to.
func TestCheckReceipts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ev := func(s int, acked bool, events ...int64) receipt {
		return receipt{at: at(s), kind: "event-notification", events: events, acked: acked}
	}
	crash := []faultWindow{{name: "kill", start: at(100), recovered: at(105)}}
	cases := []struct {
		name  string
		rs    []receipt
		n     int64
		check func(t *testing.T, r *report)
	}{
		{"clean", []receipt{ev(1, true, 1, 2), ev(2, true, 3)}, 3, func(t *testing.T, r *report) {
			require.True(t, r.ok())
		}},
		{"retry after a failure is fine", []receipt{ev(1, false, 1), ev(2, true, 1, 2)}, 2, func(t *testing.T, r *report) {
			require.Equal(t, 1, r.dupAfterUnacked)
			require.True(t, r.ok())
		}},
		{"skipping ahead is out of order", []receipt{ev(1, true, 1), ev(2, true, 3), ev(3, true, 2)}, 3, func(t *testing.T, r *report) {
			require.Equal(t, 1, r.orderViolations)
			require.False(t, r.ok())
		}},
		{"a gap inside a notification", []receipt{ev(1, true, 1, 3)}, 3, func(t *testing.T, r *report) {
			require.NotZero(t, r.orderViolations)
			require.Equal(t, 1, r.lost, "2 never arrived")
		}},
		{"resent after a recorded 2xx", []receipt{ev(1, true, 1), ev(2, true, 1)}, 1, func(t *testing.T, r *report) {
			require.Equal(t, 1, r.dupAfterAckUnexplained)
			require.False(t, r.ok())
		}},
		{"resent after a 2xx just before a crash", []receipt{ev(99, true, 1), ev(106, true, 1)}, 1, func(t *testing.T, r *report) {
			require.Equal(t, 1, r.dupAfterAckInFault)
			require.True(t, r.ok())
		}},
		{"never acknowledged is lost", []receipt{ev(1, false, 1)}, 1, func(t *testing.T, r *report) {
			require.Equal(t, 1, r.lost)
			require.False(t, r.ok())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recv := &receiver{fault: steady, got: map[string][]receipt{"s": c.rs}}
			r := &report{writes: map[string]int{}, perReceiver: map[fault][2]int{}, drained: true}
			(&world{}).checkReceipts(r, subscriptionInfo{id: "s", recv: recv}, c.n, crash)
			c.check(t, r)
		})
	}
}
