package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store"
)

// Cookie names. Both are HttpOnly, SameSite=Strict and scoped to Prefix.
const (
	tokenCookie = "herald_admin_token"
	csrfCookie  = "herald_admin_csrf"
)

// session is the signed-in admin of one request.
type session struct {
	principal *auth.Principal
	csrf      string
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// authenticate verifies the cookie's token exactly as a bearer token (same
// verifier, same admin check) on every request. Without a valid admin token
// the answer is nil and the cookies are cleared.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) *session {
	tc, err := r.Cookie(tokenCookie)
	if err != nil || tc.Value == "" {
		return nil
	}
	p, err := c.opts.Auth.Verify(r.Context(), tc.Value)
	if err != nil || !p.Admin {
		c.clearCookies(w)
		return nil
	}
	cc, err := r.Cookie(csrfCookie)
	if err != nil || len(cc.Value) < 32 {
		c.clearCookies(w)
		return nil
	}
	return &session{principal: p, csrf: FormToken(cc.Value, tc.Value)}
}

// FormToken is the CSRF token a session's forms carry: the CSRF cookie's
// random value keyed to the session's token. A cookie alone is not enough:
// a page on a sibling host can plant a CSRF cookie whose value it knows
// (cookies do not isolate by host), but it cannot read the HttpOnly token
// cookie, so it cannot compute the form token that goes with it.
func FormToken(csrfCookieValue, sessionToken string) string {
	m := hmac.New(sha256.New, []byte(csrfCookieValue))
	m.Write([]byte("herald console form\x00"))
	m.Write([]byte(sessionToken))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// withSession puts s and its admin (the audit log's actor) in r's context.
func withSession(r *http.Request, s *session) *http.Request {
	ctx := context.WithValue(r.Context(), sessionKey{}, s)
	return r.WithContext(store.WithActor(ctx, s.principal.ClientID))
}

// view wraps a page that changes nothing: without a session the admin is
// sent to sign in.
func (c *Console) view(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.authenticate(w, r)
		if s == nil {
			http.Redirect(w, r, Prefix+"/signin?expired=1", http.StatusSeeOther)
			return
		}
		h(w, withSession(r, s))
	})
}

// change wraps a POST that changes something: it needs a session, a
// same-origin request (Sec-Fetch-Site, else Origin against Host) and the
// session's CSRF token in the form.
func (c *Console) change(h http.HandlerFunc) http.Handler {
	return c.csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.authenticate(w, r)
		if s == nil {
			http.Redirect(w, r, Prefix+"/signin?expired=1", http.StatusSeeOther)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			c.fail(w, withSession(r, s), http.StatusForbidden, "The form was not sent from this console session; reload the page and try again.")
			return
		}
		h(w, withSession(r, s))
	}))
}

// maxFormBytes bounds a console form (a token is a few KiB).
const maxFormBytes = 64 << 10

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if c.authenticate(w, r) == nil {
		http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"/subscriptions", http.StatusSeeOther)
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Sign in"}
	if r.URL.Query().Get("expired") != "" {
		p.Error = "Your session ended (the token expired, was signed out or is no longer valid). Sign in again."
	}
	c.render(w, r, http.StatusOK, "signin", p)
}

// signIn takes a pasted token. It sets no cookie unless the token verifies
// and holds herald.admin; the refusal never repeats the token.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	c.csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
		p, err := c.opts.Auth.Verify(r.Context(), token)
		if err != nil {
			reason := "the token is not valid"
			var ae *auth.Error
			if errors.As(err, &ae) {
				reason = ae.Reason // a fixed phrase; never contains the token
			}
			c.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: "Sign-in refused: " + reason + "."})
			return
		}
		if !p.Admin {
			c.render(w, r, http.StatusForbidden, "signin", page{Title: "Sign in", Error: "Sign-in refused: the token does not hold the " + auth.AdminScope + " scope."})
			return
		}
		c.setCookie(w, tokenCookie, token, p.ExpiresAt.Unix())
		c.setCookie(w, csrfCookie, newCSRF(), p.ExpiresAt.Unix())
		http.Redirect(w, r, Prefix+"/subscriptions", http.StatusSeeOther)
	})).ServeHTTP(w, r)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	c.clearCookies(w)
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, expires int64) {
	ck := &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, Secure: !c.opts.InsecureCookies, SameSite: http.SameSiteStrictMode}
	if expires > 0 {
		ck.MaxAge = max(1, int(expires-time.Now().Unix())) // the browser drops it when the token expires
	}
	http.SetCookie(w, ck)
}

func (c *Console) clearCookies(w http.ResponseWriter) {
	for _, n := range []string{tokenCookie, csrfCookie} {
		http.SetCookie(w, &http.Cookie{Name: n, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: !c.opts.InsecureCookies, SameSite: http.SameSiteStrictMode})
	}
}

func newCSRF() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
