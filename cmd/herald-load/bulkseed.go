package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// A bulk seed writes the search phase's records straight into the
// server's PostgreSQL database: the same Patients, Encounters and
// Observations a record's transaction Bundle holds (their references
// already resource ids, as the transaction resolves them), each read, stamped,
// placed in its compartment and given its search keys by the server's own
// code (resources.Service.Seed), then written with COPY
// (postgres.Store.BulkCreate). It skips HTTP, authorization, transactions
// and topic evaluation, which made the seeding the slow part of a search
// benchmark (a million resources took 1,050 s through POST /fhir).

// bulkBundlesPerCopy is how many records (5,000 resources) one COPY writes.
const bulkBundlesPerCopy = 50

func (g *generator) bulkSeed(ctx context.Context, databaseURL string, n int, stdout io.Writer) error {
	st, err := postgres.Open(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		return fmt.Errorf("bulk seed: %w (start the server on this database first: it migrates)", err)
	}
	svc := resources.New(resources.Config{Store: st, BaseURL: g.base})
	start := time.Now()
	workers := max(1, runtime.GOMAXPROCS(0))
	jobs := make(chan int)
	errs := make(chan error, workers)
	var written atomic.Int64
	for i := range workers {
		go func() {
			w := newWorker(2000 + i)
			var failed error
			for bundles := range jobs {
				if failed != nil {
					continue
				}
				var vs []store.Version
				var ids []string
				for range bundles {
					bvs, id, err := seedRecord(svc, w)
					if err != nil {
						failed = err
						break
					}
					vs, ids = append(vs, bvs...), append(ids, id)
				}
				if failed == nil {
					failed = st.BulkCreate(ctx, vs)
				}
				if failed == nil {
					for _, id := range ids {
						g.records.add(id)
					}
					written.Add(int64(len(ids)))
				}
			}
			errs <- failed
		}()
	}
	for left := n; left > 0; left -= bulkBundlesPerCopy {
		select {
		case jobs <- min(left, bulkBundlesPerCopy):
		case <-ctx.Done():
		}
	}
	close(jobs)
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	d := time.Since(start)
	done := int(written.Load())
	fmt.Fprintf(stdout, "search: seeded %d Patients with %d resources in %.1f s (%.0f resources/s) by COPY\n",
		done, done*resourcesPerRecord, d.Seconds(), float64(done*resourcesPerRecord)/d.Seconds())
	return first
}

// seedRecord is one search record's resources as the server would store
// them, and its Patient's id.
func seedRecord(svc *resources.Service, w *worker) ([]store.Version, string, error) {
	now := time.Now()
	vs := make([]store.Version, 0, resourcesPerRecord)
	ref := func(typ, id string) string { return typ + "/" + id }
	err := appendRecord(w, ref, func(r recordResource) error {
		v, err := svc.Seed(r.typ, r.id, r.body, now)
		vs = append(vs, v)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return vs, vs[0].ID, nil
}
