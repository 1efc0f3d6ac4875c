package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/auth"
)

const (
	encounterStart = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	channelTimeout = time.Second
	lockTimeout    = 2 * time.Second // HERALD_DB_LOCK_TIMEOUT of the instances
	lockHeld       = 5 * time.Second // how long the lock fault holds its row
)

// write is one Encounter a publisher tried to create.
type write struct {
	id, patient string
	outcome     string // ok, failed (an error answer), unknown (no answer)
	status      int    // the answer's status; 0 without one
	start, end  time.Time
}

// faultWindow is a Herald or PostgreSQL fault: from its start until the
// service answered a write again.
type faultWindow struct {
	name      string
	start     time.Time
	restarted time.Time // when the killed process was started again
	recovered time.Time // first successful write after the fault; zero: never
	skipped   string    // why it did not run
}

// world is one reliability run.
type world struct {
	opts      options
	out       io.Writer
	log       *os.File
	dbURL     string // the run's own database
	admin     string // token
	publisher string
	client    string
	a, b      *instance
	receivers []*receiver
	subs      []subscriptionInfo

	mu     sync.Mutex
	writes []write
	faults []*faultWindow
	// lockedPatient's writes append events under the delivery row that the
	// lock fault holds, between lockFrom and lockTo.
	lockedPatient    string
	lockFrom, lockTo time.Time

	okWrites atomic.Int64
}

type subscriptionInfo struct {
	id, patient string
	recv        *receiver
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return false, err
	}
	w := &world{opts: o, out: stdout}
	tmp, err := os.MkdirTemp("", "herald-reliability-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	logPath := o.logFile
	if logPath == "" {
		logPath = filepath.Join(tmp, "herald.log")
	}
	if w.log, err = os.Create(logPath); err != nil {
		return false, err
	}
	defer w.log.Close()

	bin := o.herald
	if bin == "" {
		bin = filepath.Join(tmp, "herald")
		fmt.Fprintln(stdout, "building ./cmd/herald …")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/herald").CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	dbURL, dropDB, err := createDatabase(ctx, o.databaseURL)
	if err != nil {
		return false, err
	}
	defer dropDB()
	w.dbURL = dbURL

	secret := randomHex(32)
	env := []string{
		"DATABASE_URL=" + dbURL,
		"HERALD_ADDR=127.0.0.1:0",
		"HERALD_AUTH_HS256_SECRET=" + secret,
		"HERALD_SECRET_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		"HERALD_DELIVERY_LEASE=3s",
		"HERALD_DELIVERY_POLL=250ms",
		"HERALD_RETRY_BASE=100ms",
		"HERALD_RETRY_MAX=1s",
		"HERALD_LOG_LEVEL=info",
		// The lock fault holds a row for longer than this: the writes that
		// wait for it must get 503 and store nothing.
		"HERALD_DB_LOCK_TIMEOUT=" + lockTimeout.String(),
	}
	mint := func(client, scope string) string {
		tok, err := auth.MintHS256([]byte(secret), auth.MintClaims{ClientID: client, Scope: scope, TTL: 24 * time.Hour})
		if err != nil {
			panic(err)
		}
		return tok
	}
	w.admin = mint("reliability-admin", "herald.admin")
	w.publisher = mint("ehr", "system/*.cruds")
	w.client = mint("subscriber", "system/Subscription.crus system/Encounter.rs system/Patient.rs")

	w.a = &instance{name: "A", bin: bin, env: env, log: w.log}
	w.b = &instance{name: "B", bin: bin, env: env, log: w.log}
	for _, in := range []*instance{w.a, w.b} {
		if err := in.start(ctx); err != nil {
			return false, err
		}
		defer in.stop()
	}
	for _, f := range faults {
		r, err := newReceiver(f, channelTimeout)
		if err != nil {
			return false, err
		}
		defer r.close()
		w.receivers = append(w.receivers, r)
	}
	if err := w.setup(ctx); err != nil {
		return false, err
	}

	fmt.Fprintf(stdout, "load: %d writes/s from %d publishers for %s; %d Subscriptions on %d receivers\n",
		o.rate, o.writers, o.duration, len(w.subs), len(w.receivers))
	for _, r := range w.receivers {
		r.healthy.Store(false)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var pubs sync.WaitGroup
	for i := range o.writers {
		pubs.Go(func() { w.publish(loadCtx, i) })
	}
	started := time.Now()
	w.injectFaults(ctx, started)
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(started.Add(o.duration))):
	}
	stopLoad()
	pubs.Wait()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}

	fmt.Fprintln(stdout, "load done; receivers healed; waiting for delivery to drain …")
	for _, r := range w.receivers {
		r.healthy.Store(true)
	}
	drained := w.drain(ctx, 120*time.Second)
	rep, err := w.verify(ctx)
	if err != nil {
		return false, err
	}
	rep.drained = drained
	rep.print(stdout, w)
	if !rep.ok() {
		fmt.Fprintf(stdout, "herald logs: %s\n", logPath)
		if o.logFile == "" {
			_ = w.log.Sync()
			b, _ := os.ReadFile(logPath)
			fmt.Fprintf(stderr, "---- herald logs (last 200 lines) ----\n%s\n", tail(b, 200))
		}
	}
	return rep.ok(), nil
}

// setup allow-lists the receivers and creates the Subscriptions, all
// active (handshaken) before the faults start.
func (w *world) setup(ctx context.Context) error {
	base := w.a.baseURL()
	for i, r := range w.receivers {
		body := fmt.Sprintf(`{"url_prefix":%q,"allow_private_network":true,"note":"reliability receiver %d"}`, r.url+"/", i)
		if st, b, err := w.do(ctx, "POST", base+"/admin/endpoints", w.admin, "application/json", body); err != nil || st != 201 {
			return fmt.Errorf("allow-list %s: %d %s %v", r.url, st, b, err)
		}
	}
	patients := w.opts.subscriptions / 2
	for i := range w.opts.subscriptions {
		r := w.receivers[i%len(w.receivers)]
		patient := fmt.Sprintf("p%d", i%patients)
		body := subscriptionJSON(r.url+"/hook/"+fmt.Sprint(i), "Encounter?patient=Patient/"+patient)
		st, b, err := w.do(ctx, "POST", base+"/fhir/Subscription", w.client, "application/fhir+json", body)
		if err != nil || st != 201 {
			return fmt.Errorf("create Subscription: %d %s %v", st, b, err)
		}
		var created struct{ ID string }
		_ = json.Unmarshal(b, &created)
		w.subs = append(w.subs, subscriptionInfo{id: created.ID, patient: patient, recv: r})
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range w.subs {
		for {
			st, b, err := w.do(ctx, "GET", base+"/fhir/Subscription/"+s.id, w.client, "", "")
			var res struct{ Status string }
			if err == nil && st == 200 && json.Unmarshal(b, &res) == nil && res.Status == "active" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("Subscription %s not active within 30 s", s.id)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
	}
	return nil
}

func subscriptionJSON(endpoint, filter string) string {
	return fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"reliability",
	 "criteria":%q,
	 "_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":%q}]},
	 "channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json",
	  "extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout","valueUnsignedInt":1},
	               {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count","valuePositiveInt":20}],
	  "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]}}}`,
		encounterStart, filter, endpoint)
}

// publish writes Encounters at its share of the rate, alternating between
// the instances that are up, and records every outcome.
func (w *world) publish(ctx context.Context, n int) {
	interval := time.Duration(float64(time.Second) * float64(w.opts.writers) / float64(w.opts.rate))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	patients := w.opts.subscriptions / 2
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		in := w.a
		if seq%2 == 1 {
			in = w.b
		}
		base := in.baseURL()
		if base == "" { // down: use the other one
			if in == w.a {
				in = w.b
			} else {
				in = w.a
			}
			if base = in.baseURL(); base == "" {
				continue
			}
		}
		wr := write{id: fmt.Sprintf("rel-%d-%d", n, seq), patient: fmt.Sprintf("p%d", (n+seq)%patients)}
		body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, wr.id, wr.patient)
		wr.start = time.Now()
		st, _, err := w.do(context.WithoutCancel(ctx), "PUT", base+"/fhir/Encounter/"+wr.id, w.publisher, "application/fhir+json", body)
		wr.status, wr.end = st, time.Now()
		switch {
		case err != nil:
			wr.outcome = "unknown"
		case st == 201 || st == 200:
			wr.outcome = "ok"
			w.okWrites.Add(1)
		default:
			wr.outcome = "failed"
		}
		w.mu.Lock()
		w.writes = append(w.writes, wr)
		w.mu.Unlock()
	}
}

// injectFaults runs the fault schedule in the background.
func (w *world) injectFaults(ctx context.Context, started time.Time) {
	d := w.opts.duration
	at := func(frac float64) time.Time { return started.Add(time.Duration(frac * float64(d))) }
	go func() {
		w.killAndRestart(ctx, w.a, at(0.15))
		w.holdRowLock(ctx, at(0.25))
		if w.opts.pgRestart {
			w.restartPG(ctx, at(0.4))
		} else {
			w.addFault(&faultWindow{name: "PostgreSQL restart", skipped: "-pg-restart=false"})
		}
		w.terminateBackends(ctx, at(0.5))
		w.killAndRestart(ctx, w.b, at(0.65))
	}()
}

func (w *world) addFault(f *faultWindow) {
	w.mu.Lock()
	w.faults = append(w.faults, f)
	w.mu.Unlock()
}

func (w *world) killAndRestart(ctx context.Context, in *instance, when time.Time) {
	if !sleepUntil(ctx, when) {
		return
	}
	f := &faultWindow{name: "SIGKILL instance " + in.name + ", restart after 2 s", start: time.Now()}
	w.addFault(f)
	in.kill()
	if !sleepUntil(ctx, f.start.Add(2*time.Second)) {
		return
	}
	f.restarted = time.Now()
	if err := in.start(ctx); err != nil {
		fmt.Fprintf(w.out, "restart of %s failed: %v\n", in.name, err)
		return
	}
	f.recovered = w.firstWriteAfter(ctx, in, f.start)
}

func (w *world) restartPG(ctx context.Context, when time.Time) {
	if !sleepUntil(ctx, when) {
		return
	}
	f := &faultWindow{name: "PostgreSQL restart", start: time.Now()}
	w.addFault(f)
	if ok, why := restartPostgres(); !ok {
		f.skipped = why
		return
	}
	f.recovered = w.firstWriteAfter(ctx, w.a, f.start)
}

// terminateBackends kills every PostgreSQL backend serving Herald (its
// pools, the LISTEN connections), as a kill -9 of those backends would
// end them, without touching the postmaster, which others may share.
func (w *world) terminateBackends(ctx context.Context, when time.Time) {
	if !sleepUntil(ctx, when) {
		return
	}
	f := &faultWindow{name: "pg_terminate_backend of every Herald connection", start: time.Now()}
	w.addFault(f)
	conn, err := pgx.Connect(ctx, w.opts.databaseURL)
	if err != nil {
		f.skipped = "cannot connect: " + err.Error()
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := databaseName(w.dbURL)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()) t`, name).Scan(&n)
	if err != nil {
		f.skipped = "pg_terminate_backend: " + err.Error()
		return
	}
	f.name += fmt.Sprintf(" (%d backends)", n)
	f.recovered = w.firstWriteAfter(ctx, w.a, f.start)
}

// holdRowLock holds the delivery row of the first Subscription locked
// (SELECT … FOR UPDATE in an open transaction) for lockHeld, longer than
// the instances' lock timeout. Writes for its patient append an event
// under that row, so they wait for it: each must answer 503 after the lock
// timeout and store nothing. Its deliveries wait likewise, and resume.
func (w *world) holdRowLock(ctx context.Context, when time.Time) {
	if !sleepUntil(ctx, when) {
		return
	}
	f := &faultWindow{name: fmt.Sprintf("row lock on a Subscription's delivery row held %s (lock timeout %s)", lockHeld, lockTimeout), start: time.Now()}
	w.addFault(f)
	conn, err := pgx.Connect(ctx, w.dbURL)
	if err != nil {
		f.skipped = "cannot connect: " + err.Error()
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		f.skipped = "begin: " + err.Error()
		return
	}
	sub := w.subs[0]
	if _, err := tx.Exec(ctx, `SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE`, sub.id); err != nil {
		f.skipped = "lock: " + err.Error()
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return
	}
	w.mu.Lock()
	w.lockedPatient, w.lockFrom = sub.patient, time.Now()
	w.mu.Unlock()
	// Writes that do not need the row go on meanwhile: probe while it is held.
	probed := make(chan time.Time, 1)
	go func() { probed <- w.firstWriteAfter(ctx, w.a, f.start) }()
	sleepUntil(ctx, time.Now().Add(lockHeld))
	_ = tx.Rollback(context.WithoutCancel(ctx))
	w.mu.Lock()
	w.lockTo = time.Now()
	w.mu.Unlock()
	f.recovered = <-probed
}

func databaseName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(p.Path, "/")
}

// firstWriteAfter probes with its own writes until one succeeds through in.
func (w *world) firstWriteAfter(ctx context.Context, in *instance, since time.Time) time.Time {
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		base := in.baseURL()
		if base != "" {
			id := fmt.Sprintf("probe-%d-%d", since.UnixNano(), i)
			body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true}`, id)
			st, _, err := w.do(ctx, "PUT", base+"/fhir/Patient/"+id, w.publisher, "application/fhir+json", body)
			if err == nil && (st == 201 || st == 200) {
				return time.Now()
			}
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			break
		}
	}
	return time.Time{}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (w *world) do(ctx context.Context, method, u, token, contentType, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// createDatabase makes herald_rel_<pid> on the server and returns its URL
// and a function that drops it.
func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(adminURL), err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("herald_rel_%d", os.Getpid())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "could not drop database %s: %v\n", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "could not drop database %s: %v\n", name, err)
		}
	}
	return u.String(), drop, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(database URL)"
	}
	return p.Redacted()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func tail(b []byte, lines int) string {
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n > lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}
