package main

import "time"

// A search record is one Patient's chart as the search phase finds it
// (issue 14: Patients, Encounters and Observations, a hundred resources per
// Patient, so a million resources cover 10,000 Patients): the Patient,
// staysPerRecord hospital stays, each an Encounter and the observation
// panel taken twice in it, on arrival and before leaving. The last stay is
// still in progress.
const (
	staysPerRecord        = 3
	observationsPerStay   = 2 * 16 // observationKinds, twice
	resourcesPerRecord    = 1 + staysPerRecord*(1+observationsPerStay)
	recordTransactionSize = 128 << 10 // about, as one transaction Bundle
)

// recordResource is one resource of a record: its type, the id it is
// referred to by (a urn:uuid in a transaction Bundle, a resource id when
// seeded directly) and its body.
type recordResource struct {
	typ, id string
	body    []byte
}

// appendRecord calls add with each resource of one record, the Patient
// first. ref turns a new resource's id into the reference the others use
// for it (Patient/<id>, or urn:uuid:<id> in a transaction Bundle); add must
// copy a body it keeps, since the worker's buffer is reused.
func appendRecord(w *worker, ref func(typ, id string) string, add func(recordResource) error) error {
	patient := newUUID(w.rng)
	w.buf = appendPatient(w.buf[:0], w.rng)
	if err := add(recordResource{"Patient", patient, w.buf}); err != nil {
		return err
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.rng.IntN(365*24)) * time.Hour)
	for s := range staysPerRecord {
		inProgress := s == staysPerRecord-1
		days := 1 + w.rng.IntN(6)
		end := start.Add(time.Duration(days)*24*time.Hour + time.Duration(w.rng.IntN(12))*time.Hour)
		encounter := newUUID(w.rng)
		w.buf = appendEncounter(w.buf[:0], ref("Patient", patient), start, end, inProgress)
		if err := add(recordResource{"Encounter", encounter, w.buf}); err != nil {
			return err
		}
		leaving := end.Add(-2 * time.Hour)
		if inProgress {
			leaving = start.Add(6 * time.Hour)
		}
		for i := range observationsPerStay {
			kind := observationKinds[i%len(observationKinds)]
			taken := start.Add(time.Hour)
			if i >= len(observationKinds) {
				taken = leaving
			}
			w.buf = appendObservation(w.buf[:0], w.rng, kind, ref("Patient", patient), ref("Encounter", encounter), visitAt(taken))
			if err := add(recordResource{"Observation", newUUID(w.rng), w.buf}); err != nil {
				return err
			}
		}
		// The next stay starts one to eighteen months later.
		start = end.Add(time.Duration(30+w.rng.IntN(520)) * 24 * time.Hour)
	}
	return nil
}

// visitAt is an observation taken at t and reported two hours later.
func visitAt(t time.Time) visit {
	return visit{effective: t.Format("2006-01-02T15:04:05+00:00"), issued: t.Add(2 * time.Hour).Format("2006-01-02T15:04:05.000Z")}
}

// appendEncounter appends an inpatient stay of subject from start to end,
// or since start when it is still in progress.
func appendEncounter(b []byte, subject string, start, end time.Time, inProgress bool) []byte {
	status := "finished"
	if inProgress {
		status = "in-progress"
	}
	b = append(b, `{"resourceType":"Encounter","status":"`...)
	b = append(b, status...)
	b = append(b, `","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP","display":"inpatient encounter"},"type":[{"coding":[{"system":"http://snomed.info/sct","code":"183452005","display":"Emergency hospital admission"}],"text":"Emergency hospital admission"}],"subject":{"reference":"`...)
	b = append(b, subject...)
	b = append(b, `"},"period":{"start":"`...)
	b = start.AppendFormat(b, time.RFC3339)
	if !inProgress {
		b = append(b, `","end":"`...)
		b = end.AppendFormat(b, time.RFC3339)
	}
	return append(b, `"}}`...)
}

// appendRecordTransaction appends one record as a transaction Bundle whose
// resources refer to each other by urn:uuid fullUrls; b must not be w.buf,
// which holds each resource in turn.
func appendRecordTransaction(b []byte, w *worker) []byte {
	urn := func(_, id string) string { return "urn:uuid:" + id }
	b = append(b, `{"resourceType":"Bundle","type":"transaction","entry":[`...)
	first := true
	_ = appendRecord(w, urn, func(r recordResource) error {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendEntry(b, urn(r.typ, r.id), r.typ, func(b []byte) []byte { return append(b, r.body...) })
		return nil
	})
	return append(b, "]}"...)
}
