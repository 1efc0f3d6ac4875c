package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/secrets"
)

// Timeouts of one attempt: the channel's backport-timeout, validated
// against these bounds when a Subscription is written, else DefaultTimeout.
const (
	MinTimeout     = time.Second
	DefaultTimeout = 10 * time.Second
	MaxTimeout     = 60 * time.Second
)

const (
	defaultMaxPerEndpoint = 4
	defaultUserAgent      = "Herald"
	fhirJSON              = "application/fhir+json"

	// maxResponseBody is how much of a response body is read (and then
	// dropped); nothing in it matters to us beyond connection reuse.
	maxResponseBody = 64 << 10
	// maxResponseHeader bounds the response header block likewise.
	maxResponseHeader = 64 << 10
)

// Header is one channel header line.
type Header struct {
	Name  string
	Value secrets.Secret // a receiver's credential, often
}

// Request is one notification POST.
type Request struct {
	// Endpoint is an absolute http(s) URL, already normalised by
	// allowlist.ParseEndpoint (it is parsed again here, defensively).
	Endpoint string
	// Body is the notification Bundle.
	Body []byte
	// ContentType is the Subscription's channel.payload; "" means
	// application/fhir+json.
	ContentType string
	// Headers are the Subscription's channel.header values. Names Herald or
	// the transport set themselves (Content-Type, User-Agent, the signature
	// headers, Host and so on) are ignored: Herald's values win.
	Headers []Header
	// Secret is the signing secret as the client wrote it; "" sends the
	// notification unsigned.
	Secret secrets.Secret
	// MessageID is the webhook-id: server-minted and the same across
	// retries. Required when Secret is set.
	MessageID string
	// Timeout bounds one attempt, from dialing to reading the response;
	// 0 means 10s and anything above 60s is capped at 60s. Waiting for a
	// free per-endpoint slot is bounded by the context only.
	Timeout time.Duration
	// QueueWait bounds the wait for a turn at an endpoint that already has
	// MaxPerEndpoint sends in flight ("endpoint busy" when it passes); 0
	// waits as long as ctx allows.
	QueueWait time.Duration
	// AllowPrivateNetwork comes from the matching allow-list entry.
	AllowPrivateNetwork bool
	// Share keeps the turns at an endpoint apart (the sender's owner): the
	// MaxPerEndpoint limit holds per endpoint and share, so one share's
	// slow or hanging sends to a shared host cannot take another's turns.
	Share string
}

// Result describes the response, also when Send fails.
type Result struct {
	// StatusCode is 0 when there was no response.
	StatusCode int
	// Duration is the time from sending to having read the response.
	Duration time.Duration
	// RetryAfter is the response's Retry-After (seconds or an HTTP date),
	// at most MaxRetryAfter; 0 when absent or not understood.
	RetryAfter time.Duration
	// BodyBytes is how many bytes of the response body were read (at most
	// 64 KiB); BodyPrefix is the first BodyPrefixMax of them, for the
	// attempt log.
	BodyBytes  int64
	BodyPrefix []byte
}

// BodyPrefixMax is how much of a response body Result keeps.
const BodyPrefixMax = 1024

// ResponseBodyWait is how long Send reads a response's body after its
// status arrived (a receiver's answer needs no body; Herald reads one only
// for the attempt log and to reuse the connection).
const ResponseBodyWait = 2 * time.Second

// MaxRetryAfter bounds what a subscriber's Retry-After can ask for.
const MaxRetryAfter = 24 * time.Hour

// Options configure a Client.
type Options struct {
	// UserAgent is sent with every request, such as "Herald/1.2.3";
	// "" means "Herald".
	UserAgent string
	// MaxPerEndpoint limits concurrent sends to one scheme, host and port
	// of one Request.Share; 0 means 4.
	MaxPerEndpoint int
	// Resolver looks up a host's addresses; nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host).
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)
	// Now is the clock for webhook-timestamp and durations; nil means
	// time.Now.
	Now func() time.Time
	// TLSConfig is cloned for outgoing connections; nil means the system
	// roots. Its MinVersion is raised to TLS 1.2 if lower.
	TLSConfig *tls.Config
}

// Client sends notifications. It is safe for concurrent use.
type Client struct {
	userAgent string
	now       func() time.Time
	max       int

	// Two transports so that a connection pooled under one private-network
	// decision is never reused under the other.
	strict, permissive route

	mu    sync.Mutex
	slots map[string]*slot // by scheme://host:port
}

type route struct {
	dialer *dialer
	client *http.Client
}

// slot limits concurrent sends to one endpoint; refs counts holders and
// waiters so that idle entries can be dropped from the map.
type slot struct {
	sem  chan struct{}
	refs int
}

// New returns a Client.
func New(o Options) *Client {
	c := &Client{
		userAgent: o.UserAgent,
		now:       o.Now,
		max:       o.MaxPerEndpoint,
		slots:     map[string]*slot{},
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.max <= 0 {
		c.max = defaultMaxPerEndpoint
	}
	resolve := o.Resolver
	if resolve == nil {
		resolve = defaultResolve
	}
	c.strict = newRoute(newDialer(false, resolve), o.TLSConfig, c.max)
	c.permissive = newRoute(newDialer(true, resolve), o.TLSConfig, c.max)
	return c
}

func newRoute(d *dialer, tc *tls.Config, maxPerHost int) route {
	if tc == nil {
		tc = &tls.Config{}
	} else {
		tc = tc.Clone()
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	t := &http.Transport{
		Proxy:                  nil, // never: a proxy would dial for us, unchecked
		DialContext:            d.DialContext,
		TLSClientConfig:        tc,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    maxPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    MaxTimeout, // backstops; the request context is tighter
		ResponseHeaderTimeout:  MaxTimeout,
		MaxResponseHeaderBytes: maxResponseHeader,
		DisableCompression:     true,
	}
	return route{dialer: d, client: &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Send POSTs r.Body to r.Endpoint once. Any 2xx response within the timeout
// is success; everything else, including a 3xx, returns a [*SendError].
func (c *Client) Send(ctx context.Context, r Request) (Result, error) {
	ep, contentType, channel, err := check(r)
	if err != nil {
		return Result{}, err
	}
	qctx := ctx
	if r.QueueWait > 0 {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, r.QueueWait)
		defer cancel()
	}
	release, err := c.acquire(qctx, ep.Scheme()+"://"+ep.HostPort()+" "+r.Share)
	if err != nil {
		return Result{}, err
	}
	defer release()

	actx, cancel := context.WithTimeout(ctx, Timeout(r.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.String(), bytes.NewReader(r.Body))
	if err != nil {
		return Result{}, &SendError{Reason: "invalid endpoint"}
	}
	req.Header = channel
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", fhirJSON)
	req.Header.Set("User-Agent", c.userAgent)
	start := c.now()
	if r.Secret != "" {
		hub, sig := Sign(r.Secret.Reveal(), r.MessageID, start, r.Body)
		req.Header.Set("X-Hub-Signature", hub)
		req.Header.Set("Webhook-Id", r.MessageID)
		req.Header.Set("Webhook-Timestamp", strconv.FormatInt(start.Unix(), 10))
		req.Header.Set("Webhook-Signature", sig)
	}

	rt := c.strict.client
	if r.AllowPrivateNetwork {
		rt = c.permissive.client
	}
	resp, err := rt.Do(req)
	if err != nil {
		return Result{Duration: c.now().Sub(start)}, classify(ctx, err)
	}
	// Read a bounded amount so a small response leaves the connection
	// reusable; closing with more unread closes the connection instead.
	// Read errors do not matter: the status has arrived. A body that does
	// not end within ResponseBodyWait is cut off, so a receiver dripping it
	// holds a worker that long, not for the attempt's whole timeout.
	// A 101 Switching Protocols (Herald asks for no upgrade) hands over the
	// raw connection as its body, which neither the context nor the cut
	// closes: it is closed unread (TestSendDoesNotHangOnSwitchingProtocols).
	var prefix []byte
	var rest int64
	if resp.StatusCode != http.StatusSwitchingProtocols {
		cut := time.AfterFunc(ResponseBodyWait, cancel)
		defer cut.Stop()
		limited := io.LimitReader(resp.Body, maxResponseBody)
		prefix, _ = io.ReadAll(io.LimitReader(limited, BodyPrefixMax))
		rest, _ = io.Copy(io.Discard, limited)
	}
	_ = resp.Body.Close()

	res := Result{StatusCode: resp.StatusCode, Duration: c.now().Sub(start), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), c.now()),
		BodyBytes: int64(len(prefix)) + rest, BodyPrefix: prefix}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res, statusError(resp.StatusCode)
	}
	return res, nil
}

// Timeout is the timeout of an attempt for a channel timeout d (0: none given).
func Timeout(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return DefaultTimeout
	case d > MaxTimeout:
		return MaxTimeout
	}
	return d
}

// check validates r and returns the endpoint, the Content-Type and the
// channel headers to send.
func check(r Request) (allowlist.Endpoint, string, http.Header, error) {
	ep, err := allowlist.ParseEndpoint(r.Endpoint)
	if err != nil {
		return ep, "", nil, &SendError{Reason: "invalid endpoint", Err: err}
	}
	invalid := func(msg string) (allowlist.Endpoint, string, http.Header, error) {
		return ep, "", nil, &SendError{Reason: "invalid request", Err: errors.New(msg)}
	}
	if r.Secret != "" && r.MessageID == "" {
		return invalid("a signed notification needs a message id")
	}
	if !httpguts.ValidHeaderFieldValue(r.MessageID) { // no CR, LF, NUL or other controls
		return invalid("the message id is not a valid header value")
	}
	ct := r.ContentType
	if ct == "" {
		ct = fhirJSON
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil || !httpguts.ValidHeaderFieldValue(ct) {
		return invalid("the content type is not a valid media type")
	}

	h := make(http.Header, len(r.Headers)+8)
	for i, ch := range r.Headers {
		// Checked again although validated at create time: a CR or LF here
		// would be header injection. Neither name nor value goes into the
		// error: the name may be malformed, the value may be a credential.
		if strings.ContainsAny(ch.Name+ch.Value.Reveal(), "\r\n\x00") ||
			!httpguts.ValidHeaderFieldName(ch.Name) || !httpguts.ValidHeaderFieldValue(ch.Value.Reveal()) {
			return ep, "", nil, &SendError{Reason: "invalid header",
				Err: fmt.Errorf("channel header %d is not a valid single-line header", i+1)}
		}
		name := textproto.CanonicalMIMEHeaderKey(ch.Name)
		if Reserved(name) {
			continue
		}
		h.Add(name, ch.Value.Reveal())
	}
	return ep, ct, h, nil
}

// reservedHeaders are set by Herald or the transport: Subscription
// validation refuses them (Reserved) and a channel header never overrides
// them.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Content-Encoding": true,
	"Transfer-Encoding": true, "Connection": true, "Keep-Alive": true, "Upgrade": true,
	"Te": true, "Trailer": true, "Expect": true, "Accept": true, "User-Agent": true, "Cookie": true,
	"X-Hub-Signature": true, "X-Hub-Signature-256": true,
	"Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "Forwarded": true,
}

// ReservedHeaders lists, sorted, the header names Herald sets itself; every
// name starting Proxy- or Sec- is reserved too.
func ReservedHeaders() []string {
	names := slices.Collect(maps.Keys(reservedHeaders))
	slices.Sort(names)
	return names
}

// Reserved reports whether a canonical header name is Herald's own.
func Reserved(canonical string) bool {
	return reservedHeaders[canonical] ||
		strings.HasPrefix(canonical, "Proxy-") || strings.HasPrefix(canonical, "Sec-")
}

// acquire waits for one of the endpoint's slots. The returned SendError is
// "endpoint busy" when ctx's deadline passes while waiting.
func (c *Client) acquire(ctx context.Context, key string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, &SendError{Reason: reason(ctx, err), Err: err}
	}
	c.mu.Lock()
	s := c.slots[key]
	if s == nil {
		s = &slot{sem: make(chan struct{}, c.max)}
		c.slots[key] = s
	}
	s.refs++
	c.mu.Unlock()

	unref := func() {
		c.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(c.slots, key)
		}
		c.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, nil
	case <-ctx.Done():
		unref()
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &SendError{Reason: "endpoint busy", Err: ErrBusy}
		}
		return nil, &SendError{Reason: "canceled", Err: err}
	}
}

// retryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds
// or an HTTP date, relative to now.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
