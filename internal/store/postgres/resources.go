package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-fhir/herald/internal/store"
)

// querier is what the readers need: the pool outside a transaction, the
// pgx.Tx inside one.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// versionRow is a row of resources or resource_versions, in versionColumns
// order.
type versionRow struct {
	Type        string    `db:"type"`
	ID          string    `db:"id"`
	VersionID   int64     `db:"version_id"`
	LastUpdated time.Time `db:"last_updated"`
	Method      string    `db:"method"`
	Deleted     bool      `db:"deleted"`
	Body        []byte    `db:"body"`
	Patients    []string  `db:"patients"`
}

func (r versionRow) version() store.Version {
	v := store.Version{
		Type:        r.Type,
		ID:          r.ID,
		VersionID:   r.VersionID,
		LastUpdated: r.LastUpdated.UTC(),
		Method:      store.Method(r.Method),
		Deleted:     r.Deleted,
		Body:        r.Body,
		Patients:    r.Patients,
	}
	if len(v.Patients) == 0 {
		v.Patients = nil
	}
	return v
}

const versionColumns = `type, id, version_id, last_updated, method, deleted, body, patients`

// queryOne runs a query that returns at most one version row.
func queryOne(ctx context.Context, q querier, sql string, args ...any) (store.Version, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return store.Version{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanVersionRow)
	if err != nil {
		return store.Version{}, err
	}
	return r.version(), nil
}

// scanVersionRow scans versionColumns in order. It is written out rather
// than pgx.RowToStructByName because reads are Herald's hottest path and the
// reflective mapper cost about 7% of a read's CPU.
func scanVersionRow(row pgx.CollectableRow) (versionRow, error) {
	var r versionRow
	err := row.Scan(&r.Type, &r.ID, &r.VersionID, &r.LastUpdated, &r.Method, &r.Deleted, &r.Body, &r.Patients)
	return r, err
}

// queryMany runs a query that returns version rows.
func queryMany(ctx context.Context, q querier, sql string, args ...any) ([]store.Version, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	rs, err := pgx.CollectRows(rows, scanVersionRow)
	if err != nil {
		return nil, err
	}
	out := make([]store.Version, len(rs))
	for i, r := range rs {
		out[i] = r.version()
	}
	return out, nil
}

// queryUpTo is queryMany over upToBytes(sql): the rows, in their order (an
// ORDER BY clause of sql's columns), up to the one whose body brings them
// to maxBytes (store.HistoryQuery.MaxBytes; 0: all rows).
func queryUpTo(ctx context.Context, q querier, maxBytes int64, order, sql string, args ...any) ([]store.Version, error) {
	sql, args = upToBytes(maxBytes, order, sql, args)
	return queryMany(ctx, q, sql, args...)
}

// upToBytes cuts sql's rows in SQL, over the sizes of their bodies
// (octet_length reads no TOASTed value), so the rows past the cut are
// neither fetched nor sent: a client that stopped reading would still
// receive them. maxBytes 0 leaves sql as it is.
func upToBytes(maxBytes int64, order, sql string, args []any) (string, []any) {
	return upToBytesOf(versionColumns, maxBytes, order, sql, args)
}

// upToBytesOf is upToBytes for sql's columns cols.
func upToBytesOf(cols string, maxBytes int64, order, sql string, args []any) (string, []any) {
	if maxBytes <= 0 {
		return sql, args
	}
	args = append(args, maxBytes)
	return `SELECT ` + cols + ` FROM (SELECT *, sum(coalesce(octet_length(body), 0)) OVER w - coalesce(octet_length(body), 0) AS bytes_before
		FROM (` + sql + `) AS page WINDOW w AS (` + order + ` ROWS UNBOUNDED PRECEDING)) AS capped
		WHERE bytes_before < $` + strconv.Itoa(len(args)) + order, args
}

// Readers: the Store reads committed data through the pool, a tx reads
// through its transaction. Both share the functions below.

func (s *Store) Current(ctx context.Context, typ, id string) (store.Version, error) {
	return current(ctx, s.pool, typ, id)
}

func (s *Store) Version(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	return version(ctx, s.pool, typ, id, versionID)
}

func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error) {
	return history(ctx, s.pool, q)
}

func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	return search(ctx, s.pool, q)
}

func (t *tx) Current(ctx context.Context, typ, id string) (store.Version, error) {
	return current(ctx, t.q, typ, id)
}

func (t *tx) Version(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	return version(ctx, t.q, typ, id, versionID)
}

func (t *tx) History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error) {
	return history(ctx, t.q, q)
}

func (t *tx) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	return search(ctx, t.q, q)
}

func (s *Store) SearchTotal(ctx context.Context, q store.SearchQuery) ([]store.Version, int, error) {
	return searchTotal(ctx, s.pool, q)
}

func (t *tx) SearchTotal(ctx context.Context, q store.SearchQuery) ([]store.Version, int, error) {
	return searchTotal(ctx, t.q, q)
}

const currentSQL = `SELECT ` + versionColumns + ` FROM resources WHERE type = $1 AND id = $2`

func current(ctx context.Context, q querier, typ, id string) (store.Version, error) {
	v, err := queryOne(ctx, q, currentSQL, typ, id)
	return v, wrap("current "+typ+"/"+id, err)
}

const versionSQL = `SELECT ` + versionColumns + ` FROM resource_versions WHERE type = $1 AND id = $2 AND version_id = $3`

func version(ctx context.Context, q querier, typ, id string, versionID int64) (store.Version, error) {
	v, err := queryOne(ctx, q, versionSQL, typ, id, versionID)
	return v, wrap(fmt.Sprintf("version %s/%s/_history/%d", typ, id, versionID), err)
}

const (
	// historySQL: $3 is the exclusive upper bound on version_id, $4 the
	// limit (NULL for none).
	historySQL = `SELECT ` + versionColumns + ` FROM resource_versions
		WHERE type = $1 AND id = $2 AND version_id < $3` + historyOrderSQL + `
		LIMIT $4`
	historyOrderSQL = ` ORDER BY version_id DESC`
	existsSQL       = `SELECT EXISTS (SELECT 1 FROM resources WHERE type = $1 AND id = $2)`
)

func history(ctx context.Context, q querier, hq store.HistoryQuery) ([]store.Version, error) {
	op := "history " + hq.Type + "/" + hq.ID
	before := int64(math.MaxInt64)
	if hq.Before > 0 {
		before = hq.Before
	}
	var limit *int
	if hq.Count > 0 {
		limit = &hq.Count
	}
	vs, err := queryUpTo(ctx, q, hq.MaxBytes, historyOrderSQL, historySQL, hq.Type, hq.ID, before, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(vs) > 0 {
		return vs, nil
	}
	if hq.Before <= 0 {
		return nil, store.ErrNotFound
	}
	// An empty page: is the resource there at all?
	rows, err := q.Query(ctx, existsSQL, hq.Type, hq.ID)
	if err != nil {
		return nil, wrap(op, err)
	}
	exists, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return nil, wrap(op, err)
	}
	if !exists {
		return nil, store.ErrNotFound
	}
	return vs, nil
}

// Search builds its WHERE clause from these fragments; every value is a
// parameter, written where a fragment has %s (or %[n]s) as param renders
// it. Time bounds are half-open: [from, to).
const (
	searchSQL          = `SELECT ` + versionColumns + resourcesWhereSQL
	resourcesWhereSQL  = ` FROM resources WHERE type = $1 AND NOT deleted`
	narrowWhereSQL     = ` FROM resources WHERE type = (SELECT $1::text) AND NOT deleted`
	searchIDsSQL       = ` AND id = ANY(%s::text[])`  // the cast: ANY((SELECT …)) would read as ANY (subquery)
	searchPatientSQL   = ` AND patients @> ARRAY[%s]` // uses the GIN index
	searchAfterIDSQL   = ` AND id > %s`
	searchBeforeIDSQL  = ` AND id < %s`
	searchOrderDescSQL = ` ORDER BY id DESC`
	searchKeysSQL      = ` AND (search_keys && %s OR search_keys IS NULL)`
	searchFromSQL      = ` AND last_updated >= %s`
	searchToSQL        = ` AND last_updated < %s`
	searchOutsideSQL   = ` AND (last_updated < %s OR last_updated >= %s)`
	searchNothingSQL   = ` AND false`
	searchOrderSQL     = ` ORDER BY id`
	searchLimitSQL     = ` LIMIT %s`
	searchOffsetSQL    = ` OFFSET %s`
	// By lastUpdated (resources_type_last_updated), ties by id ascending
	// either way; a batch continues after the last row of the one before,
	// the bound on last_updated alone an index condition.
	searchOrderOldestSQL = ` ORDER BY last_updated, id`
	searchOrderNewestSQL = ` ORDER BY last_updated DESC, id`
	searchFromOlderSQL   = ` AND last_updated >= %[1]s AND (last_updated > %[1]s OR id > %[2]s)`
	searchFromNewerSQL   = ` AND last_updated <= %[1]s AND (last_updated < %[1]s OR id > %[2]s)`
)

// param renders parameter n holding v, typed, as a fragment's %s. In a
// narrow search (fenced) it is a one-row subquery: then no plan depends on
// the values (the planner sees none, custom plan or generic), so after its
// first executions PostgreSQL keeps the statement's generic plan instead
// of planning it again for every search — planning cost more than running
// a patient's or a reference's search at a million resources (1.5 ms
// against 0.45 ms, EXPLAIN ANALYZE). The generic plan is the plan a narrow
// search wants anyway: its GIN index conditions, under the OFFSET 0 fence.
func param(n int, v any, fenced bool) string {
	var typ string
	switch v.(type) {
	case []string:
		typ = "text[]"
	case string:
		typ = "text"
	case time.Time:
		typ = "timestamptz"
	default: // counts and offsets
		typ = "bigint"
	}
	p := "$" + strconv.Itoa(n) + "::" + typ
	if fenced {
		return "(SELECT " + p + ")"
	}
	return p
}

// search applies the SQL conditions; with a matcher, it reads candidates in
// id order, in growing batches, until Count of them match or none are left,
// so pages are full and in the same order as without one.
func search(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, error) {
	vs, err := searchOneWay(ctx, q, sq)
	if sq.BeforeID != "" {
		slices.Reverse(vs) // read backwards from BeforeID
	}
	return vs, err
}

func searchOneWay(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, error) {
	if sq.Match == nil {
		return searchRows(ctx, q, sq)
	}
	var out []store.Version
	err := eachMatch(ctx, q, sq, func(v store.Version) bool {
		out = append(out, v)
		return sq.Count == 0 || len(out) < sq.Count
	})
	return out, err
}

// eachMatch hands yield, in the order sq reads them, the candidates
// sq.Match accepts past sq.Offset of them, until yield returns false, the
// matches reach sq.MaxBytes or none are left. Candidates are read in
// growing batches (so PostgreSQL stops early), each cut in SQL at
// sq.MaxBytes of them, and decoded one row at a time; those Match rejects
// or the offset skips are dropped at once: memory holds what yield keeps,
// not a batch of bodies (up to maxSearchBatch resources of up to
// HERALD_MAX_BODY_BYTES each), nor, for a count, every match.
func eachMatch(ctx context.Context, q querier, sq store.SearchQuery, yield func(store.Version) bool) error {
	batch := sq
	batch.Offset = 0 // counted here, in matches
	batch.Count = min(max(sq.Count+sq.Offset, 64), maxSearchBatch)
	var from *position
	skip, matched := sq.Offset, int64(0)
	for {
		sql, args := searchStatement(searchSQL, batch, true, from)
		// A batch sends at most MaxBytes of candidates (and one more): not
		// what the matches may still fill, which near the end would read
		// rejected candidates one round trip each.
		room := sq.MaxBytes
		sql, args = upToBytes(room, searchOrder(batch), sql, args)
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return wrap("search "+sq.Type, err)
		}
		n, read, last, stop := 0, int64(0), position{}, false
		for rows.Next() {
			r, err := scanVersionRow(rows)
			if err != nil {
				rows.Close()
				return wrap("search "+sq.Type, err)
			}
			n, read, last = n+1, read+int64(len(r.Body)), position{id: r.ID, lastUpdated: r.LastUpdated}
			v := r.version()
			switch {
			case !sq.Match(v):
			case skip > 0:
				skip--
			default:
				matched += int64(len(v.Body))
				stop = !yield(v) || (sq.MaxBytes > 0 && matched >= sq.MaxBytes)
			}
			if stop {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("search "+sq.Type, err)
		}
		if stop || (n < batch.Count && (room == 0 || read < room)) {
			return nil // done, or the end: not a batch cut at its bytes
		}
		switch {
		case sq.ByLastUpdated || sq.Desc:
			from = &last
		case sq.BeforeID != "":
			batch.BeforeID = last.id
		default:
			batch.AfterID = last.id
		}
		batch.Count = min(batch.Count*2, maxSearchBatch)
	}
}

// position is where a batch of candidates ends in a search's order: the
// next batch starts after it (searchStatement).
type position struct {
	id          string
	lastUpdated time.Time
}

const maxSearchBatch = 1024

func searchRows(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, error) {
	sql, args := searchStatement(searchSQL, sq, true, nil)
	vs, err := queryUpTo(ctx, q, sq.MaxBytes, searchOrder(sq), sql, args...)
	if err != nil {
		return nil, wrap("search "+sq.Type, err)
	}
	return vs, nil
}

// searchStatement appends sq's conditions to head (a SELECT …
// resourcesWhereSQL), and with paged its order, offset and limit, from
// after a position in that order when from is set.
//
// A narrow search (a patient's, a reference's or _id's) is read under an
// optimisation fence: its narrow conditions in a subquery ending OFFSET 0,
// the rest of its index terms, the caller's bounds (a granular grant's
// category is as common as any code), its order and its limit above it. Planned
// apart, the subquery reads the few rows of its narrow conditions through
// their index and only those are filtered and sorted, instead of a walk of
// the type's primary key that the planner's flat estimate for array keys
// makes look cheap with a small LIMIT (SearchQuery.Narrow; 1 s → 0.2 ms at
// a million resources), or a scan of a common key's rows (the parameters
// are fenced too, see param, so the planner cannot tell a patient's key
// from a frequent code's).
func searchStatement(head string, sq store.SearchQuery, paged bool, from *position) (string, []any) {
	var b strings.Builder
	args := make([]any, 1, 4+len(sq.LastUpdated)*2)
	args[0] = sq.Type
	narrow := sq.Narrow || sq.Patient != "" || len(sq.IDs) > 0
	// add appends a fragment whose %s verbs are the parameters vals.
	add := func(fragment string, vals ...any) {
		params := make([]any, len(vals))
		for i, v := range vals {
			args = append(args, v)
			params[i] = param(len(args), v, narrow)
		}
		fmt.Fprintf(&b, fragment, params...)
	}
	index := sq.Index
	if narrow {
		// The type is fenced too: a statement shared by the types (a
		// patient's Observations, then its Encounters, of which there may
		// be none) otherwise gets custom plans priced by each type's row
		// count; cheap ones for a rare type kept PostgreSQL from ever
		// choosing the generic plan, so every search was planned again
		// (0.16 ms planning against 0.06 ms running, pg_stat_statements).
		b.WriteString(`SELECT ` + versionColumns + `, search_keys` + narrowWhereSQL)
		if sq.Narrow && len(index) > 0 {
			add(searchKeysSQL, index[0])
			index = index[1:]
		}
	} else {
		b.WriteString(head)
	}
	if len(sq.IDs) > 0 {
		add(searchIDsSQL, sq.IDs)
	}
	if sq.Patient != "" {
		add(searchPatientSQL, sq.Patient)
	}
	if !narrow {
		for _, keys := range index {
			add(searchKeysSQL, keys)
		}
		addWithin(&b, sq.Within, add)
	}
	if sq.AfterID != "" {
		add(searchAfterIDSQL, sq.AfterID)
	}
	if sq.BeforeID != "" {
		add(searchBeforeIDSQL, sq.BeforeID)
	}
	for _, r := range sq.LastUpdated {
		switch {
		case !r.Exclude:
			if !r.From.IsZero() {
				add(searchFromSQL, r.From)
			}
			if !r.To.IsZero() {
				add(searchToSQL, r.To)
			}
		case r.From.IsZero() && r.To.IsZero():
			b.WriteString(searchNothingSQL) // outside (-∞, ∞)
		case r.From.IsZero():
			add(searchFromSQL, r.To) // outside (-∞, to): at or after to
		case r.To.IsZero():
			add(searchToSQL, r.From) // outside [from, ∞): before from
		default:
			add(searchOutsideSQL, r.From, r.To)
		}
	}
	if from != nil {
		switch {
		case sq.ByLastUpdated && sq.Desc:
			add(searchFromNewerSQL, from.lastUpdated, from.id)
		case sq.ByLastUpdated:
			add(searchFromOlderSQL, from.lastUpdated, from.id)
		default: // Desc
			add(searchBeforeIDSQL, from.id)
		}
	}
	if narrow {
		inner := b.String()
		b.Reset()
		b.WriteString(strings.TrimSuffix(head, resourcesWhereSQL) + ` FROM (` + inner + ` OFFSET 0) AS page WHERE true`)
		for _, keys := range index {
			add(searchKeysSQL, keys)
		}
		addWithin(&b, sq.Within, add)
	}
	if !paged {
		return b.String(), args
	}
	b.WriteString(searchOrder(sq))
	if sq.Count > 0 {
		add(searchLimitSQL, sq.Count)
	}
	if sq.Offset > 0 {
		add(searchOffsetSQL, sq.Offset)
	}
	return b.String(), args
}

// searchOrder is the ORDER BY clause of sq's results.
func searchOrder(sq store.SearchQuery) string {
	switch {
	case sq.ByLastUpdated && sq.Desc:
		return searchOrderNewestSQL
	case sq.ByLastUpdated:
		return searchOrderOldestSQL
	case sq.BeforeID != "" || sq.Desc:
		return searchOrderDescSQL // from BeforeID: the last Count before it; search reverses them
	}
	return searchOrderSQL
}

// addWithin appends the caller's bounds, ORed: ( (p AND k AND …) OR … ).
// NULL keys make a bound's key test NULL, not true: grants fail closed.
func addWithin(b *strings.Builder, within []store.Bound, add func(string, ...any)) {
	if len(within) == 0 {
		return
	}
	b.WriteString(" AND (")
	for i, bound := range within {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(true")
		if bound.Patient != "" {
			add(searchPatientSQL, bound.Patient)
		}
		for _, keys := range bound.Index {
			add(withinKeysSQL, keys)
		}
		b.WriteString(")")
	}
	b.WriteString(")")
}

const withinKeysSQL = ` AND search_keys && %s`

const countSQL = `SELECT count(*)` + resourcesWhereSQL

// Count counts in SQL when the index decides; with a matcher every
// candidate has to be matched.
func count(ctx context.Context, q querier, sq store.SearchQuery) (int, error) {
	sq.Count, sq.AfterID, sq.BeforeID, sq.MaxBytes, sq.Offset = 0, "", "", 0, 0
	if sq.Match != nil {
		n := 0
		err := eachMatch(ctx, q, sq, func(store.Version) bool { n++; return true })
		return n, err
	}
	sql, args := searchStatement(countSQL, sq, false, nil)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return 0, wrap("count "+sq.Type, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
	return n, wrap("count "+sq.Type, err)
}

// searchTotal is search and count in one pass over a first page's
// candidates: with a matcher, one read that keeps the page's matches and
// counts the rest (a count alone reads and matches them all anyway);
// narrowed through the index, one statement whose rows carry the count of
// all of them (count(*) OVER (), taken before the LIMIT: the narrow
// candidates are read and sorted whole either way). Otherwise, and past
// the first page, a count and then the page.
func searchTotal(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, int, error) {
	if sq.AfterID == "" && sq.BeforeID == "" && sq.Offset == 0 {
		switch {
		case sq.Match != nil:
			return matchTotal(ctx, q, sq)
		case sq.Narrow || sq.Patient != "" || len(sq.IDs) > 0:
			return rowsTotal(ctx, q, sq)
		}
	}
	n, err := count(ctx, q, sq)
	if err != nil {
		return nil, 0, err
	}
	vs, err := search(ctx, q, sq)
	return vs, n, err
}

// matchTotal is searchTotal through the matcher: eachMatch over every
// candidate, the first matches kept as searchOneWay keeps them.
func matchTotal(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, int, error) {
	all := sq
	all.Count, all.MaxBytes = 0, 0
	var out []store.Version
	n, kept, full := 0, int64(0), false
	err := eachMatch(ctx, q, all, func(v store.Version) bool {
		n++
		if !full {
			out = append(out, v)
			kept += int64(len(v.Body))
			full = (sq.Count > 0 && len(out) >= sq.Count) || (sq.MaxBytes > 0 && kept >= sq.MaxBytes)
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

const searchTotalSQL = `SELECT ` + versionColumns + `, count(*) OVER () AS total` + resourcesWhereSQL

// rowsTotal is searchTotal of a narrow search without a matcher, in one
// statement. No row (no match) is a total of 0.
func rowsTotal(ctx context.Context, q querier, sq store.SearchQuery) ([]store.Version, int, error) {
	sql, args := searchStatement(searchTotalSQL, sq, true, nil)
	sql, args = upToBytesOf(versionColumns+`, total`, sq.MaxBytes, searchOrder(sq), sql, args)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, wrap("search "+sq.Type, err)
	}
	var out []store.Version
	var total int64
	for rows.Next() {
		var r versionRow
		if err := rows.Scan(&r.Type, &r.ID, &r.VersionID, &r.LastUpdated, &r.Method, &r.Deleted, &r.Body, &r.Patients, &total); err != nil {
			rows.Close()
			return nil, 0, wrap("search "+sq.Type, err)
		}
		out = append(out, r.version())
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, wrap("search "+sq.Type, err)
	}
	return out, int(total), nil
}

func (s *Store) Count(ctx context.Context, q store.SearchQuery) (int, error) {
	return count(ctx, s.pool, q)
}

func (t *tx) Count(ctx context.Context, q store.SearchQuery) (int, error) {
	return count(ctx, t.q, q)
}

// Lock: a transaction-scoped advisory lock on the resource's key (hashed
// with the schema, so parallel test schemas do not collide), which
// serialises creators while there is no row to lock yet, then a FOR UPDATE
// of the head row in a new statement, so that a creator that waited sees
// the version the first one committed. Both go in one round trip (with
// BEGIN when Lock is the transaction's first statement): a create used to
// take three (look, advisory lock, look again). Every writer of a key takes
// the advisory lock before the row lock, so the two never invert.
const (
	lockSQL         = `SELECT ` + versionColumns + ` FROM resources WHERE type = $1 AND id = $2 FOR UPDATE`
	lockAdvisorySQL = `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1::text || '/' || $2::text, 0))`
)

// LockKey: a transaction-scoped advisory lock on the key (with the schema,
// as for Lock). Transactions read committed data afresh in each statement,
// so one that waited sees what the holder committed.
const lockKeySQL = `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/key/' || $1::text, 0))`

func (t *tx) LockKey(ctx context.Context, key string) error {
	_, err := t.q.Exec(ctx, lockKeySQL, key)
	return wrap("lock key", err)
}

func (t *tx) Lock(ctx context.Context, typ, id string) (store.Version, error) {
	op := "lock " + typ + "/" + id
	b := &pgx.Batch{}
	b.Queue(lockAdvisorySQL, typ, id)
	b.Queue(lockSQL, typ, id)
	br := t.q.SendBatch(ctx, b)
	v, err := lockResults(br)
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) {
		err = cmp.Or(cerr, err)
	}
	switch {
	case err == nil:
		t.hold(typ, id, v.VersionID)
	case errors.Is(err, pgx.ErrNoRows):
		t.hold(typ, id, 0)
	}
	return v, wrap(op, err)
}

// resourceKey names a resource.
type resourceKey struct{ typ, id string }

// hold records that the transaction holds the lock of typ/id, whose head
// is version (0: none).
func (t *tx) hold(typ, id string, version int64) {
	if t.locked == nil {
		t.locked = map[resourceKey]int64{}
	}
	t.locked[resourceKey{typ, id}] = version
}

// lockResults reads Lock's batch: the advisory lock's, then the head row.
func lockResults(br pgx.BatchResults) (store.Version, error) {
	if _, err := br.Exec(); err != nil {
		return store.Version{}, err
	}
	rows, err := br.Query()
	if err != nil {
		return store.Version{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanVersionRow)
	if err != nil {
		return store.Version{}, err
	}
	return r.version(), nil
}

// Put is one statement: a data-modifying CTE moves the head forward (insert
// for version 1, update guarded by version_id = v-1 otherwise) and the outer
// INSERT copies the new head into resource_versions only when that
// succeeded. Zero rows means another version got there first: ErrConflict,
// nothing written, and the transaction still usable. A concurrent creator
// waits on ON CONFLICT until the first commits, then does nothing; a
// concurrent updater waits on the row lock, then fails the guard.
const (
	putCreateSQL = `WITH head AS (
		INSERT INTO resources (` + versionColumns + `, search_keys)
		VALUES ($1, $2, 1, $3, $4, $5, $6, coalesce($7::text[], '{}'), $8::text[])
		ON CONFLICT (type, id) DO NOTHING
		RETURNING ` + versionColumns + `
	)
	INSERT INTO resource_versions (` + versionColumns + `)
	SELECT ` + versionColumns + ` FROM head`

	// putLockedCreateSQL is putCreateSQL for a creator holding Lock's
	// advisory lock: only a writer that did not lock can have created the
	// row meanwhile, and then the INSERT fails with unique_violation
	// (ErrConflict) instead of doing nothing, which a deferred statement
	// could not report.
	putLockedCreateSQL = `WITH head AS (
		INSERT INTO resources (` + versionColumns + `, search_keys)
		VALUES ($1, $2, 1, $3, $4, $5, $6, coalesce($7::text[], '{}'), $8::text[])
		RETURNING ` + versionColumns + `
	)
	INSERT INTO resource_versions (` + versionColumns + `)
	SELECT ` + versionColumns + ` FROM head`

	putUpdateSQL = `WITH head AS (
		UPDATE resources
		SET version_id = $3, last_updated = $4, method = $5, deleted = $6, body = $7,
			patients = coalesce($8::text[], '{}'), search_keys = $9::text[]
		WHERE type = $1 AND id = $2 AND version_id = $3 - 1
		RETURNING ` + versionColumns + `
	)
	INSERT INTO resource_versions (` + versionColumns + `)
	SELECT ` + versionColumns + ` FROM head`
)

// searchKeys is the search_keys of a version: NULL when unknown, so that
// the row stays a candidate of every indexed search; none for a delete marker.
func searchKeys(v store.Version) []string {
	switch {
	case v.Deleted:
		return []string{}
	case v.Index == nil:
		return nil
	}
	return v.Index
}

func (t *tx) Put(ctx context.Context, v store.Version) error {
	op := "put " + v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
	if v.Deleted != (v.Body == nil) {
		return fmt.Errorf("postgres: %s: a version has a body exactly when it is not a delete marker", op)
	}
	var (
		tag pgconn.CommandTag
		err error
	)
	if head, ok := t.locked[resourceKey{v.Type, v.ID}]; ok && v.VersionID == head+1 {
		// The transaction holds the resource's lock and v follows the head
		// it read: nothing can make the guard fail, so the statement waits
		// for the next one or the COMMIT and shares its round trip
		// (lazyTx.Defer); a failure of its own fails the transaction there.
		if v.VersionID == 1 {
			t.q.Defer(putLockedCreateSQL, v.Type, v.ID, v.LastUpdated, string(v.Method), v.Deleted, v.Body, v.Patients, searchKeys(v))
		} else {
			t.q.Defer(putUpdateSQL, v.Type, v.ID, v.VersionID, v.LastUpdated, string(v.Method), v.Deleted, v.Body, v.Patients, searchKeys(v))
		}
		t.hold(v.Type, v.ID, v.VersionID)
		return nil
	}
	switch {
	case v.VersionID < 1:
		return store.ErrConflict
	case v.VersionID == 1:
		tag, err = t.q.Exec(ctx, putCreateSQL, v.Type, v.ID, v.LastUpdated, string(v.Method), v.Deleted, v.Body, v.Patients, searchKeys(v))
	default:
		tag, err = t.q.Exec(ctx, putUpdateSQL, v.Type, v.ID, v.VersionID, v.LastUpdated, string(v.Method), v.Deleted, v.Body, v.Patients, searchKeys(v))
	}
	if err != nil {
		return wrap(op, err)
	}
	if tag.RowsAffected() != 1 {
		return store.ErrConflict
	}
	return nil
}
