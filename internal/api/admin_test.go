package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
)

const jsonType = "application/json; charset=utf-8"

// adminRequest is request with an application/json body; headers override.
func (h *harness) adminRequest(method, path, tok, body string, headers ...string) response {
	h.t.Helper()
	if body != "" {
		headers = append([]string{"Content-Type: application/json"}, headers...)
	}
	return h.request(method, path, tok, body, headers...)
}

func (h *harness) adminToken() string { return h.token(auth.AdminScope) }

// requireJSON asserts a JSON (not FHIR) success response and decodes it into v.
func requireJSON(t *testing.T, r response, status int, v any) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, jsonType, r.header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

// requireAdminError asserts an OperationOutcome error (the admin API's error
// language too) whose diagnostics contain mention.
func requireAdminError(t *testing.T, r response, status int, mention string) {
	t.Helper()
	requireOutcome(t, r, status, "")
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	require.NoError(t, json.Unmarshal(r.body, &oo))
	require.Len(t, oo.Issue, 1, string(r.body))
	require.Contains(t, oo.Issue[0].Diagnostics, mention)
}

type endpointBody struct {
	ID                  string    `json:"id"`
	URLPrefix           string    `json:"url_prefix"`
	AllowPrivateNetwork bool      `json:"allow_private_network"`
	Note                string    `json:"note"`
	CreatedAt           time.Time `json:"created_at"`
}

type clientBody struct {
	ClientID     string    `json:"client_id"`
	Status       string    `json:"status"`
	MaxPayload   string    `json:"max_payload"`
	ScopeCeiling string    `json:"scope_ceiling"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// adminRoutes is one valid request per admin route.
var adminRoutes = []struct{ method, path, body string }{
	{"GET", "/admin/endpoints", ""},
	{"POST", "/admin/endpoints", `{"url_prefix": "https://hooks.example.com/"}`},
	{"DELETE", "/admin/endpoints/" + uuid.NewString(), ""},
	{"GET", "/admin/clients", ""},
	{"GET", "/admin/clients/some-client", ""},
	{"PUT", "/admin/clients/some-client", `{"status": "active", "max_payload": "id-only"}`},
}

// TestAdminRequiresAdminScope: every admin route answers 401 with a Bearer
// challenge without a valid token and 403 to a valid token without
// herald.admin (even one allowed every FHIR interaction), and changes nothing.
func TestAdminRequiresAdminScope(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		expired := h.token(auth.AdminScope, func(c *auth.MintClaims) { c.Now = time.Now().Add(-2 * time.Hour) })
		for _, r := range adminRoutes {
			t.Run(r.method+" "+r.path, func(t *testing.T) {
				res := h.adminRequest(r.method, r.path, "", r.body)
				requireAdminError(t, res, http.StatusUnauthorized, "bearer token is required")
				require.Contains(t, res.header.Get("WWW-Authenticate"), "Bearer")

				res = h.adminRequest(r.method, r.path, expired, r.body)
				requireAdminError(t, res, http.StatusUnauthorized, "invalid bearer token")
				require.Contains(t, res.header.Get("WWW-Authenticate"), `error="invalid_token"`)

				// 401 comes before 415: an anonymous caller learns nothing.
				res = h.adminRequest(r.method, r.path, "", r.body, "Content-Type: text/plain")
				requireAdminError(t, res, http.StatusUnauthorized, "")

				for _, scope := range []string{allScopes, "system/*.* user/*.cruds", "herald.admins"} {
					res = h.adminRequest(r.method, r.path, h.token(scope), r.body)
					requireAdminError(t, res, http.StatusForbidden, auth.AdminScope)
					require.Contains(t, res.header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
				}
			})
		}
		es, err := h.store.Endpoints(t.Context())
		require.NoError(t, err)
		require.Empty(t, es)
		cs, err := h.store.Clients(t.Context())
		require.NoError(t, err)
		require.Empty(t, cs)

		// herald.admin beside other scopes is still admin.
		res := h.adminRequest("GET", "/admin/clients", h.token(allScopes+" "+auth.AdminScope), "")
		require.Equal(t, http.StatusOK, res.status, string(res.body))
	})
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.adminToken()

		var list []endpointBody
		res := h.adminRequest("GET", "/admin/endpoints", tok, "")
		requireJSON(t, res, http.StatusOK, &list)
		require.Equal(t, "[]", string(res.body), "an empty list is [], not null")

		// The prefix is validated, normalised and stored normalised.
		before := time.Now().Add(-time.Second)
		res = h.adminRequest("POST", "/admin/endpoints", tok,
			`{"url_prefix": "HTTPS://Hooks.Example.COM:443/a/./b", "allow_private_network": true, "note": "lab\tsystem\nrouting"}`)
		var created endpointBody
		requireJSON(t, res, http.StatusCreated, &created)
		require.Equal(t, "https://hooks.example.com/a/b", created.URLPrefix)
		require.True(t, created.AllowPrivateNetwork)
		require.Equal(t, "lab\tsystem\nrouting", created.Note)
		_, err := uuid.Parse(created.ID)
		require.NoError(t, err, "ids are UUIDs")
		require.Equal(t, "/admin/endpoints/"+created.ID, res.header.Get("Location"))
		require.WithinRange(t, created.CreatedAt, before, time.Now().Add(time.Second))
		require.Equal(t, time.UTC, created.CreatedAt.Location())

		stored, err := h.store.Endpoints(t.Context())
		require.NoError(t, err)
		require.Len(t, stored, 1)
		require.Equal(t, "https://hooks.example.com/a/b", stored[0].URLPrefix)

		// Defaults: private networks refused, empty note.
		res = h.adminRequest("POST", "/admin/endpoints", tok, `{"url_prefix": "https://a.example/"}`)
		var second endpointBody
		requireJSON(t, res, http.StatusCreated, &second)
		require.False(t, second.AllowPrivateNetwork)
		require.Empty(t, second.Note)
		require.NotEqual(t, created.ID, second.ID)

		// The list is ordered by prefix and shows what the create returned.
		res = h.adminRequest("GET", "/admin/endpoints", tok, "")
		requireJSON(t, res, http.StatusOK, &list)
		require.Len(t, list, 2)
		require.Equal(t, second.ID, list[0].ID)
		require.Equal(t, created.ID, list[1].ID)
		require.Equal(t, created.URLPrefix, list[1].URLPrefix)
		require.True(t, created.CreatedAt.Equal(list[1].CreatedAt), "%v != %v", created.CreatedAt, list[1].CreatedAt)
		var raw []map[string]any
		require.NoError(t, json.Unmarshal(res.body, &raw))
		require.ElementsMatch(t, []string{"id", "url_prefix", "allow_private_network", "note", "created_at"}, keys(raw[0]))

		// A duplicate is recognised after normalisation.
		res = h.adminRequest("POST", "/admin/endpoints", tok, `{"url_prefix": "https://hooks.example.com:443/a/b"}`)
		requireAdminError(t, res, http.StatusConflict, "https://hooks.example.com/a/b")

		// Delete, then it is gone.
		res = h.adminRequest("DELETE", "/admin/endpoints/"+created.ID, tok, "")
		require.Equal(t, http.StatusNoContent, res.status, string(res.body))
		require.Empty(t, res.body)
		res = h.adminRequest("DELETE", "/admin/endpoints/"+created.ID, tok, "")
		requireAdminError(t, res, http.StatusNotFound, created.ID)
		res = h.adminRequest("GET", "/admin/endpoints", tok, "")
		requireJSON(t, res, http.StatusOK, &list)
		require.Len(t, list, 1)
		require.Equal(t, second.ID, list[0].ID)

		// The prefix can be added again once deleted.
		res = h.adminRequest("POST", "/admin/endpoints", tok, `{"url_prefix": "https://hooks.example.com/a/b"}`)
		require.Equal(t, http.StatusCreated, res.status, string(res.body))
	})
}

func TestAdminEndpointErrors(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.adminToken()
		post := func(body string, headers ...string) response {
			return h.adminRequest("POST", "/admin/endpoints", tok, body, headers...)
		}

		// 422: the allow-list's own messages.
		for body, mention := range map[string]string{
			`{"url_prefix": "https://user:pw@hooks.example.com/"}`:                              "must not contain user information",
			`{"url_prefix": "ftp://hooks.example.com/"}`:                                        "url_prefix: allow-list prefix",
			`{"url_prefix": "https://hooks.example.com/?a=b"}`:                                  "url_prefix: allow-list prefix",
			`{"url_prefix": "/relative"}`:                                                       "url_prefix",
			`{"url_prefix": ""}`:                                                                "url_prefix",
			`{"note": "no prefix"}`:                                                             "url_prefix",
			`{"url_prefix": "https://a.example/", "note": "bell\u0007"}`:                        "control characters",
			`{"url_prefix": "https://a.example/", "note": "` + strings.Repeat("é", 1025) + `"}`: "longer than 1024",
		} {
			res := post(body)
			requireAdminError(t, res, http.StatusUnprocessableEntity, mention)
			require.NotContains(t, string(res.body), "pw@", "user information is never echoed")
		}
		res := post(`{"url_prefix": "https://a.example/", "note": "` + strings.Repeat("é", 1024) + `"}`)
		require.Equal(t, http.StatusCreated, res.status, string(res.body))

		// 400: not the documented JSON object.
		for body, mention := range map[string]string{
			`{"url_prefix": "https://b.example/", "allow_private": true}`:          "allow_private: unknown member",
			`{"url_prefix": "https://b.example/"`:                                  "unexpected end of input",
			`{"url_prefix": https://b.example/}`:                                   "invalid character",
			`{"url_prefix": "https://b.example/", "allow_private_network": "yes"}`: "allow_private_network: must be a JSON boolean",
			`{"url_prefix": 7}`:                       "url_prefix: must be a JSON string",
			`["https://b.example/"]`:                  "must be a JSON object",
			`{"url_prefix": "https://b.example/"} {}`: "data after the JSON value",
			`   `: "empty",
		} {
			requireAdminError(t, post(body), http.StatusBadRequest, mention)
		}

		// 415: only application/json.
		good := `{"url_prefix": "https://c.example/"}`
		for _, ct := range []string{"text/plain", "application/fhir+json", "application/xml", "application/json; charset=latin1", "application/json;;"} {
			requireAdminError(t, post(good, "Content-Type: "+ct), http.StatusUnsupportedMediaType, "")
		}
		res = h.request("POST", "/admin/endpoints", tok, "") // no body, no Content-Type
		requireAdminError(t, res, http.StatusUnsupportedMediaType, "Content-Type is missing")
		res = post(good, "Content-Type: application/json; charset=UTF-8")
		require.Equal(t, http.StatusCreated, res.status, string(res.body))

		// 413: the FHIR routes' body limit.
		huge := `{"url_prefix": "https://d.example/", "note": "` + strings.Repeat("x", int(h.maxBody)) + `"}`
		requireAdminError(t, post(huge), http.StatusRequestEntityTooLarge, "exceeds the limit")

		// 404 and 405.
		requireAdminError(t, h.adminRequest("DELETE", "/admin/endpoints/no-such-id", tok, ""), http.StatusNotFound, "no-such-id")
		requireAdminError(t, h.adminRequest("PATCH", "/admin/endpoints", tok, good), http.StatusMethodNotAllowed, "")

		// Only the two good creates were stored.
		es, err := h.store.Endpoints(t.Context())
		require.NoError(t, err)
		require.Len(t, es, 2)
	})
}

func TestAdminClients(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.adminToken()

		var list []clientBody
		res := h.adminRequest("GET", "/admin/clients", tok, "")
		requireJSON(t, res, http.StatusOK, &list)
		require.Equal(t, "[]", string(res.body))

		requireAdminError(t, h.adminRequest("GET", "/admin/clients/lab-app", tok, ""), http.StatusNotFound, "lab-app")

		// Created: 201, the scope ceiling's spacing normalised.
		res = h.adminRequest("PUT", "/admin/clients/lab-app", tok,
			`{"status": "active", "max_payload": "full-resource", "scope_ceiling": "  system/Encounter.rs\tsystem/Observation.read  patient/Observation.rs?category=laboratory "}`)
		var c clientBody
		requireJSON(t, res, http.StatusCreated, &c)
		require.Equal(t, clientBody{ClientID: "lab-app", Status: "active", MaxPayload: "full-resource",
			ScopeCeiling: "system/Encounter.rs system/Observation.read patient/Observation.rs?category=laboratory", UpdatedAt: c.UpdatedAt}, c)
		require.WithinDuration(t, time.Now(), c.UpdatedAt, 5*time.Second)
		var raw map[string]any
		require.NoError(t, json.Unmarshal(res.body, &raw))
		require.ElementsMatch(t, []string{"client_id", "status", "max_payload", "scope_ceiling", "updated_at"}, keys(raw))

		var got clientBody
		requireJSON(t, h.adminRequest("GET", "/admin/clients/lab-app", tok, ""), http.StatusOK, &got)
		require.Equal(t, c.ScopeCeiling, got.ScopeCeiling)
		require.True(t, c.UpdatedAt.Equal(got.UpdatedAt))

		// Replaced: 200; omitting scope_ceiling removes the ceiling.
		res = h.adminRequest("PUT", "/admin/clients/lab-app", tok, `{"status": "suspended", "max_payload": "empty"}`)
		requireJSON(t, res, http.StatusOK, &c)
		require.Equal(t, "suspended", c.Status)
		require.Equal(t, "empty", c.MaxPayload)
		require.Empty(t, c.ScopeCeiling)
		stored, err := h.store.Client(t.Context(), "lab-app")
		require.NoError(t, err)
		require.Equal(t, "suspended", stored.Status)
		require.Empty(t, stored.ScopeCeiling)

		// Client ids may be URLs or paths: "/" (raw or %2F), ":" and "@".
		for path, id := range map[string]string{
			"/admin/clients/https:%2F%2Fapps.example.org%2Fsmart": "https://apps.example.org/smart",
			"/admin/clients/org/unit/app-1":                       "org/unit/app-1",
			"/admin/clients/svc@tenant.example_v2":                "svc@tenant.example_v2",
			"/admin/clients/" + strings.Repeat("a", 128):          strings.Repeat("a", 128),
		} {
			res = h.adminRequest("PUT", path, tok, `{"status": "active", "max_payload": "id-only", "scope_ceiling": "herald.admin"}`)
			requireJSON(t, res, http.StatusCreated, &c)
			require.Equal(t, id, c.ClientID)
			requireJSON(t, h.adminRequest("GET", path, tok, ""), http.StatusOK, &got)
			require.Equal(t, id, got.ClientID)
		}

		res = h.adminRequest("GET", "/admin/clients", tok, "")
		requireJSON(t, res, http.StatusOK, &list)
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ClientID)
		}
		require.Equal(t, []string{strings.Repeat("a", 128), "https://apps.example.org/smart", "lab-app", "org/unit/app-1", "svc@tenant.example_v2"}, ids)
	})
}

func TestAdminClientErrors(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.adminToken()
		put := func(body string, headers ...string) response {
			return h.adminRequest("PUT", "/admin/clients/app", tok, body, headers...)
		}

		// 422 naming the field, or the bad scope.
		for body, mention := range map[string]string{
			`{"status": "enabled", "max_payload": "id-only"}`: `status: "enabled" is not one of active, suspended`,
			`{"max_payload": "id-only"}`:                      "status: is required",
			`{"status": "active", "max_payload": "full"}`:     `max_payload: "full" is not one of empty, id-only, full-resource`,
			`{"status": "active"}`:                            "max_payload: is required",
			`{"status": "Active", "max_payload": "id-only"}`:  "status",
			`{"status": "active", "max_payload": "id-only", "scope_ceiling": "system/Patient.rs openid"}`:    `scope_ceiling: invalid scope "openid"`,
			`{"status": "active", "max_payload": "id-only", "scope_ceiling": "system/Patient.rs sytem/X.r"}`: `"sytem/X.r"`,
		} {
			requireAdminError(t, put(body), http.StatusUnprocessableEntity, mention)
		}

		// 400: malformed bodies and client ids.
		good := `{"status": "active", "max_payload": "id-only"}`
		for body, mention := range map[string]string{
			`{"status": "active", "max_payload": "id-only", "ceiling": ""}`: "ceiling: unknown member",
			`{"status": true}`: "status: must be a JSON string",
			`{`:                "unexpected end of input",
		} {
			requireAdminError(t, put(body), http.StatusBadRequest, mention)
		}
		res := h.request("PUT", "/admin/clients/app", tok, "", "Content-Type: application/json")
		requireAdminError(t, res, http.StatusBadRequest, "the request body is empty")
		for _, path := range []string{
			"/admin/clients/",
			"/admin/clients/" + strings.Repeat("a", 129),
			"/admin/clients/has%20space",
			"/admin/clients/semi;colon",
			"/admin/clients/caf%C3%A9",
			"/admin/clients/q%3Fmark",
		} {
			requireAdminError(t, h.adminRequest("PUT", path, tok, good), http.StatusBadRequest, "client_id")
			requireAdminError(t, h.adminRequest("GET", path, tok, ""), http.StatusBadRequest, "client_id")
		}

		// 415 and 413.
		requireAdminError(t, put(good, "Content-Type: application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType, "application/json")
		huge := `{"status": "active", "max_payload": "id-only", "scope_ceiling": "` + strings.Repeat("system/Patient.rs ", int(h.maxBody)/16) + `"}`
		requireAdminError(t, put(huge), http.StatusRequestEntityTooLarge, "")

		// 405: no DELETE of clients (suspend them instead).
		requireAdminError(t, h.adminRequest("DELETE", "/admin/clients/app", tok, ""), http.StatusMethodNotAllowed, "")

		cs, err := h.store.Clients(t.Context())
		require.NoError(t, err)
		require.Empty(t, cs, "no failed request stored anything")
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAdminAllowlistCheck: the check answers as a Subscription write would,
// with the reason each entry refuses.
func TestAdminAllowlistCheck(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.adminToken()
		res := h.adminRequest("POST", "/admin/endpoints", tok, `{"url_prefix": "https://hooks.example.com/herald"}`)
		require.Equal(t, http.StatusCreated, res.status, string(res.body))

		type verdict struct {
			Allowed  bool   `json:"allowed"`
			Endpoint string `json:"endpoint"`
			Invalid  string `json:"invalid"`
			Match    *struct {
				URLPrefix string `json:"url_prefix"`
			} `json:"match"`
			Misses []struct {
				URLPrefix string `json:"url_prefix"`
				Reason    string `json:"reason"`
			} `json:"misses"`
		}
		check := func(url string) verdict {
			var v verdict
			requireJSON(t, h.adminRequest("POST", "/admin/allowlist/check", tok, `{"url": "`+url+`"}`), http.StatusOK, &v)
			return v
		}
		v := check("HTTPS://HOOKS.example.com:443/herald/lab")
		require.True(t, v.Allowed)
		require.Equal(t, "https://hooks.example.com/herald/lab", v.Endpoint)
		require.Equal(t, "https://hooks.example.com/herald", v.Match.URLPrefix)

		v = check("https://hooks.example.com/heraldx")
		require.False(t, v.Allowed)
		require.Nil(t, v.Match)
		require.Len(t, v.Misses, 1)
		require.Contains(t, v.Misses[0].Reason, "within a segment")

		v = check("http://hooks.example.com/herald")
		require.False(t, v.Allowed)
		require.Contains(t, v.Misses[0].Reason, "scheme")

		v = check("https://me@hooks.example.com/herald")
		require.False(t, v.Allowed)
		require.Contains(t, v.Invalid, "user information")

		requireAdminError(t, h.adminRequest("POST", "/admin/allowlist/check", h.token("system/*.rs"), `{"url": "https://x.example/"}`), http.StatusForbidden, auth.AdminScope)
	})
}
