package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var _ store.BindingHolds = (*Store)(nil)

// holdBindingSQL takes the hold when it is free, expired or already
// holder's; expired holds of other tokens go in the same statement, so
// crashed instances leave nothing behind for long.
const holdBindingSQL = `WITH expired AS (
		DELETE FROM ws_binding_holds WHERE hold_until < statement_timestamp() - interval '1 minute' AND token_id <> $1
	)
	INSERT INTO ws_binding_holds (token_id, holder, hold_until)
	VALUES ($1, $2, statement_timestamp() + $3::interval)
	ON CONFLICT (token_id) DO UPDATE SET holder = excluded.holder, hold_until = excluded.hold_until
	WHERE ws_binding_holds.holder = excluded.holder OR ws_binding_holds.hold_until <= statement_timestamp()
	RETURNING true`

const releaseBindingSQL = `DELETE FROM ws_binding_holds WHERE token_id = $1 AND holder = $2`

func (s *Store) HoldBinding(ctx context.Context, tokenID, holder string, holdFor time.Duration) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, holdBindingSQL, tokenID, holder, holdFor).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return ok, wrap("hold websocket binding", err)
}

func (s *Store) ReleaseBinding(ctx context.Context, tokenID, holder string) error {
	_, err := s.pool.Exec(ctx, releaseBindingSQL, tokenID, holder)
	return wrap("release websocket binding", err)
}

const eventCountsSQL = `SELECT id, last_event_number FROM subscriptions WHERE id = ANY($1::text[])`

func (s *Store) EventCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	rows, err := s.deliveryPool().Query(ctx, eventCountsSQL, ids)
	if err != nil {
		return nil, wrap("event counts", err)
	}
	out := make(map[string]int64, len(ids))
	var id string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		out[id] = n
		return nil
	})
	return out, wrap("event counts", err)
}
