package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// worker is one simulated client's private state.
type worker struct {
	rng *rand.Rand
	buf []byte
	// bundle holds a Bundle while buf holds each of its resources in turn.
	bundle []byte
}

// outcome is the result of one request: a status (0 when the transport
// failed), and for failures a short description.
type outcome struct {
	status int
	err    string
	kind   string // which request of a mix, when the phase reports each
}

func (o outcome) ok() bool { return o.status >= 200 && o.status < 300 }

// workFunc issues one request.
type workFunc func(ctx context.Context, w *worker) outcome

// generator issues FHIR requests and remembers the Patients it created.
type generator struct {
	client *http.Client
	base   string // FHIR base, no trailing slash
	auth   string // Authorization header value
	ids    idSet
	// records are the Patients transaction Bundles wrote, for searches.
	records idSet
}

// idSet collects created ids from every worker.
type idSet struct {
	mu  sync.Mutex
	ids []string
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
}

func (s *idSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clip(s.ids)
}

// create POSTs one Patient and records its id.
func (g *generator) create(ctx context.Context, w *worker) outcome {
	w.buf = appendPatient(w.buf[:0], w.rng)
	o := g.roundTrip(ctx, http.MethodPost, g.base+"/Patient", w.buf, http.StatusCreated, func(resp *http.Response, body []byte) outcome {
		id := idFromLocation(resp.Header.Get("Location"))
		if id == "" {
			var r struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(body, &r) != nil || r.ID == "" {
				return outcome{status: resp.StatusCode, err: "201 without a Location or id"}
			}
			id = r.ID
		}
		g.ids.add(id)
		return outcome{status: resp.StatusCode}
	})
	return o
}

// reader GETs random Patients among ids.
func (g *generator) reader(ids []string) workFunc {
	return func(ctx context.Context, w *worker) outcome {
		o := g.roundTrip(ctx, http.MethodGet, g.base+"/Patient/"+ids[w.rng.IntN(len(ids))], nil, http.StatusOK, nil)
		return o
	}
}

// roundTrip sends one request and reads the whole answer (part of the
// latency, and it lets the connection be reused); a status other than want
// is a failure. keep, when not nil, is handed the response and its body.
func (g *generator) roundTrip(ctx context.Context, method, url string, body []byte, want int, keep func(*http.Response, []byte) outcome) outcome {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return outcome{err: err.Error()}
	}
	req.Header.Set("Authorization", g.auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := g.client.Do(req)
	if err != nil {
		return outcome{err: transportError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return outcome{status: resp.StatusCode, err: clipBody(b)}
	}
	if keep == nil {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return outcome{err: transportError(err)}
		}
		return outcome{status: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return outcome{err: transportError(err)}
	}
	return keep(resp, b)
}

// seed creates n Patients with c workers, unmeasured.
func (g *generator) seed(ctx context.Context, c, n int) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		fail error
	)
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(i)
			for {
				mu.Lock()
				stop := next >= n || fail != nil || ctx.Err() != nil
				next++
				mu.Unlock()
				if stop {
					return
				}
				if o := g.create(ctx, w); !o.ok() {
					mu.Lock()
					fail = fmt.Errorf("create: %s", o.describe())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		return fail
	}
	return ctx.Err()
}

func newWorker(n int) *worker {
	return &worker{rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(n)+1)), buf: make([]byte, 0, 1024)}
}

// runPhase runs work on c workers: warm-up, then a measured window of d.
// Requests in flight when the window closes finish and are counted; the
// throughput divides by the time the last one took to finish.
func runPhase(ctx context.Context, phase string, c int, warmup, d time.Duration, work workFunc, cpu []cpuTarget) *result {
	workers := make([]*worker, c)
	for i := range workers {
		workers[i] = newWorker(i)
	}
	loop := func(until time.Time, record func(i int, lat time.Duration, o outcome)) {
		var wg sync.WaitGroup
		for i, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(until) {
					t0 := time.Now()
					o := work(ctx, w)
					if record != nil {
						record(i, time.Since(t0), o)
					}
				}
			}()
		}
		wg.Wait()
	}
	if warmup > 0 {
		loop(time.Now().Add(warmup), nil)
	}

	per := make([]perWorker, c)
	for i := range per {
		per[i].lat = make([]time.Duration, 0, 1<<15)
	}
	before := sampleCPU(cpu)
	start := time.Now()
	loop(start.Add(d), func(i int, lat time.Duration, o outcome) { per[i].record(lat, o) })
	elapsed := time.Since(start)
	after := sampleCPU(cpu)

	r := &result{phase: phase, warmup: warmup, elapsed: elapsed, errorKinds: map[string]int{}, cpu: cpuUsage(cpu, before, after, elapsed)}
	for _, p := range per {
		r.lat = append(r.lat, p.lat...)
		for k, lat := range p.byKind {
			if r.byKind == nil {
				r.byKind = map[string][]time.Duration{}
			}
			r.byKind[k] = append(r.byKind[k], lat...)
		}
		r.errors += p.errors
		for k, n := range p.errorKinds {
			r.errorKinds[k] += n
		}
		for _, s := range p.samples {
			if len(r.samples) < 5 {
				r.samples = append(r.samples, s)
			}
		}
	}
	slices.Sort(r.lat)
	for _, lat := range r.byKind {
		slices.Sort(lat)
	}
	return r
}

// perWorker is one worker's record of the measured window, merged at the end
// so that recording takes no lock.
type perWorker struct {
	lat        []time.Duration
	byKind     map[string][]time.Duration // when outcomes name their kind
	errors     int
	errorKinds map[string]int
	samples    []string
}

func (p *perWorker) record(lat time.Duration, o outcome) {
	p.lat = append(p.lat, lat)
	if o.kind != "" {
		if p.byKind == nil {
			p.byKind = map[string][]time.Duration{}
		}
		p.byKind[o.kind] = append(p.byKind[o.kind], lat)
	}
	if o.ok() {
		return
	}
	p.errors++
	if p.errorKinds == nil {
		p.errorKinds = map[string]int{}
	}
	kind := "transport error"
	if o.status != 0 {
		kind = "HTTP " + strconv.Itoa(o.status)
	}
	p.errorKinds[kind]++
	if len(p.samples) < 2 {
		p.samples = append(p.samples, o.describe())
	}
}

func (o outcome) describe() string {
	if o.status == 0 {
		return "transport: " + o.err
	}
	return fmt.Sprintf("HTTP %d: %s", o.status, o.err)
}

func transportError(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

func clipBody(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// idFromLocation takes the id out of …/Patient/<id>/_history/<v>.
func idFromLocation(loc string) string {
	_, rest, ok := strings.Cut(loc, "/Patient/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// Patient bodies: small and realistic, with names, identifiers, birth dates
// and addresses varying from one request to the next.
var (
	familyNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Miller", "Davis", "Müller", "Nguyen", "Kowalski", "O'Brien", "Rossi", "Dubois", "Tanaka", "Okafor", "Larsen", "Silva", "Novak", "Haddad"}
	givenFemale = []string{"Anna", "Maria", "Olivia", "Emma", "Chloé", "Sofia", "Aisha", "Mei", "Ingrid", "Lucía"}
	givenMale   = []string{"James", "Noah", "Liam", "Lukas", "José", "Mateo", "Kenji", "Omar", "Pierre", "Tomasz"}
	cities      = []string{"Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Salem", "Franklin", "Clinton"}
	streets     = []string{"Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lake View", "Hill Rd"}
)

func appendPatient(b []byte, rng *rand.Rand) []byte {
	gender, given := "female", givenFemale
	if rng.IntN(2) == 0 {
		gender, given = "male", givenMale
	}
	family := familyNames[rng.IntN(len(familyNames))]
	b = append(b, `{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.840.1.113883.4.1","value":"`...)
	b = fmt.Appendf(b, "%03d-%02d-%04d", 100+rng.IntN(800), 1+rng.IntN(98), 1+rng.IntN(9998))
	b = append(b, `"}],"active":true,"name":[{"use":"official","family":`...)
	b = strconv.AppendQuote(b, family)
	b = append(b, `,"given":[`...)
	b = strconv.AppendQuote(b, given[rng.IntN(len(given))])
	if rng.IntN(2) == 0 {
		b = append(b, ',')
		b = strconv.AppendQuote(b, given[rng.IntN(len(given))])
	}
	b = append(b, `]}],"telecom":[{"system":"phone","value":"+1-555-`...)
	b = fmt.Appendf(b, "%04d", rng.IntN(10000))
	b = append(b, `","use":"home"}],"gender":"`...)
	b = append(b, gender...)
	b = append(b, `","birthDate":"`...)
	b = fmt.Appendf(b, "%04d-%02d-%02d", 1930+rng.IntN(90), 1+rng.IntN(12), 1+rng.IntN(28))
	b = append(b, `","address":[{"use":"home","line":[`...)
	b = strconv.AppendQuote(b, strconv.Itoa(1+rng.IntN(999))+" "+streets[rng.IntN(len(streets))])
	b = append(b, `],"city":`...)
	b = strconv.AppendQuote(b, cities[rng.IntN(len(cities))])
	b = append(b, `,"postalCode":"`...)
	b = fmt.Appendf(b, "%05d", rng.IntN(100000))
	b = append(b, `","country":"US"}]}`...)
	return b
}
