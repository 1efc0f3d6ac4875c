// Package typerules plugs Herald's own resource types into the REST
// engine: resources.TypeRules for Subscription (over the subscription
// lifecycle) and SubscriptionTopic (over the topic library). Only this
// adapter knows both sides, so the domain packages, and delivery with
// them, do not depend on the REST engine.
package typerules

import (
	"context"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
)

// Subscription makes /fhir/Subscription a backport Subscription endpoint.
type Subscription struct{ *subscription.Rules }

var _ resources.TypeRules = Subscription{}

// Prepare writes the Subscription's state through its lifecycle.
func (s Subscription) Prepare(ctx context.Context, tx store.Tx, p *auth.Principal, w resources.Write) (resources.Prepared, error) {
	out, err := s.Write(ctx, tx, p, w.ID, w.Prev, w.Body)
	return resources.Prepared{Store: out.Store, Echo: out.Echo}, err
}

// Topic makes /fhir/SubscriptionTopic the topic library.
type Topic struct{ *topic.Rules }

var _ resources.TypeRules = Topic{}

// Prepare rejects a topic Herald cannot evaluate; a valid one is stored as sent.
func (t Topic) Prepare(_ context.Context, _ store.Tx, _ *auth.Principal, w resources.Write) (resources.Prepared, error) {
	return resources.Prepared{Store: w.Resource}, t.Check(w.ID, w.Body)
}

// Rules are the TypeRules of both types.
func Rules(subs *subscription.Rules, topics *topic.Library) map[string]resources.TypeRules {
	return map[string]resources.TypeRules{
		"Subscription":      Subscription{subs},
		"SubscriptionTopic": Topic{&topic.Rules{Library: topics}},
	}
}
