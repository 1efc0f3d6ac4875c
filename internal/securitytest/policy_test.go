package securitytest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/webhook"
)

// The tests of this file are the findings of issue 12 ("one authorization
// policy"), each reproduced through real HTTP on both stores.

// TestOneReservedHeaderList (finding 6): every header the webhook client
// reserves for itself is refused when a Subscription is created, so no
// stored header is silently dropped at send (Accept was).
func TestOneReservedHeaderList(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(subScope)
		names := append(webhook.ReservedHeaders(), "Proxy-Anything", "Sec-Anything")
		require.Contains(t, names, "Accept")
		for _, name := range names {
			r := h.request("POST", "/fhir/Subscription", tok, subscriptionJSON(hookBase+"h", withHeaders(name+": x")))
			requireOutcome(t, r, 422, "Subscription.channel.header")
		}
		require.Empty(t, h.states())
	})
}
