package fhir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []string{
		`{"resourceType":"Patient","active":true,"gender":"female","birthDate":"1970","_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]},"unknownElement":{"kept":true}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}`,
	}
	for _, in := range ok {
		r, err := Parse([]byte(in))
		require.NoError(t, err)
		require.NoError(t, Validate(r, []byte(in)), in)
	}
	bad := []struct{ in, mention string }{
		{`{"resourceType":"Patient","active":"yes"}`, "Patient.active"},
		{`{"resourceType":"Patient","gender":"robot"}`, "AdministrativeGender"},
		{`{"resourceType":"Observation","status":"finished","code":{}}`, "ObservationStatus"},
		{`{"resourceType":"Patient","name":{"family":"x"}}`, "Patient.name"},
		{`{"resourceType":"Observation","status":"final","code":{},"valueQuantity":{"value":true}}`, "valueQuantity.value"},
	}
	for _, c := range bad {
		r, err := Parse([]byte(c.in))
		require.NoError(t, err)
		err = Validate(r, []byte(c.in))
		require.Error(t, err, c.in)
		fe := AsError(err)
		require.Equal(t, 422, fe.Status(), c.in)
		require.Contains(t, fe.Message, c.mention, c.in)
	}
}
