package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/subscription"
)

// Finding 3: reason, channel header values and the whole Subscription have
// size limits; past them the write gets 422 naming the element and the limit.
func TestSubscriptionSizeLimits(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			h := setupSubscriptions(t, s.open(t), func(p *subscription.Policy) {
				p.MaxReasonBytes, p.MaxHeaderValueBytes, p.MaxSubscriptionBytes = 100, 200, 4096
			})
			tok := h.token(subScopes)
			withReason := func(n int) func(map[string]any) {
				return func(m map[string]any) { m["reason"] = strings.Repeat("r", n) }
			}
			withHeader := func(n int) func(map[string]any) {
				return func(m map[string]any) { channel(m)["header"] = []string{"X-Token: " + strings.Repeat("h", n)} }
			}
			withPadding := func(n int) func(map[string]any) { // a long, valid extension elsewhere
				return func(m map[string]any) {
					m["extension"] = []any{map[string]any{"url": "https://example.org/padding", "valueString": strings.Repeat("p", n)}}
				}
			}
			cases := []struct {
				name, body, mention string
			}{
				{"reason", newSubscription(withReason(101)), "Subscription.reason"},
				{"header value", newSubscription(withHeader(201)), "Subscription.channel.header"},
				{"whole Subscription", newSubscription(withPadding(5000)), "4096"},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r := h.request("POST", "/fhir/Subscription", tok, c.body)
					requireOutcome(t, r, 422, c.mention)
					require.Contains(t, string(r.body), "at most", "the outcome says the limit")
				})
			}
			require.Zero(t, h.count("Subscription"))

			for _, body := range []string{newSubscription(withReason(100)), newSubscription(withHeader(200))} {
				r := h.request("POST", "/fhir/Subscription", tok, body)
				require.Equal(t, 201, r.status, "at the limit is allowed: %s", r.body)
			}
		})
	}
}
