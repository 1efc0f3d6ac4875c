package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a transaction whose BEGIN travels in one pipeline with its first
// statement, and which sends nothing at all when the transaction runs no
// statement. On this kind of machine every round trip costs two expensive
// system calls on each side; a create thus takes two round trips (BEGIN+write,
// COMMIT) instead of three.
//
// Statements whose results no one reads can be deferred (Defer): they travel
// in one pipeline with the transaction's next statement, or with its COMMIT,
// and a failure of theirs is reported there and fails the transaction.
type lazyTx struct {
	conn    *pgxpool.Conn
	begun   bool
	pending []*pgx.QueuedQuery // deferred, not yet sent
	// readers read the results of deferred queries that have one (DeferQuery).
	readers map[*pgx.QueuedQuery]func(pgx.Rows) error
	failed  error // a deferred statement failed: nothing more is sent but ROLLBACK
}

// Defer queues a statement to be sent before the next one, in the same
// round trip, or with COMMIT. Its result is not read; its error fails the
// transaction.
func (t *lazyTx) Defer(sql string, args ...any) {
	t.pending = append(t.pending, &pgx.QueuedQuery{SQL: sql, Arguments: args})
}

// DeferQuery is Defer for a query whose rows read reads when they arrive
// (read need not close them). An error of the query's or of read's fails
// the transaction.
func (t *lazyTx) DeferQuery(read func(pgx.Rows) error, sql string, args ...any) {
	q := &pgx.QueuedQuery{SQL: sql, Arguments: args}
	if t.readers == nil {
		t.readers = map[*pgx.QueuedQuery]func(pgx.Rows) error{}
	}
	t.readers[q] = read
	t.pending = append(t.pending, q)
}

// Exec runs a statement, beginning the transaction and sending deferred
// statements with it if needed.
func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.direct() {
		return t.conn.Exec(ctx, sql, args...)
	}
	br := t.batchOf(ctx, sql, args)
	tag, err := br.Exec()
	return tag, errors.Join(err, br.Close())
}

// Query runs a query, beginning the transaction and sending deferred
// statements with it if needed. The returned rows must be closed, as always.
func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.direct() {
		return t.conn.Query(ctx, sql, args...)
	}
	br := t.batchOf(ctx, sql, args)
	rows, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// direct reports whether a statement can go alone: the transaction has
// begun and nothing waits to go with it.
func (t *lazyTx) direct() bool { return t.begun && len(t.pending) == 0 && t.failed == nil }

// batchOf sends one statement as SendBatch would, leaving its result to read.
func (t *lazyTx) batchOf(ctx context.Context, sql string, args []any) pgx.BatchResults {
	if len(args) > 0 {
		if _, ok := args[0].(pgx.QueryExecMode); ok {
			// A batch runs in the connection's mode; a mode is no argument.
			args = args[1:]
		}
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	return t.SendBatch(ctx, b)
}

// SendBatch sends b's statements in one round trip, after BEGIN when the
// transaction has not begun and after the deferred statements. The results
// are b's, in order; close them before the next statement, as always. When
// BEGIN or a deferred statement fails, every result reports that failure.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.failed != nil {
		return &failedBatch{err: t.failed}
	}
	if t.direct() {
		return t.conn.SendBatch(ctx, b)
	}
	var head []*pgx.QueuedQuery
	if !t.begun {
		head = append(head, &pgx.QueuedQuery{SQL: "BEGIN"})
	}
	head = append(head, t.pending...)
	t.pending = nil
	b.QueuedQueries = append(head, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true // from here on the session may be in a transaction
	for _, q := range head {
		if err := t.result(br, q); err != nil {
			t.failed = err
			return &failedBatch{BatchResults: br, err: err}
		}
	}
	return br
}

// result reads the result of q, a statement sent before the caller's, with
// its reader if it has one.
func (t *lazyTx) result(br pgx.BatchResults, q *pgx.QueuedQuery) error {
	read := t.readers[q]
	if read == nil {
		_, err := br.Exec()
		return err
	}
	delete(t.readers, q)
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := read(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// finish commits (or rolls back) what was begun; a commit sends the deferred
// statements with COMMIT. A COMMIT that PostgreSQL answers with ROLLBACK (the
// transaction had failed) is an error.
func (t *lazyTx) finish(ctx context.Context, commit bool) error {
	if !commit || t.failed != nil {
		t.pending, t.readers = nil, nil
		if !t.begun {
			return t.failed
		}
		if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
			t.discard() // the session's state is unknown: never reuse it
			return errors.Join(t.failed, fmt.Errorf("rollback: %w", err))
		}
		return t.failed
	}
	if !t.begun && len(t.pending) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue("COMMIT")
	br := t.SendBatch(ctx, b)
	tag, err := br.Exec()
	if err = errors.Join(err, br.Close()); err != nil {
		// A deferred statement failed (the COMMIT was not run) or the
		// COMMIT did: end the transaction if the session still answers.
		if _, rbErr := t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
			t.discard()
		}
		return err
	}
	if tag.String() != "COMMIT" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *lazyTx) discard() {
	_ = t.conn.Conn().Close(context.Background())
}

// batchRows releases the batch when the rows are closed.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// failedBatch reports err from every result; BatchResults is what was sent,
// if anything.
type failedBatch struct {
	pgx.BatchResults
	err error
}

func (f *failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, f.err }
func (f *failedBatch) Query() (pgx.Rows, error)         { return nil, f.err }
func (f *failedBatch) QueryRow() pgx.Row                { return errRow{f.err} }

// Close reads what was sent to its end; err was already reported.
func (f *failedBatch) Close() error {
	if f.BatchResults == nil {
		return nil
	}
	_ = f.BatchResults.Close()
	return nil
}
