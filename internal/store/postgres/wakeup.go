package postgres

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Waking the delivery workers after a write.
//
// A write that numbered events used to NOTIFY in its own transaction. At
// commit, a transaction that notified takes a lock shared by the whole
// database and holds it through its WAL flush, so those writes committed one
// at a time (closed loop of 32 writers: 1,016 writes/s with it, 1,561
// without). Now the write commits without notifying, then wakeDelivery:
//
//   - wakes this process's workers at once (Store.signalWake), and
//   - asks the notifier to NOTIFY the other instances. The notifier sends
//     one NOTIFY at a time on a connection of its own, outside any write's
//     transaction; requests that arrive while one is in flight go together
//     in the next, so under load many writes share one. Each NOTIFY is sent
//     after the commits of the writes that asked for it, so whoever it wakes
//     sees their events.
//
// This process hears its own NOTIFY too; the listener skips notifications
// from the notifier's session (it woke the workers already), so that one
// write does not cost two claims.
//
// If the process dies between a commit and its NOTIFY, the other instances
// find the events at their next poll: late, never lost.

// wakeDelivery wakes the delivery workers of this process and, through the
// notifier, of every other instance.
func (s *Store) wakeDelivery() {
	s.signalWake()
	s.notifier.request(s)
}

// notifyWakeSQL is the notifier's statement, one transaction of its own.
const notifyWakeSQL = `SELECT pg_notify('` + wakeChannel + `', '')`

// notifyTimeout bounds one NOTIFY; notifyPause is the wait after a failed
// one before the next attempt.
const (
	notifyTimeout = 5 * time.Second
	notifyPause   = 100 * time.Millisecond
)

// wakeNotifier sends the NOTIFYs of wakeDelivery. The zero value is ready;
// it starts on the first request.
type wakeNotifier struct {
	mu      sync.Mutex
	pending chan struct{} // at most one request waits; nil until started
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returned
	// pid is the backend process id of the notifier's session (0: none),
	// whose notifications the listener skips.
	pid atomic.Uint32
	// requested counts requests, answered the requests whose NOTIFY was
	// attempted; flushed (tests) waits on answeredCond for them to meet.
	requested, answered int64
	answeredCond        sync.Cond
}

func (n *wakeNotifier) request(s *Store) {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	if n.pending == nil {
		var ctx context.Context
		ctx, n.cancel = context.WithCancel(context.Background())
		n.pending = make(chan struct{}, 1)
		n.done = make(chan struct{})
		go n.run(ctx, s)
	}
	pending := n.pending
	n.requested++
	n.mu.Unlock()
	select {
	case pending <- struct{}{}:
	default: // one waits already, and is sent after this commit
	}
}

// ownSession reports whether pid is the notifier's session.
func (n *wakeNotifier) ownSession(pid uint32) bool {
	return pid != 0 && n.pid.Load() == pid
}

// stop ends the notifier; later requests are dropped. Safe to call more
// than once, and before any request.
func (n *wakeNotifier) stop() {
	n.mu.Lock()
	n.stopped = true
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	n.answer(-1)
}

// answer records that the NOTIFY for the first upTo requests was attempted
// (-1: all, the notifier stopped).
func (n *wakeNotifier) answer(upTo int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if upTo < 0 {
		upTo = n.requested
	}
	n.answered = max(n.answered, upTo)
	n.cond().Broadcast()
}

// flushed waits until the NOTIFY of every request made so far was
// attempted (tests).
func (n *wakeNotifier) flushed() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for upTo := n.requested; n.answered < upTo && !n.stopped; {
		n.cond().Wait()
	}
}

// cond is answeredCond, on mu; call it with mu held.
func (n *wakeNotifier) cond() *sync.Cond {
	if n.answeredCond.L == nil {
		n.answeredCond.L = &n.mu
	}
	return &n.answeredCond
}

func (n *wakeNotifier) run(ctx context.Context, s *Store) {
	defer close(n.done)
	var conn *pgx.Conn
	closeConn := func() {
		n.pid.Store(0)
		if conn != nil {
			_ = conn.Close(context.Background())
			conn = nil
		}
	}
	defer closeConn()
	for {
		select {
		case <-n.pending:
		case <-ctx.Done():
			return
		}
		n.mu.Lock()
		upTo := n.requested
		n.mu.Unlock()
		err := n.send(ctx, s, &conn)
		n.answer(upTo)
		if err == nil || ctx.Err() != nil {
			continue
		}
		slog.Warn("could not wake the other instances' delivery workers; they find the work at their next poll", "err", err)
		closeConn()
		select {
		case <-time.After(notifyPause):
		case <-ctx.Done():
			return
		}
	}
}

// send sends one NOTIFY on *conn, connecting first when there is none.
func (n *wakeNotifier) send(ctx context.Context, s *Store, conn **pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	if *conn == nil {
		cfg := s.pool.Config().ConnConfig // a copy
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		cfg.RuntimeParams["application_name"] += " wake"
		// A NOTIFY writes nothing that must survive a crash.
		cfg.RuntimeParams["synchronous_commit"] = "off"
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		*conn = c
		n.pid.Store(c.PgConn().PID())
	}
	_, err := (*conn).Exec(ctx, notifyWakeSQL)
	return err
}
