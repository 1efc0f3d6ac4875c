package notify

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
)

// TestSummarizeReadsWhatBuildWrites: a round trip through every golden case.
func TestSummarizeReadsWhatBuildWrites(t *testing.T) {
	for _, c := range buildCases() {
		t.Run(c.name, func(t *testing.T) {
			body, err := Build(base, c.sub, c.typ, c.events, clock, seqIDs())
			require.NoError(t, err)
			s, err := Summarize(body)
			require.NoError(t, err)
			require.Equal(t, "history", s.BundleType)
			require.Equal(t, c.sub.ID, s.SubscriptionID)
			require.Equal(t, base+"/Subscription/"+c.sub.ID, s.Subscription)
			require.Equal(t, c.sub.Status, s.Status)
			require.Equal(t, c.typ, s.Type)
			want := c.sub.EventsSinceStart
			if c.typ == EventNotification {
				want = c.events[len(c.events)-1].Number // the IG's rule for event notifications
			}
			require.Equal(t, want, s.EventsSinceStart)
			require.Len(t, s.Events, len(c.events))
			for i, e := range c.events {
				require.Equal(t, e.Number, s.Events[i].Number)
				if c.sub.Content == fhir.ContentEmpty {
					require.Empty(t, s.Events[i].Focus)
				} else {
					require.Equal(t, base+"/"+e.Focus.Type+"/"+e.Focus.ID, s.Events[i].Focus)
				}
			}
		})
	}
	_, err := Summarize([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}`))
	require.Error(t, err)
	_, err = Summarize([]byte(`not json`))
	require.Error(t, err)
}
