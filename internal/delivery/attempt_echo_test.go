package delivery_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/store"
)

// TestAttemptLogKeepsNoEchoedSecrets: a subscriber controls what it
// answers, and many echo what they got (a relay's 200 with the request, a
// 400 quoting the token it refused). The attempt log, which every admin
// reads (console, admin API) for a week, must not become a copy of what
// Herald sent: a 2xx answer's body is not kept (the README keeps bodies
// for failures only), and in a failure's body the values that grant
// something — the Subscription's channel header values and the
// notification access tokens — are redacted, also when the 1 KiB cut
// leaves only the start of one.
func TestAttemptLogKeepsNoEchoedSecrets(t *testing.T) {
	t.Parallel()
	const apiKey = "key-0f3c9a1b7d5e4c2a8b6f"
	eachStore(t, func(t *testing.T, st store.Store) {
		var mu sync.Mutex
		var tokens []string
		events := 0
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var hdr strings.Builder
			keys := make([]string, 0, len(r.Header))
			for k := range r.Header {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(r.Header[k], ","))
			}
			if parseBundle(body).Kind != "event-notification" {
				w.WriteHeader(http.StatusOK) // the handshake: a 200 echoing headers and body
				_, _ = io.WriteString(w, hdr.String()+string(body))
				return
			}
			sum, err := notify.Summarize(body)
			if err != nil || len(sum.Events) == 0 || sum.Events[0].AccessToken == "" {
				w.WriteHeader(http.StatusTeapot)
				_, _ = io.WriteString(w, "no token")
				return
			}
			tok := sum.Events[0].AccessToken
			mu.Lock()
			tokens = append(tokens, tok)
			events++
			n := events
			mu.Unlock()
			switch {
			case n == 1: // quotes what it refused
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, "refused token "+tok+" with key "+apiKey+"\n"+hdr.String())
			case n == 2: // the token straddles the 1 KiB the log keeps
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, strings.Repeat(".", 1000)+tok)
			default: // a relay's 200 echoing everything
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, tok+"\n"+hdr.String()+string(body))
			}
		}))
		t.Cleanup(echo.Close)

		issuer, err := notifytoken.New([]byte("a-notification-token-key-of-32-bytes!"), time.Minute, nil)
		require.NoError(t, err)
		e := newEnv(t, st, func(c *delivery.Config) { c.Tokens = issuer })
		allow(t, st, echo.URL+"/", true)
		_, err = e.svc.Update(context.Background(), publisher, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`), "")
		require.NoError(t, err)
		id := e.subscribe(withEndpoint(echo.URL+"/hook"), func(m map[string]any) {
			ch := channel(m)
			ch["header"] = []any{"X-Api-Key: " + apiKey}
			ch["extension"] = append(ch["extension"].([]any), map[string]any{
				"url": "https://herald.dev/fhir/StructureDefinition/notification-access-token", "valueBoolean": true})
		})
		e.waitStatus(id, "active")
		e.encounter("a")
		waitAttempt(t, st, id, "the event delivered", func(a store.Attempt) bool {
			return a.Kind == "event-notification" && a.Outcome == store.AttemptSuccess
		})

		as, err := st.Attempts(context.Background(), store.AttemptQuery{SubscriptionID: id})
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		require.GreaterOrEqual(t, len(tokens), 3)
		failures := 0
		for _, a := range as {
			if a.Outcome == store.AttemptSuccess {
				require.Empty(t, a.ResponseBody, "a %s answered 2xx: its body is not the log's business", a.Kind)
				require.Positive(t, a.ResponseBytes, "how much it answered is still counted")
				continue
			}
			failures++
			require.NotContains(t, a.ResponseBody, apiKey, "the channel header's value")
			for _, tok := range tokens {
				require.NotContains(t, a.ResponseBody, tok[:16], "a notification access token (or its start)")
				require.NotContains(t, a.ResponseBody, tok[len(tok)-16:], "a notification access token (or its end)")
			}
			require.Contains(t, a.ResponseBody, "[redacted]")
		}
		require.Equal(t, 2, failures)
	})
}
