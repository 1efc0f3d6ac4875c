package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/console"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/topic"
)

// These tests need no browser (the browser tests are in cmd/herald): the
// console over a real listener, the real HS256 verifier and the embedded
// store.

const testSecret = "console-test-secret-0123456789abcdef"

type fixture struct {
	t     *testing.T
	srv   *httptest.Server
	admin *admin.Service
}

func newFixture(t *testing.T, insecure bool) *fixture {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{HS256Secret: []byte(testSecret)})
	require.NoError(t, err)
	svc := &admin.Service{Store: memory.New()}
	c := console.New(console.Options{Auth: v, Admin: svc, Topics: &topic.Library{}, InsecureCookies: insecure})
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, admin: svc}
}

func token(t *testing.T, scope string) string {
	t.Helper()
	tok, err := auth.MintHS256([]byte(testSecret), auth.MintClaims{ClientID: "ops", Scope: scope, TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// post sends a form; header lines are "Name: value".
func (f *fixture) post(path string, form url.Values, cookies []*http.Cookie, headers ...string) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := noRedirects.Do(req)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { res.Body.Close() })
	return res
}

// signIn signs in with tok and returns the session's cookies.
func (f *fixture) signIn(tok string) []*http.Cookie {
	f.t.Helper()
	res := f.post("/admin/ui/signin", url.Values{"token": {tok}}, nil)
	require.Equal(f.t, http.StatusSeeOther, res.StatusCode)
	return res.Cookies()
}

// csrfOf is the form token of the session whose cookies are cs.
func csrfOf(cs []*http.Cookie) string {
	var csrf, tok string
	for _, c := range cs {
		switch c.Name {
		case "herald_admin_csrf":
			csrf = c.Value
		case "herald_admin_token":
			tok = c.Value
		}
	}
	return console.FormToken(csrf, tok)
}

// TestSessionCookies: HttpOnly, SameSite=Strict, scoped to /admin/ui,
// Secure unless configured for a plain-http base URL, expiring with the token.
func TestSessionCookies(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		f := newFixture(t, insecure)
		cs := f.signIn(token(t, auth.AdminScope))
		require.Len(t, cs, 2)
		for _, c := range cs {
			require.True(t, c.HttpOnly, c.Name)
			require.Equal(t, http.SameSiteStrictMode, c.SameSite, c.Name)
			require.Equal(t, "/admin/ui", c.Path, c.Name)
			require.Equal(t, !insecure, c.Secure, c.Name)
			require.InDelta(t, time.Hour.Seconds(), c.MaxAge, 5, c.Name)
		}
	}
}

// TestSecurityHeaders: every answer, pages and errors alike.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, true)
	for _, path := range []string{"/admin/ui/signin", "/admin/ui/allowlist", "/admin/ui/nope", "/admin/ui/static/console.js"} {
		res, err := noRedirects.Get(f.srv.URL + path)
		require.NoError(t, err)
		res.Body.Close()
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'none'", path)
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"), path)
	}
}

// TestChangesNeedTheSessionsCSRFToken: without the token, with another
// session's, or from another origin, nothing is added.
func TestChangesNeedTheSessionsCSRFToken(t *testing.T) {
	f := newFixture(t, true)
	cs := f.signIn(token(t, auth.AdminScope))
	other := csrfOf(f.signIn(token(t, auth.AdminScope)))
	require.NotEqual(t, csrfOf(cs), other, "each sign-in has its own token")
	add := func(csrf string, headers ...string) int {
		return f.post("/admin/ui/allowlist/add", url.Values{"url_prefix": {"https://hooks.example/"}, "csrf": {csrf}}, cs, headers...).StatusCode
	}
	require.Equal(t, http.StatusForbidden, add(""))
	require.Equal(t, http.StatusForbidden, add(other))
	for _, c := range cs {
		if c.Name == "herald_admin_csrf" {
			// The CSRF cookie's own value is not the form token: a page
			// that planted the cookie knows it, but not the session token.
			require.Equal(t, http.StatusForbidden, add(c.Value))
		}
	}
	require.Equal(t, http.StatusForbidden, add(csrfOf(cs), "Sec-Fetch-Site: cross-site"))
	require.Equal(t, http.StatusForbidden, add(csrfOf(cs), "Sec-Fetch-Site: same-site"))
	require.Equal(t, http.StatusForbidden, add(csrfOf(cs), "Origin: https://evil.example"))
	es, err := f.admin.Endpoints(context.Background())
	require.NoError(t, err)
	require.Empty(t, es)

	require.Equal(t, http.StatusSeeOther, add(csrfOf(cs), "Sec-Fetch-Site: same-origin"))
	es, err = f.admin.Endpoints(context.Background())
	require.NoError(t, err)
	require.Len(t, es, 1)
}

// TestNonAdminCannotSignIn: a valid token without herald.admin gets no
// cookie and a message that does not repeat it.
func TestNonAdminCannotSignIn(t *testing.T) {
	f := newFixture(t, true)
	tok := token(t, "system/*.rs")
	res := f.post("/admin/ui/signin", url.Values{"token": {tok}}, nil)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Empty(t, res.Cookies())
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), "does not hold the herald.admin scope")
	require.NotContains(t, string(body), tok)

	res = f.post("/admin/ui/signin", url.Values{"token": {"not-a-jwt"}}, nil)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Empty(t, res.Cookies())
}

// TestNoteIsEscaped: markup an admin stored is shown as text.
func TestNoteIsEscaped(t *testing.T) {
	f := newFixture(t, true)
	_, err := f.admin.AddEndpoint(context.Background(), admin.EndpointInput{URLPrefix: "https://hooks.example/", Note: `<script>alert(1)</script>`})
	require.NoError(t, err)
	cs := f.signIn(token(t, auth.AdminScope))
	req, err := http.NewRequest("GET", f.srv.URL+"/admin/ui/allowlist", nil)
	require.NoError(t, err)
	for _, c := range cs {
		req.AddCookie(c)
	}
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(body), "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.NotContains(t, string(body), "<script>alert")
}
