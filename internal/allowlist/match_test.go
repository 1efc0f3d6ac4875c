package allowlist

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		prefix   string
		endpoint string
		match    bool
	}{
		// scheme
		{name: "same", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks", match: true},
		{name: "scheme case", prefix: "HTTPS://example.com/hooks", endpoint: "hTTps://example.com/hooks", match: true},
		{name: "https entry refuses http", prefix: "https://example.com/hooks", endpoint: "http://example.com/hooks", match: false},
		{name: "http entry refuses https", prefix: "http://example.com/hooks", endpoint: "https://example.com/hooks", match: false},
		{name: "http entry admits http", prefix: "http://example.com/hooks", endpoint: "http://example.com/hooks/a", match: true},
		{name: "http on 443 vs https", prefix: "https://example.com/", endpoint: "http://example.com:443/", match: false},

		// host
		{name: "host case", prefix: "https://Example.COM/hooks", endpoint: "https://EXAMPLE.com/hooks", match: true},
		{name: "other host", prefix: "https://example.com/", endpoint: "https://example.org/", match: false},
		{name: "subdomain", prefix: "https://example.com/", endpoint: "https://a.example.com/", match: false},
		{name: "parent domain", prefix: "https://a.example.com/", endpoint: "https://example.com/", match: false},
		{name: "suffix trick", prefix: "https://example.com/", endpoint: "https://evilexample.com/", match: false},
		{name: "prefix host trick", prefix: "https://example.com/", endpoint: "https://example.com.evil.example/", match: false},
		{name: "idn unicode entry", prefix: "https://bücher.example/", endpoint: "https://xn--bcher-kva.example/x", match: true},
		{name: "idn punycode entry", prefix: "https://xn--bcher-kva.example/", endpoint: "https://bücher.example/x", match: true},
		{name: "idn case", prefix: "https://BÜCHER.example/", endpoint: "https://bücher.EXAMPLE/", match: true},
		{name: "fullwidth maps", prefix: "https://example.com/", endpoint: "https://\uff45xample.com/", match: true},
		{name: "cyrillic a lookalike", prefix: "https://example.com/", endpoint: "https://ex\u0430mple.com/", match: false},
		{name: "cyrillic e lookalike", prefix: "https://example.com/", endpoint: "https://\u0435xample.com/", match: false},
		{name: "greek omicron lookalike", prefix: "https://google.com/", endpoint: "https://g\u03bfogle.com/", match: false},
		{name: "lookalike entry vs ascii", prefix: "https://ex\u0430mple.com/", endpoint: "https://example.com/", match: false},
		{name: "sharp s not ss", prefix: "https://fass.de/", endpoint: "https://faß.de/", match: false},

		// ports
		{name: "default https port", prefix: "https://example.com:443/x", endpoint: "https://example.com/x", match: true},
		{name: "default https port endpoint", prefix: "https://example.com/x", endpoint: "https://example.com:443/x", match: true},
		{name: "default http port", prefix: "http://example.com/x", endpoint: "http://example.com:80/x", match: true},
		{name: "non-default port equal", prefix: "https://example.com:8443/x", endpoint: "https://example.com:8443/x/y", match: true},
		{name: "non-default port vs default", prefix: "https://example.com/x", endpoint: "https://example.com:8443/x", match: false},
		{name: "default vs non-default port", prefix: "https://example.com:8443/x", endpoint: "https://example.com/x", match: false},
		{name: "other port", prefix: "https://example.com:8443/", endpoint: "https://example.com:8444/", match: false},
		{name: "leading zero port", prefix: "https://example.com:8443/", endpoint: "https://example.com:08443/", match: true},

		// segment boundaries
		{name: "exact", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks", match: true},
		{name: "child slash", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks/", match: true},
		{name: "child", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks/a", match: true},
		{name: "grandchild", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks/a/b", match: true},
		{name: "not segment", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooksx", match: false},
		{name: "not segment dash", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks-admin", match: false},
		{name: "not segment semicolon", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks;x", match: false},
		{name: "not segment encoded", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks%3F", match: false},
		{name: "query on exact", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks?x=1", match: true},
		{name: "query with slash", prefix: "https://example.com/hooks/a", endpoint: "https://example.com/hooks?/a", match: false},
		{name: "slash prefix child", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/a", match: true},
		{name: "slash prefix exact", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/", match: true},
		{name: "slash prefix parent", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks", match: false},
		{name: "slash prefix query", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks?/", match: false},
		{name: "root prefix", prefix: "https://example.com/", endpoint: "https://example.com/anything/at/all?q", match: true},
		{name: "root prefix empty path", prefix: "https://example.com", endpoint: "https://example.com", match: true},
		{name: "empty path entry", prefix: "https://example.com", endpoint: "https://example.com/x", match: true},
		{name: "shorter endpoint", prefix: "https://example.com/hooks/a", endpoint: "https://example.com/hooks", match: false},
		{name: "path case", prefix: "https://example.com/hooks", endpoint: "https://example.com/Hooks", match: false},
		{name: "double slash child", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks//a", match: true},

		// dot-segments and encodings
		{name: "dot segments inside", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/a/../b", match: true},
		{name: "dotdot escape", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/../admin", match: false},
		{name: "encoded dotdot escape", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/%2e%2e/admin", match: false},
		{name: "encoded dotdot escape upper", prefix: "https://example.com/hooks/", endpoint: "https://example.com/hooks/%2E%2E/admin", match: false},
		{name: "mixed encoded dotdot escape", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks/.%2E/admin", match: false},
		{name: "dotdot back in", prefix: "https://example.com/hooks/", endpoint: "https://example.com/x/../hooks/a", match: true},
		{name: "dot segment in entry", prefix: "https://example.com/x/../hooks", endpoint: "https://example.com/hooks/a", match: true},
		{name: "dotdot to hooksx", prefix: "https://example.com/hooks", endpoint: "https://example.com/hooks/../hooksx", match: false},
		{name: "encoded unreserved in endpoint", prefix: "https://example.com/hooks", endpoint: "https://example.com/%68ooks/a", match: true},
		{name: "encoded unreserved in entry", prefix: "https://example.com/%68%6F%6Fks", endpoint: "https://example.com/hooks", match: true},
		{name: "hex case", prefix: "https://example.com/a%3a", endpoint: "https://example.com/a%3A/b", match: true},
		{name: "reserved vs literal differ", prefix: "https://example.com/a%21", endpoint: "https://example.com/a!", match: false},
		{name: "non-ascii path", prefix: "https://example.com/ü", endpoint: "https://example.com/%C3%BC/x", match: true},

		// IP literals
		{name: "ipv4", prefix: "https://192.0.2.10/", endpoint: "https://192.0.2.10/x", match: true},
		{name: "ipv4 other", prefix: "https://192.0.2.10/", endpoint: "https://192.0.2.11/x", match: false},
		{name: "ipv6", prefix: "https://[2001:db8::1]/", endpoint: "https://[2001:0DB8:0::1]/x", match: true},
		{name: "ipv6 loopback", prefix: "http://[::1]:9000/", endpoint: "http://[0:0:0:0:0:0:0:1]:9000/h", match: true},
		{name: "ipv6 vs ipv4 loopback", prefix: "http://[::1]/", endpoint: "http://127.0.0.1/", match: false},
		{name: "mapped endpoint", prefix: "https://10.0.0.1/", endpoint: "https://[::ffff:10.0.0.1]/", match: true},
		{name: "mapped entry", prefix: "https://[::ffff:10.0.0.1]/", endpoint: "https://10.0.0.1/", match: true},
		{name: "ip vs name", prefix: "http://127.0.0.1/", endpoint: "http://localhost/", match: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries := []Entry{{ID: "e1", URLPrefix: tt.prefix}}
			got, ok, err := Match(entries, tt.endpoint)
			require.NoError(t, err)
			require.Equal(t, tt.match, ok)
			if tt.match {
				require.Equal(t, entries[0], got)
			} else {
				require.Equal(t, Entry{}, got)
			}

			p, err := ParseEntry(tt.prefix)
			require.NoError(t, err)
			e, err := ParseEndpoint(tt.endpoint)
			require.NoError(t, err)
			require.Equal(t, tt.match, p.Matches(e))
		})
	}
}

func TestMatchInvalidEndpoint(t *testing.T) {
	t.Parallel()
	entries := []Entry{{ID: "all", URLPrefix: "https://example.com/"}}
	tests := []struct {
		endpoint string
		err      string
	}{
		{endpoint: "https://user@example.com/", err: "must not contain user information"},
		{endpoint: "https://example.com/#x", err: "must not contain a fragment"},
		{endpoint: "example.com/", err: "must be an absolute URL"},
		{endpoint: "https://example.com./", err: "must not end with a dot"},
		{endpoint: "", err: "endpoint is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Match(entries, tt.endpoint)
			require.ErrorContains(t, err, tt.err)
			require.ErrorIs(t, err, ErrInvalidURL)
			require.False(t, ok)
			require.Equal(t, Entry{}, got)
		})
	}
}

func TestMatchLongestPrefix(t *testing.T) {
	t.Parallel()
	entries := []Entry{
		{ID: "root", URLPrefix: "https://example.com/", AllowPrivateNetwork: true, Note: "whole host"},
		{ID: "hooks", URLPrefix: "https://example.com/hooks"},
		{ID: "hooks-a", URLPrefix: "https://example.com/hooks/a/", AllowPrivateNetwork: true},
		{ID: "other-port", URLPrefix: "https://example.com:8443/hooks/a/b"},
		{ID: "http", URLPrefix: "http://example.com/hooks/a/b/c"},
		{ID: "bad", URLPrefix: "https://user@example.com/hooks/a/b/c"},
	}
	tests := []struct {
		endpoint string
		want     string // entry ID, "" for no match
	}{
		{endpoint: "https://example.com/", want: "root"},
		{endpoint: "https://example.com/x", want: "root"},
		{endpoint: "https://example.com/hooksx", want: "root"},
		{endpoint: "https://example.com/hooks", want: "hooks"},
		{endpoint: "https://example.com/hooks/", want: "hooks"},
		{endpoint: "https://example.com/hooks/a", want: "hooks"},
		{endpoint: "https://example.com/hooks/a/", want: "hooks-a"},
		{endpoint: "https://example.com/hooks/a/b/c", want: "hooks-a"},
		{endpoint: "https://example.com/hooks/a/%2e%2e/b", want: "hooks"},
		{endpoint: "https://example.com:443/hooks/a/b", want: "hooks-a"},
		{endpoint: "https://example.com:8443/hooks/a/b", want: "other-port"},
		{endpoint: "https://example.com:8443/hooks/a", want: ""},
		{endpoint: "http://example.com/hooks/a/b/c/d", want: "http"},
		{endpoint: "http://example.com/hooks", want: ""},
		{endpoint: "https://other.example/hooks", want: ""},
	}
	list, err := Compile(entries)
	require.Error(t, err)
	require.Equal(t, 5, list.Len())
	byID := map[string]Entry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Match(entries, tt.endpoint)
			require.NoError(t, err)
			got2, ok2, err := list.MatchURL(tt.endpoint)
			require.NoError(t, err)
			require.Equal(t, got, got2)
			require.Equal(t, ok, ok2)
			if tt.want == "" {
				require.False(t, ok)
				require.Equal(t, Entry{}, got)
				return
			}
			require.True(t, ok)
			require.Equal(t, byID[tt.want], got)
		})
	}
}

func TestMatchOrderIndependent(t *testing.T) {
	t.Parallel()
	a := Entry{ID: "a", URLPrefix: "https://example.com/", AllowPrivateNetwork: true}
	b := Entry{ID: "b", URLPrefix: "https://example.com/hooks/"}
	for _, entries := range [][]Entry{{a, b}, {b, a}} {
		got, ok, err := Match(entries, "https://example.com/hooks/x")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, b, got)
		require.False(t, got.AllowPrivateNetwork)
	}
}

func TestMatchTieFailsClosed(t *testing.T) {
	t.Parallel()
	private := Entry{ID: "private", URLPrefix: "https://example.com/hooks", AllowPrivateNetwork: true}
	public1 := Entry{ID: "public1", URLPrefix: "HTTPS://EXAMPLE.COM:443/hooks"}
	public2 := Entry{ID: "public2", URLPrefix: "https://example.com/./hooks"}
	private2 := Entry{ID: "private2", URLPrefix: "https://example.com/hooks", AllowPrivateNetwork: true}
	tests := []struct {
		name    string
		entries []Entry
		want    Entry
	}{
		{name: "private first", entries: []Entry{private, public1}, want: public1},
		{name: "public first", entries: []Entry{public1, private}, want: public1},
		{name: "two public keep first", entries: []Entry{private, public2, public1}, want: public2},
		{name: "two private keep first", entries: []Entry{private2, private}, want: private2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Match(tt.entries, "https://example.com/hooks/x")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMatchEmpty(t *testing.T) {
	t.Parallel()
	for _, entries := range [][]Entry{nil, {}} {
		got, ok, err := Match(entries, "https://example.com/")
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, Entry{}, got)
	}
	l, err := Compile(nil)
	require.NoError(t, err)
	require.NotNil(t, l)
	require.Zero(t, l.Len())

	var nilList *List
	require.Zero(t, nilList.Len())
	e, err := ParseEndpoint("https://example.com/")
	require.NoError(t, err)
	_, ok := nilList.Match(e)
	require.False(t, ok)
	_, ok, err = nilList.MatchURL("https://example.com/")
	require.NoError(t, err)
	require.False(t, ok)

	// The zero Endpoint matches nothing, even a root entry.
	l, err = Compile([]Entry{{ID: "root", URLPrefix: "https://example.com/"}})
	require.NoError(t, err)
	_, ok = l.Match(Endpoint{})
	require.False(t, ok)
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	l, err := Compile([]Entry{
		{ID: "ok", URLPrefix: "https://example.com/"},
		{ID: "query", URLPrefix: "https://example.com/?x"},
		{ID: "creds", URLPrefix: "https://u:secretpw@example.com/"},
	})
	require.NotNil(t, l)
	require.Equal(t, 1, l.Len())
	require.ErrorIs(t, err, ErrInvalidURL)
	require.ErrorContains(t, err, "allow-list entry query: allow-list prefix must not contain a query")
	require.ErrorContains(t, err, "allow-list entry creds: allow-list prefix must not contain user information")
	require.NotContains(t, err.Error(), "secretpw")
	var ee *EntryError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, "query", ee.ID)

	// An invalid entry never matches, and does not stop valid ones.
	got, ok, err := Match([]Entry{{ID: "bad", URLPrefix: "https://example.com/#x"}, {ID: "good", URLPrefix: "https://example.com/h"}}, "https://example.com/h")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "good", got.ID)
	_, ok, err = Match([]Entry{{ID: "bad", URLPrefix: "example.com"}}, "https://example.com/")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestListConcurrent(t *testing.T) {
	t.Parallel()
	l, err := Compile([]Entry{{ID: "a", URLPrefix: "https://example.com/hooks"}})
	require.NoError(t, err)
	done := make(chan bool)
	for range 8 {
		go func() {
			_, ok, err := l.MatchURL("https://example.com/hooks/x")
			done <- ok && err == nil
		}()
	}
	for range 8 {
		require.True(t, <-done)
	}
}
