package fhir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []string{
		`{"resourceType":"Patient","active":true,"gender":"female","birthDate":"1970","_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}`,
		`{"resourceType":"SubscriptionTopic","url":"x"}`, // Herald's own type: checked by its rules
	}
	for _, in := range ok {
		r, err := Parse([]byte(in))
		require.NoError(t, err)
		require.NoError(t, Validate(r), in)
	}
	bad := []struct{ in, expression string }{
		{`{"resourceType":"Patient","active":"yes"}`, "Patient.active"},
		{`{"resourceType":"Patient","gender":"robot"}`, "Patient.gender"},
		{`{"resourceType":"Patient","foo":1}`, "Patient.foo"},
		{`{"resourceType":"Patient","Gender":"male"}`, "Patient.Gender"},
		{`{"resourceType":"Patient","gender":null}`, "Patient.gender"},
		{`{"resourceType":"Encounter","status":"planned"}`, "Encounter.class"},
		{`{"resourceType":"Observation","status":"finished","code":{"text":"x"}}`, "Observation.status"},
		{`{"resourceType":"Patient","name":{"family":"x"}}`, "Patient.name"},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":true}}`, "Observation.valueQuantity.value"},
	}
	for _, c := range bad {
		r, err := Parse([]byte(c.in))
		require.NoError(t, err)
		err = Validate(r)
		require.Error(t, err, c.in)
		fe := AsError(err)
		require.Equal(t, 422, fe.Status(), c.in)
		require.Equal(t, []string{c.expression}, fe.Expression, c.in)
	}
}

// TestValidateReportsEveryProblem: each problem is its own issue in the
// OperationOutcome, with its expression.
func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	r, err := Parse([]byte(`{"resourceType":"Encounter","status":"nope","foo":1,"subject":{"reference":"Patient/1","bar":2}}`))
	require.NoError(t, err)
	oo := Outcome(Validate(r))
	var got []string
	for _, is := range oo.Issue {
		require.Equal(t, "error", is.Severity)
		require.Len(t, is.Expression, 1)
		got = append(got, is.Expression[0])
	}
	require.ElementsMatch(t, []string{"Encounter.status", "Encounter.foo", "Encounter.subject.bar", "Encounter.class"}, got)
}
