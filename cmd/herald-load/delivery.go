package main

// The delivery phases measure rest-hook delivery end to end: herald-load runs
// the subscriber itself (an HTTP receiver on loopback that answers 200 at
// once), allow-lists it through the admin API, creates Subscriptions through
// the FHIR API, waits for their handshakes, and then writes Encounters that
// fire encounter-start. The latency of a notification is the time from the
// write being accepted (its response received) to the notification naming
// it as focus arriving at the receiver.
//
//   - delivery: -delivery-subs Subscriptions, each filtered to a patient of
//     its own; PUT Encounter writes at an open-loop -delivery-rate per second,
//     round-robin over the patients, so each write matches exactly one
//     Subscription. Reported: the end-to-end latency percentiles.
//   - fanout: -fanout-subs Subscriptions all filtered to one patient, so every
//     write fans out to all of them. By default the writes are flow
//     controlled: a new write goes out whenever fewer than -fanout-backlog
//     writes' notifications are outstanding, which keeps delivery saturated
//     without an ever-growing queue (-fanout-rate sets an open-loop rate
//     instead). Reported: notifications and events received per second in
//     the measured window, the latency percentiles meanwhile, and the writes
//     accepted per second.
//
// A notification may carry several events (when a Subscription has a
// backlog); "notifications" counts the POSTs, "events" the write×Subscription
// pairs they carry. A notification that arrives before the writer saw its
// write's response (possible: the write commits before the response goes out)
// counts as "early" with latency 0.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
)

const (
	encounterStartTopic = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"
	// subscriberScopes: create, read and (-delivery-cleanup) delete its
	// Subscriptions, receive Encounter events with the Patient as additional
	// context.
	subscriberScopes = "system/Subscription.cruds system/Encounter.rs system/Patient.rs"
	publisherScopes  = "system/*.cruds"
	// benchSigningSecret is the Subscriptions' signing secret: Herald signs
	// every notification with it, as it would in production; the receiver
	// does not check the signature.
	benchSigningSecret = "herald-load-signing-secret-0123456789abcdef"
	// maxInFlightWrites bounds the writes an open-loop driver has waiting
	// for a response; a write due beyond it is skipped and counted.
	maxInFlightWrites = 512
)

// deliveryOptions are the flags of the delivery and fanout phases.
type deliveryOptions struct {
	secret        string
	rate          float64
	subs          int
	fanoutSubs    int
	fanoutRate    float64
	fanoutBacklog int
	writers       int
	maxCount      int
	receivers     int
	drain         time.Duration
	setupTimeout  time.Duration
	profileURL    string
	profileOut    string
	xactURL       string
	cleanup       bool
}

func deliveryFlags(fs interface {
	Float64Var(*float64, string, float64, string)
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) *deliveryOptions {
	d := &deliveryOptions{}
	fs.Float64Var(&d.rate, "delivery-rate", 200, "delivery phase: Encounter writes per second, open loop")
	fs.IntVar(&d.subs, "delivery-subs", 100, "delivery phase: Subscriptions, each matching one patient's writes")
	fs.IntVar(&d.fanoutSubs, "fanout-subs", 1000, "fanout phase: Subscriptions matching every write")
	fs.Float64Var(&d.fanoutRate, "fanout-rate", 0, "fanout phase: writes per second, open loop (0: flow controlled by -fanout-backlog)")
	fs.IntVar(&d.fanoutBacklog, "fanout-backlog", 2, "fanout phase: a new write goes out while fewer than this many writes' notifications are outstanding")
	fs.IntVar(&d.writers, "delivery-writers", 0, "delivery phase: closed loop with this many writers, each sending its next write when the last one answered (0: open loop at -delivery-rate)")
	fs.IntVar(&d.maxCount, "delivery-max-count", 0, "backport-max-count of the Subscriptions, events per notification (0: the server's default)")
	fs.IntVar(&d.receivers, "delivery-receivers", 1, "receiver listeners (ports) the Subscriptions are spread over; Herald limits concurrent sends per host:port")
	fs.DurationVar(&d.drain, "delivery-drain", 60*time.Second, "after a delivery phase, how long to wait for the measured writes' notifications")
	fs.DurationVar(&d.setupTimeout, "delivery-setup-timeout", 120*time.Second, "how long Subscriptions may take to become active")
	fs.StringVar(&d.profileURL, "profile-url", "", "pprof base URL of the server (loopback), e.g. http://127.0.0.1:6060: profile its CPU during the fanout phase's measured window")
	fs.StringVar(&d.profileOut, "profile-out", "", "file for the -profile-url CPU profile")
	fs.StringVar(&d.xactURL, "xact-url", "", "PostgreSQL URL of the server's database: report its committed transactions (pg_stat_database) per event received, from the window's start to the drain's end")
	fs.BoolVar(&d.cleanup, "delivery-cleanup", true, "delete a delivery phase's Subscriptions once its figures are in, so that they burden neither later phases nor later runs against the same server")
	return d
}

func (d *deliveryOptions) validate() error {
	switch {
	case d.rate <= 0:
		return errors.New("-delivery-rate must be positive")
	case d.subs < 1 || d.fanoutSubs < 1:
		return errors.New("-delivery-subs and -fanout-subs must be at least 1")
	case d.fanoutRate < 0:
		return errors.New("-fanout-rate must not be negative")
	case d.fanoutBacklog < 1:
		return errors.New("-fanout-backlog must be at least 1")
	case d.writers < 0:
		return errors.New("-delivery-writers must not be negative")
	case d.maxCount < 0:
		return errors.New("-delivery-max-count must not be negative")
	case d.receivers < 1 || d.receivers > 64:
		return errors.New("-delivery-receivers must be from 1 to 64")
	case d.drain < 0 || d.setupTimeout <= 0:
		return errors.New("-delivery-drain must not be negative and -delivery-setup-timeout must be positive")
	case (d.profileURL == "") != (d.profileOut == ""):
		return errors.New("-profile-url and -profile-out go together")
	}
	if d.profileURL != "" {
		u, err := url.Parse(d.profileURL)
		if err != nil || u.Scheme != "http" || !loopback(u.Hostname()) {
			return fmt.Errorf("-profile-url %q: want an http URL on loopback", d.profileURL)
		}
	}
	if d.secret == "" {
		return errors.New("the delivery phases mint their own tokens (admin, publisher, subscriber): pass -secret or $HERALD_LOAD_SECRET")
	}
	return nil
}

// deliveryBench is the state the delivery phases share: the receiver, the
// tokens and the HTTP client.
type deliveryBench struct {
	o         options
	d         *deliveryOptions
	client    *http.Client
	base      string // FHIR base
	origin    string // scheme://host of the server
	pubAuth   string
	subAuth   string
	adminAuth string
	nonce     string // keeps ids apart from earlier runs against the same server
	recv      *receiver
	stdout    io.Writer
	// activeBefore: the subscriber's Subscriptions already active (an
	// earlier phase's).
	activeBefore int
}

func newDeliveryBench(ctx context.Context, o options, stdout io.Writer) (*deliveryBench, error) {
	d := o.delivery
	ttl := 2*d.setupTimeout + 2*(o.warmup+o.duration) + 2*d.drain + time.Hour
	mint := func(client, scope string) (string, error) {
		t, err := auth.MintHS256([]byte(d.secret), auth.MintClaims{ClientID: client, Scope: scope, TTL: ttl})
		return "Bearer " + t, err
	}
	b := &deliveryBench{o: o, d: d, client: newClient(64, o.timeout), base: o.base.String(), stdout: stdout,
		origin: (&url.URL{Scheme: o.base.Scheme, Host: o.base.Host}).String()}
	var nonce [3]byte
	_, _ = rand.Read(nonce[:])
	b.nonce = hex.EncodeToString(nonce[:])
	var err error
	if b.pubAuth, err = mint("herald-load-publisher", publisherScopes); err != nil {
		return nil, err
	}
	if b.subAuth, err = mint("herald-load-subscriber-"+b.nonce, subscriberScopes); err != nil {
		return nil, err
	}
	if b.adminAuth, err = mint("herald-load-admin", auth.AdminScope); err != nil {
		return nil, err
	}
	if b.recv, err = startReceiver(d.receivers); err != nil {
		return nil, err
	}
	for _, origin := range b.recv.origins {
		if err := b.allowEndpoint(ctx, origin+"/"); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *deliveryBench) close() {
	b.recv.close()
	b.client.CloseIdleConnections()
}

// do sends one request and returns the status and body; non-2xx is an error
// unless the status is in also.
func (b *deliveryBench) do(ctx context.Context, method, url, authz, contentType string, body []byte, also ...int) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", authz)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if (resp.StatusCode < 200 || resp.StatusCode > 299) && !slices.Contains(also, resp.StatusCode) {
		return resp.StatusCode, rb, fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, clipBody(rb))
	}
	return resp.StatusCode, rb, nil
}

// allowEndpoint puts the receiver on the allow-list (already there is fine).
func (b *deliveryBench) allowEndpoint(ctx context.Context, prefix string) error {
	body, _ := json.Marshal(map[string]any{"url_prefix": prefix, "allow_private_network": true, "note": "herald-load receiver"})
	_, _, err := b.do(ctx, http.MethodPost, b.origin+"/admin/endpoints", b.adminAuth, "application/json", body, http.StatusConflict)
	return err
}

// putPatients creates the Patients the Encounters refer to, so that
// notifications carry them as additional context as they would in use.
func (b *deliveryBench) putPatients(ctx context.Context, ids []string) error {
	return parallel(ctx, 8, len(ids), func(i int) error {
		body := fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"active":true,"name":[{"family":"Bench","given":["P%d"]}]}`, ids[i], i)
		_, _, err := b.do(ctx, http.MethodPut, b.base+"/Patient/"+ids[i], b.pubAuth, "application/fhir+json", body)
		return err
	})
}

// subscriptionBody is a backport Subscription on encounter-start filtered
// to one patient, rest-hook to endpoint, id-only payload, signed.
func subscriptionBody(endpoint, patient string, maxCount int) []byte {
	channelExt := []any{map[string]any{"url": fhir.ExtSigningSecret, "valueString": benchSigningSecret}}
	if maxCount > 0 {
		channelExt = append(channelExt, map[string]any{"url": fhir.ExtMaxCount, "valuePositiveInt": maxCount})
	}
	m := map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "herald-load delivery benchmark",
		"criteria":     encounterStartTopic,
		"_criteria": map[string]any{"extension": []any{map[string]any{
			"url": fhir.ExtFilterCriteria, "valueString": "Encounter?patient=Patient/" + patient}}},
		"channel": map[string]any{
			"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
			"extension": channelExt,
			"_payload": map[string]any{"extension": []any{map[string]any{
				"url": fhir.ExtPayloadContent, "valueCode": fhir.ContentIDOnly}}},
		},
	}
	body, _ := json.Marshal(m)
	return body
}

// encounterBody is an in-progress Encounter of patient: creating it fires
// encounter-start.
func encounterBody(buf []byte, id, patient string) []byte {
	buf = append(buf, `{"resourceType":"Encounter","id":"`...)
	buf = append(buf, id...)
	buf = append(buf, `","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`...)
	buf = append(buf, patient...)
	buf = append(buf, `"},"period":{"start":"`...)
	buf = time.Now().UTC().AppendFormat(buf, "2006-01-02T15:04:05Z")
	buf = append(buf, `"}}`...)
	return buf
}

// subscribe creates n Subscriptions for phase, Subscription i filtered to
// patient(i) and posting to /hook/<phase>/<i> on the receivers in turn, and
// waits until the receiver saw every handshake and the server lists them
// all active. It returns the Subscriptions' ids, also when it fails ("" for
// any not created).
func (b *deliveryBench) subscribe(ctx context.Context, t *tracker, phase string, n int, patient func(i int) string) ([]string, error) {
	t0 := time.Now()
	ids := make([]string, n) // "" where a create failed
	err := parallel(ctx, 8, n, func(i int) error {
		endpoint := b.recv.origins[i%len(b.recv.origins)] + "/hook/" + phase + "/" + strconv.Itoa(i)
		_, body, err := b.do(ctx, http.MethodPost, b.base+"/Subscription", b.subAuth, "application/fhir+json",
			subscriptionBody(endpoint, patient(i), b.d.maxCount))
		if err != nil {
			return err
		}
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
			return fmt.Errorf("POST Subscription: no id in the response: %s", clipBody(body))
		}
		ids[i] = r.ID
		return nil
	})
	if err != nil {
		return ids, fmt.Errorf("creating Subscriptions: %w", err)
	}
	took := time.Since(t0)
	ctx, cancel := context.WithTimeout(ctx, b.d.setupTimeout)
	defer cancel()
	for {
		hs := t.handshakeCount()
		active := -1
		if hs >= n {
			var err error
			if active, err = b.countActive(ctx); err != nil && ctx.Err() == nil {
				return ids, err
			}
			if active >= b.activeBefore+n {
				fmt.Fprintf(b.stdout, "%d Subscriptions created in %.1fs, all active after %.1fs\n", n, took.Seconds(), time.Since(t0).Seconds())
				b.activeBefore = active
				return ids, nil
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return ids, fmt.Errorf("after %s, %d of %d handshakes received and %d Subscriptions active (%d expected)", b.d.setupTimeout, hs, n, active, b.activeBefore+n)
			}
			return ids, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// unsubscribe deletes Subscriptions of the subscriber's; it returns how
// many it deleted, and the first failure.
func (b *deliveryBench) unsubscribe(ctx context.Context, ids []string) (int, error) {
	var (
		mu      sync.Mutex
		deleted int
	)
	err := parallel(ctx, 8, len(ids), func(i int) error {
		if _, _, err := b.do(ctx, http.MethodDelete, b.base+"/Subscription/"+ids[i], b.subAuth, "", nil); err != nil {
			return err
		}
		mu.Lock()
		deleted++
		mu.Unlock()
		return nil
	})
	return deleted, err
}

// countActive pages through the subscriber's active Subscriptions.
func (b *deliveryBench) countActive(ctx context.Context) (int, error) {
	next := b.base + "/Subscription?status=active&_count=1000"
	total := 0
	for next != "" {
		_, body, err := b.do(ctx, http.MethodGet, next, b.subAuth, "", nil)
		if err != nil {
			return 0, err
		}
		var bundle struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(body, &bundle); err != nil {
			return 0, fmt.Errorf("Subscription search: %w", err)
		}
		total += len(bundle.Entry)
		next = ""
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return total, nil
}

// parallel runs fn(0..n-1) on c goroutines and returns the first error.
func parallel(ctx context.Context, c, n int, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		next int
		fail error
		wg   sync.WaitGroup
	)
	for range min(c, n) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || fail != nil || ctx.Err() != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if fail == nil {
						fail = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if fail != nil {
		return fail
	}
	return ctx.Err()
}

// --- the receiver ------------------------------------------------------------

// receiver is the subscriber: HTTP servers on loopback that hand each
// notification to the current phase's tracker and answer 200.
type receiver struct {
	origins []string
	servers []*http.Server
	mu      sync.Mutex
	t       *tracker
}

func startReceiver(n int) (*receiver, error) {
	r := &receiver{}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		r.servers = append(r.servers, srv)
		r.origins = append(r.origins, "http://"+ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
	}
	return r, nil
}

func (r *receiver) close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

func (r *receiver) use(t *tracker) {
	r.mu.Lock()
	r.t = t
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
	now := time.Now()
	if err != nil || req.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	n, err := parseNotification(body)
	r.mu.Lock()
	t := r.t
	r.mu.Unlock()
	if t == nil {
		return
	}
	if err != nil {
		t.bad(err)
		return
	}
	t.observe(req.URL.Path, n, now)
}

// notification is what the receiver reads of a notification Bundle.
type notification struct {
	kind    string   // handshake, heartbeat, event-notification
	focus   []string // Encounter ids, one per event
	numbers []int64  // event numbers, one per event
}

func parseNotification(body []byte) (notification, error) {
	sum, err := notify.Summarize(body)
	if err != nil {
		return notification{}, err
	}
	n := notification{kind: string(sum.Type)}
	for _, e := range sum.Events {
		if e.Focus != "" {
			n.focus = append(n.focus, encounterID(e.Focus))
			n.numbers = append(n.numbers, e.Number)
		}
	}
	return n, nil
}

// encounterID takes <id> out of …/Encounter/<id>/_history/<v>.
func encounterID(ref string) string {
	_, rest, ok := strings.Cut(ref, "/Encounter/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// --- the tracker -------------------------------------------------------------

// write is one Encounter write of a phase.
type write struct {
	sent     time.Time // when its request went out
	accepted time.Time // when its response came; zero until then
	measured bool
	failed   bool
	fan      int         // Subscriptions it reaches
	got      int         // events received for it
	early    []time.Time // receive times before it was accepted
}

// tracker correlates a phase's writes with the notifications received.
type tracker struct {
	mu         sync.Mutex
	changed    chan struct{} // signalled after every notification
	writes     map[string]*write
	seen       map[string]bool // path \x00 Encounter id: duplicates
	handshakes map[string]bool // paths

	// outstanding: events of writes sent (and not failed) not yet
	// received; pending: the same for measured writes.
	outstanding, pending int

	// The measured window, by receive time.
	winStart, winEnd   time.Time
	winPosts, winEvent int
	winOther           int // handshakes and heartbeats in the window

	lat                  []time.Duration // measured writes' events, from acceptance
	fromSent             []time.Duration // the same, from the write's request
	early, dups, unknown int
	// lastNumber is the highest event number received per path;
	// reordered counts new events below it, gaps jumps over numbers.
	lastNumber            map[string]int64
	reordered, gaps       int
	badBodies             int
	badSample             string
	writeLat              []time.Duration // measured writes: PUT → response
	writesOK, writeErrors int
	writeErrorKinds       map[string]int
	writeErrorSample      string
	skipped               int // open loop: writes not sent, too many in flight
	acceptedInWindow      int // writes (any) accepted inside the window
	postsBySize           map[int]int
}

func newTracker() *tracker {
	return &tracker{changed: make(chan struct{}, 1), writes: map[string]*write{}, seen: map[string]bool{},
		handshakes: map[string]bool{}, lastNumber: map[string]int64{}, writeErrorKinds: map[string]int{}, postsBySize: map[int]int{}}
}

func (t *tracker) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *tracker) handshakeCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.handshakes)
}

func (t *tracker) bad(err error) {
	t.mu.Lock()
	t.badBodies++
	if t.badSample == "" {
		t.badSample = err.Error()
	}
	t.mu.Unlock()
}

func (t *tracker) inWindow(at time.Time) bool {
	return !t.winStart.IsZero() && !at.Before(t.winStart) && (t.winEnd.IsZero() || at.Before(t.winEnd))
}

func (t *tracker) observe(path string, n notification, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.signal()
	if n.kind != "event-notification" {
		if n.kind == "handshake" {
			t.handshakes[path] = true
		}
		if t.inWindow(at) {
			t.winOther++
		}
		return
	}
	if t.inWindow(at) {
		t.winPosts++
		t.winEvent += len(n.focus)
		t.postsBySize[len(n.focus)]++
	}
	for i, id := range n.focus {
		t.checkOrder(path, n.numbers[i], t.seen[path+"\x00"+id])
		w := t.writes[id]
		if w == nil {
			t.unknown++
			continue
		}
		key := path + "\x00" + id
		if t.seen[key] {
			t.dups++
			continue
		}
		t.seen[key] = true
		w.got++
		if !w.failed {
			t.outstanding--
			if w.measured {
				t.pending--
			}
		}
		if w.measured {
			t.fromSent = append(t.fromSent, at.Sub(w.sent))
		}
		if w.accepted.IsZero() {
			w.early = append(w.early, at)
			continue
		}
		if w.measured {
			t.lat = append(t.lat, at.Sub(w.accepted))
		}
	}
}

// checkOrder counts an event number that comes after a higher one (a new
// event, not a repeat) or skips numbers. Numbers start at 1 per path.
func (t *tracker) checkOrder(path string, number int64, repeat bool) {
	last := t.lastNumber[path]
	switch {
	case repeat:
		return
	case number < last:
		t.reordered++
		return
	case number > last+1:
		t.gaps++
	}
	t.lastNumber[path] = number
}

// sending registers a write about to go out.
func (t *tracker) sending(id string, fan int, measured bool) {
	t.mu.Lock()
	t.writes[id] = &write{fan: fan, measured: measured, sent: time.Now()}
	t.outstanding += fan
	if measured {
		t.pending += fan
	}
	t.mu.Unlock()
}

// done records a write's outcome: at is when its response came.
func (t *tracker) done(id string, sent, at time.Time, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.writes[id]
	if !o.ok() {
		w.failed = true
		left := w.fan - w.got
		t.outstanding -= left
		if w.measured {
			t.pending -= left
			t.writeErrors++
			kind := "transport error"
			if o.status != 0 {
				kind = "HTTP " + strconv.Itoa(o.status)
			}
			t.writeErrorKinds[kind]++
			if t.writeErrorSample == "" {
				t.writeErrorSample = o.describe()
			}
		}
		t.signal()
		return
	}
	w.accepted = at
	if t.inWindow(at) {
		t.acceptedInWindow++
	}
	if !w.measured {
		return
	}
	t.writesOK++
	t.writeLat = append(t.writeLat, at.Sub(sent))
	for range w.early {
		t.early++
		t.lat = append(t.lat, 0)
	}
	w.early = nil
}

// waitBelow blocks until fewer than limit events are outstanding.
func (t *tracker) waitBelow(ctx context.Context, limit int) bool {
	for {
		t.mu.Lock()
		n := t.outstanding
		t.mu.Unlock()
		if n < limit {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drain waits until every measured write's events arrived, or until limit.
func (t *tracker) drain(ctx context.Context, limit time.Duration) {
	deadline := time.After(limit)
	for {
		t.mu.Lock()
		n := t.pending
		t.mu.Unlock()
		if n <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-t.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// --- the phases --------------------------------------------------------------

// run runs phase delivery or fanout and returns its figures.
func (b *deliveryBench) run(ctx context.Context, phase string) (*deliveryResult, error) {
	t := newTracker()
	b.recv.use(t)
	defer b.recv.use(nil)

	var (
		subs    int
		patient func(i int) string // the patient of Subscription i
		writeTo func(n int) string // the patient of write n
		rate    float64
	)
	switch phase {
	case "delivery":
		subs, rate = b.d.subs, b.d.rate
		patient = func(i int) string { return b.nonce + "-p" + strconv.Itoa(i) }
		writeTo = func(n int) string { return patient(n % subs) }
	case "fanout":
		subs, rate = b.d.fanoutSubs, b.d.fanoutRate
		fan := b.nonce + "-fan"
		patient = func(int) string { return fan }
		writeTo = func(int) string { return fan }
	default:
		return nil, fmt.Errorf("unknown delivery phase %q", phase)
	}
	fmt.Fprintf(b.stdout, "\nsetting up phase %s (run %s: its ids and patients start %s-): %d Subscriptions on %d receiver port(s)…\n",
		phase, b.nonce, b.nonce, subs, len(b.recv.origins))
	var patients []string
	for i := range subs {
		if p := patient(i); !slices.Contains(patients, p) {
			patients = append(patients, p)
		}
	}
	if err := b.putPatients(ctx, patients); err != nil {
		return nil, fmt.Errorf("%s: creating Patients: %w", phase, err)
	}
	ids, err := b.subscribe(ctx, t, phase, subs, patient)
	if b.d.cleanup {
		defer b.cleanup(ctx, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", phase, err)
	}
	fan := 1
	if phase == "fanout" {
		fan = subs
	}

	writers := 0
	if phase == "delivery" {
		writers = b.d.writers
	}
	r := &deliveryResult{phase: phase, subs: subs, fan: fan, rate: rate, backlog: b.d.fanoutBacklog, warmup: b.o.warmup, writers: writers}
	var wg sync.WaitGroup
	inFlight := make(chan struct{}, maxInFlightWrites)
	var seqMu sync.Mutex
	seq := 0
	next := func() (string, string) {
		seqMu.Lock()
		defer seqMu.Unlock()
		id := b.nonce + "-" + phase[:3] + "-" + strconv.Itoa(seq)
		to := writeTo(seq)
		seq++
		return id, to
	}
	write := func(id, to string) {
		body := encounterBody(make([]byte, 0, 320), id, to)
		sent := time.Now()
		o := b.putEncounter(ctx, id, body)
		t.done(id, sent, time.Now(), o)
	}
	issue := func(measured bool) {
		id, to := next()
		t.sending(id, fan, measured)
		inFlight <- struct{}{}
		wg.Go(func() {
			defer func() { <-inFlight }()
			write(id, to)
		})
	}

	start := time.Now()
	winStart := start.Add(b.o.warmup)
	winEnd := winStart.Add(b.o.duration)
	var before cpuSample
	var profile chan error
	armed := false
	xactsBefore := make(chan int64, 1)
	arm := func() {
		armed = true
		go func() { xactsBefore <- b.xacts(ctx, 0) }()
		before = sampleCPU(b.o.cpu)
		t.mu.Lock()
		t.winStart = time.Now()
		t.mu.Unlock()
		if phase == "fanout" && b.d.profileURL != "" {
			profile = make(chan error, 1)
			go func() { profile <- fetchProfile(ctx, b.d.profileURL, b.d.profileOut, b.o.duration) }()
		}
	}
	if writers > 0 {
		// Closed loop: each writer sends its next write when the last
		// one answered; writes sent in the window are measured.
		for range writers {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(winEnd) {
					id, to := next()
					t.sending(id, fan, !time.Now().Before(winStart))
					write(id, to)
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(winStart)):
		}
		arm()
	} else if rate > 0 {
		// Open loop: write n is due at start + n/rate, whatever happened to
		// the ones before.
		interval := time.Duration(float64(time.Second) / rate)
		for n := 0; ctx.Err() == nil; n++ {
			due := start.Add(time.Duration(n) * interval)
			if !due.Before(winEnd) {
				break
			}
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
			if !armed && !due.Before(winStart) {
				arm()
			}
			if len(inFlight) == cap(inFlight) {
				t.mu.Lock()
				t.skipped++
				t.mu.Unlock()
				continue
			}
			issue(!due.Before(winStart))
		}
	} else {
		// Flow controlled: keep fanoutBacklog writes' events queued.
		for ctx.Err() == nil {
			now := time.Now()
			if !now.Before(winEnd) {
				break
			}
			if !armed && !now.Before(winStart) {
				arm()
			}
			wctx, cancel := context.WithDeadline(ctx, winStart)
			if armed {
				wctx, cancel = context.WithDeadline(ctx, winEnd)
			}
			ok := t.waitBelow(wctx, b.d.fanoutBacklog*fan)
			cancel()
			if ok {
				issue(armed)
			}
		}
	}
	if !armed {
		arm()
	}
	if d := time.Until(winEnd); d > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	t.mu.Lock()
	t.winEnd = time.Now()
	r.elapsed = t.winEnd.Sub(t.winStart)
	t.mu.Unlock()
	after := sampleCPU(b.o.cpu)
	r.cpu = cpuUsage(b.o.cpu, before, after, r.elapsed)
	wg.Wait()
	t.mu.Lock()
	r.outstandingAtEnd = t.outstanding
	t.mu.Unlock()
	drainStart := time.Now()
	t.drain(ctx, b.d.drain)
	r.drained = time.Since(drainStart)
	if b.d.xactURL != "" {
		r.xacts = b.xacts(ctx, 1500*time.Millisecond) - <-xactsBefore
	}
	if profile != nil {
		if err := <-profile; err != nil {
			r.profileErr = err.Error()
		} else {
			r.profile = b.d.profileOut
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.collect(t)
	return r, nil
}

// xacts reads the transactions committed in -xact-url's database, after
// waiting for the statistics (a backend reports its counts at most once a
// second, so the window's start may miss up to a second of warm-up);
// -1 when it cannot.
func (b *deliveryBench) xacts(ctx context.Context, wait time.Duration) int64 {
	if b.d.xactURL == "" {
		return 0
	}
	time.Sleep(wait)
	conn, err := pgx.Connect(ctx, b.d.xactURL)
	if err != nil {
		fmt.Fprintln(b.stdout, "warning: -xact-url:", err)
		return -1
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		fmt.Fprintln(b.stdout, "warning: -xact-url:", err)
		return -1
	}
	return n
}

// cleanup deletes a phase's Subscriptions (unless interrupted: then they
// stay, matching only this run's patients).
func (b *deliveryBench) cleanup(ctx context.Context, ids []string) {
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })
	if len(ids) == 0 || ctx.Err() != nil {
		return
	}
	t0 := time.Now()
	n, err := b.unsubscribe(ctx, ids)
	b.activeBefore = max(b.activeBefore-n, 0)
	if err != nil {
		fmt.Fprintf(b.stdout, "warning: deleted %d of the phase's %d Subscriptions: %v\n", n, len(ids), err)
		return
	}
	fmt.Fprintf(b.stdout, "%d Subscriptions deleted in %.1fs\n", n, time.Since(t0).Seconds())
}

func (b *deliveryBench) putEncounter(ctx context.Context, id string, body []byte) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, b.base+"/Encounter/"+id, bytes.NewReader(body))
	if err != nil {
		return outcome{err: err.Error()}
	}
	req.Header.Set("Authorization", b.pubAuth)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := b.client.Do(req)
	if err != nil {
		return outcome{err: transportError(err)}
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return outcome{status: resp.StatusCode, err: clipBody(rb)}
	}
	return outcome{status: resp.StatusCode}
}

// fetchProfile saves a CPU profile of d from a pprof listener.
func fetchProfile(ctx context.Context, base, out string, d time.Duration) error {
	secs := max(int((d+time.Second/2)/time.Second), 1)
	u := strings.TrimRight(base, "/") + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// --- the result ----------------------------------------------------------------

// deliveryResult is one delivery phase's figures.
type deliveryResult struct {
	phase            string
	subs, fan        int
	rate             float64
	backlog          int
	warmup, elapsed  time.Duration
	drained          time.Duration
	outstandingAtEnd int

	lat, fromSent        []time.Duration // sorted
	writeLat             []time.Duration // sorted
	writes, writeErrors  int
	errorKinds           map[string]int
	errorSample          string
	skipped              int
	expected, received   int // measured writes' events
	early, dups, unknown int
	reordered, gaps      int
	writers              int
	xacts                int64 // committed in the database from the window's start to the drain's end; 0: not measured
	bad                  int
	badSample            string
	posts, events, other int // received in the window
	acceptedInWindow     int
	postsBySize          map[int]int
	cpu                  []cpuShare
	profile, profileErr  string
}

func (r *deliveryResult) collect(t *tracker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.lat = slices.Clone(t.lat)
	slices.Sort(r.lat)
	r.fromSent = slices.Clone(t.fromSent)
	slices.Sort(r.fromSent)
	r.writeLat = slices.Clone(t.writeLat)
	slices.Sort(r.writeLat)
	r.writes, r.writeErrors, r.errorKinds, r.errorSample = t.writesOK+t.writeErrors, t.writeErrors, t.writeErrorKinds, t.writeErrorSample
	r.skipped = t.skipped
	for _, w := range t.writes {
		if w.measured && !w.failed {
			r.expected += w.fan
			r.received += min(w.got, w.fan)
		}
	}
	r.early, r.dups, r.unknown, r.bad, r.badSample = t.early, t.dups, t.unknown, t.badBodies, t.badSample
	r.reordered, r.gaps = t.reordered, t.gaps
	r.posts, r.events, r.other = t.winPosts, t.winEvent, t.winOther
	r.acceptedInWindow = t.acceptedInWindow
	r.postsBySize = t.postsBySize
}

func (r *deliveryResult) missing() int { return r.expected - r.received }

func (r *deliveryResult) perSecond(n int) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(n) / r.elapsed.Seconds()
}

func (r *deliveryResult) errorRate() float64 {
	if r.writes == 0 {
		return 1
	}
	return float64(r.writeErrors) / float64(r.writes)
}

func (r *deliveryResult) load() string {
	if r.writers > 0 {
		return fmt.Sprintf("closed loop, %d writers", r.writers)
	}
	if r.rate > 0 {
		return fmt.Sprintf("open loop %g writes/s", r.rate)
	}
	return fmt.Sprintf("flow controlled, %d writes' notifications outstanding", r.backlog)
}

func (r *deliveryResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== phase %s: %d Subscriptions, each write matching %d; %s; %.2fs measured after %s warm-up\n",
		r.phase, r.subs, r.fan, r.load(), r.elapsed.Seconds(), r.warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writes\terrors\twrites/s\tevents\tmissing\tearly\te2e p50 ms\tp90 ms\tp99 ms\tmax ms\t")
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", r.writes, r.writeErrors, r.perSecond(r.acceptedInWindow),
		r.expected, r.missing(), r.early,
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.90)), ms(percentile(r.lat, 0.99)), ms(percentile(r.lat, 1)))
	tw.Flush()
	fmt.Fprintf(w, "e2e from the write's request instead (an upper bound, with the write's own latency) ms: p50 %s, p90 %s, p99 %s, max %s\n",
		ms(percentile(r.fromSent, 0.50)), ms(percentile(r.fromSent, 0.90)), ms(percentile(r.fromSent, 0.99)), ms(percentile(r.fromSent, 1)))
	fmt.Fprintf(w, "write (PUT → response) ms: p50 %s, p90 %s, p99 %s, max %s\n",
		ms(percentile(r.writeLat, 0.50)), ms(percentile(r.writeLat, 0.90)), ms(percentile(r.writeLat, 0.99)), ms(percentile(r.writeLat, 1)))
	fmt.Fprintf(w, "received in the window: %d notifications (%.1f/s), %d events (%.1f/s), %.2f events per notification",
		r.posts, r.perSecond(r.posts), r.events, r.perSecond(r.events), r.eventsPerPost())
	if r.other > 0 {
		fmt.Fprintf(w, ", and %d handshakes/heartbeats", r.other)
	}
	fmt.Fprintln(w)
	if r.fan > 1 && len(r.postsBySize) > 0 {
		sizes := slices.Sorted(maps.Keys(r.postsBySize))
		var parts []string
		for _, s := range sizes {
			parts = append(parts, fmt.Sprintf("%d:%d", s, r.postsBySize[s]))
		}
		fmt.Fprintf(w, "notifications by events carried (events:count): %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "at the window's end %d events were outstanding; the measured writes' notifications took %.2fs more to arrive\n",
		r.outstandingAtEnd, r.drained.Seconds())
	if r.missing() > 0 {
		fmt.Fprintf(w, "warning: %d of the measured writes' %d events had not arrived after the -delivery-drain wait\n", r.missing(), r.expected)
	}
	if r.early > 0 {
		fmt.Fprintf(w, "note: %d events arrived before their write's response (counted as 0 ms)\n", r.early)
	}
	if r.dups > 0 || r.unknown > 0 || r.bad > 0 || r.skipped > 0 {
		fmt.Fprintf(w, "warning: %d duplicate events, %d events of unknown writes, %d unreadable notifications%s, %d writes skipped (over %d in flight)\n",
			r.dups, r.unknown, r.bad, sample(r.badSample), r.skipped, maxInFlightWrites)
	}
	if r.reordered > 0 || r.gaps > 0 {
		fmt.Fprintf(w, "warning: %d events arrived after a higher event number of their Subscription, %d gaps in the numbers\n", r.reordered, r.gaps)
	}
	if r.writeErrors > 0 {
		fmt.Fprintf(w, "write errors (%.2f%%):", 100*r.errorRate())
		for _, k := range slices.Sorted(maps.Keys(r.errorKinds)) {
			fmt.Fprintf(w, " %s ×%d;", k, r.errorKinds[k])
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  e.g.", r.errorSample)
	}
	if len(r.cpu) > 0 {
		var parts, per []string
		for _, c := range r.cpu {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", c.label, c.pct))
			if c.label != "iowait" && c.label != "machine-busy" {
				per = append(per, fmt.Sprintf("%s %.0f", c.label, r.cpuPerEvent(c)))
			}
		}
		fmt.Fprintf(w, "CPU, %% of one core: %s\n", strings.Join(parts, ", "))
		fmt.Fprintf(w, "CPU µs per event received: %s\n", strings.Join(per, ", "))
	}
	if r.profile != "" {
		fmt.Fprintf(w, "server CPU profile of the measured window: %s\n", r.profile)
	} else if r.profileErr != "" {
		fmt.Fprintf(w, "warning: no server CPU profile: %s\n", r.profileErr)
	}
}

func sample(s string) string {
	if s == "" {
		return ""
	}
	return " (e.g. " + s + ")"
}

func (r *deliveryResult) eventsPerPost() float64 {
	if r.posts == 0 {
		return 0
	}
	return float64(r.events) / float64(r.posts)
}

func (r *deliveryResult) cpuPerEvent(c cpuShare) float64 {
	if r.events == 0 {
		return 0
	}
	return c.pct / 100 * r.elapsed.Seconds() * 1e6 / float64(r.events)
}

func (r *deliveryResult) benchLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "BENCH phase=%s subs=%d fan=%d", r.phase, r.subs, r.fan)
	if r.writers > 0 {
		fmt.Fprintf(&b, " writers=%d", r.writers)
	} else if r.rate > 0 {
		fmt.Fprintf(&b, " rate=%g", r.rate)
	} else {
		fmt.Fprintf(&b, " backlog=%d", r.backlog)
	}
	fmt.Fprintf(&b, " duration_s=%.2f writes=%d write_errors=%d writes_per_s=%.1f events=%d missing=%d early=%d dups=%d"+
		" p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s sent_p99_ms=%s write_p50_ms=%s write_p99_ms=%s"+
		" notifications=%d notifications_per_s=%.1f events_per_s=%.1f events_per_notification=%.2f",
		r.elapsed.Seconds(), r.writes, r.writeErrors, r.perSecond(r.acceptedInWindow), r.expected, r.missing(), r.early, r.dups,
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.90)), ms(percentile(r.lat, 0.99)), ms(percentile(r.lat, 1)),
		ms(percentile(r.fromSent, 0.99)), ms(percentile(r.writeLat, 0.50)), ms(percentile(r.writeLat, 0.99)),
		r.posts, r.perSecond(r.posts), r.perSecond(r.events), r.eventsPerPost())
	fmt.Fprintf(&b, " reordered=%d gaps=%d", r.reordered, r.gaps)
	if r.xacts > 0 && r.received > 0 {
		fmt.Fprintf(&b, " xacts=%d xacts_per_event=%.2f", r.xacts, float64(r.xacts)/float64(r.received))
	}
	for _, s := range r.cpu {
		label := strings.ReplaceAll(s.label, "-", "_")
		fmt.Fprintf(&b, " cpu_%s_pct=%.0f", label, s.pct)
		if s.label != "iowait" && s.label != "machine-busy" {
			fmt.Fprintf(&b, " cpu_%s_us_per_event=%.0f", label, r.cpuPerEvent(s))
		}
	}
	return b.String()
}
