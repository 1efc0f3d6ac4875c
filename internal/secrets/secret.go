package secrets

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// Secret is a plaintext secret (a signing secret, a header value) that renders
// as "[redacted]" in fmt (every verb, including %v %+v %#v %s %q %x %d),
// slog (via LogValue) and JSON and text marshalling. Only [Secret.Reveal]
// returns the value. An empty Secret renders the same way; use
// [Secret.IsZero] to ask whether there is one.
//
// Decoding (json.Unmarshal into a Secret) works as for a string. Two
// limits of a string type: string(s) conversions reveal without saying so,
// and encoding/json writes map keys of string kind verbatim, so never use a
// Secret as a map key.
type Secret string

// Reveal returns the plaintext.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty (also for json omitzero).
func (s Secret) IsZero() bool { return s == "" }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]".
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue is "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
