package allowlist

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxURLLength is the longest prefix or endpoint, in bytes, that is accepted.
const MaxURLLength = 4096

// ErrInvalidURL is wrapped by every [ParseEntry] and [ParseEndpoint] error.
var ErrInvalidURL = errors.New("invalid URL")

// URLError is why a prefix or endpoint was refused.
type URLError struct {
	// What is "endpoint" or "allow-list prefix".
	What string
	// Reason is a short phrase meant for API clients, such as
	// "must not contain user information (user@host)".
	Reason string
}

// Error is What and Reason, such as
// "endpoint must not contain user information (user@host)".
func (e *URLError) Error() string { return e.What + " " + e.Reason }

// Unwrap returns [ErrInvalidURL].
func (e *URLError) Unwrap() error { return ErrInvalidURL }

// Scheme names.
const (
	HTTPS = "https"
	HTTP  = "http"
)

// origin is the normalised scheme, host and port shared by both URL kinds.
type origin struct {
	scheme string // "https" or "http"
	host   string // lower-case ASCII host name, dotted IPv4, or IPv6 without brackets
	port   uint16 // always set
	ip     bool   // host is an IP literal
}

// Prefix is a normalised allow-list URL prefix. The zero Prefix is invalid and
// matches nothing; obtain one with [ParseEntry].
type Prefix struct {
	origin
	path string
}

// Endpoint is a normalised Subscription channel endpoint. The zero Endpoint is
// invalid and matches nothing; obtain one with [ParseEndpoint].
type Endpoint struct {
	origin
	path  string
	query string
}

// Scheme is "https" or "http".
func (o origin) Scheme() string { return o.scheme }

// Host is the lower-case ASCII host name (IDNs in punycode), a dotted-decimal
// IPv4 address, or an IPv6 address without brackets.
func (o origin) Host() string { return o.host }

// Port is the port, 443 or 80 when the URL gave none.
func (o origin) Port() uint16 { return o.port }

// Addr is the host as an IP address, when the URL names one literally.
func (o origin) Addr() (netip.Addr, bool) {
	if !o.ip {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(o.host)
	return a, err == nil
}

// HostPort is "host:port" (IPv6 in brackets), always with the port, as a
// dialer wants it.
func (o origin) HostPort() string {
	return net.JoinHostPort(o.host, strconv.Itoa(int(o.port)))
}

// authority is host[:port] with brackets for IPv6 and no default port.
func (o origin) authority() string {
	h := o.host
	if strings.IndexByte(h, ':') >= 0 {
		h = "[" + h + "]"
	}
	if o.port != defaultPort(o.scheme) {
		h += ":" + strconv.Itoa(int(o.port))
	}
	return h
}

func defaultPort(scheme string) uint16 {
	if scheme == HTTP {
		return 80
	}
	return 443
}

// Path is the normalised, percent-encoded path; never empty.
func (p Prefix) Path() string { return p.path }

// String is the normalised prefix, without a default port; parsing it again
// gives the same Prefix.
func (p Prefix) String() string {
	if p.scheme == "" {
		return ""
	}
	return p.scheme + "://" + p.authority() + p.path
}

// Path is the normalised, percent-encoded path; never empty.
func (e Endpoint) Path() string { return e.path }

// Query is the normalised, still percent-encoded query without "?", or "".
func (e Endpoint) Query() string { return e.query }

// String is the normalised endpoint, without a default port; parsing it again
// gives the same Endpoint, and net/url reads it the same way.
func (e Endpoint) String() string {
	if e.scheme == "" {
		return ""
	}
	s := e.scheme + "://" + e.authority() + e.path
	if e.query != "" {
		s += "?" + e.query
	}
	return s
}

// URL is the endpoint as a new *url.URL for an HTTP request; its String and
// EscapedPath reproduce the normalised form exactly.
func (e Endpoint) URL() *url.URL {
	if e.scheme == "" {
		return nil
	}
	u := &url.URL{Scheme: e.scheme, Host: e.authority(), RawQuery: e.query}
	u.Path, _ = url.PathUnescape(e.path) // cannot fail: e.path is validly encoded
	u.RawPath = e.path
	return u
}

// ParseEntry validates and normalises an admin-supplied allow-list URL prefix:
// an absolute http or https URL with a host and no user information, query or
// fragment. See the package documentation for the normalisation rules.
func ParseEntry(urlPrefix string) (Prefix, error) {
	o, path, _, err := parse(urlPrefix, false)
	if err != nil {
		return Prefix{}, err
	}
	return Prefix{origin: o, path: path}, nil
}

// ParseEndpoint validates and normalises a Subscription's channel.endpoint:
// an absolute http or https URL with a host, no user information and no
// fragment; a query is allowed. Whether http is acceptable is decided by
// matching, which admits http endpoints only through http:// entries.
func ParseEndpoint(rawURL string) (Endpoint, error) {
	o, path, query, err := parse(rawURL, true)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{origin: o, path: path, query: query}, nil
}

func parse(raw string, endpoint bool) (o origin, path, query string, err error) {
	what := "allow-list prefix"
	if endpoint {
		what = "endpoint"
	}
	fail := func(reason string) (origin, string, string, error) {
		return origin{}, "", "", &URLError{What: what, Reason: reason}
	}

	if raw == "" {
		return fail("is empty")
	}
	if len(raw) > MaxURLLength {
		return fail("is too long (more than " + strconv.Itoa(MaxURLLength) + " bytes)")
	}
	for i := range len(raw) {
		switch c := raw[i]; {
		case c <= ' ' || c == 0x7f:
			return fail("must not contain spaces or control characters")
		case c == '\\':
			return fail("must not contain backslashes")
		case c == '#':
			return fail("must not contain a fragment (#...)")
		}
	}

	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !validScheme(scheme) {
		return fail("must be an absolute URL such as https://example.com/path")
	}
	scheme = strings.ToLower(scheme)
	if scheme != HTTPS && scheme != HTTP {
		return fail("must use https (or http), not " + strconv.Quote(scheme))
	}

	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, rest := rest[:end], rest[end:]
	if strings.IndexByte(authority, '@') >= 0 {
		return fail("must not contain user information (user@host)")
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	if hasQuery && !endpoint {
		return fail("must not contain a query (?...)")
	}

	o.scheme = scheme
	if reason := parseAuthority(&o, authority); reason != "" {
		return fail(reason)
	}
	if path, err = normalisePath(path); err != nil {
		return fail(err.Error())
	}
	if query, err = normaliseEncoding(query, true); err != nil {
		return fail("query " + err.Error())
	}
	return o, path, query, nil
}

// validScheme is RFC 3986 scheme syntax.
func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// profile is IDNA's lookup profile plus DNS length checks (which also reject
// empty labels).
var profile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
)

// parseAuthority fills o's host and port; it returns a reason on failure.
func parseAuthority(o *origin, authority string) string {
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		i := strings.IndexByte(authority, ']')
		if i < 0 {
			return "has an IPv6 address without its closing ']'"
		}
		host, port = authority[:i+1], authority[i+1:]
		if port != "" {
			if port[0] != ':' {
				return "has unexpected characters after the IPv6 address"
			}
			port = port[1:]
		}
	} else if i := strings.IndexByte(authority, ':'); i >= 0 {
		host, port = authority[:i], authority[i+1:]
	}

	if host == "" {
		return "must have a host"
	}
	o.port = defaultPort(o.scheme)
	if port != "" {
		if len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" {
			return "has an invalid port: it must be a number from 1 to 65535"
		}
		n, _ := strconv.Atoi(port)
		if n < 1 || n > 65535 {
			return "has an invalid port: it must be a number from 1 to 65535"
		}
		o.port = uint16(n)
	}

	if strings.HasPrefix(host, "[") {
		lit := host[1 : len(host)-1]
		if strings.IndexByte(lit, '%') >= 0 {
			return "must not use an IPv6 zone identifier"
		}
		a, err := netip.ParseAddr(lit)
		if err != nil || !a.Is6() {
			return "has an invalid IPv6 address in brackets"
		}
		o.host, o.ip = a.Unmap().String(), true
		return ""
	}
	if strings.IndexByte(host, '%') >= 0 {
		return "host must not be percent-encoded"
	}
	if strings.ContainsAny(host, "[]") {
		return "host must not contain '[' or ']' except around an IPv6 address"
	}
	if !utf8.ValidString(host) {
		// x/net/idna silently turns invalid UTF-8 into U+FFFD.
		return "host is not a valid domain name: invalid UTF-8"
	}
	ascii, err := profile.ToASCII(host)
	if err != nil {
		return "host is not a valid domain name: " + strings.TrimPrefix(err.Error(), "idna: ")
	}
	if ascii == "" || ascii == "." {
		return "must have a host"
	}
	if strings.HasSuffix(ascii, ".") {
		return "host must not end with a dot (write " + strconv.Quote(strings.TrimSuffix(ascii, ".")) + ")"
	}
	if a, err := netip.ParseAddr(ascii); err == nil && a.Is4() {
		o.host, o.ip = a.String(), true
		return ""
	}
	if endsInNumber(ascii) {
		return "host looks like an IPv4 address but is not in dotted-decimal form"
	}
	if len(ascii) > 253 {
		return "host name is too long"
	}
	for i := range len(ascii) {
		if c := ascii[i]; !isLowerAlpha(c) && !isDigit(c) && c != '-' && c != '.' {
			return "host is not a valid domain name"
		}
	}
	o.host = ascii
	return ""
}

// endsInNumber reports whether the last label of host is a decimal or 0x
// hexadecimal number, which WHATWG URL parsers and inet_aton read as IPv4.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.TrimLeft(last, "0123456789") == "" {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.TrimLeft(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return false
}

// normalisePath canonicalises percent-encoding, refuses ambiguous forms and
// resolves dot-segments. The empty path is "/".
func normalisePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	p, err := normaliseEncoding(p, false)
	if err != nil {
		return "", errors.New("path " + err.Error())
	}
	upper := strings.ToUpper(p)
	for _, bad := range []string{"%252E", "%252F", "%255C"} {
		if strings.Contains(upper, bad) {
			return "", errors.New("path must not contain double-encoded dots, slashes or backslashes (" + bad + ")")
		}
	}

	segs := strings.Split(p[1:], "/")
	dots, empty := false, false
	for i, seg := range segs {
		bare := seg
		if j := strings.IndexByte(bare, ';'); j >= 0 {
			bare = bare[:j]
		}
		if j := strings.Index(bare, "%3B"); j >= 0 {
			bare = bare[:j]
		}
		switch {
		case bare == "." || bare == "..":
			if bare != seg {
				return "", errors.New("path must not contain dot-segments with parameters (such as /..;/)")
			}
			dots = true
		case seg == "" && i < len(segs)-1:
			empty = true
		}
	}
	if !dots {
		return p, nil
	}
	if empty {
		return "", errors.New("path must not combine empty segments (//) with dot-segments (. or ..)")
	}
	return removeDotSegments(segs), nil
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path split at
// "/" after its leading slash.
func removeDotSegments(segs []string) string {
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if last {
			out = append(out, "")
		}
	}
	return "/" + strings.Join(out, "/")
}

const upperHex = "0123456789ABCDEF"

// normaliseEncoding decodes percent-encoded unreserved characters, upper-cases
// other percent-encodings and percent-encodes characters that may not appear
// literally (RFC 3986 pchar, plus "/" and, in a query, "?"). In a path, encoded
// slashes and backslashes are refused.
func normaliseEncoding(s string, query bool) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errors.New("has an invalid percent-encoding (% must be followed by two hex digits)")
			}
			d := unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
			switch {
			case isUnreserved(d):
				b.WriteByte(d)
				continue
			case !query && (d == '/' || d == '\\'):
				return "", errors.New("must not contain an encoded slash or backslash (%2F, %5C)")
			}
			c = d
		case isUnreserved(c) || isSubDelim(c) || c == ':' || c == '@' || c == '/' || (query && c == '?'):
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String(), nil
}

func isAlpha(c byte) bool      { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isLowerAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isUnreserved(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func isSubDelim(c byte) bool { return strings.IndexByte("!$&'()*+,;=", c) >= 0 }

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
