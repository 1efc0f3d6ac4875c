package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var _ store.AdminStore = (*Store)(nil)

// The allow-list and the client registry are not transactional: each
// change commits alone, with its audit entry.

// endpointRow is a row of allowed_endpoints, in endpointColumns order.
type endpointRow struct {
	ID                  string    `db:"id"`
	URLPrefix           string    `db:"url_prefix"`
	AllowPrivateNetwork bool      `db:"allow_private_network"`
	Note                string    `db:"note"`
	CreatedAt           time.Time `db:"created_at"`
}

func (r endpointRow) endpoint() store.AllowedEndpoint {
	return store.AllowedEndpoint{
		ID:                  r.ID,
		URLPrefix:           r.URLPrefix,
		AllowPrivateNetwork: r.AllowPrivateNetwork,
		Note:                r.Note,
		CreatedAt:           r.CreatedAt.UTC(),
	}
}

const (
	endpointColumns = `id, url_prefix, allow_private_network, note, created_at`

	endpointsSQL      = `SELECT ` + endpointColumns + ` FROM allowed_endpoints ORDER BY url_prefix, id`
	addEndpointSQL    = `INSERT INTO allowed_endpoints (` + endpointColumns + `) VALUES ($1, $2, $3, $4, $5)`
	removeEndpointSQL = `DELETE FROM allowed_endpoints WHERE id = $1 RETURNING ` + endpointColumns

	appendAuditSQL = `INSERT INTO admin_audit (at, actor, action, target, before, after) VALUES (date_trunc('milliseconds', now()), $1, $2, $3, $4, $5)`
	auditLogSQL    = `SELECT seq, at, actor, action, target, before, after FROM admin_audit
		WHERE $1::bigint <= 0 OR seq < $1 ORDER BY seq DESC LIMIT $2`
)

// audited runs a change and its audit entry in one transaction.
func (s *Store) audited(ctx context.Context, op string, change func(q *lazyTx) (store.AuditEntry, error)) error {
	return wrap(op, s.InTx(ctx, func(t store.Tx) error {
		q := t.(*tx).q
		e, err := change(q)
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, appendAuditSQL, store.ActorOf(ctx), e.Action, e.Target, e.Before, e.After)
		return err
	}))
}

func (s *Store) AuditLog(ctx context.Context, beforeSeq int64, limit int) ([]store.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, auditLogSQL, beforeSeq, limit)
	if err != nil {
		return nil, wrap("audit log", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := row.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Target, &e.Before, &e.After)
		e.At = e.At.UTC()
		return e, err
	})
	return out, wrap("audit log", err)
}

func (s *Store) Endpoints(ctx context.Context) ([]store.AllowedEndpoint, error) {
	return endpoints(ctx, s.pool)
}

// Endpoints on a transaction reads on its connection (store.AdminReader).
func (t *tx) Endpoints(ctx context.Context) ([]store.AllowedEndpoint, error) {
	return endpoints(ctx, t.q)
}

func endpoints(ctx context.Context, q querier) ([]store.AllowedEndpoint, error) {
	rows, err := q.Query(ctx, endpointsSQL)
	if err != nil {
		return nil, wrap("endpoints", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[endpointRow])
	if err != nil {
		return nil, wrap("endpoints", err)
	}
	out := make([]store.AllowedEndpoint, len(rs))
	for i, r := range rs {
		out[i] = r.endpoint()
	}
	return out, nil
}

// AddEndpoint: a duplicate url_prefix (or id) is a unique violation, which
// interpretError turns into store.ErrConflict.
func (s *Store) AddEndpoint(ctx context.Context, e store.AllowedEndpoint) error {
	return s.audited(ctx, "add endpoint "+e.ID, func(q *lazyTx) (store.AuditEntry, error) {
		_, err := q.Exec(ctx, addEndpointSQL, e.ID, e.URLPrefix, e.AllowPrivateNetwork, e.Note, e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return store.AuditEntry{Action: store.AuditAddEndpoint, Target: e.ID, After: store.AuditJSON(e)}, interpretError(err)
	})
}

func (s *Store) RemoveEndpoint(ctx context.Context, id string) error {
	return s.audited(ctx, "remove endpoint "+id, func(q *lazyTx) (store.AuditEntry, error) {
		rows, err := q.Query(ctx, removeEndpointSQL, id)
		if err != nil {
			return store.AuditEntry{}, err
		}
		old, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[endpointRow])
		if err != nil {
			return store.AuditEntry{}, interpretError(err)
		}
		return store.AuditEntry{Action: store.AuditRemoveEndpoint, Target: id, Before: store.AuditJSON(old.endpoint())}, nil
	})
}

// clientRow is a row of clients, in clientColumns order.
type clientRow struct {
	ClientID     string    `db:"client_id"`
	Status       string    `db:"status"`
	MaxPayload   string    `db:"max_payload"`
	ScopeCeiling string    `db:"scope_ceiling"`
	UpdatedAt    time.Time `db:"updated_at"`
}

func (r clientRow) client() store.Client {
	return store.Client{
		ClientID:     r.ClientID,
		Status:       r.Status,
		MaxPayload:   r.MaxPayload,
		ScopeCeiling: r.ScopeCeiling,
		UpdatedAt:    r.UpdatedAt.UTC(),
	}
}

const (
	clientColumns = `client_id, status, max_payload, scope_ceiling, updated_at`

	clientsSQL = `SELECT ` + clientColumns + ` FROM clients ORDER BY client_id`
	clientSQL  = `SELECT ` + clientColumns + ` FROM clients WHERE client_id = $1`
	// putClientSQL reports whether it inserted: xmax is 0 on a freshly
	// inserted row version and the locking transaction's id on one that ON
	// CONFLICT updated. Unlike a read before the write, this stays right
	// when two callers create the same client at once.
	putClientSQL = `INSERT INTO clients (` + clientColumns + `) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (client_id) DO UPDATE SET
			status = excluded.status, max_payload = excluded.max_payload,
			scope_ceiling = excluded.scope_ceiling, updated_at = excluded.updated_at
		RETURNING xmax = 0 AS created`
)

func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.pool.Query(ctx, clientsSQL)
	if err != nil {
		return nil, wrap("clients", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[clientRow])
	if err != nil {
		return nil, wrap("clients", err)
	}
	out := make([]store.Client, len(rs))
	for i, r := range rs {
		out[i] = r.client()
	}
	return out, nil
}

func (s *Store) Client(ctx context.Context, clientID string) (store.Client, error) {
	return client(ctx, s.pool, clientID)
}

// Client on a transaction reads on its connection (store.AdminReader).
func (t *tx) Client(ctx context.Context, clientID string) (store.Client, error) {
	return client(ctx, t.q, clientID)
}

func client(ctx context.Context, q querier, clientID string) (store.Client, error) {
	op := "client " + clientID
	rows, err := q.Query(ctx, clientSQL, clientID)
	if err != nil {
		return store.Client{}, wrap(op, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[clientRow])
	if err != nil {
		return store.Client{}, wrap(op, err)
	}
	return r.client(), nil
}

func (s *Store) PutClient(ctx context.Context, c store.Client) (created bool, err error) {
	err = s.audited(ctx, "put client "+c.ClientID, func(q *lazyTx) (store.AuditEntry, error) {
		e := store.AuditEntry{Action: store.AuditPutClient, Target: c.ClientID}
		rows, err := q.Query(ctx, clientSQL+` FOR UPDATE`, c.ClientID)
		if err != nil {
			return e, err
		}
		old, err := pgx.CollectRows(rows, pgx.RowToStructByName[clientRow])
		if err != nil {
			return e, err
		}
		if len(old) == 1 {
			e.Before = store.AuditJSON(old[0].client())
		}
		rows, err = q.Query(ctx, putClientSQL, c.ClientID, c.Status, c.MaxPayload, c.ScopeCeiling, c.UpdatedAt)
		if err != nil {
			return e, err
		}
		created, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
		c.UpdatedAt = c.UpdatedAt.UTC()
		e.After = store.AuditJSON(c)
		return e, err
	})
	return created, err
}
