package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quiet stops srv logging the handshake failures the tests provoke.
func quiet(srv *httptest.Server) *httptest.Server {
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	return srv
}

func trusting(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	quiet(srv).StartTLS()
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	ctx := testContext(t)
	r := request(srv.URL) // https://127.0.0.1:port; the certificate covers 127.0.0.1
	r.AllowPrivateNetwork = true

	res, err := New(Options{TLSConfig: trusting(srv)}).Send(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)

	// Verification is on by default: the test CA is not trusted.
	_, err = New(Options{}).Send(ctx, r)
	sendError(t, err, "tls certificate invalid")

	// The certificate is checked against the URL's host, not the dialed IP.
	toLoopback := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	c := New(Options{TLSConfig: trusting(srv), Resolver: toLoopback})
	r.Endpoint = "https://example.com:" + port + "/hook" // in the test certificate
	_, err = c.Send(ctx, r)
	require.NoError(t, err)
	r.Endpoint = "https://hooks.example.test:" + port + "/hook" // not in it
	_, err = c.Send(ctx, r)
	sendError(t, err, "tls certificate invalid")

	assert.EqualValues(t, 2, hits.Load())
}

func TestTLSBelow12Refused(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	quiet(srv).StartTLS()
	t.Cleanup(srv.Close)
	cfg := trusting(srv)
	cfg.MinVersion = tls.VersionTLS10 // raised to 1.2 by New
	r := request(srv.URL)
	r.AllowPrivateNetwork = true

	_, err := New(Options{TLSConfig: cfg}).Send(testContext(t), r)
	sendError(t, err, "tls handshake failed")
	assert.Zero(t, hits.Load())
}

func TestPlainHTTPServerOnHTTPSEndpoint(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	r := request("https://127.0.0.1:" + rec.port())
	r.AllowPrivateNetwork = true
	_, err := New(Options{}).Send(testContext(t), r)
	sendError(t, err, "tls handshake failed")
}
