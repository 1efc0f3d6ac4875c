package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.DeliveryCursor = (*Store)(nil)
	_ store.EventPruner    = (*Store)(nil)
)

// acknowledgeSQL moves the cursor only within [delivered_through,
// last_event_number]; the row lock of the UPDATE orders it against
// AppendEvent and other acknowledgers. No row: absent, or out of range.
const acknowledgeSQL = `UPDATE subscriptions SET delivered_through = $2
	WHERE id = $1 AND delivered_through <= $2 AND $2 <= last_event_number`

const cursorSQL = `SELECT delivered_through, last_event_number FROM subscriptions WHERE id = $1`

func (s *Store) Acknowledge(ctx context.Context, subscriptionID string, through int64) error {
	op := "acknowledge subscription " + subscriptionID + " through " + strconv.FormatInt(through, 10)
	tag, err := s.pool.Exec(ctx, acknowledgeSQL, subscriptionID, through)
	if err != nil {
		return wrap(op, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Find out why; a concurrent change may make this read disagree with
	// the UPDATE, but the reported error stays one of the two.
	var cur, last int64
	if err := s.pool.QueryRow(ctx, cursorSQL, subscriptionID).Scan(&cur, &last); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return wrap(op, err)
	}
	return fmt.Errorf("postgres: %s (cursor %d, last event %d): %w", op, cur, last, store.ErrCursorRange)
}

const acknowledgedSQL = `SELECT delivered_through FROM subscriptions WHERE id = $1`

func (s *Store) Acknowledged(ctx context.Context, subscriptionID string) (int64, error) {
	op := "acknowledged of subscription " + subscriptionID
	rows, err := s.pool.Query(ctx, acknowledgedSQL, subscriptionID)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, wrap(op, err)
	}
	return n, nil
}

// pruneEventsSQL deletes at most $2 (NULL: no limit) events older than $1
// that their subscription has acknowledged, or whose subscription is off. The subquery picks the rows
// through events_timestamp (00004) and locks them with SKIP LOCKED, so
// concurrent pruners (several Herald instances) split the work instead of
// waiting on one another; the subscriptions rows are read, not locked, so
// appenders and acknowledgers are never blocked. The counters are not
// touched.
const pruneEventsSQL = `DELETE FROM events
	WHERE (subscription_id, number) IN (
		SELECT e.subscription_id, e.number
		FROM events e JOIN subscriptions s ON s.id = e.subscription_id
		WHERE e.timestamp < $1 AND (e.number <= s.delivered_through OR s.status = 'off')
		LIMIT $2
		FOR UPDATE OF e SKIP LOCKED
	)`

// pruneGoneLeasesSQL removes the leases of deleted Subscriptions once
// they have ended (migration 00020 keeps them until then, so they count
// toward their owner's share while their sends may still run).
const pruneGoneLeasesSQL = `DELETE FROM subscription_leases l
	WHERE l.lease_until <= statement_timestamp() AND NOT EXISTS (SELECT FROM subscriptions s WHERE s.id = l.id)`

func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	op := "prune events before " + before.UTC().Format(time.RFC3339Nano)
	if _, err := s.pool.Exec(ctx, pruneGoneLeasesSQL); err != nil {
		return 0, wrap("prune the ended leases of deleted subscriptions", err)
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	tag, err := s.pool.Exec(ctx, pruneEventsSQL, before, lim)
	if err != nil {
		return 0, wrap(op, err)
	}
	return tag.RowsAffected(), nil
}
