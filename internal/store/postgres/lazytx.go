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
type lazyTx struct {
	conn  *pgxpool.Conn
	begun bool
}

// Exec runs a statement, beginning the transaction with it if needed.
func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.begun {
		return t.conn.Exec(ctx, sql, args...)
	}
	br := t.begin(ctx, sql, args)
	tag, err := br.Exec()
	return tag, errors.Join(err, br.Close())
}

// Query runs a query, beginning the transaction with it if needed. The
// returned rows must be closed, as always.
func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.begun {
		return t.conn.Query(ctx, sql, args...)
	}
	br := t.begin(ctx, sql, args)
	rows, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// begin sends BEGIN and the first statement together and consumes BEGIN's
// result, leaving the statement's result to read.
func (t *lazyTx) begin(ctx context.Context, sql string, args []any) pgx.BatchResults {
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

// SendBatch sends b's statements in one round trip, after BEGIN in the same
// round trip when the transaction has not begun. The results are b's, in
// order; close them before the next statement, as always.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.begun {
		return t.conn.SendBatch(ctx, b)
	}
	b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true // from here on the session may be in a transaction
	if _, err := br.Exec(); err != nil {
		return &failedBatch{BatchResults: br, err: err}
	}
	return br
}

// finish commits (or rolls back) what was begun. A COMMIT that PostgreSQL
// answers with ROLLBACK (the transaction had failed) is an error.
func (t *lazyTx) finish(ctx context.Context, commit bool) error {
	if !t.begun {
		return nil
	}
	if commit {
		tag, err := t.conn.Exec(ctx, "COMMIT")
		if err != nil {
			t.discard()
			return err
		}
		if tag.String() != "COMMIT" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	}
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.discard() // the session's state is unknown: never reuse it
		return fmt.Errorf("rollback: %w", err)
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

// failedBatch reports BEGIN's failure from every result.
type failedBatch struct {
	pgx.BatchResults
	err error
}

func (f *failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, f.err }
func (f *failedBatch) Query() (pgx.Rows, error)         { return nil, f.err }
func (f *failedBatch) QueryRow() pgx.Row                { return errRow{f.err} }
