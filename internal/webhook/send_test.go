package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSendSuccess(t *testing.T) {
	t.Parallel()
	for _, status := range []int{200, 201, 202, 204, 299} {
		rec := newRecorder(t, status)
		c := New(Options{UserAgent: "Herald/test"})
		r := request(rec.URL)
		r.Secret, r.AllowPrivateNetwork = "", true

		res, err := c.Send(testContext(t), r)
		require.NoError(t, err)
		assert.Equal(t, status, res.StatusCode)
		assert.GreaterOrEqual(t, res.Duration, time.Duration(0))

		reqs := rec.requests()
		require.Len(t, reqs, 1)
		h := reqs[0].Header
		assert.Equal(t, testBody, reqs[0].Body)
		assert.Equal(t, []string{"application/fhir+json"}, h.Values("Content-Type"))
		assert.Equal(t, []string{"application/fhir+json"}, h.Values("Accept"))
		assert.Equal(t, []string{"Herald/test"}, h.Values("User-Agent"))
		assert.Equal(t, "Bearer "+headerMarker, h.Get("Authorization"))
		for _, name := range []string{"X-Hub-Signature", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
			assert.Empty(t, h.Values(name), "unsigned notifications carry no %s", name)
		}
	}
}

func TestSendMethodAndContentType(t *testing.T) {
	t.Parallel()
	var method, path, query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path, query = r.Method, r.URL.Path, r.URL.RawQuery
	}))
	t.Cleanup(srv.Close)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true
	r.ContentType = "application/fhir+json; fhirVersion=4.0"

	_, err := New(Options{}).Send(testContext(t), r)
	require.NoError(t, err)
	assert.Equal(t, http.MethodPost, method)
	assert.Equal(t, "/hook", path)
	assert.Equal(t, "token="+queryMarker, query)
}

func TestSendNon2xxFails(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 404, 410, 500, 503} {
		rec := newRecorder(t, status)
		r := request(rec.URL)
		r.AllowPrivateNetwork = true

		res, err := New(Options{}).Send(testContext(t), r)
		se := sendError(t, err, "status "+strconv.Itoa(status))
		assert.Equal(t, status, se.StatusCode)
		assert.Equal(t, status, res.StatusCode)
		assert.Nil(t, se.Err)
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target := newRecorder(t, http.StatusOK) // a private address the redirect points at
	for _, status := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:"+target.port()+"/steal", status)
		}))
		t.Cleanup(srv.Close)
		r := request(srv.URL)
		r.AllowPrivateNetwork = true // even then

		res, err := New(Options{}).Send(testContext(t), r)
		se := sendError(t, err, "redirect not followed")
		assert.Equal(t, status, se.StatusCode)
		assert.Equal(t, status, res.StatusCode)
	}
	assert.Empty(t, target.requests(), "the redirect target must never be contacted")
}

// blockingServer answers only when the test ends or the client goes away;
// entered receives one value per request that reached the handler.
func blockingServer(t *testing.T) (srv *httptest.Server, entered chan struct{}) {
	t.Helper()
	entered = make(chan struct{}, 100)
	release := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, entered
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := blockingServer(t)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true
	r.Timeout = 200 * time.Millisecond

	begin := time.Now()
	res, err := New(Options{}).Send(testContext(t), r)
	sendError(t, err, "timeout")
	assert.Zero(t, res.StatusCode)
	assert.Less(t, time.Since(begin), 10*time.Second)
}

func TestSendCanceled(t *testing.T) {
	t.Parallel()
	srv, entered := blockingServer(t)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true

	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-entered
		cancel()
	}()
	_, err := New(Options{}).Send(ctx, r)
	se := sendError(t, err, "canceled")
	assert.ErrorIs(t, se, context.Canceled)

	// A context that is already done sends nothing.
	_, err = New(Options{}).Send(ctx, r)
	sendError(t, err, "canceled")
	assert.Empty(t, entered)
}

func TestTimeoutDefaults(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 10*time.Second, Timeout(0))
	assert.Equal(t, 10*time.Second, Timeout(-time.Second))
	assert.Equal(t, 3*time.Second, Timeout(3*time.Second))
	assert.Equal(t, 60*time.Second, Timeout(60*time.Second))
	assert.Equal(t, 60*time.Second, Timeout(10*time.Minute))
}

// TestSendLargeResponseBody: a receiver answering with a huge body does not
// keep Send busy; the server cannot write it all because Send stops reading
// and closes the connection. (How much Send reads is pinned exactly by
// TestSendReadsAtMost64KiB; the socket buffers hide it here.)
func TestSendLargeResponseBody(t *testing.T) {
	t.Parallel()
	const total = 256 << 20
	written := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		var n int64
		for n < total {
			k, err := w.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		written <- n
	}))
	t.Cleanup(srv.Close)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true
	ctx := testContext(t)

	res, err := New(Options{}).Send(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	select {
	case n := <-written:
		t.Logf("the server wrote %d of %d bytes", n, total)
		assert.Less(t, n, int64(total), "the client stopped reading long before the end")
	case <-ctx.Done():
		t.Fatal("the handler never noticed the client had gone")
	}
}

// countingBody is a 16 MiB response body that counts what is read of it.
type countingBody struct {
	read   atomic.Int64
	closed atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	left := 16<<20 - b.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	for i := range p {
		p[i] = 'x'
	}
	b.read.Add(int64(len(p)))
	return len(p), nil
}

func (b *countingBody) Close() error { b.closed.Store(true); return nil }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSendReadsAtMost64KiB replaces the transport to count exactly how much
// of an endless response body Send reads.
func TestSendReadsAtMost64KiB(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	body := &countingBody{}
	c.permissive.client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: body, Header: http.Header{}, Request: r}, nil
	})
	r := request("http://127.0.0.1:1")
	r.AllowPrivateNetwork = true

	_, err := c.Send(testContext(t), r)
	require.NoError(t, err)
	assert.LessOrEqual(t, body.read.Load(), int64(64<<10))
	assert.Positive(t, body.read.Load())
	assert.True(t, body.closed.Load())
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	r := request("http://" + addr)
	r.AllowPrivateNetwork = true
	res, err := New(Options{}).Send(testContext(t), r)
	sendError(t, err, "connection refused")
	assert.Zero(t, res.StatusCode)
}

func TestSendInvalidRequest(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	c := New(Options{})
	ctx := testContext(t)

	r := request(rec.URL)
	r.Endpoint = "ftp://example.com/x"
	_, err := c.Send(ctx, r)
	sendError(t, err, "invalid endpoint")

	r = request(rec.URL)
	r.Endpoint = "https://user:" + secretMarker + "@example.com/x"
	_, err = c.Send(ctx, r)
	sendError(t, err, "invalid endpoint")

	r = request(rec.URL)
	r.MessageID = ""
	_, err = c.Send(ctx, r)
	sendError(t, err, "invalid request")

	r = request(rec.URL)
	r.MessageID = "a\r\nX-Evil: 1"
	_, err = c.Send(ctx, r)
	sendError(t, err, "invalid request")

	r = request(rec.URL)
	r.ContentType = "application/fhir+json\r\nX-Evil: 1"
	_, err = c.Send(ctx, r)
	sendError(t, err, "invalid request")

	assert.Empty(t, rec.requests())
}

func TestSendRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	c := New(Options{})
	for _, h := range []Header{
		{"X-Trace", headerMarker + "\r\nX-Evil: 1"},
		{"X-Trace", headerMarker + "\nX-Evil: 1"},
		{"X-Trace", headerMarker + "\r"},
		{"X-Trace", headerMarker + "\x00"},
		{"X-Trace\r\nX-Evil", headerMarker},
		{"X-Trace\x00", headerMarker},
		{"X Trace", headerMarker},
		{"", headerMarker},
		{"X-Trace", headerMarker + "\x7f"},
	} {
		r := request(rec.URL)
		r.AllowPrivateNetwork = true
		r.Headers = append(r.Headers, h)
		_, err := c.Send(testContext(t), r)
		se := sendError(t, err, "invalid header")
		assert.NotContains(t, se.Error(), "X-Evil")
	}
	assert.Empty(t, rec.requests())
}

func TestSendChannelHeaders(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, http.StatusOK)
	r := request(rec.URL)
	r.AllowPrivateNetwork = true
	r.Headers = []Header{
		{"X-Trace", "abc"},
		{"Authorization", "Bearer " + headerMarker},
		{"x-multi", "one"},
		{"X-Multi", "two"},
		// None of these may override what Herald sets.
		{"Content-Type", "text/plain"},
		{"content-type", "text/html"},
		{"Accept", "text/html"},
		{"User-Agent", "evil/1"},
		{"Host", "evil.example"},
		{"X-Hub-Signature", "sha256=forged"},
		{"webhook-id", "forged"},
		{"Webhook-Timestamp", "1"},
		{"webhook-signature", "v1,forged"},
		{"Content-Length", "1"},
		{"Transfer-Encoding", "chunked"},
		{"Connection", "close"},
	}
	_, err := New(Options{UserAgent: "Herald/test"}).Send(testContext(t), r)
	require.NoError(t, err)

	reqs := rec.requests()
	require.Len(t, reqs, 1)
	got := reqs[0]
	h := got.Header
	assert.Equal(t, []string{"abc"}, h.Values("X-Trace"))
	assert.Equal(t, []string{"Bearer " + headerMarker}, h.Values("Authorization"))
	assert.Equal(t, []string{"one", "two"}, h.Values("X-Multi"))
	assert.Equal(t, []string{"application/fhir+json"}, h.Values("Content-Type"))
	assert.Equal(t, []string{"application/fhir+json"}, h.Values("Accept"))
	assert.Equal(t, []string{"Herald/test"}, h.Values("User-Agent"))
	assert.Equal(t, "127.0.0.1:"+rec.port(), got.Host)
	assert.Equal(t, []string{"msg-1"}, h.Values("Webhook-Id"))
	require.Len(t, h.Values("X-Hub-Signature"), 1)
	assert.NotEqual(t, "sha256=forged", h.Get("X-Hub-Signature"))
	require.Len(t, h.Values("Webhook-Signature"), 1)
	assert.NotEqual(t, "v1,forged", h.Get("Webhook-Signature"))
	assert.NotEqual(t, "1", h.Get("Webhook-Timestamp"))
	assert.Empty(t, h.Values("Connection"))
	assert.Equal(t, testBody, got.Body)
}

// TestPerEndpointConcurrency: with MaxPerEndpoint 2, a third send to the
// same endpoint is refused at once with "endpoint busy", unsent (it never
// waits for a turn, however long its context allows), while other
// endpoints are unaffected.
func TestPerEndpointConcurrency(t *testing.T) {
	t.Parallel()
	var inFlight, maxInFlight, hits atomic.Int32
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		inFlight.Add(-1)
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before srv.Close, also when the test fails early

	other := newRecorder(t, http.StatusOK)
	c := New(Options{MaxPerEndpoint: 2})
	ctx := testContext(t)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true
	r.Timeout = 20 * time.Second

	const n = 2 // the most the endpoint takes at once
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Send(ctx, r)
			errs <- err
		}()
	}
	for range 2 {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("the first two sends never arrived")
		}
	}

	// Both slots are held by blocked requests: another send gives up after
	// its QueueWait, although its context would allow minutes.
	r.QueueWait = 20 * time.Millisecond
	_, err := c.Send(ctx, r)
	se := sendError(t, err, "endpoint busy")
	assert.ErrorIs(t, se, ErrBusy)
	assert.EqualValues(t, 2, hits.Load())

	// Another endpoint has its own slots.
	o := request(other.URL)
	o.AllowPrivateNetwork = true
	_, err = c.Send(ctx, o)
	require.NoError(t, err)

	releaseAll()
	for range n {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("sends did not finish")
		}
	}
	assert.EqualValues(t, n, hits.Load())
	assert.EqualValues(t, 2, maxInFlight.Load())

	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Empty(t, c.slots, "idle endpoints leave no slot behind")
}

func TestSendErrorUnwrap(t *testing.T) {
	t.Parallel()
	inner := errors.New("inner")
	e := &SendError{Reason: "connection failed", Err: inner}
	assert.ErrorIs(t, e, inner)
	assert.Equal(t, "webhook: connection failed: inner", e.Error())
	assert.Equal(t, "webhook: status 503", statusError(503).Error())
}

// TestSendDoesNotWaitForADrippingBody: a receiver that sends its 2xx
// status and then drips its body (one byte a second, for longer than the
// attempt's timeout) has answered; Send returns the success once the body
// stops arriving promptly (ResponseBodyWait), rather than holding a
// delivery worker for the whole timeout each time (issue 17: a slow
// success never held only its own turn).
func TestSendDoesNotWaitForADrippingBody(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			case <-done:
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	r := request(srv.URL)
	r.AllowPrivateNetwork = true
	r.Timeout = 60 * time.Second

	res, err := New(Options{}).Send(testContext(t), r)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Less(t, res.Duration, 20*time.Second, "Send waited for the dripping body until its timeout")
}
