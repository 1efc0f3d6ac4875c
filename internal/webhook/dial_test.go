package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedResolver answers every name with addrs and counts lookups.
func fixedResolver(calls *atomic.Int32, addrs ...string) func(context.Context, string) ([]netip.Addr, error) {
	return func(context.Context, string) ([]netip.Addr, error) {
		calls.Add(1)
		out := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			out[i] = netip.MustParseAddr(a)
		}
		return out, nil
	}
}

// noDial makes any connection attempt on c a test failure.
func noDial(t *testing.T, c *Client) {
	fail := func(_ context.Context, _, address string) (net.Conn, error) {
		t.Errorf("dialed %s", address)
		return nil, errors.New("dialing is not allowed in this test")
	}
	c.strict.dialer.dial = fail
	c.permissive.dialer.dial = fail
}

func TestLoopbackRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	c := New(Options{})
	ctx := testContext(t)

	r := request(rec.URL) // http://127.0.0.1:port
	res, err := c.Send(ctx, r)
	se := sendError(t, err, "blocked address")
	assert.ErrorIs(t, se, ErrBlocked)
	assert.Zero(t, res.StatusCode)
	assert.Empty(t, rec.requests(), "the server saw nothing")

	r.AllowPrivateNetwork = true
	res, err = c.Send(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Len(t, rec.requests(), 1)
}

// TestStrictSendNeverReusesPermissiveConnection: a connection pooled by a
// send that allowed private networks is not reused by one that does not.
func TestStrictSendNeverReusesPermissiveConnection(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	c := New(Options{})
	ctx := testContext(t)

	r := request(rec.URL)
	r.AllowPrivateNetwork = true
	_, err := c.Send(ctx, r)
	require.NoError(t, err)

	r.AllowPrivateNetwork = false
	_, err = c.Send(ctx, r)
	sendError(t, err, "blocked address")
	assert.Len(t, rec.requests(), 1)
}

func TestNameResolvingToLoopbackRefused(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	var calls atomic.Int32
	c := New(Options{Resolver: func(_ context.Context, host string) ([]netip.Addr, error) {
		calls.Add(1)
		if host != "hooks.example.test" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}})
	ctx := testContext(t)

	r := request("http://hooks.example.test:" + rec.port())
	_, err := c.Send(ctx, r)
	sendError(t, err, "blocked address")
	assert.Empty(t, rec.requests())

	// Allowed, the resolved IP is dialed while Host keeps the name.
	r.AllowPrivateNetwork = true
	_, err = c.Send(ctx, r)
	require.NoError(t, err)
	reqs := rec.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "hooks.example.test:"+rec.port(), reqs[0].Host)
	assert.EqualValues(t, 2, calls.Load(), "one lookup per connection")
}

func TestLocalhostRefusedWithDefaultResolver(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	_, err := New(Options{}).Send(testContext(t), request("http://localhost:"+rec.port()))
	sendError(t, err, "blocked address")
	assert.Empty(t, rec.requests())
}

var blockedAddrs = []string{
	"10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
	"224.0.0.1", "0.0.0.0", "127.0.0.1", "255.255.255.255",
	"::1", "::", "fe80::1", "fc00::1", "fd00::1", "ff02::1",
	"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
	"64:ff9b::a00:1", "2002:a00:1::1",
}

func TestBlockedAddressesRefusedWithoutDialing(t *testing.T) {
	t.Parallel()
	for _, a := range blockedAddrs {
		t.Run(a, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			c := New(Options{Resolver: fixedResolver(&calls, a)})
			noDial(t, c)
			ctx := testContext(t)

			_, err := c.Send(ctx, request("https://hooks.example.test"))
			se := sendError(t, err, "blocked address")
			assert.ErrorIs(t, se, ErrBlocked)
			assert.EqualValues(t, 1, calls.Load())

			// The same address written literally in the URL is not
			// resolved, and is refused as well.
			lit := netip.MustParseAddr(a)
			_, err = c.Send(ctx, request("https://"+netip.AddrPortFrom(lit, 443).String()))
			sendError(t, err, "blocked address")
			assert.EqualValues(t, 1, calls.Load(), "IP literals are not resolved")
		})
	}
}

func TestMixedPublicAndPrivateAnswerRefused(t *testing.T) {
	t.Parallel()
	for _, answer := range [][]string{
		{"8.8.8.8", "10.0.0.1"},
		{"127.0.0.1", "8.8.8.8"},
		{"2001:4860:4860::8888", "::ffff:192.168.0.1"},
	} {
		var calls atomic.Int32
		c := New(Options{Resolver: fixedResolver(&calls, answer...)})
		noDial(t, c)
		_, err := c.Send(testContext(t), request("https://hooks.example.test"))
		sendError(t, err, "blocked address")
	}
}

// TestPublicAddressDialedLiterally: the dialer connects to the IP it
// checked, not to the name (so nothing resolves it a second time). The fake
// dial hands the connection to a local server.
func TestPublicAddressDialedLiterally(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	var calls atomic.Int32
	c := New(Options{Resolver: fixedResolver(&calls, "::ffff:8.8.8.8", "2001:4860:4860::8888")})
	var mu sync.Mutex
	var dialed []string
	c.strict.dialer.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, address)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, rec.Listener.Addr().String())
	}

	_, err := c.Send(testContext(t), request("http://hooks.example.test:"+rec.port()))
	require.NoError(t, err)
	assert.Equal(t, []string{"8.8.8.8:" + rec.port()}, dialed)
	assert.EqualValues(t, 1, calls.Load())
	reqs := rec.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "hooks.example.test:"+rec.port(), reqs[0].Host)
}

func TestDialTriesNextAddress(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	var calls atomic.Int32
	c := New(Options{Resolver: fixedResolver(&calls, "8.8.8.8", "8.8.4.4")})
	var tries atomic.Int32
	c.strict.dialer.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		if tries.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("unreachable")}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, rec.Listener.Addr().String())
	}
	_, err := c.Send(testContext(t), request("http://hooks.example.test:"+rec.port()))
	require.NoError(t, err)
	assert.EqualValues(t, 2, tries.Load())
}

// TestControlHookRefusesPrivate: the net.Dialer of strict sends checks the
// socket address itself, even when called directly.
func TestControlHookRefusesPrivate(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	c := New(Options{})
	_, err := c.strict.dialer.dial(testContext(t), "tcp", rec.Listener.Addr().String())
	require.ErrorIs(t, err, ErrBlocked)

	conn, err := c.permissive.dialer.dial(testContext(t), "tcp", rec.Listener.Addr().String())
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	for _, a := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:10.0.0.1]:80", "[fe80::1%lo]:80", "0.0.0.0:80", "not an address"} {
		assert.ErrorIs(t, controlPublic("tcp", a, nil), ErrBlocked, a)
	}
	for _, a := range []string{"8.8.8.8:443", "[2001:4860:4860::8888]:443"} {
		assert.NoError(t, controlPublic("tcp", a, nil), a)
	}
}

func TestDNSFailure(t *testing.T) {
	t.Parallel()
	failing := func(_ context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	empty := func(context.Context, string) ([]netip.Addr, error) { return nil, nil }
	for _, resolve := range []func(context.Context, string) ([]netip.Addr, error){failing, empty} {
		c := New(Options{Resolver: resolve})
		noDial(t, c)
		_, err := c.Send(testContext(t), request("https://hooks.example.test"))
		sendError(t, err, "dns lookup failed")
	}
}
