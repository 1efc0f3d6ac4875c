package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/webhook"
)

// TestFailedHandshakeIsErrorAtOnce: the IG says a handshake that fails SHALL
// put the Subscription in error. The first failure does, with the reason
// and its subscription-error code; retries go on (the retried handshakes
// report the error, coded), and the first that succeeds makes it active
// and clears the error.
func TestFailedHandshakeIsErrorAtOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		// A long recovery wait: a successful handshake is exempt from it.
		e := newEnv(t, st, func(c *delivery.Config) { c.RecoverAfter = time.Hour })
		var down atomic.Bool
		down.Store(true)
		e.recv.setAnswer(func(n int, d delivered) int {
			if down.Load() {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		id := e.subscribe()
		errored := e.waitStatus(id, "error")
		require.Contains(t, errored.Error, "handshake failed")
		require.Contains(t, errored.Error, "status 503")
		require.Equal(t, fhir.SubscriptionErrorResponse, errored.ErrorCode)
		res := e.resource(id)
		require.Equal(t, "error", res["status"])
		require.Equal(t, errored.Error, res["error"])

		// A retried handshake, built while in error, carries the coded error.
		got := e.recv.waitFor(t, "a handshake sent in error", func(got []delivered) bool {
			for _, d := range got {
				if d.Bundle.Kind == "handshake" && d.Bundle.State == "error" {
					return true
				}
			}
			return false
		})
		for _, d := range got {
			require.Equal(t, "handshake", d.Bundle.Kind, "nothing but handshakes before one succeeds")
			if d.Bundle.State != "error" {
				continue
			}
			sum, err := notify.Summarize(d.Body)
			require.NoError(t, err)
			require.Equal(t, []notify.Error{{System: fhir.SubscriptionErrorSystem, Code: fhir.SubscriptionErrorResponse, Text: errored.Error}}, sum.Errors)
			break
		}

		down.Store(false)
		active := e.waitStatus(id, "active")
		require.Empty(t, active.Error)
		require.Empty(t, active.ErrorCode)
		require.NotContains(t, e.resource(id), "error")
	})
}

// TestSendFailureCodes: each kind of failed send maps to its
// subscription-error code.
func TestSendFailureCodes(t *testing.T) {
	t.Parallel()
	noDNS := func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no such host") }
	cases := []struct {
		name   string
		answer int // 0 hangs
		opt    option
		mods   []func(map[string]any)
		want   string
	}{
		{"non-2xx", http.StatusNotFound, nil, nil, fhir.SubscriptionErrorResponse},
		{"timeout", 0, nil, []func(map[string]any){withChannelExtension("timeout", 1)}, fhir.SubscriptionErrorNoResponse},
		{"dns", http.StatusOK, func(c *delivery.Config) {
			c.Sender = webhook.New(webhook.Options{Resolver: noDNS})
		}, []func(map[string]any){withEndpoint("http://nowhere.invalid/hook")}, fhir.SubscriptionErrorDNS},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var opts []option
			if c.opt != nil {
				opts = append(opts, c.opt)
			}
			e := newEnv(t, storeMemory(), opts...)
			e.recv.setAnswer(func(int, delivered) int { return c.answer })
			require.NoError(t, e.st.AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "nowhere", URLPrefix: "http://nowhere.invalid/", CreatedAt: time.Now()}))
			id := e.subscribe(c.mods...)
			require.Equal(t, c.want, e.waitStatus(id, "error").ErrorCode)
		})
	}
}

// TestContentTypeIsThePayload: the rest-hook Content-Type SHALL equal
// channel.payload, parameters included; application/json is delivered as
// application/json; the signature still covers the body.
func TestContentTypeIsThePayload(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		for _, payload := range []string{"application/fhir+json;fhirVersion=4.0", "application/json"} {
			id := e.subscribe(func(m map[string]any) { channel(m)["payload"] = payload })
			require.Equal(t, payload, e.state(id).Payload)
			got := e.recv.waitFor(t, "the handshake of "+payload, func(got []delivered) bool {
				for _, d := range got {
					if d.Header.Get("Content-Type") == payload {
						return true
					}
				}
				return false
			})
			for _, d := range got {
				if d.Header.Get("Content-Type") != payload {
					continue
				}
				mac := hmac.New(sha256.New, []byte(secret))
				mac.Write(d.Body)
				require.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), d.Header.Get("X-Hub-Signature"))
				require.Equal(t, "handshake", d.Bundle.Kind)
			}
			e.waitStatus(id, "active")
		}
	})
}

// TestNotificationAccessTokens: an id-only Subscription with Herald's
// notification-access-token extension gets, in each notification-event, a
// token signed with Herald's key for its base URL that grants exactly the
// event's focus (at the version that fired) and included resources; one
// without the extension gets none.
func TestNotificationAccessTokens(t *testing.T) {
	t.Parallel()
	issuer, err := notifytoken.New([]byte("a-notification-token-key-of-32-bytes!"), time.Minute, nil)
	require.NoError(t, err)
	e := newEnv(t, storeMemory(), func(c *delivery.Config) { c.Tokens = issuer })
	_, err = e.svc.Update(context.Background(), publisher, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`), "")
	require.NoError(t, err)
	with := e.subscribe(func(m map[string]any) {
		ch := channel(m)
		ch["extension"] = append(ch["extension"].([]any), map[string]any{
			"url": "https://herald.dev/fhir/StructureDefinition/notification-access-token", "valueBoolean": true})
	})
	without := e.subscribe()
	e.waitStatus(with, "active")
	e.waitStatus(without, "active")
	e.encounter("a")
	got := e.recv.waitFor(t, "both notifications", func(got []delivered) bool { return len(ackedEvents(got)) >= 2 })
	seen := 0
	for _, d := range got {
		if d.Bundle.Kind != "event-notification" {
			continue
		}
		sum, err := notify.Summarize(d.Body)
		require.NoError(t, err)
		require.Len(t, sum.Events, 1)
		seen++
		if sum.SubscriptionID == without {
			require.Empty(t, sum.Events[0].AccessToken)
			require.NotContains(t, string(d.Body), "authorization-value")
			continue
		}
		require.Contains(t, string(d.Body), `"name":"authorization-type","valueCoding":{"system":"https://herald.dev/fhir/CodeSystem/notification-authorization-type","code":"bearer-token"}`)
		g, err := issuer.Verify(baseURL, sum.Events[0].AccessToken)
		require.NoError(t, err)
		require.Equal(t, with, g.Subscription)
		require.Equal(t, []store.VersionRef{{Type: "Encounter", ID: "a", Version: 1}, {Type: "Patient", ID: "p1", Version: 1}}, g.Refs)
		require.WithinDuration(t, time.Now().Add(time.Minute), g.ExpiresAt, 10*time.Second)
	}
	require.Equal(t, 2, seen)
}
