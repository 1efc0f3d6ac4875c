package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Phase search runs the queries a subscriber sends after an id-only
// notification (issue 14), each over one random Patient's record
// (record.go): an Encounter status, a code in a date range sorted by date,
// an _include, a total, and a reverse include. Without a transaction phase
// before it, it first seeds searchSeed records, unmeasured, and prints how
// long that took; with -search-seed 0 it searches the Patients the server
// already holds (written by an earlier run). Before measuring, it checks
// that every query matches something in the first Patient's record, so
// that a benchmark of empty answers cannot pass for a fast one.

// searchQuery is one measured query; %s in its format is a Patient id.
type searchQuery struct{ name, format string }

var searchQueries = []searchQuery{
	{"encounter-status", "Encounter?patient=Patient/%s&status=in-progress"},
	{"code-date-sorted", "Observation?patient=Patient/%s&code=http://loinc.org|8867-4&date=ge2020-01-01&_sort=-date&_count=20"},
	{"include", "Observation?patient=Patient/%s&category=laboratory&_include=Observation:encounter&_count=20"},
	{"total-accurate", "Observation?patient=Patient/%s&_total=accurate&_count=20"},
	{"revinclude", "Patient?_id=%s&_revinclude=Encounter:subject"},
}

// selectQueries are the queries named in the comma-separated list names,
// or all of them when it is empty.
func selectQueries(names string) ([]searchQuery, error) {
	if names == "" {
		return searchQueries, nil
	}
	var out []searchQuery
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(searchQueries, func(q searchQuery) bool { return q.name == name })
		if i < 0 {
			return nil, fmt.Errorf("no query is named %q", name)
		}
		out = append(out, searchQueries[i])
	}
	return out, nil
}

// searcher returns the phase's work: queries over the Patients in ids.
func (g *generator) searcher(queries []searchQuery, ids []string) workFunc {
	return func(ctx context.Context, w *worker) outcome {
		id := ids[w.rng.IntN(len(ids))]
		q := queries[w.rng.IntN(len(queries))]
		o := g.get(ctx, g.base+"/"+fmt.Sprintf(q.format, url.PathEscape(id)))
		o.kind = q.name
		return o
	}
}

// checkSearches runs each query once over the Patient id and fails unless
// each matches at least one resource.
func (g *generator) checkSearches(ctx context.Context, queries []searchQuery, id string) error {
	for _, q := range queries {
		u := g.base + "/" + fmt.Sprintf(q.format, url.PathEscape(id))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", g.auth)
		resp, err := g.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: GET %s: %d %s", q.name, u, resp.StatusCode, clipBody(body))
		}
		if matches(body) == 0 {
			return fmt.Errorf("%s: GET %s matched nothing in the Patient's record", q.name, u)
		}
	}
	return nil
}

// matches counts a search Bundle's entries of search mode match.
func matches(body []byte) int {
	page, err := strictjson.Parse(body)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range page.Get("entry").Itemized() {
		if mode, _ := e.Get("search").Get("mode").String(); mode == "match" {
			n++
		}
	}
	return n
}

// get GETs a URL and reads the whole answer, which is part of the latency.
func (g *generator) get(ctx context.Context, u string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return outcome{err: err.Error()}
	}
	req.Header.Set("Authorization", g.auth)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := g.client.Do(req)
	if err != nil {
		return outcome{err: transportError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return outcome{status: resp.StatusCode, err: clipBody(body)}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return outcome{err: transportError(err)}
	}
	return outcome{status: resp.StatusCode}
}

// seedTimePerRecord is what the token's lifetime allows for each record
// seeded: several times what a busy 2-core machine took.
const seedTimePerRecord = 400 * time.Millisecond

// seedRecords writes n records as transaction Bundles with c workers,
// unmeasured, and prints the load time and how many were written.
func (g *generator) seedRecords(ctx context.Context, c, n int, stdout io.Writer) error {
	start := time.Now()
	jobs := make(chan struct{})
	errs := make(chan error, c)
	var written atomic.Int64
	for i := range c {
		go func() {
			w := newWorker(1000 + i)
			for range jobs {
				if o := g.recordTransaction(ctx, w); !o.ok() {
					errs <- fmt.Errorf("seed transaction: %s", o.describe())
					for range jobs {
					}
					return
				}
				written.Add(1)
			}
			errs <- nil
		}()
	}
	for range n {
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	var first error
	for range c {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	d := time.Since(start)
	done := int(written.Load()) // what was written, not what was asked for
	fmt.Fprintf(stdout, "search: seeded %d Patients with %d resources in %.1f s (%.0f resources/s)\n",
		done, done*resourcesPerRecord, d.Seconds(), float64(done*resourcesPerRecord)/d.Seconds())
	return first
}

// recordTransaction POSTs one record as a transaction Bundle and keeps its
// Patient for the searches.
func (g *generator) recordTransaction(ctx context.Context, w *worker) outcome {
	w.bundle = appendRecordTransaction(w.bundle[:0], w)
	return g.roundTrip(ctx, http.MethodPost, g.base, w.bundle, http.StatusOK, func(resp *http.Response, body []byte) outcome {
		if id := patientFromResponse(body); id != "" {
			g.records.add(id)
		}
		return outcome{status: resp.StatusCode}
	})
}

// patientFromResponse is the Patient id of a transaction's answer: its
// first entry's location, Patient/<id>/_history/1.
func patientFromResponse(body []byte) string {
	const key = `"location":"Patient/`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	if j := bytes.IndexByte(rest, '/'); j > 0 {
		return string(rest[:j])
	}
	return ""
}

// discoverPatients pages through the in-progress Encounters for up to n
// of their Patients: the records an earlier herald-load wrote (each has
// one), for a search phase run against them.
func (g *generator) discoverPatients(ctx context.Context, n int) ([]string, error) {
	var ids []string
	next := g.base + "/Encounter?status=in-progress&_count=1000"
	for next != "" && len(ids) < n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", g.auth)
		resp, err := g.client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET Encounter: %d %s", resp.StatusCode, clipBody(body))
		}
		page, err := strictjson.Parse(body)
		if err != nil {
			return nil, err
		}
		next = ""
		for _, l := range page.Get("link").Itemized() {
			if rel, _ := l.Get("relation").String(); rel == "next" {
				next, _ = l.Get("url").String()
			}
		}
		for _, e := range page.Get("entry").Itemized() {
			ref, _ := e.Get("resource").Get("subject").Get("reference").String()
			if id, ok := strings.CutPrefix(ref, "Patient/"); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids[:min(n, len(ids))], nil
}

// searchPatients are the Patients a search phase searches: those this run
// seeded, else (-search-seed 0) the server's.
func (g *generator) searchPatients(ctx context.Context, o options, stdout io.Writer) ([]string, error) {
	if ids := g.records.list(); len(ids) > 0 {
		return ids, nil
	}
	if o.searchSeed == 0 {
		ids, err := g.discoverPatients(ctx, 100000)
		if err == nil && len(ids) == 0 {
			err = fmt.Errorf("the server holds no Patient to search")
		}
		return ids, err
	}
	seed := func() error { return g.seedRecords(ctx, o.concurrency, o.searchSeed, stdout) }
	if o.bulkSeedDB != "" {
		seed = func() error { return g.bulkSeed(ctx, o.bulkSeedDB, o.searchSeed, stdout) }
	}
	if err := seed(); err != nil {
		return nil, err
	}
	return g.records.list(), nil
}
