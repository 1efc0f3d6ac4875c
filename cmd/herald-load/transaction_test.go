package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/fhirtest"
)

// The bodies herald-load writes must be valid R4 by an independent
// validator (google/fhir jsonformat) as well as by Herald's own, or the
// benchmark would measure refusals.
func TestGeneratedResourcesAreValidR4(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		patient := appendPatient(nil, rng)
		fhirtest.RequireValidR4(t, patient)
		requireHeraldValid(t, patient)

		bundle := appendTransaction(nil, rng)
		fhirtest.RequireValidR4(t, bundle)
		requireHeraldValid(t, bundle)
		for _, e := range transactionEntries(t, bundle) {
			fhirtest.RequireValidR4(t, e.Resource)
			requireHeraldValid(t, e.Resource)
		}
	}
	w := newWorker(7)
	for range 2 {
		record := appendRecordTransaction(nil, w)
		fhirtest.RequireValidR4(t, record)
		requireHeraldValid(t, record)
		for _, e := range transactionEntries(t, record) {
			fhirtest.RequireValidR4(t, e.Resource)
			requireHeraldValid(t, e.Resource)
		}
	}
}

// A search record is a Patient, then each stay's Encounter and its
// Observations, which refer to both; only the last stay is in progress.
func TestRecordShape(t *testing.T) {
	record := appendRecordTransaction(nil, newWorker(8))
	require.InDelta(t, recordTransactionSize, len(record), 16<<10)
	entries := transactionEntries(t, record)
	require.Len(t, entries, resourcesPerRecord)
	require.Equal(t, 100, resourcesPerRecord, "a million resources are 10,000 Patients")
	require.Equal(t, "Patient", entries[0].Request.URL)
	var encounters []string
	var inProgress, codes int
	for _, e := range entries[1:] {
		require.Equal(t, "POST", e.Request.Method)
		var r struct {
			Status    string
			Subject   struct{ Reference string }
			Encounter struct{ Reference string }
			Code      struct {
				Coding []struct{ Code string }
			}
		}
		require.NoError(t, json.Unmarshal(e.Resource, &r))
		require.Equal(t, entries[0].FullURL, r.Subject.Reference)
		switch e.Request.URL {
		case "Encounter":
			encounters = append(encounters, e.FullURL)
			if r.Status == "in-progress" {
				inProgress++
			}
		case "Observation":
			require.Equal(t, encounters[len(encounters)-1], r.Encounter.Reference, "taken during the stay before it")
			if r.Code.Coding[0].Code == "8867-4" {
				codes++
			}
		default:
			t.Fatalf("unexpected %s", e.Request.URL)
		}
	}
	require.Len(t, encounters, staysPerRecord)
	require.Equal(t, 1, inProgress)
	require.Equal(t, 2*staysPerRecord, codes, "the heart rate twice per stay")
}

func TestTransactionBundleShape(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	bundle := appendTransaction(nil, rng)
	require.InDelta(t, 30<<10, len(bundle), 4<<10, "about 30 KB")
	entries := transactionEntries(t, bundle)
	require.Len(t, entries, resourcesPerTransaction)

	patient := entries[0]
	require.Regexp(t, `^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, patient.FullURL)
	require.Equal(t, "Patient", patient.Request.URL)
	var components, labs int
	fullURLs := map[string]bool{}
	for _, e := range entries[1:] {
		require.Equal(t, "POST", e.Request.Method)
		require.Equal(t, "Observation", e.Request.URL)
		require.False(t, fullURLs[e.FullURL], "fullUrls are unique")
		fullURLs[e.FullURL] = true
		var o struct {
			Subject   struct{ Reference string } `json:"subject"`
			Component []json.RawMessage          `json:"component"`
			Category  []struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"category"`
		}
		require.NoError(t, json.Unmarshal(e.Resource, &o))
		require.Equal(t, patient.FullURL, o.Subject.Reference)
		components += len(o.Component)
		if o.Category[0].Coding[0].Code == laboratory {
			labs++
		}
	}
	require.Positive(t, components, "blood pressure has components")
	require.Positive(t, labs)
	require.Regexp(t, regexp.MustCompile(`"system":"http://loinc.org"`), string(bundle))
}

type testEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct{ Method, URL string }
}

func transactionEntries(t *testing.T, bundle []byte) []testEntry {
	t.Helper()
	var b struct {
		Type  string      `json:"type"`
		Entry []testEntry `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(bundle, &b))
	require.Equal(t, "transaction", b.Type)
	return b.Entry
}

func requireHeraldValid(t *testing.T, body []byte) {
	t.Helper()
	r, err := fhir.Parse(body)
	require.NoError(t, err, "%s", body)
	require.NoError(t, fhir.Validate(r), "%s", body)
}

func TestTransactionPhaseAgainstHerald(t *testing.T) {
	srv := newServer(t)
	var stdout, stderr bytes.Buffer
	code, err := run(context.Background(), []string{
		"-url", srv.URL + "/fhir", "-c", "2", "-duration", "300ms", "-warmup", "0s", "-phases", "transaction", "-secret", testSecret,
	}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Equal(t, 0, code, stdout.String()+stderr.String())
	require.Contains(t, stdout.String(), "resources/s: ")
	require.Regexp(t, `BENCH phase=transaction c=2 .* errors=0 .* resources_per_request=25 resources_per_s=[0-9.]+`, stdout.String())
}

// TestSearchPhaseAgainstHerald: the search phase seeds records, reports
// its load time, checks that every query matches, and runs every query
// without an error; with -search-seed 0 it finds the records already
// written (not the transaction phase's Patients, which have no stays).
func TestSearchPhaseAgainstHerald(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct{ phases, seed string }{{"search", "4"}, {"transaction,search", "4"}, {"search", "0"}} {
		phases := c.phases
		var stdout, stderr bytes.Buffer
		code, err := run(context.Background(), []string{
			"-url", srv.URL + "/fhir", "-c", "2", "-duration", "300ms", "-warmup", "0s", "-phases", phases, "-search-seed", c.seed, "-secret", testSecret,
		}, func(string) string { return "" }, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		require.Equal(t, 0, code, stdout.String()+stderr.String())
		require.Regexp(t, `BENCH phase=search c=2 .* errors=0 `, stdout.String())
		if c.seed != "0" {
			require.Contains(t, stdout.String(), "search: seeded 4 Patients with 400 resources")
		} else {
			require.NotContains(t, stdout.String(), "seeded")
		}
		for _, q := range searchQueries {
			require.Regexp(t, `(?m)^ *`+q.name+` +[1-9]`, stdout.String(), "reported on its own")
		}
	}
}

func TestPatientFromResponse(t *testing.T) {
	require.Equal(t, "abc-1", patientFromResponse([]byte(`{"entry":[{"response":{"status":"201 Created","location":"Patient/abc-1/_history/1"}}]}`)))
	require.Empty(t, patientFromResponse([]byte(`{"entry":[]}`)))
}
