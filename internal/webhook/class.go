package webhook

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"
)

// Class is why a send failed, as the delivery attempt log records it: a
// short, stable name an operator can filter on. Every channel uses these
// names; Classify is the one mapping from this package's errors.
type Class string

const (
	ClassHTTPStatus        Class = "http-status" // a response other than 2xx or 3xx (see the status code)
	ClassTimeout           Class = "timeout"
	ClassDNS               Class = "dns"
	ClassBlockedAddress    Class = "blocked-address"
	ClassTLS               Class = "tls"
	ClassConnectionRefused Class = "connection-refused"
	ClassRedirect          Class = "redirect"
	ClassConnection        Class = "connection" // reset, closed, unreachable and other transport failures
	ClassInvalid           Class = "invalid"    // the request could not be made (endpoint, header)
	ClassCanceled          Class = "canceled"   // Herald stopped the send (shutdown, lease ending)
	ClassBusy              Class = "busy"       // no turn at the endpoint came up in time; nothing was sent
	// ClassRevoked: the check before the send refused it (the owner may no
	// longer have the Subscription); nothing was sent.
	ClassRevoked Class = "revoked"
)

// Classes lists every Class the attempt log records, for validating
// filters (ClassBusy is not among them: nothing was sent).
var Classes = []Class{ClassHTTPStatus, ClassTimeout, ClassDNS, ClassBlockedAddress, ClassTLS,
	ClassConnectionRefused, ClassRedirect, ClassConnection, ClassInvalid, ClassCanceled, ClassRevoked}

// Classify is the Class of an error returned by [Client.Send]; nil gives "".
func Classify(err error) Class {
	if err == nil {
		return ""
	}
	var se *SendError
	if !errors.As(err, &se) {
		return ClassConnection
	}
	return ClassOf(se.Reason)
}

// ClassOf is the Class of a SendError's Reason: the one mapping from the
// reasons this package gives.
func ClassOf(reason string) Class {
	switch r := reason; {
	case r == "timeout":
		return ClassTimeout
	case r == "dns lookup failed":
		return ClassDNS
	case r == "blocked address":
		return ClassBlockedAddress
	case strings.HasPrefix(r, "tls "):
		return ClassTLS
	case r == "connection refused":
		return ClassConnectionRefused
	case r == "redirect not followed":
		return ClassRedirect
	case strings.HasPrefix(r, "status "):
		return ClassHTTPStatus
	case r == "invalid request" || r == "invalid endpoint" || r == "invalid header":
		return ClassInvalid
	case r == "canceled":
		return ClassCanceled
	case r == "endpoint busy":
		return ClassBusy
	}
	return ClassConnection
}

// LoggableBody is a response body prefix as the attempt log keeps it: at
// most max bytes, cut at a character boundary, invalid UTF-8 and NUL (which
// PostgreSQL text cannot hold) replaced by U+FFFD, and every secret (what
// the request carried that grants something: header values, access tokens)
// replaced by "[redacted]", so that a receiver echoing its request cannot
// put them in the log; a secret the prefix cut short is redacted too.
// Secrets shorter than MinRedacted bytes are left alone (they would
// garble the body and protect little).
func LoggableBody(b []byte, max int, secrets ...string) string {
	b = redact(b, secrets)
	if len(b) > max {
		b = b[:max]
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0 {
			r = utf8.RuneError
		}
		if sb.Len()+utf8.RuneLen(r) > max {
			break
		}
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

// MinRedacted is the length of the shortest secret LoggableBody redacts,
// whole or as the start the prefix cut left.
const MinRedacted = 8

const redacted = "[redacted]"

func redact(b []byte, secrets []string) []byte {
	ss := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if len(s) >= MinRedacted {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return b
	}
	slices.SortFunc(ss, func(x, y string) int { return len(y) - len(x) }) // longest first
	out := b
	for _, s := range ss {
		out = bytes.ReplaceAll(out, []byte(s), []byte(redacted))
	}
	// The prefix may end inside a secret: drop its start.
	for _, s := range ss {
		for k := min(len(s)-1, len(out)); k >= MinRedacted; k-- {
			if bytes.HasSuffix(out, []byte(s[:k])) {
				return append(out[:len(out)-k:len(out)-k], redacted...)
			}
		}
	}
	return out
}
