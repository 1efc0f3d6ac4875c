package subscription

import (
	"context"
	"errors"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/store"
)

// Reactivate is an operator's "try this Subscription again": one in error
// or off goes back to requested, which owes a fresh handshake and starts
// its failure count again (store.DeliveryQueue), as a new version of the
// resource. It is refused (409, saying why) when the policy that decides
// every send (Recheck) would not let the owner have it now: reactivating
// it would only switch it off again; and (429) when its owner already has
// as many live Subscriptions as the quota every write keeps allows. The change is audited in its own
// transaction (store.AuditReactivate). It returns the state as changed.
// Only admins call it (the admin API).
func (o *Operations) Reactivate(ctx context.Context, id string) (store.SubscriptionState, error) {
	s, r, now := o.Store, o.Rules, o.now()
	st, err := s.Subscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return st, fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", clip(id))
	}
	if err != nil {
		return st, err
	}
	if err := reactivatable(st); err != nil {
		return st, err
	}
	admin, err := r.ReadAdmin(ctx)
	if err != nil {
		return st, err
	}
	candidate := st
	candidate.Status, candidate.Error = fhir.StatusRequested, ""
	_, err = r.Recheck(admin, candidate, now)
	var denied *policy.Denied
	if errors.As(err, &denied) {
		return st, fhir.Errorf(fhir.KindConflict, "Subscription/%s cannot be reactivated: %s", id, denied.Reason)
	}
	if err != nil {
		return st, err
	}
	var after store.SubscriptionState
	err = s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.Lock(ctx, "Subscription", id); err != nil {
			return err
		}
		cur, err := tx.Subscription(ctx, id)
		if err != nil {
			return err
		}
		if err := reactivatable(cur); err != nil {
			return err // changed meanwhile
		}
		// The owner's quota of live Subscriptions, as every write of one
		// keeps it: an owner may have switched this one off to make room.
		live := cur
		live.Status = fhir.StatusRequested
		if err := r.Policy.withDefaults().checkQuota(ctx, tx, live, &cur); err != nil {
			return err
		}
		if err := SetStatus(ctx, tx, id, fhir.StatusRequested, "", "", now); err != nil {
			return err
		}
		if after, err = tx.Subscription(ctx, id); err != nil {
			return err
		}
		type status struct {
			Status string `json:"status"`
			Error  string `json:"error,omitempty"`
		}
		return tx.AppendAudit(ctx, store.AuditEntry{Action: store.AuditReactivate, Target: "Subscription/" + id,
			Before: store.AuditJSON(status{cur.Status, cur.Error}), After: store.AuditJSON(status{Status: after.Status})})
	})
	if errors.Is(err, store.ErrNotFound) {
		return st, fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", clip(id))
	}
	return after, err
}

// reactivatable admits the statuses Reactivate changes.
func reactivatable(st store.SubscriptionState) error {
	if st.Status != fhir.StatusError && st.Status != fhir.StatusOff {
		return fhir.Errorf(fhir.KindConflict, "Subscription/%s is %s: only a Subscription in error or off can be reactivated", st.ID, st.Status)
	}
	return nil
}

// Retry makes a Subscription that is not off due now with its backoff reset
// (store.AttemptLog.RetryNow); audited. Only admins call it.
func (o *Operations) Retry(ctx context.Context, id string) error {
	err := o.Store.RetryNow(ctx, id, o.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", clip(id))
	case errors.Is(err, store.ErrConflict):
		return fhir.Errorf(fhir.KindConflict, "Subscription/%s is off: reactivate it instead", id)
	}
	return err
}
