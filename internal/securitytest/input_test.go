package securitytest

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHeaderInjection: channel.header lines that would inject headers
// (CR, LF, NUL, other controls), with invalid names, or naming headers
// Herald or the transport sets are refused at create and at update with
// 422, and nothing is stored or changed. JSON escapes (\u000d) are decoded
// before the check, so they are no way around it.
func TestHeaderInjection(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sub := h.token(subScope)
		lines := []string{
			"X-A: b\r\nX-Injected: 1",
			"X-A: b\nHost: evil.example",
			"X-A: b\rX-Injected: 1",
			"X-A: b\r\n\r\nGET /admin HTTP/1.1",
			"X-A: b\x00c",
			"X-A\r\nX-B: c",
			"X-A: \x01",
			"X-A: a\x7fb",
			"X-A: a\x0bb",
			"X A: b",
			"X(A): b",
			": nameless",
			"\u00dcml\u00e4ut: v",
			"X-\u0410: cyrillic name",
			"no colon at all",
			"Host: evil.example",
			"host: evil.example",
			"Content-Length: 0",
			"Transfer-Encoding: chunked",
			"Content-Type: text/plain",
			"Connection: close",
			"Expect: 100-continue",
			"User-Agent: evil",
			"Cookie: session=1",
			"X-Hub-Signature: sha256=00",
			"webhook-signature: v1,AAAA",
			"Webhook-Id: msg_forged",
			"Webhook-Timestamp: 0",
			"Proxy-Authorization: Basic eDp5",
			"Proxy-Anything: x",
			"Sec-Fetch-Site: same-origin",
			"X-Forwarded-For: 127.0.0.1",
			"Forwarded: for=127.0.0.1",
		}
		for _, line := range lines {
			t.Run(strings.NewReplacer("\r", `\r`, "\n", `\n`, "\x00", `\0`).Replace(line), func(t *testing.T) {
				r := h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(hookBase+"x", withHeaders("X-Ok: fine", line)))
				requireOutcome(t, r, 422, "channel.header")
				require.NotContains(t, string(r.body), "X-Injected")
				require.NotContains(t, string(r.body), "evil.example")
			})
		}
		// JSON escapes are no way around it.
		raw := strings.Replace(subscriptionJSON(hookBase+"x", withHeaders("X-A: PLACEHOLDER")), "PLACEHOLDER", `b\u000d\u000aX-Injected: 1`, 1)
		requireOutcome(t, h.request("POST", "/fhir/Subscription", sub, raw), 422, "channel.header")
		raw = strings.Replace(subscriptionJSON(hookBase+"x", withHeaders("X-A: PLACEHOLDER")), "PLACEHOLDER", `b\u0000c`, 1)
		requireOutcome(t, h.request("POST", "/fhir/Subscription", sub, raw), 422, "channel.header")
		// A header that is not a string.
		r := h.request("POST", "/fhir/Subscription", sub, strings.Replace(subscriptionJSON(hookBase+"x", withHeaders("X-A: b")), `["X-A: b"]`, `[{"X-A":"b\r\nX-Injected: 1"}]`, 1))
		require.Contains(t, []int{400, 422}, r.status, string(r.body))
		requireOutcome(t, r, r.status, "channel.header")
		require.Empty(t, h.states())
		require.Zero(t, h.count("Subscription"))

		// Updates are held to the same rules and change nothing.
		id := created(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(hookBase+"x", withHeaders("X-Ok: fine"))))
		before := h.state(id)
		for _, line := range lines[:6] {
			body := subscriptionJSON(hookBase+"x", withHeaders(line), func(m map[string]any) { m["id"] = id })
			requireOutcome(t, h.request("PUT", "/fhir/Subscription/"+id, sub, body), 422, "channel.header")
		}
		// (The delivery engine may version the status meanwhile: hookBase
		// resolves nowhere. No version carries what the updates sent.)
		for _, v := range h.history("Subscription", id) {
			require.Contains(t, string(v.Body), `"header":["X-Ok: [redacted]"]`)
		}
		after := h.state(id)
		require.Equal(t, before.SealedHeaders, after.SealedHeaders)
		require.Equal(t, before.Endpoint, after.Endpoint)
		require.Len(t, h.states(), 1)
	})
}

// TestOversizedAndNestedJSON: a body over the limit is a 413 whether or not
// it announces its length; JSON nested 100,000 levels deep (arrays or
// objects) is a 400 on every route that parses JSON; the server keeps
// answering and nothing is stored.
func TestOversizedAndNestedJSON(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token("system/*.cruds herald.admin")
		big := `{"resourceType":"Patient","text":"` + strings.Repeat("a", maxBody) + `"}`
		for _, path := range []string{"/fhir/Patient", "/fhir", "/fhir/Subscription", "/fhir/Patient/_search", "/fhir/Subscription/$status"} {
			var headers []string
			if strings.HasSuffix(path, "/_search") {
				headers = append(headers, "Content-Type: application/x-www-form-urlencoded")
			}
			requireOutcome(t, h.request("POST", path, tok, big, headers...), 413, "")
			// Without Content-Length (chunked), the limit holds while reading.
			requireOutcome(t, h.send("POST", path, tok, io.MultiReader(strings.NewReader(big)), headers...), 413, "")
		}
		requireOutcome(t, h.request("PUT", "/fhir/Patient/p1", tok, big), 413, "")
		requireOutcome(t, h.request("POST", "/admin/endpoints", tok, `{"url_prefix":"https://x.example/","note":"`+strings.Repeat("a", maxBody)+`"}`, "Content-Type: application/json"), 413, "")

		const depth = 100_000
		nested := map[string]string{
			"arrays":  strings.Repeat("[", depth) + strings.Repeat("]", depth),
			"objects": strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth),
		}
		for kind, deep := range nested {
			require.Less(t, len(deep)+100, maxBody, "the nesting fits the body limit: it is the depth that is refused")
			bodies := []struct{ method, path, body string }{
				{"POST", "/fhir/Patient", `{"resourceType":"Patient","extension":` + deep + `}`},
				{"PUT", "/fhir/Patient/deep", `{"resourceType":"Patient","id":"deep","x":` + deep + `}`},
				{"POST", "/fhir/Patient", deep},
				{"POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":` + deep + `}`},
				{"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","x":` + deep + `}}]}`},
				{"POST", "/fhir/Subscription", strings.Replace(subscriptionJSON(hookBase+"x"), `"reason":"security suite"`, `"reason":"security suite","x":`+deep, 1)},
				{"POST", "/fhir/Subscription", strings.Replace(subscriptionJSON(hookBase+"x"), `"type":"rest-hook"`, `"type":"rest-hook","header":`+deep, 1)},
				{"PUT", "/fhir/SubscriptionTopic/deep", `{"resourceType":"SubscriptionTopic","id":"deep","resourceTrigger":` + deep + `}`},
				{"POST", "/fhir/Subscription/$status", `{"resourceType":"Parameters","parameter":` + deep + `}`},
			}
			for _, b := range bodies {
				r := h.request(b.method, b.path, tok, b.body)
				require.Contains(t, []int{400, 422}, r.status, "%s %s %s: %s", kind, b.method, b.path, r.body)
				requireOutcome(t, r, r.status, "")
			}
			r := h.request("POST", "/admin/endpoints", tok, `{"url_prefix":`+deep+`}`, "Content-Type: application/json")
			requireOutcome(t, r, 400, "")
		}
		// The server is alive and nothing was stored.
		require.Equal(t, 200, h.request("GET", "/fhir/Patient", tok, "").status)
		require.Zero(t, h.count("Patient"))
		require.Empty(t, h.states())
		require.Nil(t, h.history("SubscriptionTopic", "deep"))
		require.Len(t, h.endpoints(), 2)
	})
}

// TestUnicodeAndTraversalIDs: ids with non-ASCII, full-width, RTL override,
// NUL, percent-encoded slashes or dot-segments are refused (400, or 404 when
// the path no longer names a route) on write, read and search, and nothing
// is stored under any spelling of them; they cannot reach another resource
// or route (such as the admin API).
func TestUnicodeAndTraversalIDs(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", tok, `{"resourceType":"Patient","id":"p1"}`).status)
		ids := []string{
			"\uff50\uff11",          // full-width p1
			"p\u202e1",              // RTL override
			"p1\u200b",              // zero-width space
			"p\u0131",               // dotless i
			"\u04401",               // Cyrillic р
			"p1\x00",                // NUL
			"p1%00",                 // literal percent
			"p1%2F..%2F..%2Fadmin",  // encoded slashes
			"..%2F..%2Fadmin",       // encoded traversal
			"..%2Fp1",               // encoded traversal to a sibling
			"%2e%2e%2Fp1",           // encoded dots and slash
			"p1;x",                  // parameters
			"p1 ",                   // trailing space
			strings.Repeat("a", 65), // too long
		}
		for _, id := range ids {
			escaped := url.PathEscape(id)
			if strings.Contains(id, "%") {
				escaped = id // sent as written: the server sees the decoded form
			}
			name := strings.NewReplacer("\x00", `\0`, "%", "pct").Replace(id)
			t.Run(name, func(t *testing.T) {
				body := `{"resourceType":"Patient","id":` + jsonString(id) + `}`
				for _, req := range []struct{ method, path, body string }{
					{"PUT", "/fhir/Patient/" + escaped, body},
					{"GET", "/fhir/Patient/" + escaped, ""},
					{"GET", "/fhir/Patient/" + escaped + "/_history", ""},
					{"GET", "/fhir/Patient/" + escaped + "/_history/1", ""},
					{"DELETE", "/fhir/Patient/" + escaped, ""},
					{"GET", "/fhir/Patient?_id=" + url.QueryEscape(id), ""},
					{"POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":` + jsonString("Patient/"+id) + `},"resource":` + body + `}]}`},
				} {
					r := h.request(req.method, req.path, tok, req.body)
					require.Contains(t, []int{400, 404, 405, 422}, r.status, "%s %s: %s", req.method, req.path, r.body)
					requireOutcome(t, r, r.status, "")
				}
				// A body id that differs from the URL's is refused too.
				requireOutcome(t, h.request("PUT", "/fhir/Patient/p9", tok, body), 400, "")
			})
		}
		// Creates ignore nothing: a POST with such an id is refused or stored under a server id.
		for _, id := range ids {
			r := h.request("POST", "/fhir/Patient", tok, `{"resourceType":"Patient","id":`+jsonString(id)+`}`)
			if r.status == 201 {
				require.NotEqual(t, id, r.json(t)["id"])
				require.Equal(t, 204, h.request("DELETE", "/fhir/Patient/"+r.json(t)["id"].(string), tok, "").status)
			} else {
				requireOutcome(t, r, 400, "")
			}
		}
		require.Equal(t, 1, h.count("Patient"), "only p1")
		require.Len(t, h.history("Patient", "p1"), 1, "p1 untouched")

		// "." and ".." match the R4 id pattern ([A-Za-z0-9-.]{1,64}), so
		// Herald may accept them, but only literally: never resolved as
		// dot-segments to another resource or route.
		for _, c := range []struct{ path, id string }{
			{"/fhir/Patient/..", ".."}, {"/fhir/Patient/.", "."}, {"/fhir/Patient/%2e%2e", ".."}, {"/fhir/Patient/%2E", "."},
		} {
			r := h.request("PUT", c.path, tok, `{"resourceType":"Patient","id":`+jsonString(c.id)+`,"active":false}`)
			switch r.status {
			case 200, 201:
				require.Equal(t, c.id, r.json(t)["id"], c.path)
				require.Equal(t, h.base+"/Patient/"+c.id+"/_history/"+r.header.Get("ETag")[3:len(r.header.Get("ETag"))-1], r.header.Get("Location"))
			default:
				requireOutcome(t, r, 400, "")
			}
		}
		require.Len(t, h.history("Patient", "p1"), 1, "p1 untouched by dot ids")
		require.Zero(t, h.count("Observation"))
		// Encoded traversal never reaches the admin API.
		r := h.request("GET", "/fhir/..%2F..%2Fadmin/endpoints", tok, "")
		require.NotEqual(t, 200, r.status)
		require.NotContains(t, string(r.body), hookBase)
		// Client ids in the admin API are held to their character set.
		admin := h.token("herald.admin")
		for _, id := range []string{"\uff43", "c\u202e", "c%00", "c%0d%0aX-Injected:%201", "c%20d"} { // ("/" and "." are allowed: client ids are keys, not paths)
			r := h.request("PUT", "/admin/clients/"+id, admin, `{"status":"active","max_payload":"full-resource"}`, "Content-Type: application/json")
			require.Contains(t, []int{400, 404}, r.status, "%s: %s", id, r.body)
			requireOutcome(t, r, r.status, "")
			require.Empty(t, r.header.Get("X-Injected"))
		}
		clients, err := h.st.Clients(t.Context())
		require.NoError(t, err)
		require.Empty(t, clients)
	})
}

func jsonString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
