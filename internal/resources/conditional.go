package resources

import (
	"context"
	"net/url"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// Conditional interactions decide by a search (the condition) inside the
// write's transaction, holding a lock on the condition, so that concurrent
// identical conditional writes see each other: two conditional creates of
// the same resource make one. Writes with a different condition (or none)
// are not serialised with them.

// ConditionalCreate creates body unless a resource matches condition
// (If-None-Exist): none → created (201); one → that resource, unchanged
// (200); more → 412.
func (s *Service) ConditionalCreate(ctx context.Context, p *auth.Principal, typ string, body []byte, condition url.Values) (Result, error) {
	r, err := parseFor(typ, "", body)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.createIfNoneExist(ctx, tx, p, writeOp{method: store.MethodCreate, typ: typ, id: s.newID(), resource: r, body: body, log: log}, condition)
	})
}

func (s *Service) createIfNoneExist(ctx context.Context, tx store.Tx, p *auth.Principal, op writeOp, condition url.Values) (Result, error) {
	found, err := s.conditionMatches(ctx, tx, p, op.typ, condition, "If-None-Exist")
	switch {
	case err != nil:
		return Result{}, err
	case len(found) == 0:
		return s.write(ctx, tx, p, op)
	case len(found) == 1:
		return Result{Version: found[0], Echo: found[0].Body}, nil
	}
	return Result{}, fhir.Errorf(fhir.KindPrecondition, "If-None-Exist matches more than one %s; make the condition select one", op.typ)
}

// ConditionalUpdate updates the one resource matching condition
// (PUT /Type?query): none → created (with the body's id, or a new one);
// one → updated (the body's id, if any, must be its id); more → 412.
func (s *Service) ConditionalUpdate(ctx context.Context, p *auth.Principal, typ string, condition url.Values, body []byte, ifMatch string) (Result, error) {
	r, err := parseFor(typ, "", body)
	if err != nil {
		return Result{}, err
	}
	want, err := parseIfMatch(ifMatch)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.updateWhere(ctx, tx, p, writeOp{method: store.MethodUpdate, typ: typ, id: r.ID, resource: r, body: body, ifMatch: want, log: log}, condition)
	})
}

// updateWhere is a conditional update inside tx; op.id is the body's id.
func (s *Service) updateWhere(ctx context.Context, tx store.Tx, p *auth.Principal, op writeOp, condition url.Values) (Result, error) {
	found, err := s.conditionMatches(ctx, tx, p, op.typ, condition, "the conditional update")
	if err != nil {
		return Result{}, err
	}
	switch {
	case len(found) > 1:
		return Result{}, fhir.Errorf(fhir.KindPrecondition, "the conditional update matches more than one %s; make the condition select one", op.typ)
	case len(found) == 1 && op.id != "" && op.id != found[0].ID:
		return Result{}, fhir.Errorf(fhir.KindInvalid, "resource id %q is not the id of the %s the condition selects (%s)", op.id, op.typ, found[0].ID)
	case len(found) == 1:
		op.id = found[0].ID
	case op.id == "":
		op.method, op.id = store.MethodCreate, s.newID()
	default:
		if err := s.notLive(ctx, tx, op.typ, op.id); err != nil {
			return Result{}, err
		}
	}
	return s.write(ctx, tx, p, op)
}

// ConditionalDelete deletes the one resource matching condition
// (DELETE /Type?query): none → nothing (NoOp); more → 412.
func (s *Service) ConditionalDelete(ctx context.Context, p *auth.Principal, typ string, condition url.Values, ifMatch string) (Result, error) {
	if !fhir.IsResourceType(typ) {
		return Result{}, unknownType(typ)
	}
	want, err := parseIfMatch(ifMatch)
	if err != nil {
		return Result{}, err
	}
	return s.inWriteTx(ctx, func(tx store.Tx, log *commitLog) (Result, error) {
		return s.deleteWhere(ctx, tx, p, writeOp{method: store.MethodDelete, typ: typ, ifMatch: want, log: log}, condition)
	})
}

// deleteWhere is a conditional delete inside tx.
func (s *Service) deleteWhere(ctx context.Context, tx store.Tx, p *auth.Principal, op writeOp, condition url.Values) (Result, error) {
	found, err := s.conditionMatches(ctx, tx, p, op.typ, condition, "the conditional delete")
	switch {
	case err != nil:
		return Result{}, err
	case len(found) == 0:
		return Result{NoOp: true}, nil
	case len(found) > 1:
		return Result{}, fhir.Errorf(fhir.KindPrecondition, "the conditional delete matches more than one %s; make the condition select one", op.typ)
	}
	op.id = found[0].ID
	return s.write(ctx, tx, p, op)
}

// conditionMatches takes the condition's lock and returns up to two
// current resources of typ that match it, searched as the caller may
// search. Unknown parameters are errors here: ignoring one would widen the
// condition to resources the writer did not mean.
func (s *Service) conditionMatches(ctx context.Context, tx store.Tx, p *auth.Principal, typ string, condition url.Values, what string) ([]store.Version, error) {
	if s.rulesFor(typ) != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s is not supported on %s", what, typ)
	}
	if len(condition) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s needs search parameters (such as identifier=system|value)", what)
	}
	grant, err := s.grants(p, auth.Search, typ)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindForbidden, "%s is a search: the token's scopes do not permit search on %s", what, typ)
	}
	q, _, err := s.parseSearch(typ, condition, true, nil)
	if err != nil {
		return nil, err
	}
	if err := tx.LockKey(ctx, "condition "+typ+"?"+condition.Encode()); err != nil {
		return nil, err
	}
	grant.Bound(&q)
	q.Count, q.AfterID, q.BeforeID = 2, "", ""
	return tx.Search(ctx, q)
}

// notLive refuses to create typ/id by a conditional update that matched
// nothing while a resource with that id lives: it is not what the
// condition selects.
func (s *Service) notLive(ctx context.Context, tx store.Tx, typ, id string) error {
	v, err := tx.Current(ctx, typ, id)
	if err == nil && !v.Deleted {
		return fhir.Errorf(fhir.KindConflict, "%s/%s exists but does not match the condition; the conditional update does not change it", typ, id)
	}
	return nil
}
