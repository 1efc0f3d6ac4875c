package postgres

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.EventReader = (*Store)(nil)
	_ store.EventReader = (*tx)(nil)
	_ store.EventWriter = (*tx)(nil)
)

// eventRow is a row of events, in eventColumns order.
type eventRow struct {
	SubscriptionID string
	Number         int64
	Timestamp      time.Time
	Topic          string
	FocusType      string
	FocusID        string
	FocusVersion   int64
	Method         string
	Includes       []string // VersionRef strings; nil: not recorded
}

func (r eventRow) event() store.Event {
	return store.Event{
		SubscriptionID: r.SubscriptionID,
		Number:         r.Number,
		Timestamp:      r.Timestamp.UTC(),
		Topic:          r.Topic,
		FocusType:      r.FocusType,
		FocusID:        r.FocusID,
		FocusVersion:   r.FocusVersion,
		Method:         store.Method(r.Method),
		Includes:       includesFromDB(r.Includes),
	}
}

// includesToDB is Event.Includes as one nullable text: the refs separated
// by spaces (no type or id holds one), so a batch of events passes them as
// one text[] (unnest flattens arrays of arrays). nil stays NULL.
func includesToDB(refs []store.VersionRef) *string {
	if refs == nil {
		return nil
	}
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = r.String()
	}
	s := strings.Join(parts, " ")
	return &s
}

// includesFromDB reads the includes column; NULL is nil, {} is empty.
func includesFromDB(col []string) []store.VersionRef {
	if col == nil {
		return nil
	}
	out := make([]store.VersionRef, 0, len(col))
	for _, s := range col {
		if r, ok := store.ParseVersionRef(s); ok {
			out = append(out, r)
		}
	}
	return out
}

// includesSQL is the includes column for text, space-separated
// VersionRefs (includesToDB; NULL stays NULL), resolved by
// herald_event_includes (migration 00021): a ref at version 0 becomes the
// resource's head version, as this transaction sees it, and is left out
// when there is none or it is deleted (store.Event.Includes), so the append
// resolves the includes without a round trip of its own. A function, not a
// subquery, so that the append's plan is generic and cached.
func includesSQL(text string) string { return `herald_event_includes(` + text + `)` }

const eventColumns = `subscription_id, number, timestamp, topic, focus_type, focus_id, focus_version, method, includes`

// scanEventRow scans eventColumns in order; delivery reads events in bulk,
// so the reflective mapper is avoided as for versions.
func scanEventRow(row pgx.CollectableRow) (eventRow, error) {
	var r eventRow
	err := row.Scan(&r.SubscriptionID, &r.Number, &r.Timestamp, &r.Topic, &r.FocusType, &r.FocusID, &r.FocusVersion, &r.Method, &r.Includes)
	return r, err
}

// AppendEvent is one statement: the CTE advances the Subscription's counter
// and the outer INSERT stores the event under the new number. The UPDATE
// takes the subscriptions row lock until the transaction ends, so a
// concurrent appender to the same Subscription waits for it and then (READ
// COMMITTED re-reads the updated row) continues from the committed counter,
// or from the old one if this transaction rolled back: numbers neither
// repeat nor skip. The same UPDATE makes the Subscription due (unless it is
// due earlier or backing off). The delivery workers are woken once the
// transaction committed (Store.wakeDelivery), not by a NOTIFY in it: a
// transaction that notifies takes a database-wide lock at commit that it
// holds through its WAL flush, so every notifying write would commit one
// after the other. No row to update means no state: zero rows,
// ErrNotFound, and the transaction is still usable. The parameters are cast
// because their types cannot be inferred through INSERT … SELECT.
var appendEventSQL = `WITH sub AS (
		UPDATE subscriptions SET last_event_number = last_event_number + 1,
			due_at = CASE WHEN endpoint = '' THEN NULL
				WHEN due_at IS NULL OR failure_count = 0 AND due_at > $2::timestamptz
				THEN $2::timestamptz ELSE due_at END
		WHERE id = $1
		RETURNING id, last_event_number
	)
	INSERT INTO events (` + eventColumns + `)
	SELECT id, last_event_number, $2::timestamptz, $3::text, $4::text, $5::text, $6::bigint, $7::text,
		` + includesSQL("$8::text") + `
	FROM sub
	RETURNING number`

// appendEventArgs are appendEventSQL's parameters for e.
func appendEventArgs(e store.Event) []any {
	return []any{e.SubscriptionID, e.Timestamp, e.Topic, e.FocusType, e.FocusID, e.FocusVersion, string(e.Method), includesToDB(e.Includes)}
}

func (t *tx) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	t.appended, t.appendedNow = true, true
	op := "append event to subscription " + e.SubscriptionID
	rows, err := t.q.Query(ctx, appendEventSQL, appendEventArgs(e)...)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, wrap(op, err)
	}
	return n, nil
}

// appendEventsSQL is appendEventSQL for many Subscriptions at once, each at
// most once ($1 holds distinct ids). locked takes the row locks in id order,
// the one order every appender uses, so two writes that fire for
// overlapping sets of Subscriptions wait for each other instead of
// deadlocking; sub then advances each counter (READ COMMITTED sees the
// committed value once the lock is granted).
var appendEventsSQL = `WITH input AS (
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
			AS i(subscription_id, ts, topic, focus_type, focus_id, focus_version, method, includes)
	), locked AS (
		SELECT id FROM subscriptions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE
	), sub AS (
		UPDATE subscriptions s SET last_event_number = s.last_event_number + 1,
			due_at = CASE WHEN s.endpoint = '' THEN NULL
				WHEN s.due_at IS NULL OR s.failure_count = 0 AND s.due_at > i.ts
				THEN i.ts ELSE s.due_at END
		FROM input i
		WHERE s.id = i.subscription_id AND s.id IN (SELECT id FROM locked)
		RETURNING s.id, s.last_event_number
	)
	INSERT INTO events (` + eventColumns + `)
	SELECT sub.id, sub.last_event_number, i.ts, i.topic, i.focus_type, i.focus_id, i.focus_version, i.method,
		` + includesSQL("i.includes") + `
	FROM sub JOIN input i ON i.subscription_id = sub.id
	RETURNING subscription_id, number`

func (t *tx) AppendEvents(ctx context.Context, evs []store.Event) ([]int64, error) {
	switch len(evs) {
	case 0:
		return nil, nil
	case 1: // the common single match: the simpler statement plans faster
		n, err := t.AppendEvent(ctx, evs[0])
		if err != nil {
			return nil, err
		}
		return []int64{n}, nil
	}
	seen, args, ok := appendEventsArgs(evs)
	if !ok {
		return t.appendOneByOne(ctx, evs) // rare: the batch form numbers each id once
	}
	op := "append " + strconv.Itoa(len(evs)) + " events"
	t.appended, t.appendedNow = true, true
	rows, err := t.q.Query(ctx, appendEventsSQL, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	nums := make([]int64, len(evs))
	found := 0
	var id string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		nums[seen[id]] = n
		found++
		return nil
	}); err != nil {
		return nil, wrap(op, err)
	}
	if found != len(evs) {
		// A Subscription without state: the statement appended the others,
		// which the caller's failed transaction will roll back.
		return nil, store.ErrNotFound
	}
	return nums, nil
}

// appendEventsArgs are appendEventsSQL's parameters for evs, and the index
// of each Subscription's event; false when a Subscription appears twice.
func appendEventsArgs(evs []store.Event) (map[string]int, []any, bool) {
	seen := make(map[string]int, len(evs))
	cols := struct {
		ids, topics, types, focusIDs, methods []string
		ts                                    []time.Time
		versions                              []int64
		includes                              []*string
	}{}
	for i, e := range evs {
		if _, dup := seen[e.SubscriptionID]; dup {
			return nil, nil, false
		}
		seen[e.SubscriptionID] = i
		cols.ids = append(cols.ids, e.SubscriptionID)
		cols.ts = append(cols.ts, e.Timestamp)
		cols.topics = append(cols.topics, e.Topic)
		cols.types = append(cols.types, e.FocusType)
		cols.focusIDs = append(cols.focusIDs, e.FocusID)
		cols.versions = append(cols.versions, e.FocusVersion)
		cols.methods = append(cols.methods, string(e.Method))
		cols.includes = append(cols.includes, includesToDB(e.Includes))
	}
	return seen, []any{cols.ids, cols.ts, cols.topics, cols.types, cols.focusIDs, cols.versions, cols.methods, cols.includes}, true
}

// AppendEventsAtCommit defers appendEventSQL or appendEventsSQL (lazyTx.Defer):
// they go with the transaction's next statement or its COMMIT, which is the
// round trip a write saves. Both statements append nothing for a
// Subscription without state.
//
// When a delivery engine takes hand-offs (HandOffTo), the transaction's
// commit may lease these Subscriptions to that engine (handoff); the
// workers are woken for the others.
func (t *tx) AppendEventsAtCommit(ctx context.Context, evs []store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	t.appended = true
	one, many := appendEventSQL, appendEventsSQL
	if t.handingOff() {
		for _, e := range evs {
			t.handoff.add(e.SubscriptionID)
		}
	}
	if len(evs) > 1 {
		if _, args, ok := appendEventsArgs(evs); ok {
			t.q.Defer(many, args...)
			return nil
		}
	}
	for _, e := range evs { // one, or the same Subscription more than once
		t.q.Defer(one, appendEventArgs(e)...)
	}
	return nil
}

func (t *tx) appendOneByOne(ctx context.Context, evs []store.Event) ([]int64, error) {
	nums := make([]int64, len(evs))
	for i, e := range evs {
		n, err := t.AppendEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		nums[i] = n
	}
	return nums, nil
}

// Readers: the Store reads committed events through the pool, a tx reads
// through its transaction (and so sees its own appends).

func (s *Store) Events(ctx context.Context, subscriptionID string, from, to int64, limit int) ([]store.Event, error) {
	return events(ctx, s.deliveryPool(), subscriptionID, from, to, limit)
}

func (s *Store) EventCount(ctx context.Context, subscriptionID string) (int64, error) {
	return eventCount(ctx, s.pool, subscriptionID)
}

func (t *tx) Events(ctx context.Context, subscriptionID string, from, to int64, limit int) ([]store.Event, error) {
	return events(ctx, t.q, subscriptionID, from, to, limit)
}

func (t *tx) EventCount(ctx context.Context, subscriptionID string) (int64, error) {
	return eventCount(ctx, t.q, subscriptionID)
}

// eventsSQL: $2 and $3 are the inclusive bounds on number, $4 the limit
// (NULL for none). The primary key serves the range in order.
const eventsSQL = `SELECT ` + eventColumns + ` FROM events
	WHERE subscription_id = $1 AND number >= $2 AND number <= $3
	ORDER BY number
	LIMIT $4`

func events(ctx context.Context, q querier, subscriptionID string, from, to int64, limit int) ([]store.Event, error) {
	op := "events of subscription " + subscriptionID + " from " + strconv.FormatInt(from, 10)
	if to <= 0 {
		to = math.MaxInt64
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := q.Query(ctx, eventsSQL, subscriptionID, from, to, lim)
	if err != nil {
		return nil, wrap(op, err)
	}
	rs, err := pgx.CollectRows(rows, scanEventRow)
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	out := make([]store.Event, len(rs))
	for i, r := range rs {
		out[i] = r.event()
	}
	return out, nil
}

const eventCountSQL = `SELECT last_event_number FROM subscriptions WHERE id = $1`

func eventCount(ctx context.Context, q querier, subscriptionID string) (int64, error) {
	op := "event count of subscription " + subscriptionID
	rows, err := q.Query(ctx, eventCountSQL, subscriptionID)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, wrap(op, err)
	}
	return n, nil
}
