package postgres_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// holdProxy forwards TCP to PostgreSQL. While refuse is set it closes new
// connections at once (so a CancelRequest cannot reach the server, as in a
// network partition), and a server session whose client went away is kept
// open, its output read and dropped, as a server that has not noticed the
// partition yet keeps working.
type holdProxy struct {
	ln     net.Listener
	refuse atomic.Bool
}

func newHoldProxy(t *testing.T, to string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &holdProxy{ln: ln}
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.refuse.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				_, _ = io.Copy(s, c)
				if p.refuse.Load() {
					<-done // the client is gone; the server does not know yet
				}
				s.Close()
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						_, _ = c.Write(buf[:n]) // dropped once the client is gone
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(done) })
	return p
}

// TestAttackWakeBeforeLateCommit: a write whose COMMIT round trip outlives
// its context (here the append waits for a row lock the COMMIT's round trip
// carries it into; in production a slow disk or a standby, or a network
// partition) reports an error, and runTx wakes everyone at once "because
// the COMMIT's answer may have been lost after it committed". But the
// server may commit after that: the CancelRequest cannot reach it (a
// partition) and it still holds the whole pipeline, COMMIT included. The
// wake-up then went out before the event existed, the claims it caused found
// nothing, and nothing wakes anyone once the event commits: it waits for
// the poll. Before bda5216 the NOTIFY was part of the transaction and went
// out exactly when it committed, however late.
//
// Known and accepted (wakeup.go): the event is late by at most the poll
// (HERALD_DELIVERY_POLL, 1 s by default), never lost, and only when a
// partition also kept the cancel request from the server. Set
// HERALD_TEST_KNOWN_LIMITS=1 to run it; it fails today.
func TestAttackWakeBeforeLateCommit(t *testing.T) {
	if os.Getenv("HERALD_TEST_KNOWN_LIMITS") == "" {
		t.Skip("known limitation: a COMMIT that lands after its write gave up is found by the next poll (set HERALD_TEST_KNOWN_LIMITS=1 to run)")
	}
	t.Parallel()
	direct := pgtest.DatabaseURL(t)
	u, err := url.Parse(direct)
	require.NoError(t, err)
	proxy := newHoldProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	st := pgtest.Open(t, u.String(), postgres.WithMaxConns(1))
	f := &handoffFixture{t: t, st: st}
	f.put("a", "client", "active")
	f.put("z", "client", "active")
	listen, db := listenForWakes(t, direct)
	f.write("z") // the notifier is connected (through the proxy) and works
	require.True(t, woken(t, st, listen, db), "premise: a write wakes the other instances")

	holdConn, err := pgx.Connect(t.Context(), direct)
	require.NoError(t, err)
	defer holdConn.Close(context.Background())
	holder, err := holdConn.Begin(t.Context())
	require.NoError(t, err)
	defer holder.Rollback(context.Background())
	_, err = holder.Exec(t.Context(), `SELECT 1 FROM subscriptions WHERE id = 'a' FOR UPDATE`)
	require.NoError(t, err)

	proxy.refuse.Store(true) // from now on no new connection gets through
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	err = st.InTx(ctx, func(tx store.Tx) error {
		return tx.AppendEventsAtCommit(ctx, []store.Event{{SubscriptionID: "a", Timestamp: time.Now().Add(-time.Second),
			Topic: "https://example.org/topic", FocusType: "Encounter", FocusID: "e1", FocusVersion: 1, Method: store.MethodUpdate}})
	})
	cancel()
	require.Error(t, err, "premise: the write's COMMIT round trip outlived its context")
	early := woken(t, st, listen, db)

	lastEvent := func() int64 {
		var n int64
		require.NoError(t, db.QueryRow(t.Context(), `SELECT last_event_number FROM subscriptions WHERE id = 'a'`).Scan(&n))
		return n
	}
	require.Equal(t, int64(0), lastEvent(), "premise: not committed while the lock is held")
	require.NoError(t, holder.Rollback(t.Context()))
	require.Eventually(t, func() bool { return lastEvent() == 1 }, 10*time.Second, 10*time.Millisecond,
		"premise: the server commits the write once the lock is free")

	after := notifiedBefore(t, listen, db)
	t.Logf("wake-up when the write failed: %v; after the event committed: %v", early, after)
	require.True(t, after, "the event committed after its write's wake-up and no instance was woken for it: it waits for the poll")
}
