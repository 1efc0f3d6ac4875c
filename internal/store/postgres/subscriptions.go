package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.SubscriptionReader = (*Store)(nil)
	_ store.SubscriptionReader = (*tx)(nil)
	_ store.SubscriptionWriter = (*tx)(nil)
)

// subscriptionRow is a row of subscriptions, in subscriptionColumns order.
// The delivery columns (last_event_number and the rest) are not read.
type subscriptionRow struct {
	ID                string     `db:"id"`
	Owner             string     `db:"owner"`
	Context           string     `db:"owner_context"`
	Scopes            string     `db:"scopes"`
	Patient           string     `db:"patient"`
	TokenExp          *time.Time `db:"token_exp"`
	Status            string     `db:"status"`
	Error             string     `db:"error"`
	ErrorCode         string     `db:"error_code"`
	Payload           string     `db:"payload"`
	NotificationToken bool       `db:"notification_token"`
	Topic             string     `db:"topic"`
	Filters           []string   `db:"filters"`
	Endpoint          string     `db:"endpoint"`
	Content           string     `db:"content"`
	End               *time.Time `db:"end_at"`
	HeartbeatPeriodMS int64      `db:"heartbeat_period_ms"`
	TimeoutMS         int64      `db:"timeout_ms"`
	MaxCount          int        `db:"max_count"`
	PatientKey        string     `db:"patient_key"`
	SealedSecret      string     `db:"sealed_secret"`
	SealedHeaders     string     `db:"sealed_headers"`
	CreatedAt         time.Time  `db:"created_at"`
	UpdatedAt         time.Time  `db:"updated_at"`
}

func (r subscriptionRow) state() store.SubscriptionState {
	s := store.SubscriptionState{
		ID:              r.ID,
		Owner:           r.Owner,
		Context:         r.Context,
		Scopes:          r.Scopes,
		Patient:         r.Patient,
		TokenExp:        fromNullTime(r.TokenExp),
		Status:          r.Status,
		Error:           r.Error,
		ErrorCode:       r.ErrorCode,
		Payload:         r.Payload,
		Topic:           r.Topic,
		Filters:         r.Filters,
		Endpoint:        r.Endpoint,
		Content:         r.Content,
		End:             fromNullTime(r.End),
		HeartbeatPeriod: time.Duration(r.HeartbeatPeriodMS) * time.Millisecond,
		Timeout:         time.Duration(r.TimeoutMS) * time.Millisecond,
		MaxCount:        r.MaxCount,
		PatientKey:      r.PatientKey,
		SealedSecret:    r.SealedSecret,
		SealedHeaders:   r.SealedHeaders,
		CreatedAt:       r.CreatedAt.UTC(),
		UpdatedAt:       r.UpdatedAt.UTC(),
	}
	s.NotificationToken = r.NotificationToken
	if len(s.Filters) == 0 {
		s.Filters = nil
	}
	return s
}

// toNullTime maps the zero time to NULL.
func toNullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNullTime maps NULL to the zero time.
func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

const subscriptionColumns = `id, owner, scopes, patient, token_exp, status, error, topic, filters, endpoint,
	content, end_at, heartbeat_period_ms, timeout_ms, max_count, sealed_secret, sealed_headers,
	created_at, updated_at, patient_key, owner_context, error_code, payload, notification_token`

// querySubscriptions runs a query that returns subscription rows.
func querySubscriptions(ctx context.Context, q querier, sql string, args ...any) ([]store.SubscriptionState, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanSubscription)
}

// scanSubscription reads a row of subscriptionColumns by position: the
// publish path reads these for every write, and matching columns to
// struct fields by name for each row was a visible part of its cost.
func scanSubscription(row pgx.CollectableRow) (store.SubscriptionState, error) {
	var r subscriptionRow
	err := row.Scan(&r.ID, &r.Owner, &r.Scopes, &r.Patient, &r.TokenExp, &r.Status, &r.Error, &r.Topic, &r.Filters,
		&r.Endpoint, &r.Content, &r.End, &r.HeartbeatPeriodMS, &r.TimeoutMS, &r.MaxCount, &r.SealedSecret,
		&r.SealedHeaders, &r.CreatedAt, &r.UpdatedAt, &r.PatientKey, &r.Context, &r.ErrorCode, &r.Payload, &r.NotificationToken)
	return r.state(), err
}

// Readers: the Store reads committed states through the pool, a tx reads
// through its transaction (and so sees its own writes).

func (s *Store) Subscription(ctx context.Context, id string) (store.SubscriptionState, error) {
	return subscription(ctx, s.pool, id)
}

func (s *Store) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	return subscriptions(ctx, s.pool, f)
}

func (t *tx) Subscription(ctx context.Context, id string) (store.SubscriptionState, error) {
	return subscription(ctx, t.q, id)
}

// Subscriptions in a transaction is the publisher's look-up, which runs
// for every write. It runs under a generic plan: PostgreSQL's plan cache
// judged each custom plan cheaper than the generic one (whose guesses for
// the arrays are ten values each) and so planned the look-up anew for every
// write (pg_stat_statements: 2,564 plans for 2,564 calls, 0.19 ms of
// planning each under load), while the generic plan is the same range of
// subscriptions_topic_patient (TestSubscriptionLookupPlan). The setting
// travels with the look-up and the session's is restored by the
// transaction's next statement, in the same round trips.
func (t *tx) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	t.q.Defer(genericPlansSQL)
	defer t.q.Defer(sessionPlansSQL)
	return subscriptions(ctx, t.q, f)
}

const (
	genericPlansSQL = `SET LOCAL plan_cache_mode = force_generic_plan`
	// The session's setting (its default: database, role or connection),
	// not auto, which overrode force_generic_plan on the delivery pool or
	// an operator's choice for the rest of the transaction.
	sessionPlansSQL = `SET LOCAL plan_cache_mode = DEFAULT`
)

const subscriptionSQL = `SELECT ` + subscriptionColumns + ` FROM subscriptions WHERE id = $1`

func subscription(ctx context.Context, q querier, id string) (store.SubscriptionState, error) {
	op := "subscription " + id
	rows, err := q.Query(ctx, subscriptionSQL, id)
	if err != nil {
		return store.SubscriptionState{}, wrap(op, err)
	}
	st, err := pgx.CollectExactlyOneRow(rows, scanSubscription)
	if err != nil {
		return store.SubscriptionState{}, wrap(op, err)
	}
	return st, nil
}

// Subscriptions builds its WHERE clause from these fragments; every value is
// a parameter.
const (
	subscriptionsSQL         = `SELECT ` + subscriptionColumns + ` FROM subscriptions WHERE true`
	subscriptionsOwnerSQL    = ` AND owner = $%d`
	subscriptionsContextSQL  = ` AND owner_context = $%d`
	subscriptionsStatusSQL   = ` AND status = ANY($%d::text[])`
	subscriptionsTopicSQL    = ` AND topic = $%d`
	subscriptionsTopicsSQL   = ` AND topic = ANY($%d::text[])`
	subscriptionsEndpointSQL = ` AND endpoint = $%d`
	subscriptionsIDsSQL      = ` AND id = ANY($%d::text[])`
	// With topic and status, one range of subscriptions_topic_patient
	// (00005) per key; '' (not pinned) is always among the keys.
	subscriptionsPatientSQL = ` AND patient_key = ANY($%d::text[])`
	subscriptionsOrderSQL   = ` ORDER BY id`
)

func subscriptions(ctx context.Context, q querier, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	sql, args := subscriptionsStatement(f)
	// A prepared statement, as every statement of the pool's default mode:
	// the publisher's look-up (status, topics, patient keys) runs for every
	// write, and was parsed and described anew each time. PostgreSQL still
	// plans it for its values while a generic plan would cost more than
	// those custom plans (plan_cache_mode auto), and the generic plan of
	// this filter is a range of subscriptions_topic_patient on all three
	// columns (TestSubscriptionLookupPlan), so keys stay selective.
	out, err := querySubscriptions(ctx, q, sql, args...)
	if err != nil {
		return nil, wrap("subscriptions", err)
	}
	return out, nil
}

// subscriptionsStatement is Subscriptions' query for f and its parameters.
func subscriptionsStatement(f store.SubscriptionFilter) (string, []any) {
	var b strings.Builder
	b.WriteString(subscriptionsSQL)
	args := subscriptionsWhere(&b, f)
	b.WriteString(subscriptionsOrderSQL)
	return b.String(), args
}

// subscriptionsWhere appends f's conditions to b and returns their
// parameters.
func subscriptionsWhere(b *strings.Builder, f store.SubscriptionFilter) []any {
	var args []any
	add := func(fragment string, val any) {
		args = append(args, val)
		fmt.Fprintf(b, fragment, len(args))
	}
	if f.Owner != "" {
		add(subscriptionsOwnerSQL, f.Owner)
	}
	if f.Context != "" {
		add(subscriptionsContextSQL, f.Context)
	}
	if len(f.Status) > 0 {
		add(subscriptionsStatusSQL, f.Status)
	}
	if f.Topic != "" {
		add(subscriptionsTopicSQL, f.Topic)
	}
	if len(f.Topics) > 0 {
		add(subscriptionsTopicsSQL, f.Topics)
	}
	if f.Endpoint != "" {
		add(subscriptionsEndpointSQL, f.Endpoint)
	}
	if len(f.IDs) > 0 {
		add(subscriptionsIDsSQL, f.IDs)
	}
	if f.ByPatient {
		add(subscriptionsPatientSQL, append([]string{""}, f.PatientKeys...))
	}
	return args
}

const countSubscriptionsSQL = `SELECT count(*) FROM subscriptions WHERE true`

func countSubscriptions(ctx context.Context, q querier, f store.SubscriptionFilter) (int, error) {
	var b strings.Builder
	b.WriteString(countSubscriptionsSQL)
	args := subscriptionsWhere(&b, f)
	rows, err := q.Query(ctx, b.String(), args...)
	if err != nil {
		return 0, wrap("count subscriptions", err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
	return n, wrap("count subscriptions", err)
}

func (s *Store) CountSubscriptions(ctx context.Context, f store.SubscriptionFilter) (int, error) {
	return countSubscriptions(ctx, s.pool, f)
}

func (t *tx) CountSubscriptions(ctx context.Context, f store.SubscriptionFilter) (int, error) {
	return countSubscriptions(ctx, t.q, f)
}

// PutSubscription upserts the state columns and adjusts the delivery
// schedule (store.DeliveryQueue): requested owes a handshake now and
// cancels any lease, off clears the schedule and cancels any lease, other
// statuses keep it. Cancelling clears the token but keeps lease_until, so
// no one claims the Subscription while the cancelled send may still be in
// flight; error_since follows the status. Every SET expression
// reads the row as it was. A handshake owed wakes the workers at commit.
const putSubscriptionSQL = `WITH owned AS (
	INSERT INTO subscription_owners (id, owner, owner_context) VALUES ($1, $2, $21)
	ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, owner_context = excluded.owner_context
	WHERE (subscription_owners.owner, subscription_owners.owner_context) IS DISTINCT FROM (excluded.owner, excluded.owner_context)
), put AS (
	INSERT INTO subscriptions (` + subscriptionColumns + `, handshake_pending, due_at, error_since)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9::text[], '{}'), $10,
		$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
		$6::text = 'requested' AND $10 <> '', CASE WHEN $6::text = 'requested' AND $10 <> '' THEN $19::timestamptz END,
		CASE WHEN $6::text = 'error' THEN $19::timestamptz END)
	ON CONFLICT (id) DO UPDATE SET
		owner = excluded.owner, owner_context = excluded.owner_context, scopes = excluded.scopes, patient = excluded.patient,
		token_exp = excluded.token_exp, status = excluded.status, error = excluded.error,
		error_code = excluded.error_code, payload = excluded.payload, notification_token = excluded.notification_token,
		topic = excluded.topic, filters = excluded.filters, endpoint = excluded.endpoint,
		content = excluded.content, end_at = excluded.end_at,
		heartbeat_period_ms = excluded.heartbeat_period_ms, timeout_ms = excluded.timeout_ms,
		max_count = excluded.max_count, sealed_secret = excluded.sealed_secret,
		sealed_headers = excluded.sealed_headers, created_at = excluded.created_at,
		updated_at = excluded.updated_at, patient_key = excluded.patient_key,
		handshake_pending = CASE WHEN excluded.endpoint = '' THEN false
			WHEN excluded.status = 'requested' THEN true WHEN excluded.status = 'off' THEN false
			ELSE subscriptions.handshake_pending END,
		due_at = CASE WHEN excluded.endpoint = '' THEN NULL
			WHEN excluded.status = 'requested' THEN excluded.updated_at WHEN excluded.status = 'off' THEN NULL
			ELSE subscriptions.due_at END,
		failure_count = CASE WHEN excluded.status IN ('requested', 'off') THEN 0
			ELSE subscriptions.failure_count END,
		lease_token = CASE WHEN excluded.status IN ('requested', 'off') THEN NULL
			ELSE subscriptions.lease_token END,
		error_since = CASE WHEN excluded.status <> 'error' THEN NULL
			ELSE coalesce(subscriptions.error_since, excluded.updated_at) END,
		delivered_through = CASE WHEN (subscriptions.topic, subscriptions.filters, subscriptions.endpoint)
				IS DISTINCT FROM (excluded.topic, excluded.filters, excluded.endpoint)
			THEN subscriptions.last_event_number ELSE subscriptions.delivered_through END
	RETURNING status, endpoint
)
SELECT pg_notify('` + wakeChannel + `', '') FROM put WHERE status = 'requested' OR endpoint = ''`

func (t *tx) PutSubscription(ctx context.Context, s store.SubscriptionState) error {
	_, err := t.q.Exec(ctx, putSubscriptionSQL,
		s.ID, s.Owner, s.Scopes, s.Patient, toNullTime(s.TokenExp), s.Status, s.Error, s.Topic, s.Filters, s.Endpoint,
		s.Content, toNullTime(s.End), s.HeartbeatPeriod.Milliseconds(), s.Timeout.Milliseconds(), s.MaxCount,
		s.SealedSecret, s.SealedHeaders, s.CreatedAt, s.UpdatedAt, s.PatientKey, s.Context, s.ErrorCode, s.Payload, s.NotificationToken)
	return wrap("put subscription "+s.ID, err)
}

const subscriptionOwnerSQL = `SELECT owner, owner_context FROM subscription_owners WHERE id = $1`

func (s *Store) SubscriptionOwner(ctx context.Context, id string) (store.SubscriptionOwner, error) {
	return subscriptionOwner(ctx, s.pool, id)
}

func (t *tx) SubscriptionOwner(ctx context.Context, id string) (store.SubscriptionOwner, error) {
	return subscriptionOwner(ctx, t.q, id)
}

func subscriptionOwner(ctx context.Context, q querier, id string) (store.SubscriptionOwner, error) {
	rows, err := q.Query(ctx, subscriptionOwnerSQL, id)
	if err != nil {
		return store.SubscriptionOwner{}, wrap("subscription owner "+id, err)
	}
	o, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[store.SubscriptionOwner])
	return o, wrap("subscription owner "+id, err)
}

const deleteSubscriptionSQL = `DELETE FROM subscriptions WHERE id = $1`

func (t *tx) DeleteSubscription(ctx context.Context, id string) error {
	_, err := t.q.Exec(ctx, deleteSubscriptionSQL, id)
	return wrap("delete subscription "+id, err)
}

const unpinSubscriptionsSQL = `UPDATE subscriptions SET patient_key = ''
	WHERE patient_key <> '' AND (topic = $1 OR left(topic, length($1) + 1) = $1 || '|')`

func (t *tx) UnpinSubscriptions(ctx context.Context, topicURL string) (int, error) {
	tag, err := t.q.Exec(ctx, unpinSubscriptionsSQL, topicURL)
	if err != nil {
		return 0, wrap("unpin subscriptions of "+topicURL, err)
	}
	return int(tag.RowsAffected()), nil
}
