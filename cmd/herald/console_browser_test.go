package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/console"
)

// The console's tests drive it in headless Chromium (Debian's chromium
// package) against a whole Herald run in-process. Without chromium they
// skip, except under CI=true where they fail.

// chromiumPath finds the browser or ends the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); the console's browser tests skip")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile; its context
// ends with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// consoleHerald runs Herald for the console tests: plain-http base URL (so
// the console's cookies are not Secure), fast retries, HS256 tokens.
func consoleHerald(t *testing.T, extra ...string) *server {
	t.Helper()
	env := map[string]string{
		"HERALD_AUTH_HS256_SECRET": secret,
		"HERALD_BASE_URL":          "http://herald.test/fhir",
		"HERALD_DELIVERY_POLL":     "100ms",
		"HERALD_RETRY_BASE":        "20ms",
		"HERALD_RETRY_MAX":         "100ms",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return startServer(t, env)
}

func mintToken(t *testing.T, client, scope string) string {
	t.Helper()
	tok, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: client, Scope: scope, TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

// The page is driven through script evaluated in whatever document is
// current, retried until it answers: a query that chromedp tracks in the
// DOM can be stranded by the navigation a form post causes. Clicks and
// typing are real DOM events, so the console's own script runs as for a
// person. The test's context is the deadline of every wait.

// evalPage evaluates expr in the current document until it answers
// without error and accept(result) holds.
func evalPage[T any](expr string, accept func(T) bool) chromedp.Action[T] {
	return func(ctx context.Context, tg *chromedp.Target) (T, error) {
		for {
			try, cancel := context.WithTimeout(ctx, 2*time.Second)
			v, err := chromedp.Evaluate[T](expr)(try, tg)
			cancel()
			if err == nil && (accept == nil || accept(v)) {
				return v, nil
			}
			select {
			case <-ctx.Done():
				var zero T
				return zero, fmt.Errorf("waiting for %s: %w", expr, ctx.Err())
			case <-time.After(20 * time.Millisecond): // polling the page, bounded by ctx
			}
		}
	}
}

func isTrue(b bool) bool { return b }

// present waits until a loaded document that a submit did not leave has an
// element matching css.
func present(css string) chromedp.Action[chromedp.Void] {
	return void(evalPage(fmt.Sprintf(`!window.__left && document.readyState === "complete" && document.querySelector(%q) !== null`, css), isTrue))
}

// submit clicks css, a control that loads another page; present then
// waits for that page (the one left is marked).
func submit(css string) chromedp.Action[chromedp.Void] {
	return void(evalPage(fmt.Sprintf(`(e => { if (!e) return false; window.__left = true; e.click(); return true })(document.querySelector(%q))`, css), isTrue))
}

// click clicks css on the current page.
func click(css string) chromedp.Action[chromedp.Void] {
	return void(evalPage(fmt.Sprintf(`(e => { if (!e) return false; e.click(); return true })(document.querySelector(%q))`, css), isTrue))
}

// setValue sets the value of the field css and fires input and change, as
// typing and choosing do.
func setValue(css, value string) chromedp.Action[chromedp.Void] {
	return void(evalPage(fmt.Sprintf(`(e => { if (!e) return false; e.value = %q;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })(document.querySelector(%q))`, value, css), isTrue))
}

func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, tg)
		return chromedp.Void{}, err
	}
}

// signIn pastes token into the sign-in form.
func signIn(base, token string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/admin/ui/"),
		present("#token"),
		setValue("#token", token),
		submit("#signin"),
	)
}

// screenshot saves the page as docs/img/<name>.png when
// HERALD_UPDATE_SCREENSHOTS is set (make screenshots), else in a temporary
// directory: either way the page must render.
func screenshot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		dir := t.TempDir()
		if os.Getenv("HERALD_UPDATE_SCREENSHOTS") != "" {
			dir = filepath.Join("..", "..", "docs", "img")
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// text is the text of the first element css selects.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, evalPage[string](fmt.Sprintf(`(e => e ? e.innerText : null)(document.querySelector(%q))`, css), nil))
	require.NoError(t, err)
	return v
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, evalPage[string](`location.href`, nil))
	require.NoError(t, err)
	return v
}

// adminEndpoints lists the allow-list through the JSON admin API.
func adminEndpoints(t *testing.T, s *server, admin string) string {
	t.Helper()
	status, body := do(t, "GET", s.url+"/admin/endpoints", admin, "")
	require.Equal(t, 200, status, string(body))
	return string(body)
}

// failingReceiver is a subscriber endpoint that answers 500 until fixed.
type failingReceiver struct {
	srv     *httptest.Server
	broken  atomic.Bool
	handled atomic.Int64
}

func newFailingReceiver(t *testing.T) *failingReceiver {
	r := &failingReceiver{}
	r.broken.Store(true)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.handled.Add(1)
		if r.broken.Load() {
			http.Error(w, "receiver is down for maintenance", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestConsoleAllowListInBrowser: sign in, see the live check refuse an
// endpoint and say why, add the entry, see the check admit it, remove it.
func TestConsoleAllowListInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	s := consoleHerald(t)
	admin := mintToken(t, "ops-admin", auth.AdminScope)
	recv := newFailingReceiver(t)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/admin/ui/allowlist"),
		present("#token"),
	))
	require.Contains(t, location(t, ctx), "/admin/ui/signin", "no session: sent to sign in")
	require.NoError(t, chromedp.Do(ctx, screenshot(t, "console-signin")))

	require.NoError(t, chromedp.Do(ctx,
		signIn(s.url, admin),
		present("#filters"), // signed in: the Subscriptions page
		chromedp.Navigate(s.url+"/admin/ui/allowlist"),
		present("#url_prefix"),
		setValue("#check", recv.srv.URL+"/hooks/1"),
		present("#verdict p.refused"),
	))
	require.Contains(t, text(t, ctx, "#verdict"), "Not admitted")

	require.NoError(t, chromedp.Do(ctx,
		setValue("#url_prefix", recv.srv.URL+"/hooks/"),
		click(`input[name="allow_private_network"]`),
		setValue("#note", "lab integration, ticket OPS-1234"),
		submit("#add"),
		present("p.done"),
	))
	require.Contains(t, adminEndpoints(t, s, admin), recv.srv.URL+"/hooks/", "the entry is stored")

	// The live check now admits the endpoint, and says why a near miss is not.
	require.NoError(t, chromedp.Do(ctx,
		setValue("#check", recv.srv.URL+"/hooksx/1"),
		present("#verdict ul.misses"),
		screenshot(t, "console-allowlist-why-not"),
	))
	require.Contains(t, text(t, ctx, "#verdict"), "the path does not start with /hooks/")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/admin/ui/allowlist"),
		setValue("#check", recv.srv.URL+"/hooks/1"),
		present("#verdict p.admitted"),
		screenshot(t, "console-allowlist"),
	))
	verdict := text(t, ctx, "#verdict")
	require.Contains(t, verdict, "Admitted as "+recv.srv.URL+"/hooks/1")
	require.Contains(t, verdict, "private addresses allowed")

	// Clients: add one with a payload and scope ceiling.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/admin/ui/clients"),
		setValue("#client_id", "lab-app"),
		setValue("#max_payload", "empty"),
		setValue("#scope_ceiling", "system/Observation.rs"),
		submit("#save-client"),
		present("p.done"),
		screenshot(t, "console-clients"),
	))
	status, body := do(t, "GET", s.url+"/admin/clients/lab-app", admin, "")
	require.Equal(t, 200, status, string(body))
	require.Contains(t, string(body), `"max_payload":"empty"`)
	require.Contains(t, string(body), `"scope_ceiling":"system/Observation.rs"`)

	// Topics, read-only, with canFilterBy.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/admin/ui/topics"),
		screenshot(t, "console-topics"),
	))
	topics := text(t, ctx, "#topics")
	require.Contains(t, topics, "https://herald.dev/fhir/SubscriptionTopic/encounter-start")
	require.Contains(t, topics, "service-provider")

	// Remove the entry; sign out ends the session.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/admin/ui/allowlist"),
		submit("#entries button.danger"),
		present("p.done"),
	))
	require.Equal(t, "[]", adminEndpoints(t, s, admin))
	require.NoError(t, chromedp.Do(ctx,
		submit("#signout"),
		present("#token"),
		chromedp.Navigate(s.url+"/admin/ui/clients"),
		present("#token"),
	))
	require.Contains(t, location(t, ctx), "/admin/ui/signin")
	require.Empty(t, consoleCookies(t, ctx, s.url), "sign-out clears the cookies")
}

// consoleCookies are the browser's cookies for the console.
func consoleCookies(t *testing.T, ctx context.Context, base string) []*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/admin/ui/"}})
	require.NoError(t, err)
	return res.Cookies
}

// TestConsoleCookieAttributes: the session cookie is HttpOnly, SameSite
// Strict and scoped to /admin/ui; never visible to page scripts.
func TestConsoleCookieAttributes(t *testing.T) {
	ctx := newBrowser(t)
	s := consoleHerald(t)
	require.NoError(t, chromedp.Do(ctx, signIn(s.url, mintToken(t, "ops-admin", auth.AdminScope)), present("#filters")))
	cs := consoleCookies(t, ctx, s.url)
	require.Len(t, cs, 2)
	for _, c := range cs {
		require.True(t, c.HTTPOnly, c.Name)
		require.Equal(t, network.CookieSameSiteStrict, c.SameSite, c.Name)
		require.Equal(t, "/admin/ui", c.Path, c.Name)
	}
	script, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie + "|" + Object.keys(localStorage).length`))
	require.NoError(t, err)
	require.Equal(t, "|0", script, "no token reaches page scripts or localStorage")
}

// TestConsoleEscapesXSS: a note, a checked URL and a client's input
// holding markup are shown as text: no script runs (window.__xss stays
// unset) and the HTML carries them escaped.
func TestConsoleEscapesXSS(t *testing.T) {
	ctx := newBrowser(t)
	s := consoleHerald(t)
	admin := mintToken(t, "ops-admin", auth.AdminScope)
	probe := `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`
	status, body, err := call("POST", s.url+"/admin/endpoints", admin,
		fmt.Sprintf(`{"url_prefix":"https://hooks.example/","note":%q}`, probe))
	require.NoError(t, err)
	require.Equal(t, 201, status, string(body))

	check := url.QueryEscape(`https://hooks.example/a"><script>window.__xss=3</script>`)
	require.NoError(t, chromedp.Do(ctx,
		signIn(s.url, admin),
		present("#filters"),
		chromedp.Navigate(s.url+"/admin/ui/allowlist?check="+check),
		present("#verdict p"),
		setValue("#check", `<img src=x onerror="window.__xss=4">`),
		present("#verdict p.refused"),
	))
	verdict := text(t, ctx, "#verdict")
	html, err := chromedp.Run(ctx, evalPage[string](`document.documentElement.outerHTML`, nil))
	require.NoError(t, err)
	xss, err := chromedp.Run(ctx, chromedp.Evaluate[string](`typeof window.__xss`))
	require.NoError(t, err)
	require.Equal(t, "undefined", xss, "no injected script ran")
	require.Contains(t, verdict, "Refused before any entry is tried")
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#verdict img, #verdict script, #entries img, #entries script").length`))
	require.NoError(t, err)
	require.Zero(t, injected, "no element was made from the input")
	require.Contains(t, html, "&lt;script&gt;window.__xss=1&lt;/script&gt;", "the note is escaped")
	require.NotContains(t, html, "<script>window.__xss")
	require.NotContains(t, html, `<img src="x"`)

	// The server's own rendering, without the browser's DOM serialisation.
	page := consoleGET(t, s, admin, "/admin/ui/allowlist?check="+check)
	require.Contains(t, page, "&lt;script&gt;window.__xss=1&lt;/script&gt;")
	require.NotContains(t, page, "<script>window.__xss")
	require.NotContains(t, page, "<img src=x")
}

// consoleGET fetches a console page with an admin session's cookies,
// outside the browser.
func consoleGET(t *testing.T, s *server, token, path string) string {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "herald_admin_token", Value: token})
	req.AddCookie(&http.Cookie{Name: "herald_admin_csrf", Value: strings.Repeat("c", 43)})
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, string(b))
	require.Equal(t, "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", res.Header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
	return string(b)
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestConsoleRefusesCrossSiteForms: a page on another origin (a second
// listener on the same host, so the browser even sends the SameSite
// cookies) posts a form to the console; nothing changes.
func TestConsoleRefusesCrossSiteForms(t *testing.T) {
	ctx := newBrowser(t)
	s := consoleHerald(t)
	admin := mintToken(t, "ops-admin", auth.AdminScope)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/admin/ui/allowlist/add">
<input name="csrf" value="guess"><input name="url_prefix" value="https://evil.example/"><input name="allow_private_network" value="on">
</form><script>document.getElementById("f").submit()</script>`, s.url)
	}))
	t.Cleanup(evil.Close)

	require.NoError(t, chromedp.Do(ctx,
		signIn(s.url, admin),
		present("#filters"),
		chromedp.Navigate(evil.URL),
		present("#error"), // the console's refusal page
	))
	loc, refusal := location(t, ctx), text(t, ctx, "#error")
	require.True(t, strings.HasPrefix(loc, s.url+"/admin/ui/allowlist/add"), loc)
	require.Contains(t, refusal, "another site")
	require.Equal(t, "[]", adminEndpoints(t, s, admin), "the cross-site form changed nothing")

	// Outside a browser: the right cookies but no CSRF field, or another
	// Origin, are refused; the same request from the console's origin with
	// the session's token passes (so the refusals are the checks').
	post := func(origin, csrfField string) int {
		form := url.Values{"url_prefix": {"https://evil.example/"}}
		if csrfField != "" {
			form.Set("csrf", csrfField)
		}
		req, err := http.NewRequest("POST", s.url+"/admin/ui/allowlist/add", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.AddCookie(&http.Cookie{Name: "herald_admin_token", Value: admin})
		req.AddCookie(&http.Cookie{Name: "herald_admin_csrf", Value: strings.Repeat("c", 43)})
		res, err := noRedirects.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusForbidden, post(s.url, ""))
	require.Equal(t, http.StatusForbidden, post(s.url, strings.Repeat("d", 43)))
	require.Equal(t, http.StatusForbidden, post(evil.URL, console.FormToken(strings.Repeat("c", 43), admin)))
	// A CSRF cookie planted by a sibling host, and a form carrying its
	// value: the form token is keyed to the session token too.
	require.Equal(t, http.StatusForbidden, post(s.url, strings.Repeat("c", 43)))
	require.Equal(t, "[]", adminEndpoints(t, s, admin))
	require.Equal(t, http.StatusSeeOther, post(s.url, console.FormToken(strings.Repeat("c", 43), admin)))
	require.Contains(t, adminEndpoints(t, s, admin), "https://evil.example/")
}

// TestConsoleRefusesNonAdminToken: a token the issuer signed without
// herald.admin cannot sign in, and as a cookie it can neither read nor act.
func TestConsoleRefusesNonAdminToken(t *testing.T) {
	ctx := newBrowser(t)
	s := consoleHerald(t)
	admin := mintToken(t, "ops-admin", auth.AdminScope)
	user := mintToken(t, "lab-app", "system/*.cruds")

	require.NoError(t, chromedp.Do(ctx,
		signIn(s.url, user),
		present("#error"),
	))
	require.Contains(t, text(t, ctx, "#error"), "does not hold the herald.admin scope")
	require.Empty(t, consoleCookies(t, ctx, s.url), "no session for a non-admin")
	require.NotContains(t, s.stderr.String(), user, "the token never reaches the log")

	// Its token set as the cookie by hand: every page sends it to sign in,
	// and a change with a matching CSRF pair is not made.
	for _, tc := range []struct{ method, path string }{{"GET", "/admin/ui/allowlist"}, {"POST", "/admin/ui/allowlist/add"}} {
		form := url.Values{"url_prefix": {"https://user.example/"}, "csrf": {strings.Repeat("c", 43)}}
		req, err := http.NewRequest(tc.method, s.url+tc.path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.url)
		req.AddCookie(&http.Cookie{Name: "herald_admin_token", Value: user})
		req.AddCookie(&http.Cookie{Name: "herald_admin_csrf", Value: strings.Repeat("c", 43)})
		res, err := noRedirects.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusSeeOther, res.StatusCode, tc.path)
		require.Equal(t, "/admin/ui/signin?expired=1", res.Header.Get("Location"), tc.path)
	}
	require.Equal(t, "[]", adminEndpoints(t, s, admin))

	// An expired admin token is the same as none: back to sign-in.
	expired, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: "ops-admin", Scope: auth.AdminScope, TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	req, err := http.NewRequest("GET", s.url+"/admin/ui/clients", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "herald_admin_token", Value: expired})
	req.AddCookie(&http.Cookie{Name: "herald_admin_csrf", Value: strings.Repeat("c", 43)})
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "/admin/ui/signin?expired=1", res.Header.Get("Location"))
}

// TestConsoleSubscriptionsInBrowser: a Subscription whose receiver fails
// goes to error; the console lists it under that filter, shows its failed
// attempts with the receiver's answer; once the receiver is fixed, Retry
// gets it delivered and the page shows it active.
func TestConsoleSubscriptionsInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	// Backoff from 2 ms doubling without a practical cap: ten failures (then
	// error) take about 2 s, after which the next attempt is seconds away,
	// so Retry is what brings it back quickly.
	s := consoleHerald(t, "HERALD_RETRY_BASE", "2ms", "HERALD_RETRY_MAX", "1h")
	admin := mintToken(t, "ops-admin", auth.AdminScope)
	owner := mintToken(t, "lab-app", "system/Subscription.cruds system/Encounter.rs")
	recv := newFailingReceiver(t)

	status, body, err := call("POST", s.url+"/admin/endpoints", admin, fmt.Sprintf(`{"url_prefix":%q,"allow_private_network":true}`, recv.srv.URL+"/hooks/"))
	require.NoError(t, err)
	require.Equal(t, 201, status, string(body))
	status, body = do(t, "POST", s.url+"/fhir/Subscription", owner, fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"console test",
		"criteria":%q,"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json",
		"_payload":{"extension":[{"url":"%sbackport-payload-content","valueCode":"id-only"}]}}}`, encounterStart, recv.srv.URL+"/hooks/1", backport))
	require.Equal(t, 201, status, string(body))
	id := regexpID.FindStringSubmatch(string(body))[1]

	waitUntil(t, 30*time.Second, "the Subscription in error", func() bool {
		status, body, err := call("GET", s.url+"/admin/subscriptions?status=error", admin, "")
		return err == nil && status == 200 && strings.Contains(string(body), id)
	})

	row := fmt.Sprintf(`tr[data-id=%q]`, id)
	require.NoError(t, chromedp.Do(ctx,
		signIn(s.url, admin),
		present("#filters"),
		setValue("#status", "error"),
		submit("#filter"),
		present(row),
		screenshot(t, "console-subscriptions"),
	))
	require.Contains(t, location(t, ctx), "status=error")
	listed := text(t, ctx, row)
	require.Contains(t, listed, "error")
	require.Contains(t, listed, "HTTP 500")
	require.Contains(t, listed, "lab-app")

	require.NoError(t, chromedp.Do(ctx,
		submit(row+" a"),
		present("#attempts"),
		screenshot(t, "console-attempts"),
	))
	attempts := text(t, ctx, "#attempts")
	require.Contains(t, attempts, "receiver is down for maintenance", "the receiver's answer is logged")
	require.Contains(t, attempts, "500")
	require.Equal(t, "error", text(t, ctx, "#sub-status"))

	recv.broken.Store(false)
	require.NoError(t, chromedp.Do(ctx,
		submit("#retry"),
		present("p.done"),
	))
	waitUntil(t, 15*time.Second, "the console to show the Subscription active", func() bool {
		err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/admin/ui/subscriptions/"+id), present("#sub-status"))
		return err == nil && text(t, ctx, "#sub-status") == "active"
	})
	require.Contains(t, text(t, ctx, "#attempts tbody tr"), "success", "the newest attempt succeeded")
	require.NoError(t, chromedp.Do(ctx, screenshot(t, "console-subscription-active")))
}

var regexpID = regexp.MustCompile(`"id":"([^"]+)"`)
