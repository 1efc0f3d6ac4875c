package allowlist

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // normalised String(); empty when an error is expected
		err  string // substring of the error
	}{
		// schemes
		{name: "https", in: "https://example.com/hooks", want: "https://example.com/hooks"},
		{name: "http", in: "http://example.com/hooks", want: "http://example.com/hooks"},
		{name: "scheme upper", in: "HTTPS://example.com/hooks", want: "https://example.com/hooks"},
		{name: "scheme mixed", in: "hTtP://example.com/", want: "http://example.com/"},
		{name: "ftp", in: "ftp://example.com/", err: `endpoint must use https (or http), not "ftp"`},
		{name: "httpx", in: "httpx://example.com/", err: "must use https (or http)"},
		{name: "javascript", in: "javascript:alert(1)", err: "must be an absolute URL"},
		{name: "mailto", in: "mailto:a@example.com", err: "must be an absolute URL"},
		{name: "no scheme", in: "example.com/hooks", err: "must be an absolute URL"},
		{name: "scheme relative", in: "//example.com/hooks", err: "must be an absolute URL"},
		{name: "relative path", in: "/hooks", err: "must be an absolute URL"},
		{name: "single slash", in: "https:/example.com/", err: "must be an absolute URL"},
		{name: "opaque", in: "https:example.com", err: "must be an absolute URL"},
		{name: "bad scheme char", in: "ht_tp://example.com/", err: "must be an absolute URL"},
		{name: "scheme starts with digit", in: "1https://example.com/", err: "must be an absolute URL"},
		{name: "empty", in: "", err: "endpoint is empty"},

		// hosts
		{name: "host upper", in: "https://EXAMPLE.Com/x", want: "https://example.com/x"},
		{name: "no host", in: "https:///hooks", err: "must have a host"},
		{name: "no host with port", in: "https://:443/hooks", err: "must have a host"},
		{name: "no host query", in: "https://?x", err: "must have a host"},
		{name: "single label", in: "https://localhost/x", want: "https://localhost/x"},
		{name: "hyphen", in: "https://my-host.example.com/", want: "https://my-host.example.com/"},
		{name: "underscore", in: "https://my_host.example.com/", err: "host is not a valid domain name"},
		{name: "leading hyphen", in: "https://-a.example.com/", err: "host is not a valid domain name"},
		{name: "empty label", in: "https://a..example.com/", err: "host is not a valid domain name"},
		{name: "leading dot", in: "https://.example.com/", err: "host is not a valid domain name"},
		{name: "trailing dot", in: "https://example.com./x", err: `host must not end with a dot (write "example.com")`},
		{name: "only dot", in: "https://./x", err: "host"},
		{name: "ideographic trailing dot", in: "https://example\u3002com\u3002/", err: "host must not end with a dot"},
		{name: "percent host", in: "https://ex%61mple.com/", err: "host must not be percent-encoded"},
		{name: "long label", in: "https://" + strings.Repeat("a", 64) + ".com/", err: "host is not a valid domain name"},
		{name: "63 label", in: "https://" + strings.Repeat("a", 63) + ".com/", want: "https://" + strings.Repeat("a", 63) + ".com/"},
		{name: "long host", in: "https://" + strings.Repeat("abcdefghi.", 26) + "com/", err: "host is not a valid domain name"},
		{name: "bracket in host", in: "https://a[b]/", err: "must not contain '['"},
		{name: "star host", in: "https://*.example.com/", err: "host is not a valid domain name"},
		{name: "host too long input", in: "https://example.com/" + strings.Repeat("a", MaxURLLength), err: "is too long"},

		// IDN
		{name: "idn unicode", in: "https://bücher.example/", want: "https://xn--bcher-kva.example/"},
		{name: "idn upper unicode", in: "https://BÜCHER.example/", want: "https://xn--bcher-kva.example/"},
		{name: "idn punycode upper", in: "https://XN--BCHER-KVA.example/", want: "https://xn--bcher-kva.example/"},
		{name: "idn punycode", in: "https://xn--bcher-kva.example/", want: "https://xn--bcher-kva.example/"},
		{name: "idn sharp s non-transitional", in: "https://faß.de/", want: "https://xn--fa-hia.de/"},
		{name: "fullwidth letters", in: "https://\uff45xample.com/", want: "https://example.com/"},
		{name: "cyrillic lookalike", in: "https://ex\u0430mple.com/", want: "https://xn--exmple-4nf.com/"},
		{name: "invalid punycode", in: "https://xn--zz.example/", err: "host is not a valid domain name"},
		{name: "zero width joiner", in: "https://a\u200db.example/", err: "host is not a valid domain name"},
		{name: "fullwidth solidus", in: "https://a\uff0fb.example/", err: "host is not a valid domain name"},
		{name: "fullwidth colon", in: "https://a\uff1a8443/", err: "host is not a valid domain name"},
		{name: "invalid utf8 host", in: "https://a\xffb.example/", err: "host is not a valid domain name"},

		// IP literals
		{name: "ipv4", in: "https://192.0.2.1/x", want: "https://192.0.2.1/x"},
		{name: "ipv4 port", in: "https://192.0.2.1:8443/x", want: "https://192.0.2.1:8443/x"},
		{name: "ipv4 fullwidth", in: "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", want: "https://127.0.0.1/"},
		{name: "ipv4 short", in: "https://127.1/", err: "host looks like an IPv4 address"},
		{name: "ipv4 integer", in: "https://2130706433/", err: "host looks like an IPv4 address"},
		{name: "ipv4 hex", in: "https://0x7f.0.0.1/", err: "host looks like an IPv4 address"},
		{name: "ipv4 hex label", in: "https://0x7f000001/", err: "host looks like an IPv4 address"},
		{name: "ipv4 octal", in: "https://0177.0.0.1/", err: "host looks like an IPv4 address"},
		{name: "ipv4 leading zero", in: "https://010.0.0.1/", err: "host looks like an IPv4 address"},
		{name: "ipv4 too many", in: "https://1.2.3.4.5/", err: "host looks like an IPv4 address"},
		{name: "ipv4 out of range", in: "https://256.0.0.1/", err: "host looks like an IPv4 address"},
		{name: "numeric tld", in: "https://example.123/", err: "host looks like an IPv4 address"},
		{name: "digits then name", in: "https://1.2.3.4.example.com/", want: "https://1.2.3.4.example.com/"},
		{name: "0x name", in: "https://0xg.example/", want: "https://0xg.example/"},
		{name: "ipv6 loopback", in: "https://[::1]/x", want: "https://[::1]/x"},
		{name: "ipv6 port", in: "https://[::1]:8443/x", want: "https://[::1]:8443/x"},
		{name: "ipv6 default port", in: "https://[::1]:443/x", want: "https://[::1]/x"},
		{name: "ipv6 canonical", in: "https://[2001:DB8:0:0:0:0:0:1]/", want: "https://[2001:db8::1]/"},
		{name: "ipv6 empty port", in: "https://[::1]:/x", want: "https://[::1]/x"},
		{name: "ipv4-mapped", in: "https://[::ffff:10.0.0.1]/", want: "https://10.0.0.1/"},
		{name: "ipv4-mapped hex", in: "https://[::ffff:a00:1]:8443/", want: "https://10.0.0.1:8443/"},
		{name: "ipv4-compatible", in: "https://[::10.0.0.1]/", want: "https://[::a00:1]/"},
		{name: "ipv6 zone", in: "https://[fe80::1%25eth0]/", err: "must not use an IPv6 zone identifier"},
		{name: "ipv6 unclosed", in: "https://[::1/x", err: "without its closing ']'"},
		{name: "ipv6 junk after", in: "https://[::1]x/", err: "unexpected characters after the IPv6 address"},
		{name: "ipv6 invalid", in: "https://[::g]/", err: "invalid IPv6 address"},
		{name: "ipv4 in brackets", in: "https://[127.0.0.1]/", err: "invalid IPv6 address"},
		{name: "ipvfuture", in: "https://[v1.fe]/", err: "invalid IPv6 address"},
		{name: "ipv6 unbracketed", in: "https://::1/", err: "must have a host"},
		{name: "empty brackets", in: "https://[]/", err: "invalid IPv6 address"},

		// ports
		{name: "https default port", in: "https://example.com:443/x", want: "https://example.com/x"},
		{name: "http default port", in: "http://example.com:80/x", want: "http://example.com/x"},
		{name: "https on 80", in: "https://example.com:80/x", want: "https://example.com:80/x"},
		{name: "http on 443", in: "http://example.com:443/x", want: "http://example.com:443/x"},
		{name: "non-default port", in: "https://example.com:8443/x", want: "https://example.com:8443/x"},
		{name: "empty port", in: "https://example.com:/x", want: "https://example.com/x"},
		{name: "leading zero port", in: "https://example.com:08443/x", want: "https://example.com:8443/x"},
		{name: "max port", in: "https://example.com:65535/", want: "https://example.com:65535/"},
		{name: "port 0", in: "https://example.com:0/", err: "invalid port"},
		{name: "port too big", in: "https://example.com:65536/", err: "invalid port"},
		{name: "port six digits", in: "https://example.com:000443/", err: "invalid port"},
		{name: "port letters", in: "https://example.com:https/", err: "invalid port"},
		{name: "port sign", in: "https://example.com:+443/", err: "invalid port"},
		{name: "two ports", in: "https://example.com:443:443/", err: "invalid port"},

		// user information: never echoed
		{name: "userinfo", in: "https://user@example.com/", err: "endpoint must not contain user information (user@host)"},
		{name: "userinfo password", in: "https://user:hunter2@example.com/", err: "must not contain user information"},
		{name: "empty userinfo", in: "https://@example.com/", err: "must not contain user information"},
		{name: "userinfo trick", in: "https://allowed.example@evil.example/", err: "must not contain user information"},
		{name: "at in path ok", in: "https://example.com/a@b", want: "https://example.com/a@b"},
		{name: "at in query ok", in: "https://example.com/?u=a@b", want: "https://example.com/?u=a@b"},

		// fragments and forbidden characters
		{name: "fragment", in: "https://example.com/x#y", err: "must not contain a fragment"},
		{name: "empty fragment", in: "https://example.com/x#", err: "must not contain a fragment"},
		{name: "space", in: "https://example.com/a b", err: "must not contain spaces or control characters"},
		{name: "tab", in: "https://example.com/a\tb", err: "must not contain spaces or control characters"},
		{name: "newline host", in: "https://exa\nmple.com/", err: "must not contain spaces or control characters"},
		{name: "nul", in: "https://example.com/\x00", err: "must not contain spaces or control characters"},
		{name: "del", in: "https://example.com/\x7f", err: "must not contain spaces or control characters"},
		{name: "leading space", in: " https://example.com/", err: "must not contain spaces or control characters"},
		{name: "backslash path", in: "https://example.com/a\\b", err: "must not contain backslashes"},
		{name: "backslash authority", in: "https://evil.example\\@good.example/", err: "must not contain backslashes"},

		// paths
		{name: "empty path", in: "https://example.com", want: "https://example.com/"},
		{name: "empty path query", in: "https://example.com?x=1", want: "https://example.com/?x=1"},
		{name: "dot segments", in: "https://example.com/a/./b/../c", want: "https://example.com/a/c"},
		{name: "dot end", in: "https://example.com/a/.", want: "https://example.com/a/"},
		{name: "dotdot end", in: "https://example.com/a/b/..", want: "https://example.com/a/"},
		{name: "dotdot above root", in: "https://example.com/../../a", want: "https://example.com/a"},
		{name: "only dotdot", in: "https://example.com/..", want: "https://example.com/"},
		{name: "encoded dotdot", in: "https://example.com/hooks/%2e%2e/admin", want: "https://example.com/admin"},
		{name: "encoded dotdot upper", in: "https://example.com/hooks/%2E%2E/admin", want: "https://example.com/admin"},
		{name: "half encoded dotdot", in: "https://example.com/hooks/.%2e/admin", want: "https://example.com/admin"},
		{name: "encoded dot", in: "https://example.com/hooks/%2e/a", want: "https://example.com/hooks/a"},
		{name: "triple dot is a name", in: "https://example.com/a/.../b", want: "https://example.com/a/.../b"},
		{name: "dotfile", in: "https://example.com/a/.well-known/x", want: "https://example.com/a/.well-known/x"},
		{name: "unreserved decoded", in: "https://example.com/%7e%41%2D%5F%30", want: "https://example.com/~A-_0"},
		{name: "reserved kept upper", in: "https://example.com/a%3fb%3Bc%40", want: "https://example.com/a%3Fb%3Bc%40"},
		{name: "percent kept", in: "https://example.com/100%25", want: "https://example.com/100%25"},
		{name: "sub-delims kept", in: "https://example.com/a!$&'()*+,;=:@b", want: "https://example.com/a!$&'()*+,;=:@b"},
		{name: "non-ascii encoded", in: "https://example.com/ü", want: "https://example.com/%C3%BC"},
		{name: "unsafe encoded", in: "https://example.com/<x>\"{|}^`[]", want: "https://example.com/%3Cx%3E%22%7B%7C%7D%5E%60%5B%5D"},
		{name: "invalid utf8 path", in: "https://example.com/\xff", want: "https://example.com/%FF"},
		{name: "double slash kept", in: "https://example.com/a//b", want: "https://example.com/a//b"},
		{name: "trailing slash kept", in: "https://example.com/a/", want: "https://example.com/a/"},
		{name: "case kept", in: "https://example.com/Hooks", want: "https://example.com/Hooks"},
		{name: "semicolon segment", in: "https://example.com/a;v=1/b", want: "https://example.com/a;v=1/b"},
		{name: "bad escape", in: "https://example.com/%zz", err: "endpoint path has an invalid percent-encoding"},
		{name: "truncated escape", in: "https://example.com/%4", err: "path has an invalid percent-encoding"},
		{name: "lone percent", in: "https://example.com/%", err: "path has an invalid percent-encoding"},
		{name: "encoded slash", in: "https://example.com/hooks%2F..%2Fadmin", err: "must not contain an encoded slash or backslash"},
		{name: "encoded slash lower", in: "https://example.com/a%2fb", err: "must not contain an encoded slash"},
		{name: "encoded backslash", in: "https://example.com/a%5cb", err: "must not contain an encoded slash or backslash"},
		{name: "double encoded dot", in: "https://example.com/a/%252e%252e/b", err: "double-encoded"},
		{name: "double encoded dot lower", in: "https://example.com/a/%252E", err: "double-encoded"},
		{name: "double encoded slash", in: "https://example.com/a%252fb", err: "double-encoded"},
		{name: "double encoded backslash", in: "https://example.com/a%255Cb", err: "double-encoded"},
		{name: "dotdot params", in: "https://example.com/hooks/..;/admin", err: "dot-segments with parameters"},
		{name: "dot params", in: "https://example.com/hooks/.;x/admin", err: "dot-segments with parameters"},
		{name: "dotdot encoded semicolon", in: "https://example.com/hooks/..%3b/admin", err: "dot-segments with parameters"},
		{name: "encoded dotdot params", in: "https://example.com/hooks/%2e%2e;/admin", err: "dot-segments with parameters"},
		{name: "empty and dot segments", in: "https://example.com/hooks//../admin", err: "must not combine empty segments"},
		{name: "empty then dot", in: "https://example.com//./a", err: "must not combine empty segments"},

		// queries
		{name: "query kept", in: "https://example.com/h?token=abc&x=1", want: "https://example.com/h?token=abc&x=1"},
		{name: "empty query dropped", in: "https://example.com/h?", want: "https://example.com/h"},
		{name: "query unreserved decoded", in: "https://example.com/h?a=%7e%41", want: "https://example.com/h?a=~A"},
		{name: "query reserved upper", in: "https://example.com/h?a=%2f%3d", want: "https://example.com/h?a=%2F%3D"},
		{name: "query slash question ok", in: "https://example.com/h?a=/b?c", want: "https://example.com/h?a=/b?c"},
		{name: "query unsafe encoded", in: "https://example.com/h?a=<ü>", want: "https://example.com/h?a=%3C%C3%BC%3E"},
		{name: "query dot segments untouched", in: "https://example.com/h?a=/../b", want: "https://example.com/h?a=/../b"},
		{name: "query bad escape", in: "https://example.com/h?a=%zz", err: "endpoint query has an invalid percent-encoding"},
		{name: "query plus", in: "https://example.com/h?a=b+c", want: "https://example.com/h?a=b+c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseEndpoint(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				require.ErrorContains(t, err, tt.err)
				require.ErrorIs(t, err, ErrInvalidURL)
				var ue *URLError
				require.ErrorAs(t, err, &ue)
				require.Equal(t, "endpoint", ue.What)
				require.Equal(t, Endpoint{}, got)
				require.NotContains(t, err.Error(), "hunter2")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.String())
			again, err := ParseEndpoint(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
			requireNetURLAgrees(t, got)
		})
	}
}

// requireNetURLAgrees checks that net/url, which the HTTP client uses, reads
// the normalised endpoint exactly as we do.
func requireNetURLAgrees(t *testing.T, e Endpoint) {
	t.Helper()
	u, err := url.Parse(e.String())
	require.NoError(t, err)
	require.Equal(t, e.Scheme(), u.Scheme)
	require.Equal(t, e.Host(), u.Hostname())
	require.Equal(t, e.Path(), u.EscapedPath())
	require.Equal(t, e.Query(), u.RawQuery)
	require.Nil(t, u.User)
	require.Empty(t, u.Fragment)
	if p := u.Port(); p != "" {
		require.Equal(t, e.HostPort(), u.Host)
	}
	built := e.URL()
	require.Equal(t, e.String(), built.String())
	require.Equal(t, e.Path(), built.EscapedPath())
	require.Equal(t, e.Host(), built.Hostname())
}

func TestEndpointAccessors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		scheme   string
		host     string
		port     uint16
		path     string
		query    string
		hostPort string
		addr     string // "" when not an IP literal
	}{
		{in: "https://Example.com/a?b=c", scheme: "https", host: "example.com", port: 443, path: "/a", query: "b=c", hostPort: "example.com:443"},
		{in: "http://example.com", scheme: "http", host: "example.com", port: 80, path: "/", hostPort: "example.com:80"},
		{in: "https://example.com:8443/", scheme: "https", host: "example.com", port: 8443, path: "/", hostPort: "example.com:8443"},
		{in: "https://[::1]:8443/x", scheme: "https", host: "::1", port: 8443, path: "/x", hostPort: "[::1]:8443", addr: "::1"},
		{in: "http://10.1.2.3/x", scheme: "http", host: "10.1.2.3", port: 80, path: "/x", hostPort: "10.1.2.3:80", addr: "10.1.2.3"},
		{in: "https://[::ffff:169.254.169.254]/", scheme: "https", host: "169.254.169.254", port: 443, path: "/", hostPort: "169.254.169.254:443", addr: "169.254.169.254"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := ParseEndpoint(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.scheme, e.Scheme())
			require.Equal(t, tt.host, e.Host())
			require.Equal(t, tt.port, e.Port())
			require.Equal(t, tt.path, e.Path())
			require.Equal(t, tt.query, e.Query())
			require.Equal(t, tt.hostPort, e.HostPort())
			a, ok := e.Addr()
			if tt.addr == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, netip.MustParseAddr(tt.addr), a)
		})
	}
}

func TestZeroValues(t *testing.T) {
	t.Parallel()
	require.Empty(t, Endpoint{}.String())
	require.Empty(t, Prefix{}.String())
	require.Nil(t, Endpoint{}.URL())
	_, ok := Endpoint{}.Addr()
	require.False(t, ok)
	require.False(t, Prefix{}.Matches(Endpoint{}))
	e, err := ParseEndpoint("https://example.com/")
	require.NoError(t, err)
	require.False(t, Prefix{}.Matches(e))
	p, err := ParseEntry("https://example.com/")
	require.NoError(t, err)
	require.False(t, p.Matches(Endpoint{}))
}

func TestParseEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
		path string
		err  string
	}{
		{name: "https", in: "https://example.com/hooks", want: "https://example.com/hooks", path: "/hooks"},
		{name: "http", in: "http://example.com/hooks/", want: "http://example.com/hooks/", path: "/hooks/"},
		{name: "empty path", in: "https://example.com", want: "https://example.com/", path: "/"},
		{name: "case", in: "HTTPS://EXAMPLE.COM:443/Hooks", want: "https://example.com/Hooks", path: "/Hooks"},
		{name: "dot segments", in: "https://example.com/a/./b/../c", want: "https://example.com/a/c", path: "/a/c"},
		{name: "idn", in: "https://bücher.example/x", want: "https://xn--bcher-kva.example/x", path: "/x"},
		{name: "port", in: "https://example.com:8443", want: "https://example.com:8443/", path: "/"},
		{name: "ipv6", in: "http://[::1]:9000/h", want: "http://[::1]:9000/h", path: "/h"},
		{name: "query", in: "https://example.com/hooks?x=1", err: "allow-list prefix must not contain a query"},
		{name: "empty query", in: "https://example.com/hooks?", err: "must not contain a query"},
		{name: "fragment", in: "https://example.com/hooks#x", err: "allow-list prefix must not contain a fragment"},
		{name: "userinfo", in: "https://admin:pw@example.com/", err: "allow-list prefix must not contain user information"},
		{name: "encoded slash", in: "https://example.com/a%2Fb", err: "encoded slash"},
		{name: "backslash", in: "https://example.com\\hooks", err: "must not contain backslashes"},
		{name: "no host", in: "https:///x", err: "must have a host"},
		{name: "relative", in: "example.com/hooks", err: "must be an absolute URL"},
		{name: "scheme", in: "wss://example.com/", err: "must use https (or http)"},
		{name: "trailing dot", in: "https://example.com./", err: "must not end with a dot"},
		{name: "empty", in: "", err: "allow-list prefix is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseEntry(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.ErrorIs(t, err, ErrInvalidURL)
				require.NotContains(t, err.Error(), "pw@")
				require.Equal(t, Prefix{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.String())
			require.Equal(t, tt.path, got.Path())
			again, err := ParseEntry(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestURLErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := ParseEndpoint("https://alice:s3cret@example.com/")
	require.EqualError(t, err, "endpoint must not contain user information (user@host)")
	require.NotContains(t, err.Error(), "s3cret")
	require.NotContains(t, err.Error(), "alice")
	require.True(t, errors.Is(err, ErrInvalidURL))
}
