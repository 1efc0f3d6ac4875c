package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-fhir/herald/internal/store"
)

// timedPool is the pool with a bound on how long a caller waits for a free
// connection: one locked row must not make every reader, the delivery engine
// and /readyz queue behind the writers it holds up. Errors that mean the
// database cannot answer come back matching store.ErrUnavailable.
type timedPool struct {
	*pgxpool.Pool
	acquireTimeout time.Duration // 0: wait as long as ctx allows
}

// Acquire waits at most acquireTimeout for a connection.
func (p *timedPool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if p.acquireTimeout <= 0 {
		c, err := p.Pool.Acquire(ctx)
		return c, unavailable(err)
	}
	actx, cancel := context.WithTimeout(ctx, p.acquireTimeout)
	defer cancel()
	c, err := p.Pool.Acquire(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return nil, fmt.Errorf("%w: no database connection free within %s", store.ErrUnavailable, p.acquireTimeout)
	}
	return c, unavailable(err)
}

func (p *timedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (p *timedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return nil, unavailable(err)
	}
	return &releasingRows{Rows: rows, conn: c}, nil
}

func (p *timedPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

func (p *timedPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errBatch{err}
	}
	return &releasingBatch{BatchResults: c.SendBatch(ctx, b), conn: c}
}

// releasingRows gives the connection back when the rows are closed.
type releasingRows struct {
	pgx.Rows
	conn *pgxpool.Conn
}

// Next releases the connection after the last row, as pgxpool does, for
// callers that read to the end without closing.
func (r *releasingRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release()
	return false
}

func (r *releasingRows) Close() {
	r.Rows.Close()
	r.release()
}

func (r *releasingRows) release() {
	if r.conn != nil {
		r.conn.Release()
		r.conn = nil
	}
}

func (r *releasingRows) Err() error { return unavailable(r.Rows.Err()) }

// rowOf is pgx.Row over rows: the first row, or pgx.ErrNoRows.
type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch reports a failed acquire from every result.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow{b.err} }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }

// releasingBatch gives the connection back when the results are closed.
type releasingBatch struct {
	pgx.BatchResults
	conn *pgxpool.Conn
}

func (b *releasingBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	return tag, unavailable(err)
}

func (b *releasingBatch) Close() error {
	err := b.BatchResults.Close()
	if b.conn != nil {
		b.conn.Release()
		b.conn = nil
	}
	return unavailable(err)
}

// unavailable marks errors that say the database cannot answer now (it is
// down, restarting, out of connections, or a statement or lock wait hit its
// timeout) with store.ErrUnavailable, keeping the cause.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || !unavailableCause(err) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

func unavailableCause(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57014", // query_canceled: statement_timeout
			"55P03",                   // lock_not_available: lock_timeout
			"57P01", "57P02", "57P03", // shutdown, crash, cannot connect now
			"53300": // too_many_connections
			return true
		}
		return pgErr.Code[:2] == "08" // connection exception
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
