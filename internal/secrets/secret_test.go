package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const secretValue = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1sZWFr"

func TestSecretReveal(t *testing.T) {
	t.Parallel()
	s := Secret(secretValue)
	require.Equal(t, secretValue, s.Reveal())
	require.False(t, s.IsZero())
	require.True(t, Secret("").IsZero())
	require.Empty(t, Secret("").Reveal())
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret(secretValue)
	type nested struct {
		Name   string
		Secret Secret
		Ptr    *Secret
		Slice  []Secret
		Map    map[string]Secret
		Any    any
	}
	n := nested{Name: "n", Secret: s, Ptr: &s, Slice: []Secret{s}, Map: map[string]Secret{"k": s}, Any: s}
	values := map[string]any{"value": s, "pointer": &s, "struct": n, "struct pointer": &n, "slice": []Secret{s, s}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%c", "%10s", "%-10v", "%.3s", "%U", "%t"}
	for name, v := range values {
		for _, verb := range verbs {
			t.Run(name+" "+verb, func(t *testing.T) {
				t.Parallel()
				out := fmt.Sprintf(verb, v)
				requireRedacted(t, out)
				require.Contains(t, out, "[redacted]")
			})
		}
	}
	requireRedacted(t, fmt.Sprint(s, &s, n))
	requireRedacted(t, fmt.Sprintln(s, &s, n))
	require.Equal(t, "[redacted]", fmt.Sprintf("%v", s))
	require.Equal(t, "[redacted]", fmt.Sprintf("%+v", s))
	require.Equal(t, "[redacted]", fmt.Sprintf("%#v", s))
	require.Equal(t, "[redacted]", fmt.Sprintf("%s", s))
	require.Equal(t, "[redacted]", s.String())
	require.Equal(t, "[redacted]", s.GoString())
	require.Equal(t, "[redacted]", Secret("").String())
	require.Equal(t, "error: [redacted]", fmt.Errorf("error: %v", s).Error())
	require.Equal(t, "error: [redacted]", fmt.Errorf("error: %w", errors.New(fmt.Sprint(s))).Error())
}

func TestSecretJSON(t *testing.T) {
	t.Parallel()
	s := Secret(secretValue)
	type body struct {
		Secret  Secret            `json:"secret"`
		Ptr     *Secret           `json:"ptr"`
		Omit    Secret            `json:"omit,omitzero"`
		Headers map[string]Secret `json:"headers"`
	}
	b, err := json.Marshal(body{Secret: s, Ptr: &s, Headers: map[string]Secret{"Authorization": s}})
	require.NoError(t, err)
	require.JSONEq(t, `{"secret":"[redacted]","ptr":"[redacted]","headers":{"Authorization":"[redacted]"}}`, string(b))
	requireRedacted(t, string(b))

	// Documented limitation: encoding/json writes map keys of string kind
	// directly, so a Secret used as a map key leaks. Pinned so a change in
	// encoding/json is noticed.
	b, err = json.Marshal(map[Secret]string{s: "v"})
	require.NoError(t, err)
	require.Contains(t, string(b), secretValue)

	b, err = json.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, `"[redacted]"`, string(b))
	b, err = json.MarshalIndent([]Secret{s, ""}, "", " ")
	require.NoError(t, err)
	requireRedacted(t, string(b))

	text, err := s.MarshalText()
	require.NoError(t, err)
	require.Equal(t, "[redacted]", string(text))

	// Decoding works like a string, so request bodies can carry secrets in.
	var in struct {
		Secret Secret `json:"secret"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"secret":"`+secretValue+`"}`), &in))
	require.Equal(t, secretValue, in.Secret.Reveal())
}

func TestSecretSlog(t *testing.T) {
	t.Parallel()
	s := Secret(secretValue)
	type payload struct {
		Endpoint string
		Secret   Secret
		Headers  map[string]Secret
	}
	p := payload{Endpoint: "https://example.com/", Secret: s, Headers: map[string]Secret{"X-Api-Key": s}}
	tests := []struct {
		name    string
		handler func(*bytes.Buffer) slog.Handler
	}{
		{name: "json", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{name: "text", handler: func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := slog.New(tt.handler(&buf))
			log.Info("delivering", "secret", s, "ptr", &s, "payload", p, slog.Any("any", s))
			log.With("with", s).WithGroup("g").Info("grouped", slog.Group("inner", "secret", s))
			log.Info("string", "stringified", fmt.Sprint(s))
			out := buf.String()
			requireRedacted(t, out)
			require.GreaterOrEqual(t, strings.Count(out, "[redacted]"), 8, out)
		})
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "secret", s)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, "[redacted]", rec["secret"])
	require.Equal(t, slog.KindString, s.LogValue().Kind())
	require.Equal(t, "[redacted]", s.LogValue().String())
}

func requireRedacted(t *testing.T, out string) {
	t.Helper()
	require.NotContains(t, out, secretValue)
	require.NotContains(t, out, secretValue[:12])
	require.NotContains(t, out, "c2VjcmV0")
	require.NotContains(t, out, fmt.Sprintf("%x", secretValue[:8]))
	require.NotContains(t, out, fmt.Sprintf("%X", secretValue[:8]))
	require.NotContains(t, out, "119 104 115 101") // "whse" as %d bytes
}
