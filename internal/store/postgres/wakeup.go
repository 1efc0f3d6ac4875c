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
// A NOTIFY that fails is sent again (at once, on a new session, then every
// notifyPause) until it goes out, and Close first sends the one still owed.
// The other instances find the events at their next poll, late but never
// lost, only when the process dies between a commit and its NOTIFY, or when
// a COMMIT whose answer Herald never got lands after the wake-up its error
// sent (a network partition that also kept the cancel request from the
// server).

// wakeDelivery wakes the delivery workers of this process and, through the
// notifier, of every other instance.
func (s *Store) wakeDelivery() {
	s.signalWake()
	s.notifier.request(s)
}

// notifyWakeSQL is the notifier's statement, one transaction of its own.
const notifyWakeSQL = `SELECT pg_notify('` + wakeChannel + `', '')`

// notifyTimeout bounds one NOTIFY; notifyPause is the wait between failed
// attempts after the first retry; notifyDrain is how long Close waits for the
// NOTIFY still owed before giving up on it.
const (
	notifyTimeout = 5 * time.Second
	notifyPause   = 100 * time.Millisecond
	notifyDrain   = 2 * time.Second
)

// wakeNotifier sends the NOTIFYs of wakeDelivery. The zero value is ready;
// it starts on the first request.
type wakeNotifier struct {
	mu      sync.Mutex
	pending chan struct{} // at most one request waits; nil until started
	stopped bool
	drain   chan struct{} // closed by stop: send what is owed, then return
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returned
	// pid is the backend process id of the notifier's session (0: none),
	// whose notifications the listener skips.
	pid atomic.Uint32
	// requested counts requests, answered the requests whose NOTIFY was
	// sent; flushed (tests) waits on answeredCond for them to meet.
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
		n.drain = make(chan struct{})
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

// stop sends the NOTIFY still owed (for at most notifyDrain), then ends the
// notifier; later requests are dropped. Safe to call more than once, and
// before any request.
func (n *wakeNotifier) stop() {
	n.mu.Lock()
	first := !n.stopped
	n.stopped = true
	cancel, done, drain := n.cancel, n.done, n.drain
	n.mu.Unlock()
	if cancel != nil {
		if first {
			close(drain)
		}
		select {
		case <-done:
		case <-time.After(notifyDrain):
			slog.Warn("stopping without waking the other instances' delivery workers; they find the last writes' events at their next poll")
		}
		cancel()
		<-done
	}
	n.answer(-1)
}

// answer records that the NOTIFY for the first upTo requests was sent (-1:
// all, the notifier stopped).
func (n *wakeNotifier) answer(upTo int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if upTo < 0 {
		upTo = n.requested
	}
	n.answered = max(n.answered, upTo)
	n.cond().Broadcast()
}

// flushed waits until the NOTIFY of every request made so far was sent, or
// the notifier stopped (tests).
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
		case <-n.drain:
			select {
			case <-n.pending: // owed: send it first
			default:
				return
			}
		case <-ctx.Done():
			return
		}
		n.mu.Lock()
		upTo := n.requested
		n.mu.Unlock()
		// Until it is sent: a session that died while idle (a database
		// restart, a proxy's idle timeout) fails the first attempt, and
		// the commits that asked must still wake the others.
		for failures := 0; ; failures++ {
			err := n.send(ctx, s, &conn)
			if err == nil {
				n.answer(upTo)
				break
			}
			if ctx.Err() != nil {
				return
			}
			closeConn()
			if failures == 0 {
				continue // reconnect at once
			}
			if failures == 1 {
				slog.Warn("cannot wake the other instances' delivery workers; retrying (they also find the work at their next poll)", "err", err)
			}
			select {
			case <-time.After(notifyPause):
			case <-ctx.Done():
				return
			}
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
