package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
)

// SetStatus records a status the server decided (the handshake succeeded,
// delivery keeps failing, the lease ended, authorization was withdrawn): a
// new version of the Subscription resource with status and error (R4's
// Subscription.error; removed when reason is empty), and the state to match,
// both in tx; code is reason's subscription-error code, kept in the state
// (R4's Subscription.error is a string) for the status Bundles' error
// parameters. A Subscription already in that status with that reason, or no
// longer stored, is left alone.
func SetStatus(ctx context.Context, tx store.Tx, id, status, reason, code string, now time.Time) error {
	st, err := tx.Subscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Status == status && st.Error == reason && st.ErrorCode == code {
		return nil
	}
	cur, err := tx.Lock(ctx, "Subscription", id)
	if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
		return nil
	}
	if err != nil {
		return err
	}
	obj, err := fhir.ParseObject(cur.Body)
	if err != nil {
		return err
	}
	obj.SetString("status", status)
	if reason != "" {
		obj.SetString("error", reason)
	} else {
		obj.Delete("error")
	}
	res, err := fhir.Parse(obj.Bytes())
	if err != nil {
		return err
	}
	next := store.Next(&cur, "Subscription", id, store.MethodUpdate, now)
	next.Body = res.Stamp(id, next.VersionID, next.LastUpdated)
	if err := tx.Put(ctx, next); err != nil {
		return err
	}
	st.Status, st.Error, st.ErrorCode, st.UpdatedAt = status, reason, code, next.LastUpdated
	return tx.PutSubscription(ctx, st)
}

// Errors are the error parameters of a Subscription's status Bundles
// (notifications and $status): Subscription.error as text, with its
// subscription-error coding when it has one.
func Errors(st store.SubscriptionState) []notify.Error {
	if st.Error == "" {
		return nil
	}
	e := notify.Error{Text: st.Error}
	if st.ErrorCode != "" {
		e.System, e.Code = fhir.SubscriptionErrorSystem, st.ErrorCode
	}
	return []notify.Error{e}
}
