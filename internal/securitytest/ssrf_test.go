package securitytest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNumericHostSpellingsRefusedAtTheBoundary: hosts that some resolvers
// read as IPv4 addresses (decimal, octal, hex, short forms) are refused by
// allow-list parsing, both as admin allow-list prefixes and as Subscription
// endpoints, with the reason; so are zone ids, user information, fragments,
// backslashes and schemes other than http(s). Nothing is stored.
func TestNumericHostSpellingsRefusedAtTheBoundary(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		admin := h.token("herald.admin")
		sub := h.token(subScope)
		// The receiver's entry (http://127.0.0.1:port/) is what the numeric
		// forms would reach.
		before := h.endpoints()
		for _, c := range []struct{ host, reason string }{
			{"2130706433", "dotted-decimal"},
			{"0177.0.0.1", "dotted-decimal"},
			{"0x7f.0.0.1", "dotted-decimal"},
			{"0x7f000001", "dotted-decimal"},
			{"017700000001", "dotted-decimal"},
			{"127.1", "dotted-decimal"},
			{"127.0.1", "dotted-decimal"},
			{"0", "dotted-decimal"},
			{"169.254.43518", "dotted-decimal"},
			{"０x7f.0.0.1", "dotted-decimal"}, // full-width 0 maps to ASCII first
			{"127.0.0.1.", "end with a dot"},
			{"[::1%25lo]", "zone"},
			{"[fe80::1%25eth0]", "zone"},
			{"user:pw@127.0.0.1", "user information"},
			{"hooks.example.org@127.0.0.1", "user information"},
		} {
			for _, prefix := range []string{"http://" + c.host + ":" + h.recv.port() + "/", "http://" + c.host + "/"} {
				body, _ := json.Marshal(map[string]any{"url_prefix": prefix, "allow_private_network": true})
				r := h.request("POST", "/admin/endpoints", admin, string(body), "Content-Type: application/json")
				requireOutcome(t, r, 422, c.reason)

				r = h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(prefix+"hook"))
				requireOutcome(t, r, 422, c.reason)
				require.NotContains(t, string(r.body), "pw@", "user information is never echoed")
			}
		}
		for _, raw := range []string{
			"file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/", "//127.0.0.1/", "127.0.0.1/hook",
			"http://127.0.0.1\\@hooks.example.org/", "http://hooks.example.org#@127.0.0.1/", "http://127.0.0.1:0/",
			"http://127.0.0.1:65536/", "http://[::1/", "http://[127.0.0.1]/", "http://127.0.0.1:80:80/", "http://%31%32%37.0.0.1/",
			"http://127.0.0.1 /", "http://127.0.0.1/\x00", "http://hooks.example.org\r\nHost: 127.0.0.1/",
		} {
			body, _ := json.Marshal(map[string]any{"url_prefix": raw, "allow_private_network": true})
			requireOutcome(t, h.request("POST", "/admin/endpoints", admin, string(body), "Content-Type: application/json"), 422, "url_prefix")
			requireOutcome(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(raw)), 422, "endpoint")
		}
		require.Equal(t, before, h.endpoints())
		require.Empty(t, h.states())
		require.Zero(t, h.count("Subscription"))
	})
}

// TestLookalikeAndEncodedEndpointsRefused: endpoint hosts and paths that
// look like an allow-listed prefix but are not it are refused at create
// (422), nothing stored: Cyrillic homoglyphs, full-width digits of a
// loopback address, dot-segments and encoded slashes escaping the prefix.
// Full-width Latin letters are the same host after IDNA mapping and are
// stored in their ASCII form, which is what is dialled.
func TestLookalikeAndEncodedEndpointsRefused(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sub := h.token(subScope)
		for _, c := range []struct{ name, endpoint, mention string }{
			{"Cyrillic o in the host", "https://h\u043e\u043eks.example.org/fhir/x", "allow-list"},
			{"Cyrillic a in the host", "https://hooks.ex\u0430mple.org/fhir/x", "allow-list"},
			{"Greek omicron in the host", "https://ho\u03bfks.example.org/fhir/x", "allow-list"},
			{"punycode of the Cyrillic look-alike", "https://xn--hks-qdda.example.org/fhir/x", "allow-list"},
			{"full-width digits of loopback", "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/fhir/x", "allow-list"},
			{"RTL override in the host", "https://hooks.example.org\u202e.evil/fhir/x", "endpoint"},
			{"zero-width joiner in the host", "https://hoo\u200dks.example.org/fhir/x", "endpoint"},
			{"trailing dot", "https://hooks.example.org./fhir/x", "dot"},
			{"sibling path", "https://hooks.example.org/fhirx/x", "allow-list"},
			{"dot-segments out of the prefix", "https://hooks.example.org/fhir/../admin/x", "allow-list"},
			{"encoded dot-segments out of the prefix", "https://hooks.example.org/fhir/%2e%2e/admin/x", "allow-list"},
			{"encoded slash", "https://hooks.example.org/fhir/..%2F..%2Fadmin", "encoded slash"},
			{"encoded slash in the prefix segment", "https://hooks.example.org/fhir%2Fx", "encoded slash"},
			{"double-encoded dots", "https://hooks.example.org/fhir/%252e%252e/x", "double-encoded"},
			{"dot-segment with parameters", "https://hooks.example.org/fhir/..;/admin", "parameters"},
			{"empty segments with dot-segments", "https://hooks.example.org/fhir//../x", "empty segments"},
			{"percent-encoded host", "https://hooks.example.%6Frg/fhir/x", "percent"},
			{"other port", "https://hooks.example.org:8443/fhir/x", "allow-list"},
			{"http downgrade", "http://hooks.example.org/fhir/x", "allow-list"},
		} {
			t.Run(c.name, func(t *testing.T) {
				requireOutcome(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(c.endpoint)), 422, c.mention)
			})
		}
		require.Empty(t, h.states())
		require.Zero(t, h.count("Subscription"))

		// Full-width Latin letters are hooks.example.org itself; the state
		// keeps (and delivery dials) the ASCII form.
		id := created(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON("https://\uff48\uff4f\uff4f\uff4b\uff53.example.org/fhir/x")))
		require.Equal(t, "https://hooks.example.org/fhir/x", h.state(id).Endpoint)
	})
}

// TestPrivateTargetsBlockedAtDial: allow-list parsing accepts literal
// private addresses and names (an admin may list them), so the dialer is
// the layer that refuses them: with entries lacking allow_private_network,
// Subscriptions to loopback, RFC 1918, link-local (cloud metadata), CGNAT,
// unspecified, IPv6 loopback, link-local and ULA, IPv4-mapped IPv6, names
// resolving to loopback and full-width digits are accepted at create but
// every delivery attempt fails with "blocked address", the Subscriptions
// end in error, and the receivers (listening on several of those very
// addresses) get nothing.
func TestPrivateTargetsBlockedAtDial(t *testing.T) {
	t.Parallel()
	h := onPostgres(t)
	victim := newReceiver(t) // 127.0.0.1: what loopback and 0.0.0.0 reach
	port := victim.port()
	targets := []string{
		"http://127.0.0.1:" + port,
		"http://127.0.0.2:" + port,
		"http://0.0.0.0:" + port,
		"http://[::ffff:127.0.0.1]:" + port,
		"http://[::ffff:7f00:1]:" + port,
		"http://localhost:" + port,
		"http://rebind.test:" + port,
		"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:" + port, // full-width digits: 127.0.0.1
		"http://10.0.0.1",
		"http://172.16.0.1",
		"http://172.31.255.254",
		"http://192.168.1.1",
		"http://169.254.169.254",
		"http://100.64.0.1",
		"http://[fe80::1]",
		"http://[fc00::1]",
		"http://[::]:" + port,
	}
	var victim6 *receiver
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		victim6 = newReceiverOn(t, ln)
		targets = append(targets, "http://[::1]:"+victim6.port())
	} else {
		targets = append(targets, "http://[::1]")
	}

	sub := h.token(subScope)
	ids := map[string]string{}
	for i, target := range targets {
		// Each its own path: some targets are the same origin once normalised.
		path := "/t" + strconv.Itoa(i) + "/"
		h.allowEndpoint(target+path, false)
		ids[target] = created(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(target+path+"hook")))
	}
	for target, id := range ids {
		// active would mean a handshake reached the target.
		st := h.waitStatus(id, "error", "active")
		require.Contains(t, st.Error, "blocked address", target)
		r := h.request("GET", "/fhir/Subscription/"+id+"/$status", sub, "")
		require.Contains(t, string(r.body), "blocked address", target)
	}
	require.Empty(t, victim.all(), "nothing reached the loopback receiver")
	if victim6 != nil {
		require.Empty(t, victim6.all(), "nothing reached the IPv6 loopback receiver")
	}
	require.Empty(t, h.recv.all())
}

// TestRedirectsNotFollowed: an allow-listed subscriber that answers with a
// redirect to another (private, not allow-listed) address gets the attempt
// counted as a failure ("redirect not followed"); the redirect target never
// receives anything, whatever the redirect status.
func TestRedirectsNotFollowed(t *testing.T) {
	t.Parallel()
	h := onPostgres(t)
	internal := newReceiver(t) // on loopback, not allow-listed
	statuses := []int{301, 302, 303, 307, 308}
	mux := http.NewServeMux()
	for _, code := range statuses {
		mux.HandleFunc("/redirect-"+strconv.Itoa(code)+"/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, internal.srv.URL+"/stolen", code)
		})
	}
	redirector := httptest.NewServer(mux)
	t.Cleanup(redirector.Close)
	h.allowEndpoint(redirector.URL+"/", true) // on loopback: the entry must allow private networks

	sub := h.token(subScope)
	var ids []string
	for _, code := range statuses {
		ids = append(ids, created(t, h.request("POST", "/fhir/Subscription", sub, subscriptionJSON(redirector.URL+"/redirect-"+strconv.Itoa(code)+"/hook"))))
	}
	for _, id := range ids {
		st := h.waitStatus(id, "error", "active")
		require.Contains(t, st.Error, "redirect not followed")
	}
	require.Empty(t, internal.all(), "the redirect target was never contacted")
}
