package allowlist

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds live in testdata/fuzz/<Target>/; these few keep the targets useful
// when run without the directory.
var fuzzSeeds = []string{
	"https://example.com/hooks",
	"HTTPS://User@Bücher.example:0443/a/./b/../%2e%2E/c?x=%7e#f",
	"http://[::ffff:127.0.0.1]:80/hooks/..;/admin",
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := ParseEndpoint(raw)
		if err != nil {
			var ue *URLError
			if !errors.As(err, &ue) || !errors.Is(err, ErrInvalidURL) || ue.What != "endpoint" {
				t.Fatalf("error %v is not an endpoint *URLError", err)
			}
			if e != (Endpoint{}) {
				t.Fatalf("error %v with non-zero endpoint %#v", err, e)
			}
			return
		}
		checkEndpointInvariants(t, raw, e)

		// String re-parses to the same value.
		s := e.String()
		again, err := ParseEndpoint(s)
		if err != nil {
			t.Fatalf("%q normalised to %q, which does not parse: %v", raw, s, err)
		}
		if again != e {
			t.Fatalf("%q normalised to %q, which re-parses to %#v, not %#v", raw, s, again, e)
		}

		// net/url, which the HTTP client uses, agrees with the normal form.
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("net/url cannot parse %q: %v", s, err)
		}
		if u.Scheme != e.Scheme() || u.Hostname() != e.Host() || u.EscapedPath() != e.Path() ||
			u.RawQuery != e.Query() || u.User != nil || u.Fragment != "" {
			t.Fatalf("net/url reads %q as %#v", s, u)
		}
		if built := e.URL(); built.String() != s || built.EscapedPath() != e.Path() {
			t.Fatalf("URL() of %q is %q", s, built.String())
		}

		// Matching is consistent with normalisation: the endpoint's own origin
		// and path, as a prefix (whether written raw or normalised), admit it;
		// the origin's root admits it; a sibling path does not.
		base := e.Scheme() + "://" + e.authority()
		for _, prefix := range []string{base + e.Path(), base + "/", strings.TrimSuffix(s, "?"+e.Query())} {
			p, err := ParseEntry(prefix)
			if err != nil {
				t.Fatalf("prefix %q from %q does not parse: %v", prefix, s, err)
			}
			if !p.Matches(e) {
				t.Fatalf("prefix %q does not match its own endpoint %q", prefix, s)
			}
			if _, ok, err := Match([]Entry{{ID: "x", URLPrefix: prefix}}, raw); err != nil || !ok {
				t.Fatalf("Match(%q, %q) = %v, %v", prefix, raw, ok, err)
			}
		}
		if p, err := ParseEntry(base + e.Path() + "x"); err == nil && p.Matches(e) {
			t.Fatalf("prefix %q matches shorter endpoint %q", p, s)
		}
		// The raw input without its query, as an entry, is the same prefix.
		rawNoQuery, _, _ := strings.Cut(raw, "?")
		if p, err := ParseEntry(rawNoQuery); err != nil || p.path != e.path || p.origin != e.origin {
			t.Fatalf("entry %q normalises to %q (%v), endpoint to %q", rawNoQuery, p, err, s)
		}
		// The other scheme never matches.
		other := HTTP
		if e.Scheme() == HTTP {
			other = HTTPS
		}
		if p, err := ParseEntry(other + "://" + e.HostPort() + e.Path()); err == nil && p.Matches(e) {
			t.Fatalf("%s prefix %q matches %q", other, p, s)
		}
	})
}

func checkEndpointInvariants(t *testing.T, raw string, e Endpoint) {
	t.Helper()
	if e.Scheme() != HTTPS && e.Scheme() != HTTP {
		t.Fatalf("%q: scheme %q", raw, e.Scheme())
	}
	if e.Host() == "" || e.Port() == 0 {
		t.Fatalf("%q: host %q port %d", raw, e.Host(), e.Port())
	}
	if _, isIP := e.Addr(); !isIP {
		for i := range len(e.Host()) {
			if c := e.Host()[i]; !isLowerAlpha(c) && !isDigit(c) && c != '-' && c != '.' {
				t.Fatalf("%q: host %q has %q", raw, e.Host(), c)
			}
		}
		if strings.HasSuffix(e.Host(), ".") || endsInNumber(e.Host()) {
			t.Fatalf("%q: host %q", raw, e.Host())
		}
	}
	if !strings.HasPrefix(e.Path(), "/") {
		t.Fatalf("%q: path %q", raw, e.Path())
	}
	for _, seg := range strings.Split(e.Path(), "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("%q: path %q keeps a dot-segment", raw, e.Path())
		}
	}
	if strings.Contains(strings.ToUpper(e.Path()), "%2F") || strings.Contains(strings.ToUpper(e.Path()), "%5C") {
		t.Fatalf("%q: path %q has an encoded slash", raw, e.Path())
	}
	if s := e.String(); !utf8.ValidString(s) || strings.ContainsAny(s, "\\#") {
		t.Fatalf("%q: normalised %q has forbidden characters", raw, s)
	}
	for i := range len(e.String()) {
		if c := e.String()[i]; c <= ' ' || c >= 0x7f {
			t.Fatalf("%q: normalised %q is not printable ASCII", raw, e.String())
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("https://example.com/hooks", "https://EXAMPLE.com:443/hooks/%2e%2e/hooks/a")
	f.Add("http://[::1]:9000/", "http://[0::1]:9000/x?y")
	f.Add("https://bücher.example/a/", "https://xn--bcher-kva.example/a")
	f.Fuzz(func(t *testing.T, prefix, endpoint string) {
		got, ok, err := Match([]Entry{{ID: "x", URLPrefix: prefix}}, endpoint)
		e, eerr := ParseEndpoint(endpoint)
		if (err == nil) != (eerr == nil) {
			t.Fatalf("Match error %v, ParseEndpoint error %v", err, eerr)
		}
		p, perr := ParseEntry(prefix)
		if err != nil || perr != nil {
			if ok || got != (Entry{}) {
				t.Fatalf("match with invalid input: %v %v", err, perr)
			}
			return
		}
		if ok != p.Matches(e) || ok != (got.ID == "x") {
			t.Fatalf("Match = %v, Matches = %v", ok, p.Matches(e))
		}
		// Matching depends only on the normal forms.
		p2, err := ParseEntry(p.String())
		if err != nil || p2 != p {
			t.Fatalf("prefix %q re-parses to %q, %v", p, p2, err)
		}
		e2, err := ParseEndpoint(e.String())
		if err != nil || e2 != e {
			t.Fatalf("endpoint %q re-parses to %q, %v", e, e2, err)
		}
		if p2.Matches(e2) != ok {
			t.Fatalf("normal forms %q, %q match %v, raw %v", p2, e2, p2.Matches(e2), ok)
		}
		if !ok {
			return
		}
		// A match means same origin and a prefix on a segment boundary.
		if p.origin != e.origin || !strings.HasPrefix(e.path, p.path) {
			t.Fatalf("%q matches %q", p, e)
		}
		if rest := e.path[len(p.path):]; rest != "" && !strings.HasSuffix(p.path, "/") && rest[0] != '/' {
			t.Fatalf("%q matches %q off a segment boundary", p, e)
		}
	})
}
