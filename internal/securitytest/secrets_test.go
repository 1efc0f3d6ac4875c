package securitytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	signingSecret = "s3cr3t-signing-0123456789-abcdefghijklmnop"
	headerValue   = "Bearer s3cr3t-header"
	apiKeyValue   = "k3y-s3cr3t-value-42"
)

// leaks lists the secrets found in body.
func leaks(body []byte) []string {
	var found []string
	for _, s := range []string{signingSecret, headerValue, "s3cr3t-header", apiKeyValue, "s3cr3t-signing"} {
		if strings.Contains(string(body), s) {
			found = append(found, s)
		}
	}
	return found
}

// TestSecretsNeverLeak: a Subscription's signing secret and channel header
// values reach the subscriber (headers as given, valid signatures) and
// nothing else: no response after the create (which echoes the headers it
// was sent, never the secret) shows them, whether read, vread, history,
// search, $status, $events, a batch, an update or an error; no stored
// resource version holds them; and the logs of the API, the verifier and
// the delivery engine (which logged a failed attempt) hold neither them nor
// any bearer token used (checked when the test ends).
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		h.hide(signingSecret, headerValue, "s3cr3t-header", apiKeyValue)
		h.recv.setAnswer(func(n int, d delivered) int {
			if n == 0 {
				return 500 // the engine logs a failed attempt
			}
			return 200
		})
		owner := h.token(subScope+" system/Patient.rs", asClient("owner"))
		endpoint := h.recv.srv.URL + "/secret-hook"
		r := h.request("POST", "/fhir/Subscription", owner, subscriptionJSON(endpoint,
			withSecret(signingSecret), withHeaders("Authorization: "+headerValue, "X-Api-Key: "+apiKeyValue)))
		id := created(t, r)
		require.NotContains(t, string(r.body), signingSecret, "the create response never shows the signing secret")
		require.NotContains(t, string(r.body), "signing-secret")
		require.Contains(t, string(r.body), headerValue, "the create response echoes the headers it was sent")

		h.waitStatus(id, "active")
		sys := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e1", sys, encounter("e1", "p1", "")).status)
		got := h.recv.waitFor(t, "the event notification", func(got []delivered) bool {
			for _, d := range got {
				if strings.Contains(string(d.Body), "event-notification") {
					return true
				}
			}
			return false
		})

		// The subscriber got the headers and valid signatures, on every attempt.
		require.GreaterOrEqual(t, len(got), 3, "failed handshake, handshake, event")
		for _, d := range got {
			require.Equal(t, headerValue, d.Header.Get("Authorization"))
			require.Equal(t, apiKeyValue, d.Header.Get("X-Api-Key"))
			mac := hmac.New(sha256.New, []byte(signingSecret))
			mac.Write(d.Body)
			require.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), d.Header.Get("X-Hub-Signature"))
			mac = hmac.New(sha256.New, []byte(signingSecret))
			mac.Write([]byte(d.Header.Get("Webhook-Id") + "." + d.Header.Get("Webhook-Timestamp") + "."))
			mac.Write(d.Body)
			require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), d.Header.Get("Webhook-Signature"))
			require.Empty(t, leaks(d.Body), "the notification body carries no secret")
		}

		// No read of any kind shows a secret.
		sub := "/fhir/Subscription/" + id
		reads := []struct{ method, path, body, contentType string }{
			{"GET", sub, "", ""},
			{"GET", sub + "/_history", "", ""},
			{"GET", sub + "/_history/1", "", ""},
			{"GET", sub + "/_history/2", "", ""},
			{"GET", "/fhir/Subscription?_id=" + id, "", ""},
			{"GET", "/fhir/Subscription?status=active", "", ""},
			{"GET", "/fhir/Subscription?url=" + url.QueryEscape(endpoint), "", ""},
			{"GET", "/fhir/Subscription?topic=" + url.QueryEscape(encounterStart), "", ""},
			{"GET", "/fhir/Subscription", "", ""},
			{"POST", "/fhir/Subscription/_search", "_id=" + id, "application/x-www-form-urlencoded"},
			{"GET", sub + "/$status", "", ""},
			{"POST", sub + "/$status", "", ""},
			{"GET", "/fhir/Subscription/$status", "", ""},
			{"GET", "/fhir/Subscription/$status?id=" + id, "", ""},
			{"GET", sub + "/$events", "", ""},
			{"GET", sub + "/$events?content=full-resource", "", ""},
			{"POST", sub + "/$events", `{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueString":"1"}]}`, ""},
			{"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Subscription/` + id + `"}},{"request":{"method":"GET","url":"Subscription?_id=` + id + `"}},{"request":{"method":"GET","url":"Subscription/` + id + `/_history/1"}}]}`, ""},
		}
		admin := h.token("herald.admin system/Subscription.rs")
		for _, tok := range []string{owner, admin} {
			for _, req := range reads {
				var headers []string
				if req.contentType != "" {
					headers = append(headers, "Content-Type: "+req.contentType)
				}
				r := h.request(req.method, req.path, tok, req.body, headers...)
				want := 200
				if tok == admin && strings.Contains(req.path, "$events") {
					want = 404 // $events answers only the owner
				}
				require.Equal(t, want, r.status, "%s %s: %s", req.method, req.path, r.body)
				require.Empty(t, leaks(r.body), "%s %s: %s", req.method, req.path, r.body)
			}
		}
		r = h.request("GET", sub, owner, "")
		require.Contains(t, string(r.body), "Authorization: [redacted]")
		require.Contains(t, string(r.body), "X-Api-Key: [redacted]")
		read := r.body

		// Errors do not echo them either.
		badHeader := subscriptionJSON(endpoint, withSecret(signingSecret), withHeaders("X-Api-Key "+apiKeyValue), func(m map[string]any) { m["id"] = id })
		r = h.request("PUT", sub, owner, badHeader)
		requireOutcome(t, r, 422, "channel.header")
		require.Empty(t, leaks(r.body), string(r.body))
		injected := subscriptionJSON(endpoint, withHeaders("X-Api-Key: "+apiKeyValue+"\r\nX-B: 1"), func(m map[string]any) { m["id"] = id })
		r = h.request("PUT", sub, owner, injected)
		requireOutcome(t, r, 422, "channel.header")
		require.Empty(t, leaks(r.body), string(r.body))
		r = h.request("PUT", sub, owner, string(read), `If-Match: W/"99"`)
		requireOutcome(t, r, 412, "")
		require.Empty(t, leaks(r.body))

		// An update sending the redacted values back keeps them, and shows none.
		before := len(h.recv.all())
		r = h.request("PUT", sub, owner, string(read))
		require.Equal(t, 200, r.status, string(r.body))
		require.Empty(t, leaks(r.body), string(r.body))
		h.recv.waitFor(t, "the new handshake", func(got []delivered) bool { return len(got) > before })
		for _, d := range h.recv.all()[before:] {
			require.Equal(t, headerValue, d.Header.Get("Authorization"), "the stored header value was kept")
		}

		// No stored version of the resource holds a secret, nor the state in clear.
		versions := h.history("Subscription", id)
		require.GreaterOrEqual(t, len(versions), 3, "created, activated, updated")
		for _, v := range versions {
			require.Empty(t, leaks(v.Body), "version %d", v.VersionID)
		}
		st := h.state(id)
		require.Empty(t, leaks([]byte(st.SealedSecret+st.SealedHeaders+strings.Join(st.Filters, " ")+st.Error)))

		// The engine did log (the failed attempt), so its logs were scanned.
		require.Contains(t, h.logs.String(), `"component":"delivery"`)
	})
}
