package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhirtest"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/topics"
)

const (
	encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	hookBase       = "https://hooks.example.org/fhir/"
	subSecret      = "0123456789abcdef0123456789abcdef-signing"
	headerSecret   = "Bearer hdr-s3cr3t-value"
)

// subHarness is a server with the Subscription and topic rules wired as in
// production, an allow-listed endpoint prefix and the keyring in reach.
type subHarness struct {
	*harness
	keys *secrets.Keyring
}

func setupSubscriptions(t *testing.T, st store.Store, policy ...func(*subscription.Policy)) *subHarness {
	t.Helper()
	return setupSubscriptionsWith(t, st, nil, policy...)
}

// setupSubscriptionsWith is setupSubscriptions with more server options.
func setupSubscriptionsWith(t *testing.T, st store.Store, opts []option, policy ...func(*subscription.Policy)) *subHarness {
	t.Helper()
	ctx := context.Background()
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	keys, err := secrets.NewKeyring(secrets.GenerateKey(""))
	require.NoError(t, err)
	require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "e1", URLPrefix: hookBase, CreatedAt: time.Now()}))
	subRules := &subscription.Rules{Topics: lib, Keys: keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: 720 * time.Hour, DefaultMaxPayload: "id-only"}}
	for _, fn := range policy {
		fn(&subRules.Policy)
	}
	rules := typerules.Rules(subRules, lib)
	ops := &subscription.Operations{Store: st, Topics: lib, Rules: subRules}
	pub := &publish.Publisher{Topics: lib}
	h := setup(t, st, append([]option{func(o *api.Options, rc *resources.Config) {
		o.Topics = lib
		o.Operations = ops
		rc.Rules = rules
		rc.OnWrite = []resources.WriteHook{pub.Hook}
		rc.Virtual = map[string]resources.Virtual{"Basic": &topic.BasicView{Library: lib}}
	}}, opts...)...)
	ops.BaseURL = h.base
	pub.BaseURL = h.base // known once the server listens; before any request
	return &subHarness{harness: h, keys: keys}
}

func eachStoreSubs(t *testing.T, fn func(t *testing.T, h *subHarness)) {
	t.Helper()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, setupSubscriptions(t, s.open(t)))
		})
	}
}

// newSubscription is a backport Subscription as a new user writes it.
func newSubscription(mods ...func(m map[string]any)) string {
	m := map[string]any{
		"resourceType": "Subscription",
		"meta":         map[string]any{"profile": []string{"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"}},
		"status":       "requested",
		"reason":       "Tell the care app when encounters start",
		"criteria":     encounterStart,
		"_criteria": map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}}},
		"channel": map[string]any{
			"extension": []any{
				map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": 3600},
				map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout", "valueUnsignedInt": 30},
			},
			"type":     "rest-hook",
			"endpoint": hookBase + "hook-1",
			"payload":  "application/fhir+json",
			"_payload": map[string]any{"extension": []any{map[string]any{
				"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "id-only"}}},
		},
	}
	for _, mod := range mods {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func channel(m map[string]any) map[string]any { return m["channel"].(map[string]any) }

func withSecrets(m map[string]any) {
	ch := channel(m)
	ch["extension"] = append(ch["extension"].([]any), map[string]any{"url": "https://herald.dev/fhir/StructureDefinition/signing-secret", "valueString": subSecret})
	ch["header"] = []string{"Authorization: " + headerSecret, "X-Tenant: t1"}
}

func withContent(code string) func(map[string]any) {
	return func(m map[string]any) {
		channel(m)["_payload"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueCode"] = code
	}
}

func withFilter(f string) func(map[string]any) {
	return func(m map[string]any) {
		m["_criteria"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueString"] = f
	}
}

const subScopes = "system/Subscription.cruds system/Encounter.rs"

func TestSubscriptionCreateAsANewUser(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes)
		r := h.request("POST", "/fhir/Subscription", tok, newSubscription(withSecrets))
		require.Equal(t, 201, r.status, string(r.body))
		fhirtest.RequireValidR4(t, r.body)
		m := r.json(t)
		id := m["id"].(string)
		require.Equal(t, h.base+"/Subscription/"+id+"/_history/1", r.header.Get("Location"))
		require.Equal(t, "requested", m["status"])
		ch := m["channel"].(map[string]any)
		require.Equal(t, "application/fhir+json", ch["payload"])
		require.Contains(t, string(r.body), `"valueCode":"id-only"`, "channel._payload echoed")
		require.Contains(t, string(r.body), "backport-heartbeat-period", "channel extensions echoed")
		require.Equal(t, []any{"Authorization: " + headerSecret, "X-Tenant: t1"}, ch["header"], "the create response echoes headers as sent")
		require.NotContains(t, string(r.body), subSecret, "the signing secret is never returned")
		require.NotContains(t, string(r.body), "signing-secret")
		require.NotEmpty(t, m["end"], "the lease is set")

		// Every later read shows the header names only, and never the secret.
		for _, path := range []string{"/fhir/Subscription/" + id, "/fhir/Subscription/" + id + "/_history/1",
			"/fhir/Subscription/" + id + "/_history", "/fhir/Subscription?_id=" + id, "/fhir/Subscription?status=requested"} {
			got := h.request("GET", path, tok, "")
			require.Equal(t, 200, got.status, path)
			require.NotContains(t, string(got.body), "hdr-s3cr3t", path)
			require.NotContains(t, string(got.body), subSecret, path)
			require.Contains(t, string(got.body), "Authorization: [redacted]", path)
		}

		// Secrets are sealed in the state row.
		st, err := h.store.(store.View).Subscription(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, "test-client", st.Owner)
		require.NotContains(t, st.SealedSecret+st.SealedHeaders, "s3cr3t")
		require.NotContains(t, st.SealedSecret, subSecret)
		require.Equal(t, hookBase+"hook-1", st.Endpoint)
		require.Equal(t, "Patient/p1", st.PatientKey, "pinned by its Encounter?patient=Patient/p1 filter")

		// Search by url (the endpoint) and topic.
		for _, q := range []string{"url=" + hookBase + "hook-1", "topic=" + encounterStart, "status=requested,active"} {
			require.Equal(t, []string{id}, entryIDs(t, h.request("GET", "/fhir/Subscription?"+q, tok, "")), q)
		}
		require.Empty(t, entryIDs(t, h.request("GET", "/fhir/Subscription?status=active", tok, "")))
	})
}

func TestSubscriptionUpdateKeepsRedactedHeaders(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes)
		r := h.request("POST", "/fhir/Subscription", tok, newSubscription(withSecrets))
		require.Equal(t, 201, r.status, string(r.body))
		id := r.json(t)["id"].(string)
		read := h.request("GET", "/fhir/Subscription/"+id, tok, "")
		// Send back what was read (redacted headers, no secret), with a new reason.
		body := strings.Replace(string(read.body), `"reason":"Tell the care app when encounters start"`, `"reason":"changed"`, 1)
		r = h.request("PUT", "/fhir/Subscription/"+id, tok, body)
		require.Equal(t, 200, r.status, string(r.body))

		st, err := h.store.(store.View).Subscription(context.Background(), id)
		require.NoError(t, err)
		headers, err := h.keys.Open(st.SealedHeaders, secrets.AssociatedData("Subscription", id, "headers"))
		require.NoError(t, err)
		require.JSONEq(t, `["Authorization: `+headerSecret+`","X-Tenant: t1"]`, string(headers), "redacted values keep the stored ones")
		secret, err := h.keys.Open(st.SealedSecret, secrets.AssociatedData("Subscription", id, "signing-secret"))
		require.NoError(t, err)
		require.Equal(t, subSecret, string(secret), "an update without the write-only secret keeps it")
	})
}

func TestSubscriptionRejections(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		tok := h.token(subScopes + " system/Observation.rs")
		cases := []struct {
			name    string
			body    string
			status  int
			mention string
		}{
			{"unknown topic", newSubscription(func(m map[string]any) { m["criteria"] = "https://herald.dev/fhir/SubscriptionTopic/nope" }), 422, "not supported"},
			{"filter not offered", newSubscription(withFilter("Encounter?status=in-progress")), 422, "canFilterBy"},
			{"filter on other type", newSubscription(withFilter("Observation?patient=Patient/p1")), 422, "triggers on"},
			{"filter modifier not allowed", newSubscription(withFilter("Encounter?patient:missing=true")), 422, "modifier"},
			{"narrative filter form", newSubscription(withFilter("patient=Patient/p1&Encounter.class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB")), 201, ""},
			{"malformed filter value", newSubscription(withFilter("patient=Patient/p1&class=a|b|c")), 422, "class"},
			{"endpoint not allow-listed", newSubscription(func(m map[string]any) { channel(m)["endpoint"] = "https://evil.example.org/fhir/x" }), 422, "allow-list"},
			{"prefix lookalike", newSubscription(func(m map[string]any) { channel(m)["endpoint"] = "https://hooks.example.org/fhirx/x" }), 422, "allow-list"},
			{"http endpoint", newSubscription(func(m map[string]any) { channel(m)["endpoint"] = "http://hooks.example.org/fhir/x" }), 422, "allow-list"},
			{"userinfo endpoint", newSubscription(func(m map[string]any) { channel(m)["endpoint"] = "https://u:p@hooks.example.org/fhir/x" }), 422, "user"},
			{"look-alike filter extension", strings.Replace(newSubscription(), "uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "5.0/StructureDefinition/backport-filter-criteria", 1), 422, "_criteria"},
			{"unknown content code", newSubscription(withContent("everything")), 422, "content"},
			{"unknown MIME", newSubscription(func(m map[string]any) { channel(m)["payload"] = "text/plain" }), 422, "payload"},
			{"redacted header on create", newSubscription(func(m map[string]any) { channel(m)["header"] = []string{"X-A: [redacted]"} }), 422, "update"},
		}
		for _, c := range cases {
			r := h.request("POST", "/fhir/Subscription", tok, c.body)
			t.Run(c.name, func(t *testing.T) {
				if c.status == 201 {
					require.Equal(t, 201, r.status, string(r.body))
					return
				}
				requireOutcome(t, r, c.status, c.mention)
			})
		}
		require.Equal(t, 1, h.count("Subscription"), "only the valid one was stored")
	})
}

func TestSubscriptionAuthorization(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		ctx := context.Background()
		patientTok := func(scopes string) string { return h.token(scopes, forPatient("p1")) }
		cases := []struct {
			name   string
			tok    string
			body   string
			status int
		}{
			{"no Subscription scope", h.token("system/Encounter.rs"), newSubscription(), 403},
			{"no read on the topic's type", h.token("system/Subscription.c system/Observation.rs"), newSubscription(), 403},
			{"system read", h.token(subScopes), newSubscription(), 201},
			{"patient token pinned to itself", patientTok("patient/Subscription.c patient/Encounter.rs"), newSubscription(), 201},
			{"patient token pinned to another", patientTok("patient/Subscription.c patient/Encounter.rs"), newSubscription(withFilter("Encounter?patient=Patient/p2")), 403},
			{"patient token without pin", patientTok("patient/Subscription.c patient/Encounter.rs"), newSubscription(withFilter("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB")), 403},
			{"granular scope, filter as narrow", h.token("system/Subscription.c system/Encounter.rs?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"),
				newSubscription(withFilter("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB")), 201},
			{"granular scope, filter broader", h.token("system/Subscription.c system/Encounter.rs?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"), newSubscription(), 403},
			{"content above the default ceiling", h.token(subScopes + " system/Patient.rs system/Practitioner.rs system/Location.rs system/Organization.rs"), newSubscription(withContent("full-resource")), 403},
		}
		for _, c := range cases {
			r := h.request("POST", "/fhir/Subscription", c.tok, c.body)
			t.Run(c.name, func(t *testing.T) {
				if c.status == 201 {
					require.Equal(t, 201, r.status, string(r.body))
				} else {
					requireOutcome(t, r, c.status, "")
				}
			})
		}

		// A registered client may go up to full-resource, given read on the included types.
		_, err := h.store.PutClient(ctx, store.Client{ClientID: "full-client", Status: "active", MaxPayload: "full-resource"})
		require.NoError(t, err)
		full := h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "full-client" })
		requireOutcome(t, h.request("POST", "/fhir/Subscription", full, newSubscription(withContent("full-resource"))), 403, "no read permission")
		fullAll := h.token(subScopes+" system/Patient.rs system/Practitioner.rs system/Location.rs system/Organization.rs system/Group.rs system/Device.rs system/RelatedPerson.rs system/PractitionerRole.rs",
			func(c *auth.MintClaims) { c.ClientID = "full-client" })
		r := h.request("POST", "/fhir/Subscription", fullAll, newSubscription(withContent("full-resource")))
		require.Equal(t, 201, r.status, string(r.body))

		// A ceiling narrower than the token wins.
		_, err = h.store.PutClient(ctx, store.Client{ClientID: "ceiled", Status: "active", MaxPayload: "id-only", ScopeCeiling: "system/Subscription.c system/Observation.rs"})
		require.NoError(t, err)
		requireOutcome(t, h.request("POST", "/fhir/Subscription", h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "ceiled" }), newSubscription()), 403, "Encounter")

		// A suspended client can create nothing.
		_, err = h.store.PutClient(ctx, store.Client{ClientID: "gone", Status: "suspended", MaxPayload: "id-only"})
		require.NoError(t, err)
		requireOutcome(t, h.request("POST", "/fhir/Subscription", h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "gone" }), newSubscription()), 403, "suspended")
	})
}

func TestSubscriptionOwnerIsolation(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		alice, bob, id, bobID := twoOwners(t, h)
		admin := h.token("herald.admin system/Subscription.cruds")

		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id, bob, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/_history", bob, ""), 404, "")
		requireOutcome(t, h.request("GET", "/fhir/Subscription/"+id+"/_history/1", bob, ""), 404, "")
		requireOutcome(t, h.request("PUT", "/fhir/Subscription/"+id, bob, strings.Replace(newSubscription(), `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+id+`"`, 1)), 404, "")
		requireOutcome(t, h.request("DELETE", "/fhir/Subscription/"+id, bob, ""), 404, "")
		require.Equal(t, []string{bobID}, entryIDs(t, h.request("GET", "/fhir/Subscription", bob, "")))
		require.Empty(t, entryIDs(t, h.request("GET", "/fhir/Subscription?_id="+id, bob, "")))

		require.Equal(t, 200, h.request("GET", "/fhir/Subscription/"+id, admin, "").status)
		require.Len(t, entryIDs(t, h.request("GET", "/fhir/Subscription", admin, "")), 2)
		require.Equal(t, 204, h.request("DELETE", "/fhir/Subscription/"+id, alice, "").status)
	})
}

func TestSubscriptionLease(t *testing.T) {
	t.Parallel()
	h := setupSubscriptions(t, stores[0].open(t))
	// A user/ token's subscription ends when the token does.
	userTok := h.token("user/Subscription.c user/Encounter.rs", func(c *auth.MintClaims) { c.TTL = time.Hour })
	r := h.request("POST", "/fhir/Subscription", userTok, newSubscription())
	require.Equal(t, 201, r.status, string(r.body))
	end, err := time.Parse(time.RFC3339, r.json(t)["end"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), end, time.Minute)

	// A system/ token's is capped by the maximum lease, even when asking for more.
	r = h.request("POST", "/fhir/Subscription", h.token(subScopes), newSubscription(func(m map[string]any) { m["end"] = "2099-01-01T00:00:00Z" }))
	require.Equal(t, 201, r.status, string(r.body))
	end, err = time.Parse(time.RFC3339, r.json(t)["end"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), end, time.Minute)

	// An earlier end is kept.
	want := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	r = h.request("POST", "/fhir/Subscription", h.token(subScopes), newSubscription(func(m map[string]any) { m["end"] = want.Format(time.RFC3339) }))
	require.Equal(t, 201, r.status)
	end, _ = time.Parse(time.RFC3339, r.json(t)["end"].(string))
	require.True(t, want.Equal(end), "%s != %s", want, end)
}

func TestTopicLibraryThroughREST(t *testing.T) {
	t.Parallel()
	eachStoreSubs(t, func(t *testing.T, h *subHarness) {
		reader := h.token("system/Encounter.rs") // no scope on SubscriptionTopic: topics are readable by any client
		r := h.request("GET", "/fhir/SubscriptionTopic", reader, "")
		require.Equal(t, 200, r.status, string(r.body))
		require.GreaterOrEqual(t, len(entryIDs(t, r)), 7)
		require.Equal(t, []string{"encounter-end"}, entryIDs(t, h.request("GET", "/fhir/SubscriptionTopic?url=https://herald.dev/fhir/SubscriptionTopic/encounter-end", reader, "")))
		require.Equal(t, 200, h.request("GET", "/fhir/SubscriptionTopic/encounter-start", reader, "").status)

		custom := `{"resourceType":"SubscriptionTopic","id":"flu-shot","url":"https://example.org/topics/flu-shot","status":"active",
		 "resourceTrigger":[{"resource":"Immunization","supportedInteraction":["create"],"queryCriteria":{"current":"status=completed"}}],
		 "canFilterBy":[{"resource":"Immunization","filterParameter":"patient"}]}`
		requireOutcome(t, h.request("PUT", "/fhir/SubscriptionTopic/flu-shot", h.token("system/*.cruds"), custom), 403, "admin")
		bad := strings.Replace(custom, `"queryCriteria":{"current":"status=completed"}`, `"fhirPathCriteria":"%current.status = 'completed'"`, 1)
		admin := h.token("herald.admin")
		requireOutcome(t, h.request("PUT", "/fhir/SubscriptionTopic/flu-shot", admin, bad), 422, "fhirPathCriteria")
		r = h.request("PUT", "/fhir/SubscriptionTopic/flu-shot", admin, custom)
		require.Equal(t, 201, r.status, string(r.body))

		// The new topic is advertised and subscribable at once.
		md := h.request("GET", "/fhir/metadata", "", "")
		require.Contains(t, string(md.body), `"valueCanonical":"https://example.org/topics/flu-shot"`)
		sub := newSubscription(func(m map[string]any) { m["criteria"] = "https://example.org/topics/flu-shot" }, withFilter("Immunization?patient=Patient/p1"))
		r = h.request("POST", "/fhir/Subscription", h.token("system/Subscription.c system/Immunization.rs"), sub)
		require.Equal(t, 201, r.status, string(r.body))

		// Topics are discoverable the 1.2.0-ballot way, as Basic.
		basic := h.request("GET", "/fhir/Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic", reader, "")
		require.Equal(t, 200, basic.status, string(basic.body))
		fhirtest.RequireValidR4(t, basic.body)
		require.Contains(t, entryIDs(t, basic), "subscriptiontopic-flu-shot")
		require.Len(t, entryIDs(t, basic), 8)
		require.Equal(t, 200, h.request("GET", "/fhir/Basic/subscriptiontopic-flu-shot", reader, "").status)

		// Deleting it withdraws it.
		require.Equal(t, 204, h.request("DELETE", "/fhir/SubscriptionTopic/flu-shot", admin, "").status)
		requireOutcome(t, h.request("POST", "/fhir/Subscription", h.token("system/Subscription.c system/Immunization.rs"), sub), 422, "not supported")
	})
}

func TestCapabilityStatementAdvertisesSubscriptions(t *testing.T) {
	t.Parallel()
	h := setupSubscriptions(t, stores[0].open(t))
	r := h.request("GET", "/fhir/metadata", "", "")
	require.Equal(t, 200, r.status)
	fhirtest.RequireValidR4(t, r.body)
	var cs struct {
		Instantiates []string `json:"instantiates"`
		Rest         []struct {
			Resource []struct {
				Type             string   `json:"type"`
				SupportedProfile []string `json:"supportedProfile"`
				Extension        []struct {
					URL            string `json:"url"`
					ValueCanonical string `json:"valueCanonical"`
				} `json:"extension"`
				SearchParam []struct{ Name string } `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	require.NoError(t, json.Unmarshal(r.body, &cs))
	require.Contains(t, cs.Instantiates, "http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4")
	found := false
	for _, res := range cs.Rest[0].Resource {
		if res.Type != "Subscription" {
			continue
		}
		found = true
		require.Contains(t, res.SupportedProfile, "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription")
		var canonicals, params []string
		for _, e := range res.Extension {
			require.Equal(t, "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical", e.URL)
			canonicals = append(canonicals, e.ValueCanonical)
		}
		for _, p := range res.SearchParam {
			params = append(params, p.Name)
		}
		require.Contains(t, canonicals, encounterStart+"|1.0.0")
		require.Contains(t, canonicals, encounterStart, "the bare canonical too")
		require.Len(t, canonicals, 14, "seven topics, each versioned and bare")
		require.Subset(t, params, []string{"status", "url", "topic", "_id"})
	}
	require.True(t, found)
}

func storeClient(id, maxPayload string) store.Client {
	return store.Client{ClientID: id, Status: "active", MaxPayload: maxPayload}
}

// twoOwners creates one Subscription for client alice and one for bob and
// returns their tokens and the Subscriptions' ids.
func twoOwners(t *testing.T, h *subHarness) (alice, bob, aliceSub, bobSub string) {
	t.Helper()
	alice = h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "alice" })
	bob = h.token(subScopes, func(c *auth.MintClaims) { c.ClientID = "bob" })
	for _, owner := range []struct {
		tok string
		id  *string
	}{{alice, &aliceSub}, {bob, &bobSub}} {
		r := h.request("POST", "/fhir/Subscription", owner.tok, newSubscription())
		require.Equal(t, 201, r.status, string(r.body))
		*owner.id = r.json(t)["id"].(string)
	}
	return alice, bob, aliceSub, bobSub
}
