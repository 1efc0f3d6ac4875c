package resources

import (
	"context"
	"net/url"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// TypeRules customise the REST behaviour of one resource type (Subscription,
// SubscriptionTopic) on top of the generic interactions. Every method runs
// after the caller's scopes allowed the interaction.
type TypeRules interface {
	// Authorize may refuse more than scopes do: admin-only writes, owner
	// isolation. v is the version concerned, nil for creates. Returning a
	// KindNotFound error hides the resource from the caller.
	Authorize(p *auth.Principal, i auth.Interaction, v *store.Version) error
	// Prepare checks a resource about to be written, inside the write's
	// transaction, and returns what to store and what to show the writer.
	Prepare(ctx context.Context, tx store.Tx, p *auth.Principal, w Write) (Prepared, error)
	// AfterWrite runs in the write's transaction once the version is stored
	// (also for deletes); an error aborts the write.
	AfterWrite(ctx context.Context, tx store.Tx, p *auth.Principal, prev *store.Version, cur store.Version) error
	// Search narrows a search with the type's own parameters and isolation:
	// it returns the ids that may match (nil: no narrowing) and the
	// parameters it applied, for the self link.
	Search(ctx context.Context, r store.Reader, p *auth.Principal, params url.Values) (ids []string, applied url.Values, err error)
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
func (s *Service) allowedBy(p *auth.Principal, i auth.Interaction, typ string, v *store.Version) error {
	if r := s.rulesFor(typ); r != nil {
		return r.Authorize(p, i, v)
	}
	return nil
}
