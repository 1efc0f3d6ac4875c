// Command herald-relay is the bare relay Herald's notification path is
// measured against (issue 13): the smallest honest program doing the same
// durable work for one notification. It speaks just enough of Herald's API
// for herald-load's delivery phases:
//
//   - POST /admin/endpoints: accepted, nothing checked.
//   - PUT /fhir/Patient/{id}: stored.
//   - POST /fhir/Subscription: the endpoint and the "Encounter?patient=Patient/X"
//     filter are stored; a handshake is sent, then the Subscription is active.
//   - GET /fhir/Subscription?status=active, DELETE /fhir/Subscription/{id}.
//   - PUT /fhir/Encounter/{id}: one statement (one transaction, one round
//     trip) stores the version and appends one numbered event per
//     Subscription pinned to the Encounter's patient, found by an index.
//
// After the commit, the events go to a pool of workers, one queue per
// worker and each Subscription always on the same queue, so events go out
// in order; each is POSTed as an id-only notification Bundle and its
// delivery recorded (one statement). Failed sends are retried. Events not
// delivered when the process stopped are sent again at start.
//
// What it does not do, and Herald does: authentication, validation, topics
// and filters other than the patient, re-authorisation before a send,
// leases across instances, includes, signing, SSRF checks, heartbeats.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
)

const topic = "https://herald.dev/fhir/SubscriptionTopic/encounter-start"

const schema = `
CREATE TABLE IF NOT EXISTS relay_resources (
	type text NOT NULL, id text NOT NULL, version int NOT NULL, body jsonb NOT NULL,
	PRIMARY KEY (type, id));
CREATE TABLE IF NOT EXISTS relay_subscriptions (
	id text PRIMARY KEY, patient text NOT NULL, endpoint text NOT NULL,
	status text NOT NULL, last_event bigint NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS relay_subscriptions_patient ON relay_subscriptions (patient);
CREATE TABLE IF NOT EXISTS relay_events (
	subscription_id text NOT NULL, number bigint NOT NULL, focus_id text NOT NULL,
	focus_version int NOT NULL, created_at timestamptz NOT NULL, delivered_at timestamptz,
	PRIMARY KEY (subscription_id, number));`

// writeEncounterSQL stores an Encounter version and appends its events in
// one statement. The UPDATE locks each matching Subscription's counter until
// commit, which numbers its events in commit order.
const writeEncounterSQL = `WITH r AS (
		INSERT INTO relay_resources (type, id, version, body) VALUES ('Encounter', $1, 1, $3)
		ON CONFLICT (type, id) DO UPDATE SET version = relay_resources.version + 1, body = excluded.body
		RETURNING version),
	s AS (
		UPDATE relay_subscriptions SET last_event = last_event + 1
		WHERE patient = $2 AND status <> 'off'
		RETURNING id, last_event, endpoint),
	e AS (
		INSERT INTO relay_events (subscription_id, number, focus_id, focus_version, created_at)
		SELECT s.id, s.last_event, $1, r.version, now() FROM s, r)
	SELECT r.version, s.id, s.last_event, s.endpoint FROM r LEFT JOIN s ON true`

type job struct {
	sub, endpoint string
	handshake     bool
	number        int64
	focusID       string
	version       int64
}

type relay struct {
	db      *pgxpool.Pool // writes
	acks    *pgxpool.Pool // delivery records: no wait for the WAL flush
	base    string
	client  *http.Client
	queues  []chan job
	retries time.Duration
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	base := flag.String("base", "", "FHIR base of notifications (default http://<addr>/fhir)")
	workers := flag.Int("workers", 32, "concurrent sends")
	conns := flag.Int("conns", 16, "connections of each pool (writes; delivery records)")
	flag.Parse()
	if *base == "" {
		*base = "http://" + *addr + "/fhir"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := openPool(ctx, *conns, false)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	acks, err := openPool(ctx, *conns, true)
	if err != nil {
		log.Fatal(err)
	}
	defer acks.Close()
	if _, err := db.Exec(ctx, schema); err != nil {
		log.Fatal(err)
	}
	r := &relay{db: db, acks: acks, base: *base, retries: time.Second,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}}
	for range *workers {
		q := make(chan job, 4096)
		r.queues = append(r.queues, q)
		go r.work(ctx, q)
	}
	if err := r.resume(ctx); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: r.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// openPool connects to $DATABASE_URL. A lost delivery record (asyncCommit)
// only means a repeated send after a crash, as in Herald.
func openPool(ctx context.Context, conns int, asyncCommit bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(conns)
	if asyncCommit {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

func (r *relay) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /admin/endpoints", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {})
	m.HandleFunc("PUT /fhir/Patient/{id}", r.putPatient)
	m.HandleFunc("PUT /fhir/Encounter/{id}", r.putEncounter)
	m.HandleFunc("POST /fhir/Encounter", r.putEncounter)
	m.HandleFunc("POST /fhir/Subscription", r.postSubscription)
	m.HandleFunc("GET /fhir/Subscription", r.searchSubscriptions)
	m.HandleFunc("DELETE /fhir/Subscription/{id}", r.deleteSubscription)
	return m
}

func fail(w http.ResponseWriter, code int, err error) {
	http.Error(w, err.Error(), code)
}

func (r *relay) putPatient(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	_, err = r.db.Exec(req.Context(), `INSERT INTO relay_resources (type, id, version, body) VALUES ('Patient', $1, 1, $2)
		ON CONFLICT (type, id) DO UPDATE SET version = relay_resources.version + 1, body = excluded.body`, req.PathValue("id"), body)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
	}
}

func (r *relay) putEncounter(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var enc struct {
		ID      string `json:"id"`
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
	}
	if err == nil {
		err = json.Unmarshal(body, &enc)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	id := req.PathValue("id")
	if id == "" {
		id = uuid.NewString()
	}
	patient, _ := strings.CutPrefix(enc.Subject.Reference, "Patient/")
	rows, err := r.db.Query(req.Context(), writeEncounterSQL, id, patient, body)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	var jobs []job
	for rows.Next() {
		var j job
		var sub, endpoint *string
		var number *int64
		if err := rows.Scan(&j.version, &sub, &number, &endpoint); err != nil {
			break
		}
		if sub != nil {
			j.sub, j.number, j.endpoint, j.focusID = *sub, *number, *endpoint, id
			jobs = append(jobs, j)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	for _, j := range jobs {
		r.enqueue(j)
	}
	w.WriteHeader(http.StatusCreated)
}

func (r *relay) postSubscription(w http.ResponseWriter, req *http.Request) {
	var s struct {
		Criteria struct {
			Extension []struct {
				ValueString string `json:"valueString"`
			} `json:"extension"`
		} `json:"_criteria"`
		Channel struct {
			Endpoint string `json:"endpoint"`
		} `json:"channel"`
	}
	if err := json.NewDecoder(req.Body).Decode(&s); err != nil || len(s.Criteria.Extension) != 1 {
		fail(w, http.StatusBadRequest, fmt.Errorf("want one Encounter?patient=Patient/X filter: %v", err))
		return
	}
	patient, ok := strings.CutPrefix(s.Criteria.Extension[0].ValueString, "Encounter?patient=Patient/")
	if !ok {
		fail(w, http.StatusBadRequest, fmt.Errorf("want one Encounter?patient=Patient/X filter"))
		return
	}
	id := uuid.NewString()
	if _, err := r.db.Exec(req.Context(), `INSERT INTO relay_subscriptions (id, patient, endpoint, status) VALUES ($1, $2, $3, 'requested')`,
		id, patient, s.Channel.Endpoint); err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	r.enqueue(job{sub: id, endpoint: s.Channel.Endpoint, handshake: true})
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"resourceType":"Subscription","id":%q}`, id)
}

func (r *relay) searchSubscriptions(w http.ResponseWriter, req *http.Request) {
	rows, err := r.db.Query(req.Context(), `SELECT id FROM relay_subscriptions WHERE status = 'active'`)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	entries := []map[string]any{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err == nil {
			entries = append(entries, map[string]any{"resource": map[string]string{"resourceType": "Subscription", "id": id}})
		}
	}
	if rows.Err() != nil {
		fail(w, http.StatusInternalServerError, rows.Err())
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
}

func (r *relay) deleteSubscription(w http.ResponseWriter, req *http.Request) {
	if _, err := r.db.Exec(req.Context(), `UPDATE relay_subscriptions SET status = 'off' WHERE id = $1`, req.PathValue("id")); err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// enqueue puts a job on its Subscription's queue: one worker per
// Subscription keeps its events in order.
func (r *relay) enqueue(j job) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(j.sub))
	r.queues[h.Sum32()%uint32(len(r.queues))] <- j
}

// resume queues the events left undelivered by an earlier process.
func (r *relay) resume(ctx context.Context) error {
	rows, err := r.db.Query(ctx, `SELECT e.subscription_id, s.endpoint, e.number, e.focus_id, e.focus_version
		FROM relay_events e JOIN relay_subscriptions s ON s.id = e.subscription_id
		WHERE e.delivered_at IS NULL AND s.status <> 'off' ORDER BY e.subscription_id, e.number`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.sub, &j.endpoint, &j.number, &j.focusID, &j.version); err != nil {
			return err
		}
		r.enqueue(j)
	}
	return rows.Err()
}

// work delivers its queue's jobs. Writers enqueue after their commit, so
// two writes to one Subscription can arrive here out of number order: an
// event waits until the one before it went out.
func (r *relay) work(ctx context.Context, q chan job) {
	next := map[string]int64{}           // per Subscription: the number due
	parked := map[string]map[int64]job{} // per Subscription: events that came early
	for j := range q {
		switch n, known := next[j.sub]; {
		case j.handshake:
			r.send(ctx, j)
			next[j.sub] = 1
			continue
		case !known:
			next[j.sub] = j.number // resumed after a restart: the first undelivered
		case j.number != n:
			if parked[j.sub] == nil {
				parked[j.sub] = map[int64]job{}
			}
			parked[j.sub][j.number] = j
			continue
		}
		for ok := true; ok; j, ok = parked[j.sub][next[j.sub]] {
			delete(parked[j.sub], j.number)
			r.send(ctx, j)
			next[j.sub] = j.number + 1
		}
	}
}

// send delivers j, retrying until it succeeds or the process stops.
func (r *relay) send(ctx context.Context, j job) {
	for ctx.Err() == nil {
		err := r.deliver(ctx, j)
		if err == nil {
			return
		}
		log.Printf("relay: subscription %s event %d: %v; retrying", j.sub, j.number, err)
		time.Sleep(r.retries)
	}
}

// deliver sends one job and records it.
func (r *relay) deliver(ctx context.Context, j job) error {
	body, err := r.bundle(j)
	if err != nil {
		return err
	}
	resp, err := r.client.Post(j.endpoint, "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if j.handshake {
		_, err = r.acks.Exec(ctx, `UPDATE relay_subscriptions SET status = 'active' WHERE id = $1 AND status = 'requested'`, j.sub)
	} else {
		_, err = r.acks.Exec(ctx, `UPDATE relay_events SET delivered_at = now() WHERE subscription_id = $1 AND number = $2`, j.sub, j.number)
	}
	return err
}

func (r *relay) bundle(j job) ([]byte, error) {
	s := notify.Subscription{ID: j.sub, Topic: topic, Status: fhir.StatusActive, Content: fhir.ContentIDOnly, EventsSinceStart: j.number}
	if j.handshake {
		s.Status = fhir.StatusRequested
		return notify.Build(r.base, s, notify.Handshake, nil, time.Now(), nil)
	}
	ev := notify.Event{Number: j.number, Timestamp: time.Now(), Method: notify.Update,
		Focus: notify.Ref{Type: "Encounter", ID: j.focusID, VersionID: j.version}}
	return notify.Build(r.base, s, notify.EventNotification, []notify.Event{ev}, time.Now(), nil)
}
