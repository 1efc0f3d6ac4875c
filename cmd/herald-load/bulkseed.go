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
// server's PostgreSQL database: the same Patients and Observations a
// transaction Bundle holds (the Observations' subject already the
// Patient's id, as the transaction resolves it), each read, stamped,
// placed in its compartment and given its search keys by the server's own
// code (resources.Service.Seed), then written with COPY
// (postgres.Store.BulkCreate). It skips HTTP, authorization, transactions
// and topic evaluation, which made the seeding the slow part of a search
// benchmark (a million resources took 1,050 s through POST /fhir).

// bulkBundlesPerCopy is how many Bundles' resources one COPY writes.
const bulkBundlesPerCopy = 200

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
		done, done*resourcesPerTransaction, d.Seconds(), float64(done*resourcesPerTransaction)/d.Seconds())
	return first
}

// seedRecord is one transaction Bundle's resources as the server would
// store them: a Patient and observationsPerTransaction Observations of it.
func seedRecord(svc *resources.Service, w *worker) ([]store.Version, string, error) {
	now := time.Now()
	id := newUUID(w.rng)
	vs := make([]store.Version, 0, resourcesPerTransaction)
	v, err := svc.Seed("Patient", id, appendPatient(nil, w.rng), now)
	if err != nil {
		return nil, "", err
	}
	vs = append(vs, v)
	visit := randomVisit(w.rng)
	for i := range observationsPerTransaction {
		kind := observationKinds[i%len(observationKinds)]
		w.buf = appendObservation(w.buf[:0], w.rng, kind, "Patient/"+id, visit)
		v, err := svc.Seed("Observation", newUUID(w.rng), w.buf, now)
		if err != nil {
			return nil, "", err
		}
		vs = append(vs, v)
	}
	return vs, id, nil
}
