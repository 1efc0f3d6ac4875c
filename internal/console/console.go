// Package console is the administrators' web console at /admin/ui:
// server-rendered HTML (html/template, embedded templates, CSS and one small
// script, no build step) over the same services the JSON admin API calls.
//
// Sign-in takes a SMART access token holding herald.admin; it is kept in an
// HttpOnly, SameSite=Strict cookie scoped to /admin/ui (Secure unless Herald's
// base URL is plain http) and verified on every request by the same verifier
// and admin check as a bearer token. Every change is a POST carrying the
// session's CSRF token, refused when the browser says it came from another
// origin (Sec-Fetch-Site, Origin).
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
)

// Prefix is where the console is served; its cookies are scoped to it.
const Prefix = "/admin/ui"

// Authenticator verifies an access token (the API's bearer verifier).
type Authenticator interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// Options are the console's dependencies.
type Options struct {
	Auth   Authenticator
	Admin  *admin.Service
	Topics *topic.Library
	// Operations lists Subscriptions and their attempts, and retries and
	// reactivates them (the JSON admin API's calls).
	Operations *subscription.Operations
	// InsecureCookies drops the Secure attribute, for a plain-http base URL
	// (development and tests) only: browsers refuse Secure cookies over http.
	InsecureCookies bool
	Logger          *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console is the http.Handler of /admin/ui.
type Console struct {
	opts  Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	csrf  *http.CrossOriginProtection
}

// New builds the console.
func New(opts Options) *Console {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{opts: opts, mux: http.NewServeMux(), pages: parsePages(), csrf: http.NewCrossOriginProtection()}
	c.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, "This change came from another site and was refused.")
	}))
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Prefix+"/{$}", c.home)
	c.mux.HandleFunc("GET "+Prefix+"/signin", c.signInPage)
	c.mux.HandleFunc("POST "+Prefix+"/signin", c.signIn)
	c.mux.Handle("POST "+Prefix+"/signout", c.change(c.signOut))
	c.mux.Handle("GET "+Prefix+"/allowlist", c.view(c.allowList))
	c.mux.Handle("GET "+Prefix+"/allowlist/check", c.view(c.checkEndpoint))
	c.mux.Handle("POST "+Prefix+"/allowlist/add", c.change(c.addEndpoint))
	c.mux.Handle("POST "+Prefix+"/allowlist/remove", c.change(c.removeEndpoint))
	c.mux.Handle("GET "+Prefix+"/clients", c.view(c.clients))
	c.mux.Handle("POST "+Prefix+"/clients/save", c.change(c.saveClient))
	c.mux.Handle("GET "+Prefix+"/topics", c.view(c.topics))
	c.mux.Handle("GET "+Prefix+"/subscriptions", c.view(c.subscriptions))
	c.mux.Handle("GET "+Prefix+"/subscriptions/{id}", c.view(c.subscription))
	c.mux.Handle("POST "+Prefix+"/subscriptions/{id}/retry", c.change(c.retry))
	c.mux.Handle("POST "+Prefix+"/subscriptions/{id}/reactivate", c.change(c.reactivate))
	return c
}

// ServeHTTP sets the security headers of every console answer and routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t := template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
		pages[n[len("templates/"):len(n)-len(".html")]] = t
	}
	return pages
}

var funcs = template.FuncMap{
	// when is a time for admins: UTC to the second, "never" for none.
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the section shown
	Admin string // the signed-in admin's client id
	CSRF  string
	Done  string // what the last change did
	Error string // why the last change was refused
	Data  any
}

// render writes the named page with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := sessionOf(r); s != nil {
		p.Admin, p.CSRF = s.principal.ClientID, s.csrf
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages[name].ExecuteTemplate(w, "layout.html", p); err != nil {
		c.opts.Logger.Error("console: render", "page", name, "err", err)
	}
}

// fail shows an error page; the message is one written for admins.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, message string) {
	c.render(w, r, status, "error", page{Title: "Refused", Error: message})
}

// failErr shows err's admin-facing message.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := c.userError(r, err)
	c.fail(w, r, status, msg)
}

// userError is the admin-facing message of err; internal errors are logged
// and named generically.
func (c *Console) userError(r *http.Request, err error) (int, string) {
	var fe *fhir.Error
	if errors.As(err, &fe) && fe.Kind != fhir.KindInternal {
		return fe.Status(), fe.Message
	}
	c.opts.Logger.Error("console", "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "internal server error"
}
