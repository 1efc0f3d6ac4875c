package resources

import (
	"context"
	"net/url"

	"github.com/herald-fhir/herald/internal/access"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// TypeRules customise the REST behaviour of one resource type (Subscription,
// SubscriptionTopic) on top of the generic interactions. Every method runs
// after the caller's scopes allowed the interaction.
type TypeRules interface {
	// Authorize may refuse more than scopes do: admin-only writes, owner
	// isolation. v is the version concerned: nil for searches and creates
	// of new ids, the delete marker for a create (PUT) over a deleted
	// resource; r reads in the request's transaction when there is one.
	// Returning a KindNotFound error hides the resource from the caller.
	Authorize(ctx context.Context, r store.View, p *auth.Principal, i auth.Interaction, v *store.Version) error
	// Prepare checks a resource about to be written, inside the write's
	// transaction, and returns what to store and what to show the writer.
	Prepare(ctx context.Context, tx store.Tx, p *auth.Principal, w Write) (Prepared, error)
	// AfterWrite runs in the write's transaction once the version is stored
	// (also for deletes); an error aborts the write.
	AfterWrite(ctx context.Context, tx store.Tx, p *auth.Principal, prev *store.Version, cur store.Version) error
	// Search narrows a search with the type's own parameters and isolation:
	// it returns the ids that may match (nil: no narrowing) and the
	// parameters it applied, for the self link.
	Search(ctx context.Context, r store.View, p *auth.Principal, params url.Values) (ids []string, applied url.Values, err error)
	// ScopeExempt reports whether interaction i on this type is decided by
	// Authorize alone rather than SMART scopes (e.g. any client may read
	// topics; only admins may write them).
	ScopeExempt(i auth.Interaction) bool
	// Committed runs after the transaction that stored v has committed.
	Committed(v store.Version)
}

// Write is a create or update handed to TypeRules.Prepare.
type Write struct {
	Method   store.Method
	ID       string
	Prev     *store.Version // nil when the resource never existed
	Resource *fhir.Resource
	Body     []byte // the request body, exactly as sent
}

// Prepared is what TypeRules.Prepare decided.
type Prepared struct {
	Store *fhir.Resource // the resource to store (before id and meta are stamped)
	Echo  *fhir.Resource // what the writer sees; nil means Store
}

func (s *Service) rulesFor(typ string) TypeRules { return s.rules[typ] }

// allowedBy applies the type's rules to one interaction; nil rules allow.
func (s *Service) allowedBy(ctx context.Context, r store.View, p *auth.Principal, i auth.Interaction, typ string, v *store.Version) error {
	if rules := s.rulesFor(typ); rules != nil {
		return rules.Authorize(ctx, r, p, i, v)
	}
	return nil
}

// authorize checks the caller's scopes for the interaction (unless the
// type's rules decide it alone) and returns what they let it reach. Types
// with rules are outside any patient compartment and take no granular
// grants: their rules isolate callers (e.g. by owner) instead.
func (s *Service) authorize(p *auth.Principal, i auth.Interaction, typ string) (access.Access, error) {
	rules := s.rulesFor(typ)
	if rules == nil {
		return s.grants(p, i, typ)
	}
	if p == nil {
		return access.Access{}, fhir.Errorf(fhir.KindForbidden, "authentication is required")
	}
	if !rules.ScopeExempt(i) && !p.Can(i, typ) {
		return access.Access{}, fhir.Errorf(fhir.KindForbidden, "the token's scopes do not permit %s on %s", i, typ)
	}
	return access.All(), nil
}

// commitLog collects the versions a transaction stored, so rules can react
// once it has committed.
type commitLog struct{ versions []store.Version }

func (s *Service) committed(log *commitLog) {
	for _, v := range log.versions {
		if rules := s.rulesFor(v.Type); rules != nil {
			rules.Committed(v)
		}
	}
}

// Virtual serves read-only resources computed rather than stored, such as
// topics discoverable as Basic. Search reports handled=false for searches
// that are not its own, which then run against the store.
type Virtual interface {
	Search(params url.Values) (bodies [][]byte, handled bool)
	Read(id string) (body []byte, ok bool)
}
