// Package store declares Herald's storage contract. Two implementations exist:
// store/postgres (production) and store/memory (the embedded default). Both
// must pass the conformance suite in store/storetest, which is the executable
// form of the behaviour documented here.
package store

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Sentinel errors. Implementations translate their own errors into these at
// the edge; callers branch on them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a write lost a race (the version it expected to create
	// already exists). The caller may retry the whole transaction.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable: the store cannot answer now (down, out of connections,
	// or a statement or lock wait ran out of time). Nothing was committed,
	// unless the store lost the reply to a COMMIT it had sent.
	ErrUnavailable = errors.New("store: unavailable")
)

// Method is how a version came to be; history entries echo it in request.method.
type Method string

const (
	MethodCreate Method = "POST"
	MethodUpdate Method = "PUT"
	MethodDelete Method = "DELETE"
)

// Version is one stored version of a resource. Versions returned by a store
// may share memory with it: callers must not modify them.
type Version struct {
	Type        string
	ID          string
	VersionID   int64 // 1, 2, 3, … per resource, gap-free
	LastUpdated time.Time
	Method      Method
	Deleted     bool     // a delete marker; Body is nil exactly when Deleted
	Body        []byte   // the exact resource JSON (with id and meta stamped)
	Patients    []string // ids of the patients whose compartment holds this version; nil and empty are the same
	// Index holds the search index keys of a version being Put
	// (search.Resource.IndexKeys). nil means unknown: the version is then a
	// candidate for every indexed search (slower, never wrong). Stores need
	// not return it.
	Index []string
	// Decoded is Body as the matcher reads it (fhir.Resource.StampedMap),
	// set by the writer so the write hooks need not parse Body again; nil
	// when the version was read from a store. Never stored.
	Decoded map[string]any
}

// Next is the version that follows prev (nil: none) at now: numbered one
// more, stamped at millisecond precision and always after prev, so history
// stays ordered whatever the clocks of the instances. It is the one rule
// for appending a version; the caller sets the body (or Deleted).
func Next(prev *Version, typ, id string, method Method, now time.Time) Version {
	v := Version{Type: typ, ID: id, VersionID: 1, Method: method, LastUpdated: now.UTC().Truncate(time.Millisecond)}
	if prev != nil {
		v.VersionID = prev.VersionID + 1
		if !v.LastUpdated.After(prev.LastUpdated) {
			v.LastUpdated = prev.LastUpdated.Add(time.Millisecond)
		}
	}
	return v
}

// Store is the whole storage contract.
type Store interface {
	Reader
	SubscriptionReader
	EventReader
	DeliveryCursor
	DeliveryQueue
	EventPruner
	AdminStore
	AttemptLog
	ConfigWatch
	BindingHolds
	EventCounts
	// InTx runs fn in one transaction: every write made through the Tx
	// commits together when fn returns nil, and none does when fn returns an
	// error (which InTx returns). fn may be called again when the
	// implementation retries a serialization failure, so it must not have
	// side effects outside the Tx. When retries are exhausted the error
	// matches ErrConflict. Readers outside the transaction never wait for it.
	InTx(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the store is reachable and its schema current.
	Ping(ctx context.Context) error
	// Close releases resources; the Store is unusable afterwards.
	Close()
}

// ConfigWatch tells every instance sharing a store that configuration it
// caches changed: SubscriptionTopics, the allow-list or the client registry.
type ConfigWatch interface {
	// ConfigGeneration is a counter that every transaction changing that
	// configuration moves forward, in the transaction itself.
	ConfigGeneration(ctx context.Context) (int64, error)
	// ConfigChanges returns a channel that receives (coalesced, never
	// blocking the sender) soon after such a change commits, on any
	// instance. A change can be missed (a broken connection): callers also
	// check ConfigGeneration periodically.
	ConfigChanges() <-chan struct{}
}

// Reader reads committed data. A Tx is also a Reader that sees its own writes.
type Reader interface {
	// Current returns the newest version of a resource, which may be a
	// delete marker (Deleted true). ErrNotFound when no version exists.
	Current(ctx context.Context, typ, id string) (Version, error)
	// Version returns one specific version (vread). ErrNotFound when absent.
	Version(ctx context.Context, typ, id string, versionID int64) (Version, error)
	// History returns a resource's versions, newest first. ErrNotFound when
	// the resource has no version at all.
	History(ctx context.Context, q HistoryQuery) ([]Version, error)
	// Search returns the current, non-deleted versions of one type that
	// match q, ordered by id.
	Search(ctx context.Context, q SearchQuery) ([]Version, error)
	// Count is how many resources Search would return without Count,
	// AfterID, BeforeID, Offset and MaxBytes.
	Count(ctx context.Context, q SearchQuery) (int, error)
	// SearchTotal is Search and Count together, in one read of the
	// candidates where the store can (a first page: no AfterID, BeforeID
	// or Offset).
	SearchTotal(ctx context.Context, q SearchQuery) ([]Version, int, error)
	// Changes returns versions of many resources (type and system history),
	// in history order: newest first, ties by type, id and version id
	// descending. No version at all is an empty result, not ErrNotFound.
	Changes(ctx context.Context, q ChangesQuery) ([]Version, error)
}

// Tx is a transaction. Reads through a Tx lock nothing except as stated.
type Tx interface {
	Reader
	AdminReader
	SubscriptionReader
	SubscriptionWriter
	EventReader
	EventWriter
	DeliveryWriter
	AuditWriter
	// Lock takes the write lock of one resource for the rest of the
	// transaction and returns its current version like Current (ErrNotFound
	// when none exists; the lock still serialises concurrent creators as far
	// as the implementation can, otherwise Put reports ErrConflict).
	Lock(ctx context.Context, typ, id string) (Version, error)
	// LockKey serialises the transactions that take the same key until they
	// end (e.g. conditional creates with the same condition); a transaction
	// that waited sees what the others committed.
	LockKey(ctx context.Context, key string) error
	// Put appends v as the resource's newest version. v.VersionID must be
	// exactly one more than the current version (1 for a new resource);
	// otherwise Put returns ErrConflict and writes nothing. LastUpdated is
	// kept to the millisecond (compare with Equal; the zone is not kept).
	Put(ctx context.Context, v Version) error
}

// HistoryQuery selects versions of one resource.
type HistoryQuery struct {
	Type, ID string
	// Before, when > 0, returns only versions with VersionID < Before (paging).
	Before int64
	// Count caps the number of versions returned; 0 means no cap.
	Count int
	// MaxBytes, when > 0, ends the result with the version whose body
	// brings the bodies returned to MaxBytes or more: a reader with a byte
	// budget holds at most one body beyond it.
	MaxBytes int64
}

// BodyBytes sums the bodies of vs, as HistoryQuery.MaxBytes counts them.
func BodyBytes(vs []Version) int64 {
	var n int64
	for _, v := range vs {
		n += int64(len(v.Body))
	}
	return n
}

// UpToBytes is the prefix of vs that HistoryQuery.MaxBytes (or
// ChangesQuery.MaxBytes) keeps.
func UpToBytes(vs []Version, max int64) []Version {
	if max <= 0 {
		return vs
	}
	var n int64
	for i, v := range vs {
		if n += int64(len(v.Body)); n >= max {
			return vs[:i+1]
		}
	}
	return vs
}

// ChangesQuery selects versions across resources. All conditions are ANDed.
type ChangesQuery struct {
	// Types, when non-empty, keeps versions of these types.
	Types []string
	// Patient, when set, keeps versions in that patient's compartment.
	Patient string
	// Since, when set, keeps versions with LastUpdated at or after it.
	Since time.Time
	// After, when set, keeps versions that come after it in history order
	// (paging: the position of the last version of the previous page).
	After *Position
	// Count caps the number of versions returned; 0 means no cap.
	Count int
	// MaxBytes bounds the bodies returned as HistoryQuery.MaxBytes does.
	MaxBytes int64
}

// Position is a place in history order.
type Position struct {
	LastUpdated time.Time
	Type, ID    string
	VersionID   int64
}

// PositionOf is the position of v in history order.
func PositionOf(v Version) Position {
	return Position{LastUpdated: v.LastUpdated, Type: v.Type, ID: v.ID, VersionID: v.VersionID}
}

// Before reports whether p comes before o in history order (p is newer).
func (p Position) Before(o Position) bool {
	if !p.LastUpdated.Equal(o.LastUpdated) {
		return p.LastUpdated.After(o.LastUpdated)
	}
	if p.Type != o.Type {
		return p.Type > o.Type
	}
	if p.ID != o.ID {
		return p.ID > o.ID
	}
	return p.VersionID > o.VersionID
}

// SearchQuery selects current versions of one resource type. All conditions
// are ANDed.
type SearchQuery struct {
	Type string
	// IDs, when non-empty, keeps resources whose id is one of these.
	IDs []string
	// LastUpdated keeps resources whose lastUpdated lies in every range.
	LastUpdated []TimeRange
	// Patient, when set, keeps only resources in that patient's compartment
	// (Version.Patients contains it).
	Patient string
	// Index narrows by search index keys: a resource is kept when, for
	// every inner list, it holds one of its keys (or its keys are unknown).
	// With Match it is a necessary condition of Match; without, it decides
	// (for resources whose keys are known).
	Index [][]string
	// Match, when set, keeps the resources it accepts (the search matcher).
	Match func(Version) bool
	// Within, when non-empty, keeps resources that lie within at least one
	// of these bounds (a caller's grants, ORed).
	Within []Bound
	// Narrow says Index holds a term few resources match (references to
	// one patient or encounter): a store with indexes should read the
	// candidates through them and sort, not walk the type in id order.
	// Patient implies it. It changes how, never what, a store finds. With
	// Narrow, Index[0] is such a term (search.Criteria.IndexTerms lists it
	// first).
	Narrow bool
	// AfterID, when set, keeps resources whose id sorts after it (paging).
	AfterID string
	// BeforeID, when set, keeps resources whose id sorts before it, and
	// with Count the last Count of them (paging backwards; still in id order).
	BeforeID string
	// Count caps the number of results; 0 means no cap.
	Count int
	// ByLastUpdated orders the results by lastUpdated, ties by id, instead
	// of by id alone (_sort=_lastUpdated).
	ByLastUpdated bool
	// Desc reverses the order: of lastUpdated (ties still by id,
	// ascending) or of id. Not with AfterID or BeforeID.
	Desc bool
	// Offset skips that many results first, in their order (paging by
	// position; with ByLastUpdated or Desc).
	Offset int
	// MaxBytes, when > 0, ends the results, in the order they are read
	// (backwards from BeforeID), with the one whose body brings them to
	// MaxBytes or more, as HistoryQuery.MaxBytes does.
	MaxBytes int64
}

// Bound is one grant's reach over a type: resources in Patient's
// compartment (when set) that hold, for every inner list of Index, one of
// its keys. Unlike SearchQuery.Index, a resource whose keys are unknown is
// outside every Bound with Index terms: grants fail closed.
type Bound struct {
	Patient string
	Index   [][]string
}

// Holds reports whether v lies within b.
func (b Bound) Holds(v Version) bool {
	if b.Patient != "" && !slices.Contains(v.Patients, b.Patient) {
		return false
	}
	for _, keys := range b.Index {
		if v.Index == nil || !slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(v.Index, k) }) {
			return false
		}
	}
	return true
}

// TimeRange is a half-open interval [From, To); a zero bound is open. With
// Exclude, the range keeps times outside the interval instead.
type TimeRange struct {
	From, To time.Time
	Exclude  bool
}

// Contains reports whether t satisfies the range.
func (r TimeRange) Contains(t time.Time) bool {
	in := (r.From.IsZero() || !t.Before(r.From)) && (r.To.IsZero() || t.Before(r.To))
	return in != r.Exclude
}
