package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/internal/webhook"
	"github.com/herald-fhir/herald/topics"
)

// newDeliveringServer is Herald as cmd/herald wires it, over the memory
// store: topics, publishing, Subscription rules, the admin API and a
// delivery engine.
func newDeliveringServer(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	v, err := auth.NewVerifier(ctx, auth.VerifierConfig{HS256Secret: []byte(testSecret)})
	require.NoError(t, err)
	lib, err := topic.Load(ctx, st, topics.FS, time.Now())
	require.NoError(t, err)
	keys, err := secrets.NewKeyring(secrets.GenerateKey(""))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + "/fhir"
	rules := &subscription.Rules{Topics: lib, Keys: keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: 720 * time.Hour, DefaultMaxPayload: "id-only"}}
	svc := resources.New(resources.Config{Store: st, BaseURL: base,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: lib, BaseURL: base}).Hook},
		Rules:   typerules.Rules(rules, lib)})
	engine := delivery.New(delivery.Config{Store: st, Rules: rules, Topics: lib, BaseURL: base,
		Sender: webhook.New(webhook.Options{UserAgent: "Herald/test"}), Poll: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ectx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); engine.Run(ectx) }()
	srv.Config.Handler = api.New(api.Options{Resources: svc, Admin: st, Topics: lib, Auth: v, Ready: st, BaseURL: base, MaxBodyBytes: 1 << 20})
	srv.Start()
	t.Cleanup(func() { srv.Close(); stop(); <-done })
	return srv
}

func benchLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BENCH ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// field returns the value of key=value in a BENCH line.
func field(t *testing.T, line, key string) float64 {
	t.Helper()
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, kv)
			return f
		}
	}
	t.Fatalf("no %s in %s", key, line)
	return 0
}

func TestDeliveryPhases(t *testing.T) {
	srv := newDeliveringServer(t)
	var stdout, stderr bytes.Buffer
	code, err := run(context.Background(), []string{
		"-url", srv.URL + "/fhir", "-phases", "delivery,fanout", "-secret", testSecret,
		"-delivery-subs", "5", "-delivery-rate", "40", "-fanout-subs", "20", "-delivery-receivers", "2",
		"-warmup", "200ms", "-duration", "700ms", "-delivery-drain", "20s", "-delivery-setup-timeout", "20s",
		"-cpu", "me=pid:" + strconv.Itoa(os.Getpid()), "-bench-tag", "sweep",
	}, func(string) string { return "" }, &stdout, &stderr)
	out := stdout.String()
	require.NoError(t, err, out+stderr.String())
	require.Equal(t, 0, code, out+stderr.String())
	require.Contains(t, out, "== phase delivery")
	require.Contains(t, out, "== phase fanout")
	lines := benchLines(out)
	require.Len(t, lines, 2, out)
	for _, l := range lines {
		require.True(t, strings.HasSuffix(l, " tag=sweep"), l)
	}
	// Each phase deletes its Subscriptions afterwards: the fanout phase
	// found none of the delivery phase's still active.
	require.Contains(t, out, "5 Subscriptions deleted")
	require.Contains(t, out, "20 Subscriptions deleted")

	lat := lines[0]
	require.Contains(t, lat, "BENCH phase=delivery subs=5 fan=1 rate=40 ")
	writes := field(t, lat, "writes")
	require.Greater(t, writes, 0.0, "the open loop wrote (how many depends on the machine's load)")
	require.Equal(t, writes, field(t, lat, "events"), "one event per write")
	require.Zero(t, field(t, lat, "missing"), out)
	require.Zero(t, field(t, lat, "dups"), out)
	require.Zero(t, field(t, lat, "write_errors"), out)
	require.Greater(t, field(t, lat, "max_ms"), 0.0)
	require.GreaterOrEqual(t, field(t, lat, "max_ms"), field(t, lat, "p99_ms"))

	fan := lines[1]
	require.Contains(t, fan, "BENCH phase=fanout subs=20 fan=20 backlog=2 ")
	require.Greater(t, field(t, fan, "writes"), 0.0)
	require.Equal(t, 20*field(t, fan, "writes"), field(t, fan, "events"), "every write reaches every Subscription")
	require.Zero(t, field(t, fan, "missing"), out)
	require.Zero(t, field(t, fan, "dups"), out)
	require.Greater(t, field(t, fan, "notifications_per_s"), 0.0)
	require.GreaterOrEqual(t, field(t, fan, "events_per_notification"), 1.0)
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		require.Contains(t, fan, " cpu_me_us_per_event=")
	}
}

func TestDeliveryFlags(t *testing.T) {
	env := func(string) string { return "" }
	var stderr bytes.Buffer
	_, err := parseFlags([]string{"-phases", "delivery", "-token", "x"}, env, &stderr)
	require.ErrorContains(t, err, "-secret")
	_, err = parseFlags([]string{"-phases", "fanout", "-secret", testSecret, "-profile-url", "http://10.1.1.1:6060", "-profile-out", "x"}, env, &stderr)
	require.ErrorContains(t, err, "loopback")
	_, err = parseFlags([]string{"-phases", "fanout", "-secret", testSecret, "-fanout-backlog", "0"}, env, &stderr)
	require.ErrorContains(t, err, "fanout-backlog")
	o, err := parseFlags([]string{"-phases", "create,delivery,fanout", "-secret", testSecret}, env, &stderr)
	require.NoError(t, err)
	require.Equal(t, []string{"create", "delivery", "fanout"}, o.phases)
	require.Equal(t, 200.0, o.delivery.rate)
	require.Equal(t, 100, o.delivery.subs)
	require.Equal(t, 1000, o.delivery.fanoutSubs)
	require.True(t, o.delivery.cleanup)
	require.Empty(t, o.tag)
	_, err = parseFlags([]string{"-phases", "delivery", "-secret", testSecret, "-bench-tag", "a b"}, env, &stderr)
	require.ErrorContains(t, err, "-bench-tag")
}

func TestParseNotification(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"history","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Parameters","parameter":[
		{"name":"subscription","valueReference":{"reference":"http://h/fhir/Subscription/s1"}},
		{"name":"status","valueCode":"active"},{"name":"type","valueCode":"event-notification"},
		{"name":"events-since-subscription-start","valueString":"2"},
		{"name":"notification-event","part":[{"name":"event-number","valueString":"1"},{"name":"focus","valueReference":{"reference":"http://h/fhir/Encounter/e-1/_history/1"}},
			{"name":"additional-context","valueReference":{"reference":"http://h/fhir/Patient/p1"}}]},
		{"name":"notification-event","part":[{"name":"event-number","valueString":"2"},{"name":"focus","valueReference":{"reference":"http://h/fhir/Encounter/e-2/_history/3"}}]}]}},
		{"fullUrl":"http://h/fhir/Encounter/e-1/_history/1","request":{"method":"PUT","url":"Encounter/e-1"},"response":{"status":"201"}}]}`
	n, err := parseNotification([]byte(body))
	require.NoError(t, err)
	require.Equal(t, "event-notification", n.kind)
	require.Equal(t, []string{"e-1", "e-2"}, n.focus)
	_, err = parseNotification([]byte(`{"resourceType":"Bundle"}`))
	require.Error(t, err)
}
