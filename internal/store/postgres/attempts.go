package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.AttemptLog  = (*Store)(nil)
	_ store.AuditWriter = (*tx)(nil)
)

// attemptColumns of delivery_attempts (migration 00015) after
// subscription_id, in attemptArgs order.
const attemptColumns = `at, instance, channel, kind, first_event, last_event, outcome, class,
	status_code, latency_us, response_bytes, response_body`

func attemptArgs(a store.Attempt) []any {
	return []any{a.At, a.Instance, a.Channel, a.Kind, a.FirstEvent, a.LastEvent, a.Outcome, a.Class,
		a.StatusCode, a.Latency.Microseconds(), a.ResponseBytes, a.ResponseBody}
}

// attemptRow is a row of delivery_attempts.
type attemptRow struct {
	SubscriptionID string    `db:"subscription_id"`
	Seq            int64     `db:"seq"`
	At             time.Time `db:"at"`
	Instance       string    `db:"instance"`
	Channel        string    `db:"channel"`
	Kind           string    `db:"kind"`
	FirstEvent     int64     `db:"first_event"`
	LastEvent      int64     `db:"last_event"`
	Outcome        string    `db:"outcome"`
	Class          string    `db:"class"`
	StatusCode     int       `db:"status_code"`
	LatencyUS      int64     `db:"latency_us"`
	ResponseBytes  int64     `db:"response_bytes"`
	ResponseBody   string    `db:"response_body"`
}

func (r attemptRow) attempt() store.Attempt {
	return store.Attempt{Seq: r.Seq, SubscriptionID: r.SubscriptionID, At: r.At.UTC(), Instance: r.Instance,
		Channel: r.Channel, Kind: r.Kind, FirstEvent: r.FirstEvent, LastEvent: r.LastEvent, Outcome: r.Outcome,
		Class: r.Class, StatusCode: r.StatusCode, Latency: time.Duration(r.LatencyUS) * time.Microsecond,
		ResponseBytes: r.ResponseBytes, ResponseBody: r.ResponseBody}
}

// attemptsSQL reads one Subscription's attempts backwards along the
// primary key.
const attemptsSQL = `SELECT subscription_id, seq, ` + attemptColumns + ` FROM delivery_attempts
	WHERE subscription_id = $1 AND ($2 = '' OR outcome = $2) AND ($3 = '' OR class = $3)
		AND ($4::bigint <= 0 OR seq < $4)
	ORDER BY seq DESC LIMIT $5`

func (s *Store) Attempts(ctx context.Context, q store.AttemptQuery) ([]store.Attempt, error) {
	var limit *int
	if q.Limit > 0 {
		limit = &q.Limit
	}
	rows, err := s.pool.Query(ctx, attemptsSQL, q.SubscriptionID, q.Outcome, q.Class, q.BeforeSeq, limit)
	if err != nil {
		return nil, wrap("attempts of subscription "+q.SubscriptionID, err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[attemptRow])
	if err != nil {
		return nil, wrap("attempts of subscription "+q.SubscriptionID, err)
	}
	out := make([]store.Attempt, len(rs))
	for i, r := range rs {
		out[i] = r.attempt()
	}
	return out, nil
}

const (
	// In batches of $2 through delivery_attempts_at, so that a week's
	// backlog never makes one huge DELETE.
	pruneAttemptsByAgeSQL = `DELETE FROM delivery_attempts WHERE (subscription_id, seq) IN (
		SELECT subscription_id, seq FROM delivery_attempts WHERE at < $1 LIMIT $2)`
	pruneAttemptsBatch = 10_000
	// Of each Subscription with more than $1 attempts, delete those older
	// than its $1-th newest: one backwards primary-key probe each.
	pruneAttemptsByCountSQL = `DELETE FROM delivery_attempts a USING (
			SELECT c.subscription_id, (SELECT x.seq FROM delivery_attempts x
				WHERE x.subscription_id = c.subscription_id
				ORDER BY x.seq DESC OFFSET $1 - 1 LIMIT 1) AS oldest_kept
			FROM (SELECT subscription_id FROM delivery_attempts GROUP BY subscription_id HAVING count(*) > $1) c
		) k
		WHERE a.subscription_id = k.subscription_id AND a.seq < k.oldest_kept`
)

func (s *Store) PruneAttempts(ctx context.Context, before time.Time, keep int) (int64, error) {
	var n int64
	for {
		tag, err := s.pool.Exec(ctx, pruneAttemptsByAgeSQL, before, pruneAttemptsBatch)
		if err != nil {
			return n, wrap("prune attempts by age", err)
		}
		n += tag.RowsAffected()
		if tag.RowsAffected() < pruneAttemptsBatch {
			break
		}
	}
	if keep <= 0 {
		return n, nil
	}
	tag, err := s.pool.Exec(ctx, pruneAttemptsByCountSQL, keep)
	if err != nil {
		return n, wrap("prune attempts by count", err)
	}
	return n + tag.RowsAffected(), nil
}

// overviewsSQL is subscriptionsSQL with the queue columns, the oldest
// waiting event (a primary-key probe) and the newest failed attempt (a
// backwards primary-key scan).
var overviewsSQL = `SELECT ` + subscriptionColumnsOf("s") + `,
		s.last_event_number, s.delivered_through, s.last_sent_at, s.failure_count, s.due_at,
		(SELECT e.timestamp FROM events e WHERE e.subscription_id = s.id AND e.number = s.delivered_through + 1
			AND s.delivered_through < s.last_event_number) AS oldest_undelivered,
		f.seq AS f_seq, f.at AS f_at, f.instance AS f_instance, f.channel AS f_channel, f.kind AS f_kind,
		f.first_event AS f_first_event, f.last_event AS f_last_event, f.class AS f_class,
		f.status_code AS f_status_code, f.latency_us AS f_latency_us, f.response_bytes AS f_response_bytes,
		f.response_body AS f_response_body
	FROM subscriptions s LEFT JOIN LATERAL (
		SELECT * FROM delivery_attempts a WHERE a.subscription_id = s.id AND a.outcome = 'failure'
		ORDER BY a.seq DESC LIMIT 1
	) f ON true
	WHERE true`

type overviewRow struct {
	subscriptionRow
	LastEventNumber   int64      `db:"last_event_number"`
	DeliveredThrough  int64      `db:"delivered_through"`
	LastSentAt        *time.Time `db:"last_sent_at"`
	FailureCount      int        `db:"failure_count"`
	DueAt             *time.Time `db:"due_at"`
	OldestUndelivered *time.Time `db:"oldest_undelivered"`
	FSeq              *int64     `db:"f_seq"`
	FAt               *time.Time `db:"f_at"`
	FInstance         *string    `db:"f_instance"`
	FChannel          *string    `db:"f_channel"`
	FKind             *string    `db:"f_kind"`
	FFirstEvent       *int64     `db:"f_first_event"`
	FLastEvent        *int64     `db:"f_last_event"`
	FClass            *string    `db:"f_class"`
	FStatusCode       *int       `db:"f_status_code"`
	FLatencyUS        *int64     `db:"f_latency_us"`
	FResponseBytes    *int64     `db:"f_response_bytes"`
	FResponseBody     *string    `db:"f_response_body"`
}

func (r overviewRow) overview() store.DeliveryOverview {
	o := store.DeliveryOverview{State: r.state(), LastEventNumber: r.LastEventNumber, DeliveredThrough: r.DeliveredThrough,
		OldestUndelivered: fromNullTime(r.OldestUndelivered), LastSentAt: fromNullTime(r.LastSentAt),
		FailureCount: r.FailureCount, DueAt: fromNullTime(r.DueAt)}
	if r.FSeq != nil {
		a := attemptRow{SubscriptionID: r.ID, Seq: *r.FSeq, At: *r.FAt, Instance: *r.FInstance,
			Channel: *r.FChannel, Kind: *r.FKind, FirstEvent: *r.FFirstEvent, LastEvent: *r.FLastEvent,
			Outcome: store.AttemptFailure, Class: *r.FClass, StatusCode: *r.FStatusCode, LatencyUS: *r.FLatencyUS,
			ResponseBytes: *r.FResponseBytes, ResponseBody: *r.FResponseBody}.attempt()
		o.LastFailure = &a
	}
	return o
}

func (s *Store) DeliveryOverviews(ctx context.Context, f store.SubscriptionFilter, afterID string, limit int) ([]store.DeliveryOverview, error) {
	var b strings.Builder
	b.WriteString(overviewsSQL)
	args := subscriptionsWhere(&b, f) // its bare column names are the subscriptions row's: the lateral join's are all aliased
	if afterID != "" {
		args = append(args, afterID)
		fmt.Fprintf(&b, ` AND s.id > $%d`, len(args))
	}
	b.WriteString(` ORDER BY s.id`)
	if limit > 0 {
		args = append(args, limit)
		fmt.Fprintf(&b, ` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, wrap("delivery overviews", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[overviewRow])
	if err != nil {
		return nil, wrap("delivery overviews", err)
	}
	out := make([]store.DeliveryOverview, len(rs))
	for i, r := range rs {
		out[i] = r.overview()
	}
	return out, nil
}

const (
	retryLockSQL = `SELECT status, failure_count, due_at FROM subscriptions WHERE id = $1 FOR UPDATE`
	retrySQL     = `UPDATE subscriptions SET due_at = $2, failure_count = 0 WHERE id = $1`
)

func (s *Store) RetryNow(ctx context.Context, id string, now time.Time) error {
	err := s.audited(ctx, "retry subscription "+id, func(q *lazyTx) (store.AuditEntry, error) {
		var status string
		var failures int
		var due *time.Time
		rows, err := q.Query(ctx, retryLockSQL, id)
		if err == nil {
			_, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (struct{}, error) {
				return struct{}{}, row.Scan(&status, &failures, &due)
			})
		}
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.AuditEntry{}, store.ErrNotFound
		case err != nil:
			return store.AuditEntry{}, err
		case status == "off":
			return store.AuditEntry{}, store.ErrConflict
		}
		if _, err := q.Exec(ctx, retrySQL, id, now); err != nil {
			return store.AuditEntry{}, err
		}
		return store.RetryAudit(id, failures, fromNullTime(due), now), nil
	})
	return err
}

func (t *tx) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	_, err := t.q.Exec(ctx, appendAuditSQL, store.ActorOf(ctx), e.Action, e.Target, e.Before, e.After)
	return wrap("append audit entry", err)
}
