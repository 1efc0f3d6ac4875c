package allowlist

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEntry parses arbitrary admin-supplied allow-list prefixes. A
// refusal is an allow-list *URLError and the zero Prefix. What parses is a
// normal form with no query, fragment or user information, printable ASCII,
// that re-parses to itself, that net/url reads the same way, that reads the
// same as an endpoint (so the entry admits exactly the URL an admin wrote),
// and whose origin never admits the other scheme, another port or a sibling
// path.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.org/fhir/",
		"HTTPS://Hooks.Example.ORG:443/fhir/./a/../",
		"http://127.0.0.1:8080/",
		"http://[::ffff:10.0.0.1]/",
		"https://b\u00fccher.example/a%7e/%2e%2e/",
		"https://\uff48\uff4f\uff4f\uff4b\uff53.example.org/",
		"https://h\u043e\u043eks.example.org/",
		"http://2130706433/",
		"http://0x7f.0.0.1/",
		"https://example.com/?x",
		"https://user@example.com/",
		"https://example.com/a%2Fb/",
		"https://example.com./",
		"https://[fe80::1%25eth0]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ParseEntry(raw)
		if err != nil {
			var ue *URLError
			if !errors.As(err, &ue) || !errors.Is(err, ErrInvalidURL) || ue.What != "allow-list prefix" {
				t.Fatalf("error %v is not an allow-list prefix *URLError", err)
			}
			if p != (Prefix{}) {
				t.Fatalf("error %v with non-zero prefix %#v", err, p)
			}
			return
		}
		s := p.String()
		if strings.ContainsAny(s, "?#\\") {
			t.Fatalf("%q normalised to %q", raw, s)
		}
		for i := range len(s) {
			if c := s[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("%q normalised to %q: not printable ASCII", raw, s)
			}
		}
		if !strings.HasPrefix(p.Path(), "/") || strings.Contains(strings.ToUpper(p.Path()), "%2F") {
			t.Fatalf("%q: path %q", raw, p.Path())
		}
		for _, seg := range strings.Split(p.Path(), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q: path %q keeps a dot-segment", raw, p.Path())
			}
		}
		if _, isIP := p.Addr(); !isIP && (endsInNumber(p.Host()) || strings.HasSuffix(p.Host(), ".")) {
			t.Fatalf("%q: host %q", raw, p.Host())
		}

		// The normal form is a fixed point.
		again, err := ParseEntry(s)
		if err != nil || again != p {
			t.Fatalf("%q normalised to %q, which re-parses to %#v, %v", raw, s, again, err)
		}
		// net/url reads it the same way.
		u, err := url.Parse(s)
		if err != nil || u.Scheme != p.Scheme() || u.Hostname() != p.Host() || u.EscapedPath() != p.Path() ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("net/url reads %q as %#v (%v)", s, u, err)
		}
		// The same text as an endpoint has the same origin and path, and the
		// entry admits it.
		e, err := ParseEndpoint(raw)
		if err != nil || e.origin != p.origin || e.path != p.path || e.query != "" {
			t.Fatalf("%q as an endpoint is %#v (%v), as an entry %#v", raw, e, err, p)
		}
		if !p.Matches(e) {
			t.Fatalf("entry %q does not admit its own URL", s)
		}
		// Never the other scheme, another port, or a sibling path.
		other := HTTP
		if p.Scheme() == HTTP {
			other = HTTPS
		}
		otherPort := "1"
		if p.Port() == 1 {
			otherPort = "2"
		}
		candidates := []string{
			other + "://" + net.JoinHostPort(p.Host(), strconv.Itoa(int(p.Port()))) + p.Path(),
			p.Scheme() + "://" + net.JoinHostPort(p.Host(), otherPort) + p.Path(),
		}
		if p.Path() != "/" {
			candidates = append(candidates, p.Scheme()+"://"+p.authority()+strings.TrimSuffix(p.Path(), "/")+"x")
		}
		for _, c := range candidates {
			ce, err := ParseEndpoint(c)
			if err != nil {
				t.Fatalf("%q: candidate %q does not parse: %v", raw, c, err)
			}
			if p.Matches(ce) {
				t.Fatalf("entry %q admits %q", s, ce)
			}
		}
	})
}
