package postgres

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-fhir/herald/internal/store"
)

var (
	_ store.DeliveryQueue  = (*Store)(nil)
	_ store.DeliveryWriter = (*tx)(nil)
)

// wakeChannel is the LISTEN/NOTIFY channel that tells delivery workers new
// work may be due. It is database-wide: stores in other schemas of the same
// database (tests) cause spurious wake-ups, which are harmless.
const wakeChannel = "herald_delivery"

// deliveryColumns follow subscriptionColumns in claimSQL's RETURNING.
const deliveryColumns = `lease_token, lease_until, last_event_number, delivered_through,
	handshake_pending, failure_count, due_at, last_sent_at, error_since`

// claimSQL leases due, unleased rows, and reads the next events of each
// (the lateral join; none when $5 is 0) with the focus version each
// notification shows, in the same round trip. A focus version's body comes
// once, on its first row (ClaimDue shares it with the rest): a write that
// fires for many Subscriptions would otherwise be read, and held, once per
// Subscription (32 Subscriptions x 100 events of 4 MB: 12.8 GB in one claim).
// A task's events stop where the bodies its rows send pass $7
// (store.ClaimEventBytes; its first event always comes), as ClaimDue keeps
// them: the rows ClaimDue would drop are not sent, so the claim's
// transaction (the claim lock, the claimed rows' locks) does not last for
// streaming them (TestClaimTransfersOnlyWhatItKeeps).
//
// Which rows: every owner with scheduled rows is found by a skip scan of
// subscription_due's (owner, due_at, id) index (migration 00022; owners: one
// index probe per owner, however many rows each has). Its unleased due rows are ranked (turn) after its live
// leases (leased: counted in subscription_leases, which migration 00019's
// trigger keeps), earliest due first, and the claim takes the lowest turns,
// so owners take turns round-robin and one owner's thousands of early due
// rows never hide another owner's later one. With $6 > 0 no owner gets a
// turn beyond $6. heads are the owners with a row to offer (and, with a
// cap, below it); each offers a row at turn leased + 1, so once $3 heads
// exist no row past the $3-th smallest of those turns (bound) can be taken,
// and each owner reads only its rows up to that turn (with 1,000 owners and
// none leased, one row each rather than its whole share). So a claim reads
// about owners x (share or bound) index entries and leases, not the queue:
// its cost does not grow with how many rows are due. ClaimDue runs the
// statement under a lock that makes the cap hold across instances
// (claimLockSQL).
//
// The candidates are locked in turn order, one at a time through the
// lateral, until $3 are taken (the LIMIT stops the walk, so no more are
// locked). The lease test is repeated on u, the locked row: a row another
// claimer leased and committed meanwhile is re-checked there (READ
// COMMITTED re-evaluates the locked row's own conditions), not in the
// ranking's older snapshot. SKIP LOCKED passes over rows another claimer or
// a write transaction holds, so concurrent claimers split the work and a row
// whose write is still open is left for the wake-up its commit sends (a
// skipped candidate is not replaced by one past an owner's share or the
// bound, so such a claim may take fewer than $3; the next takes the rest). The
// row lock lasts only for this statement; the lease is what keeps others off
// while the worker sends. Leases are set and judged by the database's clock,
// so instances with skewed clocks never hold one Subscription at once.
var claimSQL = `WITH RECURSIVE owners AS (
		(SELECT owner FROM subscription_due ORDER BY owner, due_at LIMIT 1)
		UNION ALL
		SELECT (SELECT n.owner FROM subscription_due n WHERE n.owner > o.owner ORDER BY n.owner, n.due_at LIMIT 1)
		FROM owners o WHERE o.owner IS NOT NULL
	), heads AS (
		SELECT o.owner, l.leased FROM owners o
		CROSS JOIN LATERAL (` + ownerLeasesSQL("o.owner") + `) l
		CROSS JOIN LATERAL (
			SELECT FROM subscription_due q
			WHERE q.owner = o.owner AND ` + dueLeaseFreeSQL("q") + `
			LIMIT 1) claimable
		WHERE o.owner IS NOT NULL AND ` + belowCapSQL("l.leased") + `
	), bound AS (
		SELECT (SELECT leased + 1 FROM heads ORDER BY leased LIMIT 1 OFFSET $3 - 1) AS turn
	), ranked AS (
		SELECT d.id, d.due_at, h.leased + row_number() OVER (PARTITION BY h.owner ORDER BY d.due_at, d.id) AS turn
		FROM heads h CROSS JOIN bound b
		CROSS JOIN LATERAL (
			SELECT q.id, q.due_at FROM subscription_due q
			WHERE q.owner = h.owner AND ` + dueLeaseFreeSQL("q") + `
			ORDER BY q.due_at, q.id
			LIMIT greatest(least(CASE WHEN $6 > 0 THEN $6 - h.leased ELSE $3 END, $3, b.turn - h.leased), 0)
		) d
	), claimed AS (
		UPDATE subscriptions s SET ` + leaseSetSQL + `
		FROM (
			SELECT x.id FROM (SELECT id, turn, due_at FROM ranked ORDER BY turn, due_at, id) r
			CROSS JOIN LATERAL (
				SELECT u.id FROM subscriptions u
				WHERE u.id = r.id AND ` + claimableSQL("u.") + `
				FOR UPDATE SKIP LOCKED
			) x
			LIMIT $3
		) due
		WHERE s.id = due.id
		RETURNING ` + claimedColumns + `
	)
	` + claimTasksSQL

// The claim's rule, in pieces that the hand-off (handoffSQL) shares:
//
// claimableSQL: the row (alias, "" or "x.") is due at $2 and its lease is
// free (none, or ended by the database's clock).
func claimableSQL(alias string) string {
	return alias + `due_at <= $2 AND (` + alias + `lease_until IS NULL OR ` + alias + `lease_until <= statement_timestamp())`
}

// dueLeaseFreeSQL is claimableSQL for the row q of subscription_due
// (migration 00022), whose lease is its Subscription's. The lease is read by
// a subquery, which PostgreSQL runs for each row of q that is due, by the
// primary key: a join would let the planner, with statistics taken while
// the queue was empty, hash the whole of both tables in every claim.
func dueLeaseFreeSQL(q string) string {
	return q + `.due_at <= $2 AND (SELECT s.lease_until IS NULL OR s.lease_until <= statement_timestamp()
				FROM subscriptions s WHERE s.id = ` + q + `.id)`
}

// ownerLeasesSQL counts owner's live leases (as leased).
func ownerLeasesSQL(owner string) string {
	return `SELECT count(*) AS leased FROM subscription_leases
			WHERE owner = ` + owner + ` AND lease_until > statement_timestamp()`
}

// belowCapSQL: an owner holding leased leases may take one more under the
// cap $6 (none when $6 <= 0).
func belowCapSQL(leased string) string { return `($6 <= 0 OR ` + leased + ` < $6)` }

// leaseSetSQL leases a row to lease $1 for $4, by the database's clock.
// The trigger of migration 00019 records it in subscription_leases.
const leaseSetSQL = `lease_token = $1, lease_until = statement_timestamp() + $4::interval`

// claimedColumns is what the UPDATE of claimed returns: a task's state.
var claimedColumns = subscriptionColumnsOf("s") + `, ` + deliveryColumnsOf("s") + `, statement_timestamp() AS db_now`

// claimTasksSQL follows a CTE claimed (the leased rows, claimedColumns):
// each task with its next events, as claimSQL's comment describes ($5 the
// events per task, $7 the bytes).
var claimTasksSQL = `SELECT * FROM (
	SELECT r.*, row_number() OVER w AS task_event, sum(coalesce(octet_length(r.fv_body), 0)) OVER w AS task_bytes
	FROM (
	SELECT c.*, (SELECT value FROM config_generation) AS config_gen, e.number AS ev_number, e.timestamp AS ev_timestamp, e.topic AS ev_topic,
		e.focus_type AS ev_focus_type, e.focus_id AS ev_focus_id, e.focus_version AS ev_focus_version,
		e.method AS ev_method, e.includes AS ev_includes, fv.version_id AS fv_version_id, fv.last_updated AS fv_last_updated,
		fv.method AS fv_method, fv.deleted AS fv_deleted,
		CASE WHEN row_number() OVER (PARTITION BY fv.type, fv.id, fv.version_id ORDER BY c.due_at, c.id, e.number) = 1
			THEN fv.body END AS fv_body, fv.patients AS fv_patients
	FROM claimed c LEFT JOIN LATERAL (
		SELECT * FROM events ev
		WHERE $5 > 0 AND NOT c.handshake_pending AND ev.subscription_id = c.id
			AND ev.number > c.delivered_through AND ev.number <= c.last_event_number
		ORDER BY ev.number
		LIMIT CASE WHEN c.max_count > 0 THEN c.max_count ELSE $5 END
	) e ON true
	LEFT JOIN resource_versions fv ON fv.type = e.focus_type AND fv.id = e.focus_id
		AND fv.version_id = e.focus_version - CASE WHEN e.method = 'DELETE' THEN 1 ELSE 0 END
	) r WINDOW w AS (PARTITION BY r.id ORDER BY r.ev_number ROWS UNBOUNDED PRECEDING)
	) t
	WHERE t.ev_number IS NULL OR t.task_event = 1 OR t.task_bytes <= $7
	ORDER BY t.due_at, t.id, t.ev_number`

func subscriptionColumnsOf(alias string) string { return qualify(alias, subscriptionColumns) }
func deliveryColumnsOf(alias string) string     { return qualify(alias, deliveryColumns) }

// qualify prefixes each column of a comma-separated list with alias.
func qualify(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// claimRow is a row of claimSQL.
type claimRow struct {
	subscriptionRow
	LeaseToken       string     `db:"lease_token"`
	LeaseUntil       time.Time  `db:"lease_until"`
	LastEventNumber  int64      `db:"last_event_number"`
	DeliveredThrough int64      `db:"delivered_through"`
	HandshakePending bool       `db:"handshake_pending"`
	FailureCount     int        `db:"failure_count"`
	DueAt            *time.Time `db:"due_at"`
	LastSentAt       *time.Time `db:"last_sent_at"`
	ErrorSince       *time.Time `db:"error_since"`
}

// claimEventRow is a row of claimSQL: a claimed state, and one of its
// events or NULLs.
type claimEventRow struct {
	claimRow
	DBNow          time.Time  `db:"db_now"`
	ConfigGen      int64      `db:"config_gen"`
	EvNumber       *int64     `db:"ev_number"`
	EvTimestamp    *time.Time `db:"ev_timestamp"`
	EvTopic        *string    `db:"ev_topic"`
	EvFocusType    *string    `db:"ev_focus_type"`
	EvFocusID      *string    `db:"ev_focus_id"`
	EvFocusVersion *int64     `db:"ev_focus_version"`
	EvMethod       *string    `db:"ev_method"`
	EvIncludes     []string   `db:"ev_includes"`
	FvVersionID    *int64     `db:"fv_version_id"`
	FvLastUpdated  *time.Time `db:"fv_last_updated"`
	FvMethod       *string    `db:"fv_method"`
	FvDeleted      *bool      `db:"fv_deleted"`
	FvBody         []byte     `db:"fv_body"`
	FvPatients     []string   `db:"fv_patients"`
	TaskEvent      int64      `db:"task_event"` // the row's place among its task's, from 1
	TaskBytes      int64      `db:"task_bytes"` // the bodies its task's rows sent up to it
}

// focus is the event's focus version as the claim read it; nil when none.
func (r claimEventRow) focus() *store.Version {
	if r.FvVersionID == nil {
		return nil
	}
	v := versionRow{Type: *r.EvFocusType, ID: *r.EvFocusID, VersionID: *r.FvVersionID, LastUpdated: *r.FvLastUpdated,
		Method: *r.FvMethod, Deleted: *r.FvDeleted, Body: r.FvBody, Patients: r.FvPatients}.version()
	return &v
}

// claimLockSQL is the lock claims with a per-owner cap take, in their
// transaction, before claimSQL: one at a time per schema, across every
// instance. claimSQL counts an owner's leases in its snapshot; two claims
// running at once each miss the other's and, when rows became due earlier
// between their snapshots, both hand the owner its whole share (an owner
// held 5 leases under a cap of 3 in TestOwnerCapAcrossInstances). Under the
// lock, a claim's statement starts after the previous claim committed, so
// READ COMMITTED shows it that claim's leases. One lock rather than one per
// owner: every claim ranks every owner with due work, so it would take every
// owner's lock anyway, and finding the owners first would cost a round trip.
// Claims are short and few (one loop per instance), so they queue briefly;
// finishes and releases never take the lock, and a write that hands its
// Subscriptions off (handoff.go) only tries it, at its COMMIT, never waiting.
const claimLockSQL = `SELECT pg_advisory_xact_lock(` + claimLockKey + `)`

// claimLockKey is the claim lock's key: one per schema.
const claimLockKey = `hashtextextended('herald.claim/' || current_schema(), 0)`

// claim runs claimSQL with args and hands each row to each, as it is read
// (the rows of large bodies are never all held): when capped, as BEGIN,
// claimLockSQL, claimSQL and COMMIT in one round trip (a batch); otherwise
// alone. An error from each, or from the COMMIT, means no claim.
func (s *Store) claim(ctx context.Context, capped bool, each func(claimEventRow) error, args ...any) error {
	forEach := func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			r, err := pgx.RowToStructByName[claimEventRow](rows)
			if err != nil {
				return err
			}
			if err := each(r); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if !capped {
		rows, err := s.deliveryPool().Query(ctx, claimSQL, args...)
		if err != nil {
			return err
		}
		return forEach(rows)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(claimLockSQL)
	b.Queue(claimSQL, args...)
	b.Queue("COMMIT")
	br := s.deliveryPool().SendBatch(ctx, b)
	_, err := br.Exec()
	if _, e := br.Exec(); err == nil {
		err = e
	}
	if rows, e := br.Query(); e != nil {
		err = cmp.Or(err, e)
	} else if e = forEach(rows); e != nil {
		err = cmp.Or(err, e)
	}
	if _, e := br.Exec(); err == nil {
		err = e // not committed: the rows are no claim
	}
	return errors.Join(err, br.Close())
}

func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) ([]store.DeliveryTask, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.claims.Add(1)
	c := newTaskCollector(now)
	if err := s.claim(ctx, perOwner > 0, c.add, claimArgs(now, limit, leaseFor, eventsPerTask, perOwner)...); err != nil {
		return nil, wrap("claim due subscriptions", err)
	}
	return c.tasks, nil
}

// taskCollector turns the rows of claimTasksSQL (a claim's or a hand-off's)
// into tasks, as they are read.
type taskCollector struct {
	now   time.Time // the caller's clock, which LeaseUntil is given in
	tasks []store.DeliveryTask
	// bodies: claimTasksSQL sends each focus body once.
	bodies map[versionKey][]byte
	// Rows come task by task; each task keeps events while their bodies
	// fit store.ClaimEventBytes (its first always), and the rows past that
	// are read and dropped one at a time, never held.
	taskBytes int
	taskFull  bool
}

type versionKey struct {
	typ, id string
	version int64
}

func newTaskCollector(now time.Time) *taskCollector {
	return &taskCollector{now: now, bodies: map[versionKey][]byte{}}
}

func (c *taskCollector) add(r claimEventRow) error {
	if len(c.tasks) == 0 || c.tasks[len(c.tasks)-1].State.ID != r.ID {
		c.tasks = append(c.tasks, store.DeliveryTask{
			State: r.state(), Lease: r.LeaseToken, LeaseUntil: c.now.Add(r.LeaseUntil.Sub(r.DBNow)).UTC(),
			LastEventNumber: r.LastEventNumber, DeliveredThrough: r.DeliveredThrough,
			HandshakePending: r.HandshakePending, FailureCount: r.FailureCount,
			DueAt: fromNullTime(r.DueAt), LastSentAt: fromNullTime(r.LastSentAt), ErrorSince: fromNullTime(r.ErrorSince),
			ConfigGeneration: r.ConfigGen,
		})
		c.taskBytes, c.taskFull = 0, false
	}
	if r.EvNumber == nil || c.taskFull {
		return nil
	}
	tk := &c.tasks[len(c.tasks)-1]
	if len(tk.Events) > 0 && c.taskBytes+len(r.FvBody) > store.ClaimEventBytes {
		c.taskFull = true // this and later events wait for the next claim
		return nil
	}
	c.taskBytes += len(r.FvBody)
	ev := eventRow{SubscriptionID: r.ID, Number: *r.EvNumber, Timestamp: *r.EvTimestamp,
		Topic: *r.EvTopic, FocusType: *r.EvFocusType, FocusID: *r.EvFocusID, FocusVersion: *r.EvFocusVersion,
		Method: *r.EvMethod, Includes: r.EvIncludes}.event()
	if r.FvVersionID != nil {
		k := versionKey{*r.EvFocusType, *r.EvFocusID, *r.FvVersionID}
		if r.FvBody == nil && !*r.FvDeleted {
			r.FvBody = c.bodies[k] // nil when its first row was dropped: Focus is left nil, read later
		} else {
			c.bodies[k] = r.FvBody
		}
		if r.FvBody != nil || *r.FvDeleted {
			ev.Focus = r.focus()
		}
	}
	tk.Events = append(tk.Events, ev)
	return nil
}

// claimArgs are claimSQL's arguments for ClaimDue's.
func claimArgs(now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) []any {
	return []any{uuid.NewString(), now, limit, leaseFor, max(eventsPerTask, 0), perOwner, int64(store.ClaimEventBytes)}
}

// releaseLeaseSQL frees a lease and wakes the workers of every instance,
// since the Subscription may still be due: a lease handed off to an engine
// that stopped before its write committed was taken without a wake-up.
const releaseLeaseSQL = `WITH released AS (
		UPDATE subscriptions SET lease_token = NULL, lease_until = NULL
		WHERE id = $1 AND lease_token = $2 RETURNING id)
	SELECT pg_notify('` + wakeChannel + `', '') FROM released`

func (s *Store) ReleaseLease(ctx context.Context, subscriptionID, lease string) error {
	_, err := s.deliveryPool().Exec(ctx, releaseLeaseSQL, subscriptionID, lease)
	return wrap("release lease of subscription "+subscriptionID, err)
}

// finishSet is the SET list that applies a delivery outcome to the
// subscriptions row s, given SQL expressions for the outcome's values: the
// one statement of the rule that finishSQL and finishBatchSQL share. The
// backlog test reads the row's committed counter under its lock, which
// orders it against AppendEvent. keepUS is the lease to keep in
// microseconds (NULL: release).
func finishSet(now, sent, handshaken, through, failed, next, keepUS string) string {
	cursor := `greatest(s.delivered_through, least(` + through + `, s.last_event_number))`
	return `delivered_through = ` + cursor + `,
		failure_count = CASE WHEN ` + sent + ` THEN 0 WHEN ` + failed + ` THEN s.failure_count + 1 ELSE s.failure_count END,
		last_sent_at = CASE WHEN ` + sent + ` THEN ` + now + ` ELSE s.last_sent_at END,
		handshake_pending = s.handshake_pending AND NOT ` + handshaken + `,
		due_at = CASE WHEN ` + sent + ` AND s.status <> 'off' AND ` + cursor + ` < s.last_event_number
			THEN ` + now + ` ELSE ` + next + ` END,
		lease_token = CASE WHEN ` + keepUS + ` IS NULL THEN NULL ELSE s.lease_token END,
		lease_until = CASE WHEN ` + keepUS + ` IS NULL THEN NULL ELSE clock_timestamp() + ` + keepUS + ` * interval '1 microsecond' END`
}

// finishSQL applies a DeliveryResult under the row lock (finishSet).
// $2 lease, $3 now, $4 sent, $5 handshaken, $6 delivered_through, $7 failed,
// $8 next (NULL: none), $9 keep in microseconds (NULL: release).
var finishSQL = `UPDATE subscriptions s SET ` +
	finishSet(`$3::timestamptz`, `$4::bool`, `$5::bool`, `$6::bigint`, `$7::bool`, `$8::timestamptz`, `$9::bigint`) + `
	WHERE s.id = $1 AND s.lease_token = $2`

// finishLoggedSQL is finishSQL that also logs the attempt ($10…, in
// attemptColumns order) when the lease was still held: the row count is
// the INSERT's, which is the UPDATE's. One statement, so the log costs no
// round trip.
var finishLoggedSQL = `WITH finished AS (` + finishSQL + ` RETURNING s.id)
	INSERT INTO delivery_attempts (subscription_id, ` + attemptColumns + `)
	SELECT id, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21 FROM finished`

// FinishDelivery on the Store commits without waiting for the WAL flush,
// in one round trip. What it records is a cursor, a schedule and an
// attempt: if a crash loses it, the notification is sent again, which
// at-least-once delivery allows. Writes of resources and events always wait
// for the flush. On a delivery pool of its own (SeparateDeliveryPool, whose
// sessions have synchronous_commit off) it is one autocommit statement,
// shared with the outcomes other workers record meanwhile (finisher);
// on the shared pool it sets synchronous_commit off for its own transaction
// only (BEGIN, SET LOCAL, the statement, COMMIT in one batch).
func (s *Store) FinishDelivery(ctx context.Context, r store.DeliveryResult) error {
	if s.delivery != nil {
		// With the outcomes that arrive meanwhile (finisher), unless its
		// row is locked by a write: then alone, waiting for that write.
		if alone, err := s.finishes.finish(ctx, r); !alone {
			return err
		}
		return finishDelivery(ctx, s.delivery, r)
	}
	sql, args := finishStatement(r)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit TO off")
	b.Queue(sql, args...)
	b.Queue("COMMIT")
	br := s.pool.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	var err error
	for i := range 4 {
		t, e := br.Exec()
		if i == 2 {
			tag = t
		}
		if e != nil && err == nil {
			err = e
		}
	}
	if err = errors.Join(err, br.Close()); err != nil {
		return wrap("finish delivery of subscription "+r.SubscriptionID, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrLeaseLost
	}
	return nil
}

// finishStatement is finishSQL, or finishLoggedSQL when r carries an
// attempt, with its arguments.
func finishStatement(r store.DeliveryResult) (string, []any) {
	args := []any{r.SubscriptionID, r.Lease, r.Now, r.Sent, r.Handshaken, r.DeliveredThrough, r.Failed, toNullTime(r.Next), keepMicros(r)}
	if r.Attempt == nil {
		return finishSQL, args
	}
	return finishLoggedSQL, append(args, attemptArgs(*r.Attempt)...)
}

// keepMicros is r's lease to keep in microseconds, nil to release it.
func keepMicros(r store.DeliveryResult) *int64 {
	if r.KeepFor <= 0 {
		return nil
	}
	us := r.KeepFor.Microseconds()
	return &us
}

func (t *tx) FinishDelivery(ctx context.Context, r store.DeliveryResult) error {
	return finishDelivery(ctx, t.q, r)
}

// execer runs a statement: the pool (autocommit) or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func finishDelivery(ctx context.Context, q execer, r store.DeliveryResult) error {
	sql, args := finishStatement(r)
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return wrap("finish delivery of subscription "+r.SubscriptionID, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrLeaseLost
	}
	return nil
}

const (
	statusCountsSQL = `SELECT status, count(*) FROM subscriptions GROUP BY status`
	// The oldest unacknowledged event of each live Subscription is the one
	// after its cursor: one primary-key probe per Subscription with a backlog.
	oldestUndeliveredSQL = `SELECT min(e.timestamp) FROM subscriptions s
		JOIN events e ON e.subscription_id = s.id AND e.number = s.delivered_through + 1
		WHERE s.status <> 'off' AND s.delivered_through < s.last_event_number`
)

func (s *Store) DeliveryStats(ctx context.Context) (store.DeliveryStats, error) {
	st := store.DeliveryStats{ByStatus: map[string]int{}}
	rows, err := s.pool.Query(ctx, statusCountsSQL)
	if err != nil {
		return st, wrap("delivery stats", err)
	}
	var status string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		st.ByStatus[status] = n
		return nil
	}); err != nil {
		return st, wrap("delivery stats", err)
	}
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, oldestUndeliveredSQL).Scan(&oldest); err != nil {
		return st, wrap("delivery stats", err)
	}
	st.OldestUndelivered = fromNullTime(oldest)
	return st, nil
}

// DeliveryWake starts, on first use, the listener connection (listen)
// and returns its delivery wake-ups.
func (s *Store) DeliveryWake() <-chan struct{} {
	s.startListening()
	return s.wakes.Listen()
}

// ConfigChanges starts, on first use, the listener connection (listen) and
// returns its configuration changes.
func (s *Store) ConfigChanges() <-chan struct{} {
	s.startListening()
	return s.config
}

const configGenerationSQL = `SELECT value FROM config_generation`

// ConfigGeneration reads the counter that the triggers of migration 00009
// move in every transaction changing topics, the allow-list or clients.
func (s *Store) ConfigGeneration(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, configGenerationSQL).Scan(&n)
	return n, wrap("config generation", err)
}

// startListening starts one listener connection that turns notifications
// on wakeChannel and configChannel into signals. When the connection breaks
// it reconnects with a growing pause and signals both once reconnected,
// since notifications sent meanwhile are lost.
func (s *Store) startListening() {
	s.wakeOnce.Do(func() {
		s.config = make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		s.stopListen = cancel
		s.listening.Add(1)
		go func() {
			defer s.listening.Done()
			s.listen(ctx)
		}()
	})
}

func (s *Store) signalWake() { s.wakes.Signal() }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Store) listen(ctx context.Context) {
	next := listenPauseMin
	for ctx.Err() == nil {
		start := time.Now()
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		wait, next = reconnectPause(next, time.Since(start))
		slog.Warn("LISTEN connection lost; delivery workers and configuration checks poll until it is back", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

const (
	listenPauseMin = 100 * time.Millisecond
	listenPauseMax = 5 * time.Second
	// listenHealthy is how long a LISTEN connection must have lasted for
	// its loss to count as a new outage rather than the same one going on.
	listenHealthy = 30 * time.Second
)

// reconnectPause is how long to wait before reconnecting after a LISTEN
// connection that was up for up, and the pause after that: doubling while
// connections keep failing, from the start again after a healthy one (a
// brief outage next week must not wait as long as the last of today's).
func reconnectPause(next, up time.Duration) (wait, after time.Duration) {
	if up >= listenHealthy {
		next = listenPauseMin
	}
	return next, min(2*next, listenPauseMax)
}

func (s *Store) listenOnce(ctx context.Context) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The session holds a LISTEN: it never goes back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+wakeChannel+"; LISTEN "+configChannel); err != nil {
		return err
	}
	s.signalWake() // anything sent while no one listened
	signal(s.config)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		switch {
		case n.Channel == configChannel:
			signal(s.config)
		case s.notifier.ownSession(n.PID):
			// wakeDelivery woke this process's workers before asking for it
		default:
			s.signalWake()
		}
	}
}

// configChannel is notified by migration 00009's triggers.
const configChannel = "herald_config"

// listener is the part of Store that startListening starts and Close stops.
type listener struct {
	wakeOnce   sync.Once
	wakes      store.Wakes
	config     chan struct{}
	stopListen context.CancelFunc
	listening  sync.WaitGroup
}

func (l *listener) stop() {
	if l.stopListen != nil {
		l.stopListen()
	}
	l.listening.Wait()
}
