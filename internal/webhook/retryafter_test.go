package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                  0,
		"0":                 0,
		"3":                 3 * time.Second,
		"3600":              time.Hour,
		"99999999999999999": MaxRetryAfter,
		"-5":                0,
		"1.5":               0,
		"soon":              0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		now.Add(72 * time.Hour).Format(http.TimeFormat):   MaxRetryAfter,
	}
	for in, want := range cases {
		require.Equal(t, want, retryAfter(in, now), "%q", in)
	}
}
