package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/secrets"
)

// TestSignVectors pins Sign to values computed outside Go with
//
//	printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -hex
//	printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -hmac "$secret" -binary | base64
//
// and, for the whsec_ secret, -mac HMAC -macopt hexkey:<decoded key>.
func TestSignVectors(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"resourceType":"Bundle"}`)
	for _, c := range []struct{ secret, hub, sig string }{
		{
			"0123456789abcdef0123456789abcdef-secret",
			"sha256=342c0cb11fec841d8305fbde5a096d9bbf4fcaef07bf022db131f41bb35d1be8",
			"v1,RPq9GZqi0veNpwG7IoPs6tQX79q2RT8k4E6S7H3zACw=",
		},
		{
			// Keyed by the decoded bytes 31f290f6...a4b0.
			"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"sha256=a142c070c9a79ea6f662187d3bd0d93a27ccdebec69896f779d350a5aff71918",
			"v1,9aow+Dz6O8HIwqsoeQSeF2wr8PxataFxXl5zP79zE/c=",
		},
		{
			// Not base64 after the prefix: keyed by the bytes as written.
			"whsec_not*base64!",
			"sha256=c88b79aa3ac141968746f439ee783359362c8202a84f9f6d4ab029dec87417b0",
			"",
		},
	} {
		hub, sig := Sign(c.secret, "msg_2b1a", ts, body)
		assert.Equal(t, c.hub, hub, c.secret)
		if c.sig != "" {
			assert.Equal(t, c.sig, sig, c.secret)
		}
	}
}

// hubKey derives the HMAC key the way the interface describes it, without
// the package's code.
func hubKey(secret string) []byte {
	if enc, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(enc); err == nil {
			return k
		}
	}
	return []byte(secret)
}

func verifyHub(secret string, body []byte, header string) bool {
	m := hmac.New(sha256.New, hubKey(secret))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(want), []byte(header))
}

// TestSignaturesVerifyWithStandardWebhooks checks the headers a receiver
// gets with the official Standard Webhooks Go library and a plain HMAC.
func TestSignaturesVerifyWithStandardWebhooks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, secret string
		verifier     func(string) (*standardwebhooks.Webhook, error)
	}{
		{"plain secret", secretMarker, func(s string) (*standardwebhooks.Webhook, error) {
			return standardwebhooks.NewWebhookRaw([]byte(s))
		}},
		{"whsec secret", "whsec_" + base64.StdEncoding.EncodeToString([]byte("32 bytes of key material for it!")),
			standardwebhooks.NewWebhook},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, http.StatusOK)
			r := request(rec.URL)
			r.AllowPrivateNetwork = true
			r.Secret = secrets.Secret(c.secret)
			r.MessageID = "01J9Z6Y8K3-msg"
			before := time.Now().Unix()
			_, err := New(Options{}).Send(testContext(t), r)
			require.NoError(t, err)

			reqs := rec.requests()
			require.Len(t, reqs, 1)
			h, body := reqs[0].Header, reqs[0].Body
			assert.Equal(t, "01J9Z6Y8K3-msg", h.Get("webhook-id"))
			ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
			require.NoError(t, err)
			assert.InDelta(t, before, ts, 5)

			wh, err := c.verifier(c.secret)
			require.NoError(t, err)
			require.NoError(t, wh.Verify(body, h))
			assert.True(t, verifyHub(c.secret, body, h.Get("X-Hub-Signature")))

			// Tampering breaks both signatures.
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)-2] ^= 1
			assert.Error(t, wh.Verify(tampered, h))
			assert.False(t, verifyHub(c.secret, tampered, h.Get("X-Hub-Signature")))

			forged := h.Clone()
			forged.Set("webhook-id", "another-id")
			assert.Error(t, wh.Verify(body, forged))
			forged = h.Clone()
			forged.Set("webhook-timestamp", strconv.FormatInt(ts+1, 10))
			assert.Error(t, wh.Verify(body, forged))

			other, err := standardwebhooks.NewWebhookRaw([]byte("some other secret of enough length"))
			require.NoError(t, err)
			assert.Error(t, other.Verify(body, h))
			assert.False(t, verifyHub("some other secret of enough length", body, h.Get("X-Hub-Signature")))
		})
	}
}

// TestMessageIDStableAcrossRetries: resending with the same MessageID keeps
// webhook-id; the timestamp and signature follow the clock.
func TestMessageIDStableAcrossRetries(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusServiceUnavailable)
	now := time.Unix(1700000000, 0)
	c := New(Options{Now: func() time.Time { return now }})
	r := request(rec.URL)
	r.AllowPrivateNetwork = true
	for range 2 {
		_, err := c.Send(testContext(t), r)
		sendError(t, err, "status 503")
	}
	reqs := rec.requests()
	require.Len(t, reqs, 2)
	for _, got := range reqs {
		assert.Equal(t, "msg-1", got.Header.Get("webhook-id"))
		assert.Equal(t, "1700000000", got.Header.Get("webhook-timestamp"))
		wh, err := standardwebhooks.NewWebhookRaw([]byte(secretMarker))
		require.NoError(t, err)
		assert.NoError(t, wh.VerifyIgnoringTimestamp(got.Body, got.Header))
	}
}
