package fhir

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/strictjson"
)

var when = time.Date(2026, 11, 25, 10, 30, 0, 123_000_000, time.UTC)

func TestStampKeepsClientJSONExactly(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{
			name: "new id and meta go after resourceType; everything else byte for byte",
			in:   `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]},"weight":1.50,"big":12345678901234567890,"unknownElement":{"a":[1,2.0,3e2]},"name":[{"text":"Zoë \u00e9"}]}`,
			want: `{"resourceType":"Patient","id":"abc","meta":{"versionId":"3","lastUpdated":"2026-11-25T10:30:00.123Z"},"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]},"weight":1.50,"big":12345678901234567890,"unknownElement":{"a":[1,2.0,3e2]},"name":[{"text":"Zoë \u00e9"}]}`,
		},
		{
			name: "existing id replaced in place, meta right after it",
			in:   `{"resourceType":"Observation","id":"abc","status":"final"}`,
			want: `{"resourceType":"Observation","id":"abc","meta":{"versionId":"3","lastUpdated":"2026-11-25T10:30:00.123Z"},"status":"final"}`,
		},
		{
			name: "client meta keeps profile, tags and extensions; server owns versionId and lastUpdated",
			in:   `{"meta":{"versionId":"99","profile":["http://p"],"lastUpdated":"1999-01-01T00:00:00Z","_profile":[{"id":"x"}],"tag":[{"code":"t"}]},"resourceType":"Patient","id":"abc"}`,
			want: `{"meta":{"versionId":"3","lastUpdated":"2026-11-25T10:30:00.123Z","profile":["http://p"],"_profile":[{"id":"x"}],"tag":[{"code":"t"}]},"resourceType":"Patient","id":"abc"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse([]byte(c.in))
			require.NoError(t, err)
			out := r.Stamp("abc", 3, when)
			require.Equal(t, c.want, string(out))
			require.True(t, json.Valid(out))
		})
	}
}

// TestStampedMapIsTheStampedBytesDecoded: the matcher may read the writer's
// decoded form instead of parsing the stored bytes; the two must agree.
func TestStampedMapIsTheStampedBytesDecoded(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"resourceType":"Patient","active":true,"x":[1.50,{"y":null}]}`,
		`{"resourceType":"Patient","id":"old","meta":{"versionId":"9","tag":[{"code":"t"}]},"gender":"male"}`,
	} {
		r, err := Parse([]byte(in))
		require.NoError(t, err)
		stamped, err := strictjson.Parse(r.Stamp("abc", 3, when))
		require.NoError(t, err)
		require.Equal(t, stamped.Any(), any(r.StampedMap("abc", 3, when)), in)
	}
}

func TestStampIsStableWhenRestamped(t *testing.T) {
	t.Parallel()
	in := `{"resourceType":"Patient","active":true,"x":1.10}`
	r, err := Parse([]byte(in))
	require.NoError(t, err)
	first := r.Stamp("p", 1, when)
	r2, err := Parse(first)
	require.NoError(t, err)
	require.Equal(t, "p", r2.ID)
	require.Equal(t, string(first), string(r2.Stamp("p", 1, when)))
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"not JSON":                  `{"resourceType":`,
		"array":                     `[{"resourceType":"Patient"}]`,
		"string":                    `"Patient"`,
		"no resourceType":           `{"id":"1"}`,
		"resourceType not string":   `{"resourceType":1}`,
		"unknown type":              `{"resourceType":"Patients"}`,
		"R5-only type":              `{"resourceType":"SubscriptionStatus"}`,
		"invalid id":                `{"resourceType":"Patient","id":"a b"}`,
		"id too long":               `{"resourceType":"Patient","id":"` + string(make65()) + `"}`,
		"id not string":             `{"resourceType":"Patient","id":7}`,
		"duplicate member":          `{"resourceType":"Patient","active":true,"active":false}`,
		"duplicate meta member":     `{"resourceType":"Patient","meta":{"tag":[],"tag":[]}}`,
		"meta not object":           `{"resourceType":"Patient","meta":[]}`,
		"trailing data":             `{"resourceType":"Patient"} {}`,
		"empty":                     ``,
		"unicode lookalike in type": `{"resourceType":"Pаtient"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(in))
			require.Error(t, err)
			fe := AsError(err)
			require.Equal(t, KindInvalid, fe.Kind)
			require.Equal(t, 400, fe.Status())
			require.NotEmpty(t, fe.Message)
		})
	}
}

func make65() []byte {
	b := make([]byte, 65)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestOutcomeHidesInternalCauses(t *testing.T) {
	t.Parallel()
	err := AsError(errSecret{})
	require.Equal(t, 500, err.Status())
	out := string(OutcomeJSON(err))
	require.NotContains(t, out, "s3cret")
	require.Contains(t, out, `"code":"exception"`)
}

type errSecret struct{}

func (errSecret) Error() string { return "pq: password s3cret rejected" }

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","id":"a","meta":{"tag":[]},"x":1.50}`))
	f.Add([]byte(`{"resourceType":"Observation","_status":{"id":"q"},"status":"final"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if AsError(err).Kind != KindInvalid {
				t.Fatalf("parse error of kind %v: %v", AsError(err).Kind, err)
			}
			return
		}
		out := r.Stamp("id-1", 7, when)
		if !json.Valid(out) {
			t.Fatalf("Stamp produced invalid JSON: %s", out)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("stamped output does not parse: %v", err)
		}
		if again.ID != "id-1" || again.Type != r.Type {
			t.Fatalf("stamped output lost id or type: %+v", again)
		}
		if string(again.Stamp("id-1", 7, when)) != string(out) {
			t.Fatalf("stamping is not idempotent")
		}
	})
}

func TestStampEscapesOddMemberNames(t *testing.T) {
	t.Parallel()
	in := `{"resourceType":"Patient","\u0001ctl":1,"quote\"d":2,"<html>&":3,"ünï":4}`
	r, err := Parse([]byte(in))
	require.NoError(t, err)
	out := r.Stamp("a", 1, when)
	require.True(t, json.Valid(out), string(out))
	again, err := Parse(out)
	require.NoError(t, err)
	require.Equal(t, string(out), string(again.Stamp("a", 1, when)))
	require.Contains(t, string(out), `"<html>&":3`)
}
