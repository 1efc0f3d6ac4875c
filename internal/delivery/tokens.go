package delivery

import (
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/store"
)

// withAccessTokens gives each event of an id-only notification a token
// for reading exactly its focus and included resources, when the
// Subscription asked for them (its notification-access-token extension).
func (e *Engine) withAccessTokens(st store.SubscriptionState, events []notify.Event) error {
	if e.cfg.Tokens == nil || !st.NotificationToken || st.Content != fhir.ContentIDOnly {
		return nil
	}
	for i := range events {
		ev := &events[i]
		refs := make([]store.VersionRef, 0, 1+len(ev.Additional))
		refs = append(refs, store.VersionRef{Type: ev.Focus.Type, ID: ev.Focus.ID, Version: ev.Focus.VersionID})
		for _, a := range ev.Additional {
			refs = append(refs, store.VersionRef{Type: a.Type, ID: a.ID, Version: a.VersionID})
		}
		tok, _, err := e.cfg.Tokens.Mint(e.cfg.BaseURL, st.ID, store.SubscriptionOwner{Client: st.Owner, Context: st.Context}, refs)
		if err != nil {
			return err
		}
		ev.AccessToken = tok
	}
	return nil
}
