package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

var _ store.AdminStore = (*Store)(nil)

// admin holds the allow-list and the client registry. They are not
// transactional: every method works on them directly under mu.
type admin struct {
	mu        sync.Mutex
	endpoints map[string]store.AllowedEndpoint // by ID
	clients   map[string]store.Client          // by ClientID
	audit     []store.AuditEntry               // oldest first; only appended to
}

// record appends an audit entry for a change made under mu.
func (a *admin) record(ctx context.Context, action, target string, before, after any) {
	e := store.AuditEntry{Seq: int64(len(a.audit)) + 1, At: time.Now().UTC().Truncate(time.Millisecond),
		Actor: store.ActorOf(ctx), Action: action, Target: target}
	if before != nil {
		e.Before = store.AuditJSON(before)
	}
	if after != nil {
		e.After = store.AuditJSON(after)
	}
	a.audit = append(a.audit, e)
}

// append records entries made in a transaction (AppendAudit) or by a
// queue change, numbering and stamping them now.
func (a *admin) append(entries []store.AuditEntry) {
	if len(entries) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range entries {
		e.Seq, e.At = int64(len(a.audit))+1, time.Now().UTC().Truncate(time.Millisecond)
		a.audit = append(a.audit, e)
	}
}

func (s *Store) AuditLog(ctx context.Context, beforeSeq int64, limit int) ([]store.AuditEntry, error) {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	var out []store.AuditEntry
	for i := len(s.admin.audit) - 1; i >= 0 && len(out) < limit; i-- {
		if e := s.admin.audit[i]; beforeSeq <= 0 || e.Seq < beforeSeq {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *Store) Endpoints(ctx context.Context) ([]store.AllowedEndpoint, error) {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	out := make([]store.AllowedEndpoint, 0, len(s.admin.endpoints))
	for _, e := range s.admin.endpoints {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b store.AllowedEndpoint) int {
		if c := strings.Compare(a.URLPrefix, b.URLPrefix); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// AddEndpoint: like the Postgres store's unique constraints, a duplicate
// URLPrefix or ID is a conflict.
func (s *Store) AddEndpoint(ctx context.Context, e store.AllowedEndpoint) error {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	if _, ok := s.admin.endpoints[e.ID]; ok {
		return fmt.Errorf("%w: endpoint id %q exists", store.ErrConflict, e.ID)
	}
	for _, old := range s.admin.endpoints {
		if old.URLPrefix == e.URLPrefix {
			return fmt.Errorf("%w: endpoint prefix %q exists", store.ErrConflict, e.URLPrefix)
		}
	}
	e.CreatedAt = e.CreatedAt.UTC()
	s.admin.endpoints[e.ID] = e
	s.admin.record(ctx, store.AuditAddEndpoint, e.ID, nil, e)
	s.configChanged()
	return nil
}

func (s *Store) RemoveEndpoint(ctx context.Context, id string) error {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	old, ok := s.admin.endpoints[id]
	if !ok {
		return store.ErrNotFound
	}
	delete(s.admin.endpoints, id)
	s.admin.record(ctx, store.AuditRemoveEndpoint, id, old, nil)
	s.configChanged()
	return nil
}

func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	out := make([]store.Client, 0, len(s.admin.clients))
	for _, c := range s.admin.clients {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b store.Client) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

func (s *Store) Client(ctx context.Context, clientID string) (store.Client, error) {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	c, ok := s.admin.clients[clientID]
	if !ok {
		return store.Client{}, store.ErrNotFound
	}
	return c, nil
}

// PutClient enforces what the Postgres schema's CHECK constraints do.
func (s *Store) PutClient(ctx context.Context, c store.Client) (created bool, err error) {
	if !slices.Contains([]string{"active", "suspended"}, c.Status) {
		return false, fmt.Errorf("memory: put client %s: invalid status %q", c.ClientID, c.Status)
	}
	if !slices.Contains([]string{"empty", "id-only", "full-resource"}, c.MaxPayload) {
		return false, fmt.Errorf("memory: put client %s: invalid max payload %q", c.ClientID, c.MaxPayload)
	}
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	old, exists := s.admin.clients[c.ClientID]
	c.UpdatedAt = c.UpdatedAt.UTC()
	s.admin.clients[c.ClientID] = c
	var before any
	if exists {
		before = old
	}
	s.admin.record(ctx, store.AuditPutClient, c.ClientID, before, c)
	s.configChanged()
	return !exists, nil
}

// Endpoints and Client on a transaction read the committed registry: admin
// changes do not go through transactions.
func (t *tx) Endpoints(ctx context.Context) ([]store.AllowedEndpoint, error) {
	return t.s.Endpoints(ctx)
}

func (t *tx) Client(ctx context.Context, clientID string) (store.Client, error) {
	return t.s.Client(ctx, clientID)
}
