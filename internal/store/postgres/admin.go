package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/store"
)

var _ store.AdminStore = (*Store)(nil)

// The allow-list and the client registry are not transactional: each method
// is one statement on the pool.

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
	removeEndpointSQL = `DELETE FROM allowed_endpoints WHERE id = $1`
)

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
	_, err := s.pool.Exec(ctx, addEndpointSQL, e.ID, e.URLPrefix, e.AllowPrivateNetwork, e.Note, e.CreatedAt)
	return wrap("add endpoint "+e.ID, err)
}

func (s *Store) RemoveEndpoint(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, removeEndpointSQL, id)
	if err != nil {
		return wrap("remove endpoint "+id, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
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
	op := "put client " + c.ClientID
	rows, err := s.pool.Query(ctx, putClientSQL, c.ClientID, c.Status, c.MaxPayload, c.ScopeCeiling, c.UpdatedAt)
	if err != nil {
		return false, wrap(op, err)
	}
	created, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	return created, wrap(op, err)
}
