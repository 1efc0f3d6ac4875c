// Package memory is the embedded in-process store: Herald's default when no
// DATABASE_URL is configured. It keeps everything in RAM, so data is lost when
// the process exits. Write transactions are serialised by one lock, which
// gives them the isolation the store contract promises at the cost of
// write concurrency.
package memory

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

type key struct{ typ, id string }

// data is the whole database; a transaction works on a copy-on-write overlay.
type data struct {
	versions map[key][]store.Version // oldest first
	subs     map[string]store.SubscriptionState
	// owners outlive subs: the owner of every id ever put.
	owners map[string]store.SubscriptionOwner
	// events and lastEvent are keyed by subscription id and exist only
	// beside a state in subs; lastEvent is the counter (absent: 0), events
	// are ascending by Number.
	events    map[string][]store.Event
	lastEvent map[string]int64
	// delivered is the delivery cursor of each subscription (absent: 0);
	// it too exists only beside a state, and never exceeds lastEvent.
	delivered map[string]int64
	// sched is the delivery schedule of each subscription (absent: nothing
	// due); it too exists only beside a state.
	sched map[string]schedule
	// goneLeases are the live leases of deleted Subscriptions, by owner:
	// the send each covered may still hold a worker, so it counts toward
	// its owner's share until it ends (dueByTurn), as on PostgreSQL.
	goneLeases map[string][]time.Time
}

// Store is an in-memory store.Store.
type Store struct {
	writeMu sync.Mutex   // held for the whole of a write transaction
	mu      sync.RWMutex // guards db against concurrent readers
	db      data
	admin   admin // not transactional; guarded by its own lock
	wakes   store.Wakes
	// attempts is the attempt log, guarded by mu like db.
	attempts attemptLog
	// generation counts configuration changes (store.ConfigWatch).
	generation atomic.Int64
	config     chan struct{}
	holds      bindingHolds
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		db: data{
			versions:   make(map[key][]store.Version),
			subs:       make(map[string]store.SubscriptionState),
			owners:     make(map[string]store.SubscriptionOwner),
			events:     make(map[string][]store.Event),
			lastEvent:  make(map[string]int64),
			delivered:  make(map[string]int64),
			sched:      make(map[string]schedule),
			goneLeases: make(map[string][]time.Time),
		},
		config: make(chan struct{}, 1),
		admin: admin{
			endpoints: make(map[string]store.AllowedEndpoint),
			clients:   make(map[string]store.Client),
		},
	}
}

func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

func (s *Store) ConfigGeneration(ctx context.Context) (int64, error) { return s.generation.Load(), nil }
func (s *Store) ConfigChanges() <-chan struct{}                      { return s.config }

// configChanged moves the generation and tells the watchers.
func (s *Store) configChanged() {
	s.generation.Add(1)
	select {
	case s.config <- struct{}{}:
	default:
	}
}
func (s *Store) Close() {}

func (s *Store) Current(ctx context.Context, typ, id string) (store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return current(s.db.versions[key{typ, id}])
}

func (s *Store) Version(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return version(s.db.versions[key{typ, id}], versionID)
}

func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return history(s.db.versions[key{q.Type, q.ID}], q)
}

func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return search(s.db.versions, nil, q), nil
}

// InTx runs fn against an overlay of pending writes and applies the overlay
// only when fn succeeds.
func (s *Store) InTx(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx := &tx{
		s:                s,
		pending:          make(map[key][]store.Version),
		pendingSubs:      make(map[string]pendingSub),
		pendingOwners:    make(map[string]store.SubscriptionOwner),
		pendingEvents:    make(map[string]*pendingEvents),
		pendingSched:     make(map[string]schedule),
		pendingDelivered: make(map[string]int64),
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, vs := range tx.pending {
		s.db.versions[k] = append(s.db.versions[k], vs...)
	}
	for id, p := range tx.pendingSubs {
		if p.deleted {
			if sc, ok := s.db.sched[id]; ok && sc.leaseUntil.After(time.Now()) {
				owner := s.db.subs[id].Owner
				s.db.goneLeases[owner] = append(s.db.goneLeases[owner], sc.leaseUntil)
			}
			delete(s.db.subs, id)
		} else {
			s.db.subs[id] = p.state
		}
	}
	maps.Copy(s.db.owners, tx.pendingOwners)
	for k := range tx.pending {
		if k.typ == "SubscriptionTopic" {
			s.configChanged()
			break
		}
	}
	tx.commitEvents(&s.db)
	tx.commitSchedules(&s.db)
	s.attempts.log(tx.pendingAttempts)
	s.admin.append(tx.pendingAudit)
	if tx.woken {
		s.signalWake()
	}
	return nil
}

// tx sees committed data plus its own pending versions. Readers outside the
// transaction never see pending versions. The write lock held by InTx means
// committed data cannot change under a tx, so Lock needs no extra work.
type tx struct {
	s           *Store
	pending     map[key][]store.Version
	pendingSubs map[string]pendingSub // the last write of each state
	// pendingOwners: the owner of each state put, kept even if deleted later
	pendingOwners map[string]store.SubscriptionOwner
	// pendingEvents: the counter and appended events of each subscription
	// this tx appended to or deleted.
	pendingEvents map[string]*pendingEvents
	// pendingSched and pendingDelivered: the delivery schedules and cursors
	// this tx changed; woken: the commit may make delivery work due.
	pendingSched     map[string]schedule
	pendingDelivered map[string]int64
	woken            bool
	// pendingAttempts and pendingAudit are logged at commit.
	pendingAttempts []store.Attempt
	pendingAudit    []store.AuditEntry
}

func (t *tx) all(k key) []store.Version {
	t.s.mu.RLock()
	committed := t.s.db.versions[k]
	t.s.mu.RUnlock()
	if p := t.pending[k]; len(p) > 0 {
		return append(slices.Clip(committed), p...)
	}
	return committed
}

func (t *tx) Current(ctx context.Context, typ, id string) (store.Version, error) {
	return current(t.all(key{typ, id}))
}

func (t *tx) Lock(ctx context.Context, typ, id string) (store.Version, error) {
	return t.Current(ctx, typ, id)
}

func (t *tx) Version(ctx context.Context, typ, id string, versionID int64) (store.Version, error) {
	return version(t.all(key{typ, id}), versionID)
}

func (t *tx) History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error) {
	return history(t.all(key{q.Type, q.ID}), q)
}

func (t *tx) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return search(t.s.db.versions, t.pending, q), nil
}

// LockKey has nothing to do: write transactions already run one at a time.
func (t *tx) LockKey(ctx context.Context, key string) error { return ctx.Err() }

func (t *tx) Put(ctx context.Context, v store.Version) error {
	k := key{v.Type, v.ID}
	if int64(len(t.all(k)))+1 != v.VersionID {
		return store.ErrConflict
	}
	if v.Deleted != (v.Body == nil) {
		return errors.New("memory: a version has a body exactly when it is not a delete marker")
	}
	v.LastUpdated = v.LastUpdated.UTC()
	v.Body = slices.Clone(v.Body)
	v.Patients = slices.Clone(v.Patients)
	v.Index = slices.Clone(v.Index)
	v.Decoded = nil // the writer's, not stored (as in PostgreSQL)
	t.pending[k] = append(t.pending[k], v)
	return nil
}

func current(vs []store.Version) (store.Version, error) {
	if len(vs) == 0 {
		return store.Version{}, store.ErrNotFound
	}
	return vs[len(vs)-1], nil
}

func version(vs []store.Version, versionID int64) (store.Version, error) {
	// Versions are gap-free from 1, so the index is the version id minus one.
	if versionID < 1 || versionID > int64(len(vs)) {
		return store.Version{}, store.ErrNotFound
	}
	return vs[versionID-1], nil
}

func history(vs []store.Version, q store.HistoryQuery) ([]store.Version, error) {
	if len(vs) == 0 {
		return nil, store.ErrNotFound
	}
	out := make([]store.Version, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if q.Before > 0 && v.VersionID >= q.Before {
			continue
		}
		if q.Count > 0 && len(out) == q.Count {
			break
		}
		out = append(out, v)
	}
	return store.UpToBytes(out, q.MaxBytes), nil
}

// search scans every resource of the type; the embedded store is for
// development and tests, where a scan is fast enough.
func search(committed, pending map[key][]store.Version, q store.SearchQuery) []store.Version {
	heads := make(map[string]store.Version)
	collect := func(m map[key][]store.Version) {
		for k, vs := range m {
			if k.typ == q.Type && len(vs) > 0 {
				heads[k.id] = vs[len(vs)-1]
			}
		}
	}
	collect(committed)
	collect(pending)
	var out []store.Version
	for _, v := range heads {
		if matches(v, q) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b store.Version) int { return compareOrder(a, b, q) })
	out = out[min(q.Offset, len(out)):]
	if q.Count > 0 && len(out) > q.Count {
		if q.BeforeID != "" {
			out = out[len(out)-q.Count:]
		} else {
			out = out[:q.Count]
		}
	}
	if q.BeforeID != "" { // read backwards: MaxBytes keeps the last ones
		slices.Reverse(out)
		out = store.UpToBytes(out, q.MaxBytes)
		slices.Reverse(out)
		return out
	}
	return store.UpToBytes(out, q.MaxBytes)
}

// compareOrder is q's order: by id, or by lastUpdated then id; Desc
// reverses the first key.
func compareOrder(a, b store.Version, q store.SearchQuery) int {
	if q.ByLastUpdated {
		c := a.LastUpdated.Compare(b.LastUpdated)
		if q.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}
	if q.Desc {
		return strings.Compare(b.ID, a.ID)
	}
	return strings.Compare(a.ID, b.ID)
}

func matches(v store.Version, q store.SearchQuery) bool {
	if v.Deleted {
		return false
	}
	if q.AfterID != "" && v.ID <= q.AfterID {
		return false
	}
	if q.BeforeID != "" && v.ID >= q.BeforeID {
		return false
	}
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, v.ID) {
		return false
	}
	if q.Patient != "" && !slices.Contains(v.Patients, q.Patient) {
		return false
	}
	for _, r := range q.LastUpdated {
		if !r.Contains(v.LastUpdated) {
			return false
		}
	}
	for _, keys := range q.Index {
		if v.Index != nil && !slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(v.Index, k) }) {
			return false
		}
	}
	if len(q.Within) > 0 && !slices.ContainsFunc(q.Within, func(b store.Bound) bool { return b.Holds(v) }) {
		return false
	}
	return q.Match == nil || q.Match(v)
}
