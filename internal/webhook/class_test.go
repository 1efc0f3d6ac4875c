package webhook

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestClassifyEveryReason(t *testing.T) {
	for reason, want := range map[string]Class{
		"timeout": ClassTimeout, "dns lookup failed": ClassDNS, "blocked address": ClassBlockedAddress,
		"tls certificate invalid": ClassTLS, "tls handshake failed": ClassTLS, "connection refused": ClassConnectionRefused,
		"redirect not followed": ClassRedirect, "status 500": ClassHTTPStatus, "status 404": ClassHTTPStatus,
		"connection reset": ClassConnection, "connection closed": ClassConnection, "network unreachable": ClassConnection,
		"connection failed": ClassConnection, "invalid endpoint": ClassInvalid, "invalid header": ClassInvalid,
		"invalid request": ClassInvalid, "canceled": ClassCanceled, "endpoint busy": ClassBusy,
	} {
		require.Equal(t, want, Classify(&SendError{Reason: reason}), reason)
	}
	require.Equal(t, ClassRedirect, Classify(statusError(302)))
	require.Equal(t, Class(""), Classify(nil))
	require.Equal(t, ClassConnection, Classify(errors.New("other")))
}

func TestLoggableBody(t *testing.T) {
	require.Equal(t, "ok", LoggableBody([]byte("ok"), 1024))
	require.Equal(t, "a\uFFFDb\uFFFD", LoggableBody([]byte("a\xffb\x00"), 1024))
	long := LoggableBody([]byte(strings.Repeat("é", 600)), 1024) // 1,200 bytes: cut at a character
	require.True(t, utf8.ValidString(long))
	require.Equal(t, 1024, len(long))
	cut := LoggableBody([]byte("abc"+"é"), 4) // the é's first byte alone would be invalid
	require.Equal(t, "abc", cut)
}

// TestLoggableBodyRedacts: every secret given is redacted, whole or as the
// start the cut left; short ones are left; the input is not changed.
func TestLoggableBodyRedacts(t *testing.T) {
	in := []byte("bad key sk-0123456789 and tok-abcdefghijkl; tenant t1")
	require.Equal(t, "bad key [redacted] and [redacted]; tenant t1",
		LoggableBody(in, 1024, "sk-0123456789", "tok-abcdefghijkl", "t1"))
	require.Equal(t, "bad key sk-0123456789 and tok-abcdefghijkl; tenant t1", string(in), "the input is kept")
	require.Equal(t, "bad key sk-0123456789 and [redacted]", LoggableBody(in[:34], 1024, "tok-abcdefghijkl"), "cut after 9 bytes of the token")
	require.Equal(t, "bad key sk-0123456789 and tok-abcd", LoggableBody(in[:34], 1024, "tok-abcZ-another-secret"), "another secret")
	require.Equal(t, "x [redacted]", LoggableBody([]byte("x Bearer abcdefgh-secret"), 1024, "abcdefgh-secret", "Bearer abcdefgh-secret"), "longest first")
}
