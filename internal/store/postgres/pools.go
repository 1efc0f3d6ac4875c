package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pools are the connections a Store uses: writes and reads on one pool,
// the delivery queue (claims, outcomes, releases, event reads) on another
// when SeparateDeliveryPool was called, so that neither starves the other
// near saturation. delivery is pool until then.
type pools struct {
	pool     *timedPool
	delivery *timedPool
	finishes *finisher // records outcomes on delivery, when it is a pool of its own
}

// SeparateDeliveryPool opens a second pool of conns connections, like the
// first, for the delivery queue. Call it once, right after Open.
//
// Its sessions commit without waiting for the WAL flush
// (synchronous_commit off): what they record is a lease, a cursor, a
// schedule or an attempt, and if a crash loses one, a notification is sent
// again, which at-least-once delivery allows. Resources and events are
// never written through this pool, so they always wait for the flush.
func (s *Store) SeparateDeliveryPool(ctx context.Context, conns int32) error {
	cfg := s.pool.Config() // a copy, RuntimeParams included
	cfg.MaxConns = conns
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["application_name"] = cfg.ConnConfig.RuntimeParams["application_name"] + " delivery"
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	// Its statements are few and fixed (claims, outcomes, releases, event
	// reads), and each is planned once per session: PostgreSQL otherwise
	// judged the outcomes' statement (finishBatchSQL, arrays of unknown
	// length) cheaper to plan for its values every time, and planning took
	// as long as running it (2,218 plans for 2,216 calls, 1,006 ms planning
	// against 1,228 ms executing, closed loop of 32 writers).
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: open the delivery pool: %w", err)
	}
	s.delivery = &timedPool{Pool: p, acquireTimeout: s.pool.acquireTimeout}
	s.finishes = newFinisher(s.delivery)
	return nil
}

// deliveryPool is the pool of the delivery queue's statements.
func (s *Store) deliveryPool() *timedPool {
	if s.delivery != nil {
		return s.delivery
	}
	return s.pool
}

func (s *Store) closePools() {
	if s.finishes != nil {
		s.finishes.close()
	}
	if s.delivery != nil && s.delivery != s.pool {
		s.delivery.Close()
	}
	s.pool.Close()
}
