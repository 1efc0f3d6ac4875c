package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Phase search runs the queries a subscriber sends after an id-only
// notification (issue 14), each over one random Patient's record written
// by transaction Bundles: a code, a category sorted by date, a total, a
// reverse include and an Encounter status. Without a transaction phase
// before it, it first seeds searchSeed Bundles, unmeasured, and prints how
// long that took; with -search-seed 0 it searches the Patients the server
// already holds (written by an earlier run).

// searchQueries are the measured queries; %s is a Patient id.
var searchQueries = []string{
	"Observation?patient=Patient/%s&code=http://loinc.org|8867-4&_count=20",
	"Observation?patient=Patient/%s&category=laboratory&date=ge2000-01-01&_sort=-date&_count=20",
	"Observation?patient=Patient/%s&_total=accurate&_count=1",
	"Patient?_id=%s&_revinclude=Observation:subject",
	"Encounter?patient=Patient/%s&status=in-progress",
}

// searcher returns the phase's work over the Patients in ids.
func (g *generator) searcher(ids []string) workFunc {
	return func(ctx context.Context, w *worker) outcome {
		id := ids[w.rng.IntN(len(ids))]
		q := fmt.Sprintf(searchQueries[w.rng.IntN(len(searchQueries))], url.PathEscape(id))
		return g.get(ctx, g.base+"/"+q)
	}
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

// seedTimePerBundle is what the token's lifetime allows for each Bundle
// seeded: several times what a busy 2-core machine took.
const seedTimePerBundle = 100 * time.Millisecond

// seedRecords writes n transaction Bundles with c workers, unmeasured,
// and prints the load time and how many were written.
func (g *generator) seedRecords(ctx context.Context, c, n int, stdout io.Writer) error {
	start := time.Now()
	jobs := make(chan struct{})
	errs := make(chan error, c)
	var written atomic.Int64
	for i := range c {
		go func() {
			w := newWorker(1000 + i)
			for range jobs {
				if o := g.transaction(ctx, w); !o.ok() {
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
		done, done*resourcesPerTransaction, d.Seconds(), float64(done*resourcesPerTransaction)/d.Seconds())
	return first
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

// discoverPatients pages through GET /Patient for up to n ids, for a
// search phase run against records an earlier herald-load wrote.
func (g *generator) discoverPatients(ctx context.Context, n int) ([]string, error) {
	var ids []string
	next := g.base + "/Patient?_count=1000"
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
			return nil, fmt.Errorf("GET Patient: %d %s", resp.StatusCode, clipBody(body))
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
			if id, ok := e.Get("resource").Get("id").String(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids[:min(n, len(ids))], nil
}

// searchPatients are the Patients a search phase searches: those this run
// wrote by transaction, else newly seeded ones, else (-search-seed 0) the
// server's.
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
