package subscription

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// Redacted replaces a channel.header value in every read after the write
// that sent it. An update that sends it back keeps the stored value.
const Redacted = "[redacted]"

// Rewrite returns the Subscription JSON to store: status set by the server,
// end as given (possibly capped), every channel.header value replaced by
// Redacted and the signing-secret extension removed. Everything else is
// kept exactly as the client sent it. body must have passed Parse.
func Rewrite(body []byte, status string, end string) ([]byte, error) {
	return rewrite(body, status, end, true)
}

// Echo is what the create or update response shows: Rewrite's result but
// with the header values as sent (the caller just sent them). The signing
// secret is never echoed.
func Echo(body []byte, status string, end string) ([]byte, error) {
	return rewrite(body, status, end, false)
}

func rewrite(body []byte, status, end string, redact bool) ([]byte, error) {
	top, err := fhir.ParseObject(body)
	if err != nil {
		return nil, err
	}
	top.SetString("status", status)
	if end != "" {
		top.SetString("end", end)
	}
	top.Delete("error") // server-owned
	rawChannel := top.Get("channel")
	if rawChannel == nil {
		return top.Bytes(), nil
	}
	ch, err := fhir.ParseObject(rawChannel)
	if err != nil {
		return nil, err
	}
	if raw := ch.Get("extension"); raw != nil {
		var exts []json.RawMessage
		if err := strictjson.Unmarshal(raw, &exts); err != nil {
			return nil, err
		}
		kept := exts[:0]
		for _, e := range exts {
			var probe struct {
				URL string `json:"url"`
			}
			_ = strictjson.Unmarshal(e, &probe)
			if probe.URL != fhir.ExtSigningSecret {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			ch.Delete("extension")
		} else {
			ch.Set("extension", joinArray(kept))
		}
	}
	if raw := ch.Get("header"); raw != nil && redact {
		var lines []string
		if err := strictjson.Unmarshal(raw, &lines); err != nil {
			return nil, err
		}
		for i, l := range lines {
			name, _, _ := strings.Cut(l, ":")
			lines[i] = name + ": " + Redacted
		}
		b, _ := json.Marshal(lines)
		ch.Set("header", b)
	}
	top.Set("channel", ch.Bytes())
	return top.Bytes(), nil
}

func joinArray(items []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// KeepRedactedHeaders fills header values sent back as Redacted from the
// previously stored headers of the same name, so a client can update a
// Subscription it read without knowing its secrets. A redacted header with
// no stored counterpart (none is passed when the endpoint changed) is an
// error.
func KeepRedactedHeaders(sent, stored []Header) ([]Header, error) {
	out := make([]Header, len(sent))
	for i, h := range sent {
		out[i] = h
		if h.Value != Redacted {
			continue
		}
		found := false
		for _, old := range stored {
			if old.Name == h.Name {
				out[i].Value, found = old.Value, true
				break
			}
		}
		if !found {
			return nil, invalid("Subscription.channel.header", "header %s is sent as %s, which keeps a stored value only while the endpoint stays the same; send the real value", h.Name, Redacted)
		}
	}
	return out, nil
}
