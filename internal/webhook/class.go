package webhook

import (
	"errors"
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
	switch r := se.Reason; {
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
// PostgreSQL text cannot hold) replaced by U+FFFD.
func LoggableBody(b []byte, max int) string {
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
