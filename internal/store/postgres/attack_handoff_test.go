package postgres_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// cutProxy is a TCP proxy to PostgreSQL that, once armed, drops the
// server's answer that carries a COMMIT's CommandComplete and closes both
// sides: the server has committed, the client sees its connection lost (as
// when a network path fails, or the write's context ends, while the COMMIT
// round trip is in flight).
type cutProxy struct {
	ln    net.Listener
	to    string
	armed atomic.Bool
	cut   atomic.Int32
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, to: to}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			p.wg.Go(func() {
				defer c.Close()
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if p.armed.Load() && bytes.Contains(buf[:n], []byte("COMMIT\x00")) {
							p.armed.Store(false)
							p.cut.Add(1)
							return // the answer is dropped, both sides closed
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close() })
	return p
}

// TestAttackHandoffCommitAnswerLost: a write whose COMMIT the server
// carries out but whose answer never reaches Herald (connection lost
// during the COMMIT round trip). The write reports an error (ambiguous, as
// any commit's), and the engine frees the reserved workers (Start(nil)):
// but the hand-off's lease was committed with the event. Nobody runs that
// task, and the hand-off suppressed the wake-up (handoffWakeSQL: the
// Subscription is leased to the hand-off's lease). So a committed event is
// neither being sent nor claimable, and no instance was woken: it waits for
// the lease to expire (15 s by default; a minute here), and the dead lease
// counts against the owner's cap meanwhile. Before the hand-off the
// append's NOTIFY woke every instance and the next claim sent it at once.
func TestAttackHandoffCommitAnswerLost(t *testing.T) {
	t.Parallel()
	direct := pgtest.DatabaseURL(t) // its own database: the wake-up channel is database-wide
	u, err := url.Parse(direct)
	require.NoError(t, err)
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	st := pgtest.Open(t, u.String(), postgres.WithMaxConns(4))
	f := &handoffFixture{t: t, st: st, eng: &fakeEngine{free: 4, perOwner: 3, leaseFor: time.Minute}}
	f.put("a", "client", "active")

	listen, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer listen.Close(context.Background())
	_, err = listen.Exec(t.Context(), "LISTEN herald_delivery; LISTEN attack_sentinel")
	require.NoError(t, err)

	defer f.handOff()()
	proxy.armed.Store(true)
	err = st.InTx(t.Context(), func(tx store.Tx) error {
		return tx.AppendEventsAtCommit(t.Context(), []store.Event{{SubscriptionID: "a", Timestamp: time.Now().Add(-time.Second),
			Topic: "https://example.org/topic", FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate}})
	})
	require.Equal(t, int32(1), proxy.cut.Load(), "the COMMIT's answer was not cut")
	require.Error(t, err, "the write whose COMMIT answer was lost reported success")
	t.Logf("the write reported: %v", err)
	require.Empty(t, f.eng.take(), "a task was handed over")
	require.Equal(t, 4, f.eng.freeWorkers(), "the reserved workers were not freed")

	// The server committed: the event, and the hand-off's lease.
	db, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer db.Close(context.Background())
	var last, through int64
	var leased bool
	require.NoError(t, db.QueryRow(t.Context(), `SELECT last_event_number, delivered_through, coalesce(lease_until > now(), false)
		FROM subscriptions WHERE id = 'a'`).Scan(&last, &through, &leased))
	require.Equal(t, int64(1), last, "the write did not commit (the test's premise)")

	// Was any instance woken? Notifications arrive in commit order: a
	// sentinel committed after the write comes after the write's wake-up.
	woken := woken(t, st, listen, db)

	claimer := pgtest.Open(t, direct, postgres.WithMaxConns(2))
	tasks, err := claimer.ClaimDue(t.Context(), time.Now(), 10, time.Minute, 100, 3)
	require.NoError(t, err)
	t.Logf("after the lost COMMIT answer: event 1 committed, delivered_through %d, leased %v, wake-up sent %v, claim found %d",
		through, leased, woken, len(tasks))
	require.False(t, leased && len(tasks) == 0 && !woken,
		"a committed event is leased to a hand-off nobody runs, no instance was woken, and no claim can take it before the lease ends")
}
