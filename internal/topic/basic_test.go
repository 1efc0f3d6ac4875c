package topic

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/topics"
)

func TestBasicViewIsValidR4(t *testing.T) {
	t.Parallel()
	all, _, err := Builtin(topics.FS)
	require.NoError(t, err)
	lib := NewLibrary()
	for _, tp := range all {
		lib.Put(tp)
	}
	v := &BasicView{Library: lib}
	bodies, ok := v.Search(url.Values{"code": {"http://hl7.org/fhir/fhir-types|SubscriptionTopic"}})
	require.True(t, ok)
	require.Len(t, bodies, len(all))
	for _, b := range bodies {
		fhirtest.RequireValidR4(t, b)
		require.Contains(t, string(b), `"http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.url"`)
		require.Contains(t, string(b), `"http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.resourceTrigger"`)
	}
	_, ok = v.Search(url.Values{"code": {"http://loinc.org|1234-5"}})
	require.False(t, ok, "other Basic searches are not the view's")
	b, ok := v.Read("subscriptiontopic-encounter-start")
	require.True(t, ok)
	require.Contains(t, string(b), "https://herald.dev/fhir/SubscriptionTopic/encounter-start")
	_, ok = v.Read("encounter-start")
	require.False(t, ok)
}
