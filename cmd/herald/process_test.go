package main

// Tests that run real `herald serve` processes on one PostgreSQL schema:
// the delivery queue shared across processes, a crash (SIGKILL) in the
// middle of a send, and a graceful shutdown (SIGTERM) that hands the work
// over. The binary is built once per test binary, with -race when the tests
// run with it.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

const (
	procSecretKey  = "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LXRlc3Q="
	encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	backport       = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
)

// TestMain removes the herald binary built for the process tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if heraldBuild.dir != "" {
		_ = os.RemoveAll(heraldBuild.dir)
	}
	os.Exit(code)
}

var heraldBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// heraldBinary builds ./cmd/herald once (the tests run in cmd/herald).
func heraldBinary(t *testing.T) string {
	t.Helper()
	heraldBuild.once.Do(func() {
		heraldBuild.dir, heraldBuild.err = os.MkdirTemp("", "herald-process-test-")
		if heraldBuild.err != nil {
			return
		}
		heraldBuild.path = filepath.Join(heraldBuild.dir, "herald")
		args := []string{"build", "-o", heraldBuild.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			heraldBuild.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if heraldBuild.err != nil {
		t.Fatalf("building herald: %v", heraldBuild.err)
	}
	return heraldBuild.path
}

// raceEnabled reports whether this test binary was built with -race, so
// the herald processes are too.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// heraldProc is a running `herald serve` process.
type heraldProc struct {
	name   string
	cmd    *exec.Cmd
	url    string
	out    *logBuffer // stdout and stderr
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
}

// startHerald starts `herald serve` with exactly env, and waits until it
// listens. The process is killed when the test ends; its output is logged
// if the test failed.
func startHerald(t *testing.T, name string, env map[string]string) *heraldProc {
	t.Helper()
	cmd := exec.Command(heraldBinary(t), "serve")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &heraldProc{name: name, cmd: cmd, out: newLogBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("herald %s did not exit after SIGKILL", name)
		}
		out := p.out.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("herald %s reported a data race", name)
		}
		if t.Failed() {
			const keep = 30000
			if len(out) > keep {
				out = "…" + out[len(out)-keep:]
			}
			t.Logf("herald %s output:\n%s", name, out)
		}
	})

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		if m := listening.FindStringSubmatch(p.out.String()); m != nil {
			p.url = "http://" + m[1]
			return p
		}
		select {
		case <-p.out.changed:
		case <-p.exited:
			t.Fatalf("herald %s exited before listening (%v):\n%s", name, p.err, p.out.String())
		case <-deadline.C:
			t.Fatalf("herald %s did not listen within 30s:\n%s", name, p.out.String())
		}
	}
}

func (p *heraldProc) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// waitExit waits for the process to end and returns how it ended.
func (p *heraldProc) waitExit(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("herald %s still running after %s", p.name, timeout)
		return nil
	}
}

// metric sums the samples of a metric on the process's /metrics whose
// labels include every one of labels (such as `type="handshake"`).
func (p *heraldProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	status, body, err := call("GET", p.url+"/metrics", "", "")
	require.NoError(t, err)
	require.Equal(t, 200, status)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != ' ' && rest[0] != '{')) {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(rest, l)
		}
		if !matches {
			continue
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

// waitMetric waits until the metric (summed as metric does) reaches want.
func (p *heraldProc) waitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	var got float64
	waitUntil(t, 10*time.Second, fmt.Sprintf("%s%v >= %v on herald %s", name, labels, want, p.name), func() bool {
		got = p.metric(t, name, labels...)
		return got >= want
	})
	require.Equal(t, want, got, "%s%v on herald %s", name, labels, p.name)
}

// waitUntil polls cond (which may read from other processes) until it
// holds, or fails the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// call makes a request without failing the test, so goroutines can use it.
func call(method, url, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if strings.Contains(url, "/admin/") {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// procFixture is what the process tests share: a database schema, a
// receiver and tokens.
type procFixture struct {
	t     *testing.T
	env   map[string]string
	recv  *hookReceiver
	admin string // herald.admin
	owner string // the Subscriptions' client
	ehr   string // writes Encounters
}

// newProcFixture prepares a schema and a receiver; extra overrides the
// process environment.
func newProcFixture(t *testing.T, extra map[string]string) *procFixture {
	t.Helper()
	f := &procFixture{t: t, env: map[string]string{
		"DATABASE_URL":             pgtest.URL(t), // skips (or fails in CI) without PostgreSQL
		"HERALD_AUTH_HS256_SECRET": secret,
		"HERALD_SECRET_KEY":        procSecretKey,
		"HERALD_ADDR":              "127.0.0.1:0",
		"HERALD_BASE_URL":          "https://herald.example/fhir",
		"HERALD_DELIVERY_LEASE":    "2s",
		"HERALD_DELIVERY_POLL":     "200ms",
		"HERALD_RETRY_BASE":        "50ms",
		"HERALD_RETRY_MAX":         "500ms",
		"HERALD_LOG_LEVEL":         "debug",
	}}
	for k, v := range extra {
		f.env[k] = v
	}
	heraldBinary(t) // build before anything times
	f.recv = newHookReceiver(t)
	mint := func(client, scope string) string {
		tok, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: client, Scope: scope, TTL: time.Hour})
		require.NoError(t, err)
		return tok
	}
	f.admin = mint("herald-admin", "herald.admin")
	f.owner = mint("app", "system/Subscription.cruds system/Encounter.rs")
	f.ehr = mint("ehr", "system/*.cruds")
	return f
}

func (f *procFixture) start(name string) *heraldProc {
	f.t.Helper()
	return startHerald(f.t, name, f.env)
}

// allowReceiver puts the receiver on the allow-list (loopback: private
// network allowed).
func (f *procFixture) allowReceiver(p *heraldProc) {
	f.t.Helper()
	body := fmt.Sprintf(`{"url_prefix":%q,"allow_private_network":true}`, f.recv.srv.URL+"/")
	status, resp, err := call("POST", p.url+"/admin/endpoints", f.admin, body)
	require.NoError(f.t, err)
	require.Equal(f.t, 201, status, string(resp))
}

// subscribe creates an id-only encounter-start Subscription for Patient/p1
// with its endpoint at path under the receiver; channelExt adds backport
// channel extensions (timeout: valueUnsignedInt seconds).
func (f *procFixture) subscribe(p *heraldProc, path string, channelExt ...map[string]any) string {
	f.t.Helper()
	ch := map[string]any{
		"type": "rest-hook", "endpoint": f.recv.srv.URL + path, "payload": "application/fhir+json",
		"_payload": map[string]any{"extension": []any{map[string]any{"url": backport + "backport-payload-content", "valueCode": "id-only"}}},
	}
	if len(channelExt) > 0 {
		ch["extension"] = channelExt
	}
	sub, err := json.Marshal(map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "process test", "criteria": encounterStart,
		"_criteria": map[string]any{"extension": []any{map[string]any{"url": backport + "backport-filter-criteria", "valueString": "Encounter?patient=Patient/p1"}}},
		"channel":   ch,
	})
	require.NoError(f.t, err)
	status, body, err := call("POST", p.url+"/fhir/Subscription", f.owner, string(sub))
	require.NoError(f.t, err)
	require.Equal(f.t, 201, status, string(body))
	var created struct{ ID string }
	require.NoError(f.t, json.Unmarshal(body, &created))
	require.NotEmpty(f.t, created.ID)
	return created.ID
}

func sendTimeout(seconds int) map[string]any {
	return map[string]any{"url": backport + "backport-timeout", "valueUnsignedInt": seconds}
}

// encounter creates Encounter/<id> in progress for Patient/p1, which fires
// encounter-start for every test Subscription. Safe in goroutines.
func (f *procFixture) encounter(p *heraldProc, id string) error {
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`, id)
	status, resp, err := call("PUT", p.url+"/fhir/Encounter/"+id, f.ehr, body)
	if err != nil {
		return fmt.Errorf("PUT Encounter/%s on %s: %w", id, p.name, err)
	}
	if status != 201 {
		return fmt.Errorf("PUT Encounter/%s on %s: %d %s", id, p.name, status, resp)
	}
	return nil
}

func (f *procFixture) mustEncounter(p *heraldProc, id string) {
	f.t.Helper()
	require.NoError(f.t, f.encounter(p, id))
}

// status asks p for the Subscription's $status.
func (f *procFixture) status(p *heraldProc, id string) hookNote {
	f.t.Helper()
	status, body, err := call("GET", p.url+"/fhir/Subscription/"+id+"/$status", f.owner, "")
	require.NoError(f.t, err)
	require.Equal(f.t, 200, status, string(body))
	n := parseNote(body)
	require.Equal(f.t, id, n.Subscription, string(body))
	return n
}

// waitHandshakes waits until every Subscription's handshake was acknowledged.
func (f *procFixture) waitHandshakes(ids ...string) {
	f.t.Helper()
	f.recv.waitFor(f.t, "the handshakes", 20*time.Second, func(got []hookNote) bool {
		done := map[string]bool{}
		for _, n := range got {
			if n.Kind == "handshake" && n.Acked {
				done[n.Subscription] = true
			}
		}
		for _, id := range ids {
			if !done[id] {
				return false
			}
		}
		return true
	})
}

func waitClosed(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

var deliveryFailed = regexp.MustCompile(`"msg":"delivery failed"`)

// TestTwoProcessesShareDelivery: two processes on one schema, Encounters
// written to both from several goroutines; every Subscription gets each
// event exactly once (the receiver always acknowledges), in order.
func TestTwoProcessesShareDelivery(t *testing.T) {
	t.Parallel()
	const subscriptions, encounters, writers = 5, 40, 4
	f := newProcFixture(t, nil)
	a := f.start("A") // migrates (a no-op: pgtest migrated already)
	b := f.start("B")
	procs := []*heraldProc{a, b}
	f.allowReceiver(a)
	ids := make([]string, subscriptions)
	for i := range ids {
		ids[i] = f.subscribe(procs[i%2], fmt.Sprintf("/hook/%d", i))
	}
	f.waitHandshakes(ids...)

	began := time.Now()
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < encounters; i += writers {
				if err := f.encounter(procs[(i/writers)%2], "enc-"+strconv.Itoa(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := f.recv.waitFor(t, "every event for every Subscription", 30*time.Second, func(got []hookNote) bool {
		per := bySubscription(got)
		for _, id := range ids {
			if len(ackedEventNumbers(per[id])) < encounters {
				return false
			}
		}
		return true
	})
	t.Logf("%d Encounters × %d Subscriptions delivered %s after the first write", encounters, subscriptions, time.Since(began).Round(time.Millisecond))

	per := bySubscription(got)
	require.Len(t, per, subscriptions, describeNotes(got))
	for _, id := range ids {
		notes := per[id]
		require.Equal(t, "handshake", notes[0].Kind, "%s: %s", id, describeNotes(notes))
		for _, n := range notes {
			require.True(t, n.Acked, "%s: the receiver answered everything at once", id)
			require.Contains(t, []string{"handshake", "event-notification"}, n.Kind)
		}
		require.Equal(t, 1, len(notes)-len(eventNotes(notes)), "%s: one handshake: %s", id, describeNotes(notes))
		require.Equal(t, numbers(1, encounters), ackedEventNumbers(notes), "%s: each event once, in order: %s", id, describeNotes(notes))
		for _, p := range procs {
			require.EqualValues(t, encounters, f.status(p, id).Total, "%s on %s: events-since-subscription-start", id, p.name)
		}
	}

	// Each acknowledged event is counted once by the process that sent it
	// (just after the receiver's answer arrived): together exactly
	// subscriptions×encounters.
	want := float64(subscriptions * encounters)
	var perProc []float64
	waitUntil(t, 10*time.Second, "the processes to count every acknowledged event", func() bool {
		perProc = perProc[:0]
		for _, p := range procs {
			perProc = append(perProc, p.metric(t, "herald_events_delivered_total"))
		}
		return perProc[0]+perProc[1] >= want
	})
	require.Equal(t, want, perProc[0]+perProc[1], "events acknowledged per process: %v", perProc)
	sends := make([]float64, len(procs))
	for i, p := range procs {
		sends[i] = p.metric(t, "herald_deliveries_total", `type="event-notification"`, `outcome="success"`)
	}
	t.Logf("events acknowledged per process (A, B): %v; event-notification sends: %v", perProc, sends)
}

func eventNotes(notes []hookNote) []hookNote {
	var out []hookNote
	for _, n := range notes {
		if n.Kind == "event-notification" {
			out = append(out, n)
		}
	}
	return out
}

// TestSIGKILLMidDeliveryLosesNothing: a process dies (SIGKILL) while a
// notification is in flight; a new process on the same database sends it
// again once the lease ran out, then everything after it, in order and
// without a gap in the numbering.
func TestSIGKILLMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t, nil)
	first := f.start("first")
	f.allowReceiver(first)
	// A 2s send timeout: before sending, the engine extends the 2s lease to
	// cover the timeout plus a margin, so the takeover comes a few seconds
	// after the send began.
	id := f.subscribe(first, "/hook", sendTimeout(2))
	f.waitHandshakes(id)

	hanging := f.recv.hangOnNextEvent()
	for i := 1; i <= 3; i++ {
		f.mustEncounter(first, "enc-"+strconv.Itoa(i))
	}
	waitClosed(t, hanging, 20*time.Second, "the first event-notification to arrive")
	hungAt := time.Now()
	for i := 4; i <= 5; i++ { // queued behind the send in flight
		f.mustEncounter(first, "enc-"+strconv.Itoa(i))
	}
	require.NoError(t, first.cmd.Process.Kill())
	killedAt := time.Now()
	var exit *exec.ExitError
	require.ErrorAs(t, first.waitExit(t, 10*time.Second), &exit)
	require.Equal(t, "signal: killed", exit.Error())
	require.False(t, deliveryFailed.MatchString(first.out.String()), "the send was still in flight when the process died")
	require.Len(t, f.recv.notes(), 2, "the handshake and the hung notification: %s", describeNotes(f.recv.notes()))
	f.recv.releaseHang() // answers 200 to a connection that is gone

	second := f.start("second")
	for i := 6; i <= 10; i++ {
		f.mustEncounter(second, "enc-"+strconv.Itoa(i))
	}
	got := f.recv.waitFor(t, "events 1..10 acknowledged", 30*time.Second, func(got []hookNote) bool {
		acked := ackedEventNumbers(got)
		return len(acked) >= 10
	})

	require.Equal(t, numbers(1, 10), ackedEventNumbers(got), "every event acknowledged once, in order: %s", describeNotes(got))
	var hung []hookNote
	seen := map[int64]int{}
	for _, n := range got {
		require.Equal(t, id, n.Subscription)
		if !n.Acked {
			hung = append(hung, n)
		}
		for _, e := range n.Events {
			seen[e]++
		}
	}
	require.Len(t, hung, 1, describeNotes(got))
	require.Equal(t, int64(1), hung[0].Events[0], "the hung notification starts at the first event")
	for e, times := range seen {
		if times > 1 {
			require.Contains(t, hung[0].Events, e, "event %d sent again though it had been acknowledged: %s", e, describeNotes(got))
			require.Equal(t, 2, times, "event %d: %s", e, describeNotes(got))
		}
	}
	resent := got[2] // after the handshake and the hung one
	require.Equal(t, int64(1), resent.Events[0], "the next holder starts again at the unacknowledged event")
	require.GreaterOrEqual(t, resent.At.Sub(hung[0].At), 2*time.Second-200*time.Millisecond,
		"nobody sends while the dead process's lease, which covers the 2s send timeout, runs")
	require.EqualValues(t, 10, got[len(got)-1].Total, "events-since-subscription-start in the last notification")
	require.EqualValues(t, 10, f.status(second, id).Total, "$status: numbering went on without a gap")
	t.Logf("resent %s after the send began (%s after SIGKILL); all acknowledged %s after SIGKILL",
		resent.At.Sub(hungAt).Round(time.Millisecond), resent.At.Sub(killedAt).Round(time.Millisecond),
		got[len(got)-1].At.Sub(killedAt).Round(time.Millisecond))
}

// TestGracefulShutdownReleasesLease: SIGTERM while a send hangs; after the
// engine's drain the send is cancelled and its lease released, so a second
// process takes the Subscription over long before the 60s lease (or the 30s
// send timeout) would have let it.
func TestGracefulShutdownReleasesLease(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t, map[string]string{"HERALD_DELIVERY_LEASE": "60s"})
	first := f.start("first")
	f.allowReceiver(first)
	id := f.subscribe(first, "/hook", sendTimeout(30)) // 30s+5s margin fits the lease: not extended
	f.waitHandshakes(id)

	hanging := f.recv.hangOnNextEvent()
	f.mustEncounter(first, "enc-1")
	waitClosed(t, hanging, 20*time.Second, "the event-notification to arrive")
	second := f.start("second") // running, but the lease keeps it off

	require.NoError(t, first.signal(syscall.SIGTERM))
	termAt := time.Now()
	got := f.recv.waitFor(t, "the event sent again by the second process", 40*time.Second, func(got []hookNote) bool {
		return len(ackedEventNumbers(got)) >= 1
	})
	takeover := got[len(got)-1].At.Sub(termAt)
	require.NoError(t, first.waitExit(t, 30*time.Second), "SIGTERM ends the process cleanly")
	exitedAfter := time.Since(termAt)
	require.Contains(t, first.out.String(), `"msg":"herald stopped"`)
	require.False(t, deliveryFailed.MatchString(first.out.String()), "the cut send is not the subscriber's failure")
	require.Less(t, takeover, 20*time.Second, "only a released lease explains a takeover before the send timeout and the lease")
	require.Equal(t, []int64{1}, ackedEventNumbers(got), describeNotes(got))
	second.waitMetric(t, 1, "herald_deliveries_total", `type="event-notification"`, `outcome="success"`)

	f.mustEncounter(second, "enc-2")
	got = f.recv.waitFor(t, "the next event", 20*time.Second, func(got []hookNote) bool {
		return len(ackedEventNumbers(got)) >= 2
	})
	require.Equal(t, []int64{1, 2}, ackedEventNumbers(got), describeNotes(got))
	require.EqualValues(t, 2, f.status(second, id).Total)
	t.Logf("taken over %s after SIGTERM; the first process exited %s after it",
		takeover.Round(time.Millisecond), exitedAfter.Round(time.Millisecond))
}
