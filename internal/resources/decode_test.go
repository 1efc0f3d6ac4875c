package resources

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
)

// A sorted search matches a candidate, then reads its sort keys: the
// second read reuses the first decoding of the same body, and a new body
// (even with equal bytes) is decoded afresh.
func TestLastDecodedReusesTheSameBody(t *testing.T) {
	v := store.Version{Type: "Observation", ID: "o1", Body: []byte(`{"resourceType":"Observation","id":"o1","status":"final"}`)}
	var d lastDecoded
	first, err := d.of(v)
	require.NoError(t, err)
	again, err := d.of(v)
	require.NoError(t, err)
	require.Same(t, first, again)

	w := v
	w.Body = append([]byte(nil), v.Body...)
	other, err := d.of(w)
	require.NoError(t, err)
	require.NotSame(t, first, other)
	require.Equal(t, first, other)

	bad := store.Version{Body: []byte(`{`)}
	_, err = d.of(bad)
	require.Error(t, err)
	_, err = (*lastDecoded)(nil).of(v)
	require.NoError(t, err)
}
