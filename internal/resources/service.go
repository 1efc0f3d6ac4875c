// Package resources implements the FHIR REST interactions (create, read,
// vread, update, delete, history, search, batch and transaction) over the
// store, deciding for each one whether the caller may do it. It knows
// nothing of HTTP: handlers in internal/api translate to and from it.
package resources

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/access"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
)

// WriteHook runs inside the transaction of every resource write, after the
// new version is stored; an error aborts the whole write. prev is nil when the
// resource never existed, and a delete marker (Deleted) when it is re-created
// after a delete. A hook may run more than once for one write (the store
// retries serialization failures), so it must change nothing outside tx.
type WriteHook func(ctx context.Context, tx store.Tx, prev *store.Version, cur store.Version) error

// Config holds a Service's dependencies.
type Config struct {
	Store   store.Store
	BaseURL string           // public FHIR base, e.g. http://localhost:8080/fhir
	Now     func() time.Time // defaults to time.Now
	NewID   func() string    // defaults to random UUIDs
	OnWrite []WriteHook
	// Rules customise resource types, keyed by type name.
	Rules map[string]TypeRules
	// Virtual adds computed, read-only resources to a type, keyed by type name.
	Virtual map[string]Virtual
	// ParamLimits bound the query of a Bundle's GET entry (zero: the defaults).
	ParamLimits fhir.ParamLimits
	// MaxBundleEntries bounds a batch or transaction (0: DefaultMaxBundleEntries).
	MaxBundleEntries int
	// MaxResponseBytes bounds the resource bytes of a search page and of a
	// batch or transaction response (0: DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// MaxCount caps _count (0: DefaultMaxCount).
	MaxCount int
	// MaxSortMatches bounds the matches a search sorted by keys in the
	// bodies may rank (0: DefaultMaxSortMatches); _id and _lastUpdated are
	// sorted by the store, without a bound.
	MaxSortMatches int
}

// DefaultMaxBundleEntries is the entry cap when Config.MaxBundleEntries is 0.
const DefaultMaxBundleEntries = 1000

// Service performs FHIR interactions on behalf of an authenticated caller.
type Service struct {
	store      store.Store
	baseURL    string
	now        func() time.Time
	newID      func() string
	onWrite    []WriteHook
	rules      map[string]TypeRules
	virtual    map[string]Virtual
	limits     fhir.ParamLimits
	maxEntries int
	maxCount   int
	maxSort    int // see Config.MaxSortMatches
	// maxResponseBytes: see Config.MaxResponseBytes and byteBudget.
	maxResponseBytes int64
	started          time.Time // lastUpdated of virtual resources
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, baseURL: cfg.BaseURL, now: cfg.Now, newID: cfg.NewID, onWrite: cfg.OnWrite, rules: cfg.Rules, virtual: cfg.Virtual, limits: cfg.ParamLimits,
		maxEntries: cmp.Or(cfg.MaxBundleEntries, DefaultMaxBundleEntries), maxResponseBytes: cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		maxCount: cmp.Or(cfg.MaxCount, DefaultMaxCount), maxSort: cmp.Or(cfg.MaxSortMatches, DefaultMaxSortMatches)}
	if s.now == nil {
		s.now = time.Now
	}
	s.started = s.now().UTC().Truncate(time.Millisecond)
	if s.newID == nil {
		s.newID = func() string { return uuid.NewString() }
	}
	return s
}

// BaseURL is the public FHIR base the service writes into links.
func (s *Service) BaseURL() string { return s.baseURL }

// Result is the outcome of a write.
type Result struct {
	Version store.Version
	Echo    []byte // the body to answer the writer with (Version.Body unless rules differ)
	Created bool   // a new resource (201) rather than a new version (200)
	NoOp    bool   // a delete of something already absent: nothing was written
}

// Create stores body as a new resource of type typ with a server-assigned id.
func (s *Service) Create(ctx context.Context, p *auth.Principal, typ string, body []byte) (Result, error) {
	r, err := parseFor(typ, "", body)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.write(ctx, tx, p, writeOp{method: store.MethodCreate, typ: typ, id: s.newID(), resource: r, body: body, log: log})
	})
}

// Update stores body as the new version of typ/id, creating the resource
// when it does not exist. ifMatch, when non-empty, is the If-Match header.
func (s *Service) Update(ctx context.Context, p *auth.Principal, typ, id string, body []byte, ifMatch string) (Result, error) {
	if err := checkTypeID(typ, id); err != nil {
		return Result{}, err
	}
	r, err := parseFor(typ, id, body)
	if err != nil {
		return Result{}, err
	}
	if r.ID == "" {
		return Result{}, fhir.Errorf(fhir.KindInvalid, "the resource must carry id %q to be updated at %s/%s", id, typ, id)
	}
	want, err := parseIfMatch(ifMatch)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.write(ctx, tx, p, writeOp{method: store.MethodUpdate, typ: typ, id: id, resource: r, body: body, ifMatch: want, log: log})
	})
}

// Delete marks typ/id deleted. Deleting what does not exist succeeds and writes nothing.
func (s *Service) Delete(ctx context.Context, p *auth.Principal, typ, id, ifMatch string) (Result, error) {
	if err := checkTypeID(typ, id); err != nil {
		return Result{}, err
	}
	want, err := parseIfMatch(ifMatch)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.write(ctx, tx, p, writeOp{method: store.MethodDelete, typ: typ, id: id, ifMatch: want, log: log})
	})
}

// Read returns the current version of typ/id.
func (s *Service) Read(ctx context.Context, p *auth.Principal, typ, id string) (store.Version, error) {
	return s.read(ctx, s.store, p, typ, id)
}

func (s *Service) read(ctx context.Context, r store.View, p *auth.Principal, typ, id string) (store.Version, error) {
	if err := checkTypeID(typ, id); err != nil {
		return store.Version{}, err
	}
	if v, ok := s.virtualRead(p, typ, id); ok {
		return v, nil
	}
	grant, err := s.authorize(p, auth.Read, typ)
	if err != nil {
		return store.Version{}, err
	}
	v, err := r.Current(ctx, typ, id)
	if err != nil {
		return store.Version{}, notFound(err, typ, id)
	}
	if !grant.Permits(v) || s.allowedBy(ctx, r, p, auth.Read, typ, &v) != nil {
		return store.Version{}, fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
	}
	if v.Deleted {
		return store.Version{}, gone(typ, id)
	}
	return v, nil
}

// VRead returns one version of typ/id.
func (s *Service) VRead(ctx context.Context, p *auth.Principal, typ, id, vid string) (store.Version, error) {
	return s.vread(ctx, s.store, p, typ, id, vid)
}

func (s *Service) vread(ctx context.Context, r store.View, p *auth.Principal, typ, id, vid string) (store.Version, error) {
	if err := checkTypeID(typ, id); err != nil {
		return store.Version{}, err
	}
	n, err := strconv.ParseInt(vid, 10, 64)
	if err != nil || n < 1 {
		return store.Version{}, fhir.Errorf(fhir.KindNotFound, "%s/%s has no version %q", typ, id, clip(vid))
	}
	grant, err := s.authorize(p, auth.Read, typ)
	if err != nil {
		return store.Version{}, err
	}
	v, err := r.Version(ctx, typ, id, n)
	if err != nil {
		return store.Version{}, notFound(err, typ, id+"/_history/"+vid)
	}
	if !grant.Permits(v) || s.allowedBy(ctx, r, p, auth.Read, typ, &v) != nil {
		return store.Version{}, fhir.Errorf(fhir.KindNotFound, "%s/%s/_history/%d is not known", typ, id, n)
	}
	if v.Deleted {
		return store.Version{}, gone(typ, id)
	}
	return v, nil
}

// writeOp is one resource write, single or inside a Bundle.
type writeOp struct {
	method   store.Method
	typ, id  string
	resource *fhir.Resource // nil for deletes
	body     []byte         // the resource as sent; nil for deletes
	log      *commitLog     // collects what the transaction stored
	ifMatch  int64          // 0: no precondition
}

// write performs one write inside tx: it checks the caller's permission and
// the precondition, stamps the new version and runs the write hooks.
func (s *Service) write(ctx context.Context, tx store.Tx, p *auth.Principal, op writeOp) (Result, error) {
	// Refuse a caller without any right to this kind of write before taking
	// a lock or revealing anything about the resource.
	if rules := s.rulesFor(op.typ); (rules == nil || !rules.ScopeExempt(auth.Update)) && !s.mayAttempt(p, op) {
		return Result{}, fhir.Errorf(fhir.KindForbidden, "the token's scopes do not permit %s on %s", verbs[op.method], op.typ)
	}
	var prev *store.Version
	if op.method != store.MethodCreate {
		v, err := tx.Lock(ctx, op.typ, op.id)
		switch {
		case err == nil:
			prev = &v
		case !errors.Is(err, store.ErrNotFound):
			return Result{}, err
		}
	}
	exists := prev != nil && !prev.Deleted
	interaction := auth.Create
	switch {
	case op.method == store.MethodDelete:
		interaction = auth.Delete
	case exists:
		interaction = auth.Update
	}
	grant, err := s.authorize(p, interaction, op.typ)
	if err != nil {
		return Result{}, err
	}
	if exists && !grant.Owns(*prev) {
		if grant.Granular() {
			return Result{}, fhir.Errorf(fhir.KindForbidden, "%s/%s is outside what this token's scopes may write", op.typ, op.id)
		}
		return Result{}, fhir.Errorf(fhir.KindForbidden, "%s/%s is outside the patient compartment of this token", op.typ, op.id)
	}
	// A create over a deleted resource shows the rules its delete marker:
	// its history may carry an owner's data (TypeRules.Authorize).
	if err := s.allowedBy(ctx, tx, p, interaction, op.typ, prev); err != nil {
		return Result{}, err
	}
	// Preconditions are checked only for a request that would otherwise be
	// allowed (RFC 9110 §13.2.1), so a 412 never answers an unauthorised caller.
	if op.ifMatch > 0 && (prev == nil || prev.VersionID != op.ifMatch) {
		return Result{}, fhir.Errorf(fhir.KindPrecondition, "If-Match %s does not match the current version of %s/%s", fhir.ETag(op.ifMatch), op.typ, op.id)
	}
	if op.method == store.MethodDelete && !exists {
		return Result{NoOp: true}, nil
	}

	next := store.Next(prev, op.typ, op.id, op.method, s.now())
	var echoBody []byte
	if op.method == store.MethodDelete {
		next.Deleted = true
		next.Patients = prev.Patients // a delete marker stays in its compartment
	} else {
		toStore, echo := op.resource, op.resource
		if rules := s.rulesFor(op.typ); rules != nil {
			prep, err := rules.Prepare(ctx, tx, p, Write{Method: op.method, ID: op.id, Prev: prev, Resource: op.resource, Body: op.body})
			if err != nil {
				return Result{}, err
			}
			toStore, echo = prep.Store, prep.Echo
			if echo == nil {
				echo = toStore
			}
		}
		next.Body = toStore.Stamp(op.id, next.VersionID, next.LastUpdated)
		next.Decoded = toStore.StampedMap(op.id, next.VersionID, next.LastUpdated)
		if next.Patients, err = s.compartment(next.Decoded); err != nil {
			return Result{}, err
		}
		next.Index = s.indexKeys(next.Decoded)
		if echo != toStore {
			echoBody = echo.Stamp(op.id, next.VersionID, next.LastUpdated)
		}
		if !grant.Owns(next) {
			return Result{}, outside(grant, "the "+op.typ)
		}
	}
	if err := tx.Put(ctx, next); err != nil {
		return Result{}, err
	}
	if op.log != nil {
		op.log.versions = append(op.log.versions, next)
	}
	if rules := s.rulesFor(op.typ); rules != nil {
		if err := rules.AfterWrite(ctx, tx, p, prev, next); err != nil {
			return Result{}, err
		}
	}
	for _, hook := range s.onWrite {
		if err := hook(ctx, tx, prev, next); err != nil {
			return Result{}, err
		}
	}
	if echoBody == nil {
		echoBody = next.Body
	}
	return Result{Version: next, Echo: echoBody, Created: !exists && op.method != store.MethodDelete}, nil
}

// inWriteTx runs one write in a transaction (see inTx) and returns its result.
func (s *Service) inWriteTx(ctx context.Context, fn func(tx store.Tx, log *commitLog) (Result, error)) (Result, error) {
	var res Result
	err := s.inTx(ctx, func(tx store.Tx, log *commitLog) error {
		var err error
		res, err = fn(tx, log)
		return err
	})
	return res, err
}

// inTx runs fn in a transaction, retrying when a concurrent writer created
// the same resource first (the retry then sees it and updates instead).
// After a commit, the type rules hear of every version stored.
func (s *Service) inTx(ctx context.Context, fn func(store.Tx, *commitLog) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		log := &commitLog{}
		err = s.store.InTx(ctx, func(tx store.Tx) error {
			log.versions = log.versions[:0]
			return fn(tx, log)
		})
		if err == nil {
			s.committed(log)
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fhir.Errorf(fhir.KindConflict, "the resource was changed concurrently; retry the request")
}

// authorize compiles the caller's grants of the interaction on typ
// (non-granular and granular, see package access) and refuses a caller
// with none.
func (s *Service) grants(p *auth.Principal, i auth.Interaction, typ string) (access.Access, error) {
	a := access.For(p, i, typ, s.baseURL)
	if !a.Any() {
		return a, fhir.Errorf(fhir.KindForbidden, "the token's scopes do not permit %s on %s", i, typ)
	}
	return a, nil
}

var verbs = map[store.Method]string{store.MethodCreate: "create", store.MethodUpdate: "update", store.MethodDelete: "delete"}

// mayAttempt reports whether the caller holds any grant that could permit
// op; the exact interaction (create or update) is known only under the lock.
func (s *Service) mayAttempt(p *auth.Principal, op writeOp) bool {
	can := func(i auth.Interaction) bool { return access.For(p, i, op.typ, s.baseURL).Any() }
	switch op.method {
	case store.MethodCreate:
		return can(auth.Create)
	case store.MethodDelete:
		return can(auth.Delete)
	default:
		return can(auth.Create) || can(auth.Update)
	}
}

// outside explains why a write falls outside the caller's grants.
func outside(a access.Access, what string) error {
	if a.Granular() {
		return fhir.Errorf(fhir.KindForbidden, "%s would be outside what this token's scopes may write", what)
	}
	return fhir.Errorf(fhir.KindForbidden, "%s would be outside the patient compartment of this token: by the R4 Patient CompartmentDefinition it must be in Patient/%s's compartment and in no other patient's", what, a.Patient())
}

// parseFor reads and validates the body of a write to typ (and id, for an
// update).
func parseFor(typ, id string, body []byte) (*fhir.Resource, error) {
	if !fhir.IsResourceType(typ) {
		return nil, unknownType(typ)
	}
	r, err := fhir.Parse(body)
	if err != nil {
		return nil, err
	}
	if err := matchesURL(r, typ, id); err != nil {
		return nil, err
	}
	if err := fhir.Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}

// matchesURL checks that a resource is of the URL's type and, when both
// name one, has the URL's id.
func matchesURL(r *fhir.Resource, typ, id string) error {
	if r.Type != typ {
		return fhir.Errorf(fhir.KindInvalid, "resourceType %q does not match the URL's type %q", r.Type, typ)
	}
	if id != "" && r.ID != "" && r.ID != id {
		return fhir.Errorf(fhir.KindInvalid, "resource id %q does not match the URL's id %q", r.ID, id)
	}
	return nil
}

func checkTypeID(typ, id string) error {
	if !fhir.IsResourceType(typ) {
		return unknownType(typ)
	}
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.KindInvalid, "%q is not a valid FHIR id", clip(id))
	}
	return nil
}

func parseIfMatch(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	v := h
	if len(v) > 2 && (v[:2] == "W/" || v[:2] == "w/") {
		v = v[2:]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.KindInvalid, "If-Match must be a version ETag such as W/\"3\"")
	}
	return n, nil
}

func unknownType(typ string) error {
	return fhir.Errorf(fhir.KindNotFound, "%q is not a FHIR R4 resource type", clip(typ))
}

func notFound(err error, typ, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, clip(id))
	}
	return err
}

func gone(typ, id string) error {
	return fhir.Errorf(fhir.KindGone, "%s/%s has been deleted", typ, id)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// virtualRead serves a computed resource to any authenticated caller: the
// virtual views hold catalogue data (topics), not PHI.
func (s *Service) virtualRead(p *auth.Principal, typ, id string) (store.Version, bool) {
	v := s.virtual[typ]
	if v == nil || p == nil {
		return store.Version{}, false
	}
	body, ok := v.Read(id)
	if !ok {
		return store.Version{}, false
	}
	return store.Version{Type: typ, ID: id, VersionID: 1, Method: store.MethodUpdate, LastUpdated: s.started, Body: body}, true
}

// compartment lists the patients whose compartment holds a version (decoded
// as the matcher reads it), by the R4 Patient CompartmentDefinition, with
// references under Herald's own base counted as local.
func (s *Service) compartment(decoded map[string]any) ([]string, error) {
	r, err := search.ResourceFromMap(decoded)
	if err != nil {
		return nil, err
	}
	return search.PatientCompartment(r.WithBase(s.baseURL)), nil
}
