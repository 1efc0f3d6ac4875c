package resources

import (
	"context"
	"errors"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/jsonpatch"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// Patch applies a JSON Patch to the current version of typ/id and stores
// the result as an update: validated as R4, authorised, preconditioned by
// ifMatch and heard by the write hooks (topics) like any update.
func (s *Service) Patch(ctx context.Context, p *auth.Principal, typ, id string, patch []byte, ifMatch string) (Result, error) {
	if err := checkTypeID(typ, id); err != nil {
		return Result{}, err
	}
	if s.rulesFor(typ) != nil {
		return Result{}, fhir.Errorf(fhir.KindNotAllowed, "PATCH is not supported on %s; send the whole resource with PUT", typ)
	}
	want, err := parseIfMatch(ifMatch)
	if err != nil {
		return Result{}, err
	}
	grant, err := s.grants(p, auth.Update, typ)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = s.inTx(ctx, func(tx store.Tx, log *commitLog) error {
		cur, err := tx.Lock(ctx, typ, id)
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && !grant.Permits(cur)):
			return fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
		case err != nil:
			return err
		case cur.Deleted:
			return gone(typ, id)
		}
		// The stored version's tree and the result's are built within the
		// stored-body budget: the patch's own share of the request-body
		// budget is a few bytes. Released before the write, which takes
		// shares of its own (the topics decode the previous version).
		release := strictjson.ShareStored(2 * len(cur.Body))
		body, err := jsonpatch.Apply(cur.Body, patch)
		if err != nil {
			release()
			return patchError(err)
		}
		r, err := parseFor(typ, id, body)
		release()
		if err != nil {
			return err
		}
		res, err = s.write(ctx, tx, p, writeOp{method: store.MethodUpdate, typ: typ, id: id, resource: r, body: body, ifMatch: want, log: log})
		return err
	})
	return res, err
}

// patchError: a malformed patch is 400, a failed test 412 (a precondition,
// as FHIR asks), a path that does not exist 422.
func patchError(err error) error {
	var pe *jsonpatch.Error
	switch {
	case !errors.As(err, &pe):
		return err
	case pe.Malformed:
		return fhir.Errorf(fhir.KindInvalid, "%s", pe)
	case pe.TestFailed:
		return fhir.Errorf(fhir.KindPrecondition, "%s", pe)
	}
	return fhir.Errorf(fhir.KindUnprocessable, "%s", pe)
}
