package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ErrBlocked is wrapped by the error of a send refused because the endpoint
// resolved to an address that is not public while private networks are not
// allowed for it.
var ErrBlocked = errors.New("private networks are not allowed for this endpoint")

// ErrBusy is wrapped by the error of a send given up, unsent, because the
// endpoint had MaxPerEndpoint sends in flight for all of Request.QueueWait.
var ErrBusy = errors.New("the endpoint has its most concurrent sends in flight")

// SendError is why [Client.Send] failed.
type SendError struct {
	// Reason is short and safe to store and log, one of: "invalid request",
	// "invalid endpoint", "invalid header", "endpoint busy" (the endpoint
	// had MaxPerEndpoint sends in flight for all of QueueWait; nothing was sent), "canceled", "timeout",
	// "blocked address", "dns lookup failed", "connection refused",
	// "connection reset", "connection closed", "network unreachable",
	// "tls certificate invalid", "tls handshake failed", "connection failed",
	// "redirect not followed" or "status NNN".
	Reason string
	// StatusCode is the response status, 0 when there was no response.
	StatusCode int
	// Err is the underlying error, if any. It never holds the secret, header
	// values, the body or the endpoint URL.
	Err error
}

// Error is "webhook: " followed by Reason and, if present, Err.
func (e *SendError) Error() string {
	if e.Err == nil {
		return "webhook: " + e.Reason
	}
	return "webhook: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *SendError) Unwrap() error { return e.Err }

func statusError(code int) *SendError {
	reason := "status " + strconv.Itoa(code)
	if code >= 300 && code < 400 {
		reason = "redirect not followed"
	}
	return &SendError{Reason: reason, StatusCode: code}
}

// resolveError is a failed or empty DNS lookup.
type resolveError struct{ err error }

func (e *resolveError) Error() string { return "resolving host: " + e.err.Error() }
func (e *resolveError) Unwrap() error { return e.err }

// classify turns a transport error into a SendError. parent is the caller's
// context, which tells a cancellation from our own per-attempt timeout.
func classify(parent context.Context, err error) *SendError {
	// *url.Error repeats the endpoint URL, whose query may hold a token.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &SendError{Reason: reason(parent, err), Err: err}
}

func reason(parent context.Context, err error) string {
	var (
		dnsErr  *net.DNSError
		resErr  *resolveError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
		alert   tls.AlertError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, ErrBlocked):
		return "blocked address"
	case errors.Is(parent.Err(), context.Canceled):
		return "canceled"
	case errors.As(err, &resErr) || errors.As(err, &dnsErr):
		return "dns lookup failed"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid):
		return "tls certificate invalid"
	case errors.As(err, &record) || errors.As(err, &alert):
		return "tls handshake failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case strings.Contains(err.Error(), "tls: ") || strings.Contains(err.Error(), "HTTP response to HTTPS client"):
		// Local handshake failures (such as no common version) and a plain
		// HTTP server on an https endpoint come as untyped errors.
		return "tls handshake failed"
	}
	return "connection failed"
}
