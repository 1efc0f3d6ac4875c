package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
)

// Phase transaction POSTs to the base a transaction Bundle of about 30 KB:
// one new Patient (a urn:uuid fullUrl) and observationsPerTransaction
// Observations about it, vital signs and laboratory results as an EHR
// would send them after a visit.

// observationsPerTransaction is fixed, so that resources/s is transactions/s
// times resourcesPerTransaction.
const (
	observationsPerTransaction = 24
	resourcesPerTransaction    = 1 + observationsPerTransaction
)

// transaction POSTs one transaction Bundle and expects 200; the whole
// response (the written resources) is part of the latency.
func (g *generator) transaction(ctx context.Context, w *worker) outcome {
	w.buf = appendTransaction(w.buf[:0], w.rng)
	return g.roundTrip(ctx, http.MethodPost, g.base, w.buf, http.StatusOK, nil)
}

// appendTransaction appends a transaction Bundle: a Patient, then
// Observations whose subject is the Patient's urn:uuid.
func appendTransaction(b []byte, rng *rand.Rand) []byte {
	patient := "urn:uuid:" + newUUID(rng)
	b = append(b, `{"resourceType":"Bundle","type":"transaction","entry":[`...)
	b = appendEntry(b, patient, "Patient", func(b []byte) []byte { return appendPatient(b, rng) })
	visit := randomVisit(rng)
	for i := range observationsPerTransaction {
		b = append(b, ',')
		// Every kind in turn, so each Bundle holds the whole panel.
		kind := observationKinds[i%len(observationKinds)]
		b = appendEntry(b, "urn:uuid:"+newUUID(rng), "Observation", func(b []byte) []byte {
			return appendObservation(b, rng, kind, patient, "", visit)
		})
	}
	return append(b, "]}"...)
}

// appendEntry appends one POST entry whose resource appendResource writes.
func appendEntry(b []byte, fullURL, typ string, appendResource func([]byte) []byte) []byte {
	b = append(b, `{"fullUrl":"`...)
	b = append(b, fullURL...)
	b = append(b, `","resource":`...)
	b = appendResource(b)
	b = append(b, `,"request":{"method":"POST","url":"`...)
	b = append(b, typ...)
	return append(b, `"}}`...)
}

// newUUID is a random (version 4) UUID.
func newUUID(rng *rand.Rand) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// visit is when a Bundle's observations were taken and reported.
type visit struct{ effective, issued string }

func randomVisit(rng *rand.Rand) visit {
	y, mo, d, h, mi := 2020+rng.IntN(6), 1+rng.IntN(12), 1+rng.IntN(28), 7+rng.IntN(10), rng.IntN(60)
	return visit{
		effective: fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:00+00:00", y, mo, d, h, mi),
		issued:    fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:00.000Z", y, mo, d, h+2, mi),
	}
}

// quantityKind is one LOINC-coded measurement with its UCUM unit and
// normal range; components, when present, are measured instead of a value
// (a blood pressure panel).
type quantityKind struct {
	loinc, display, category string
	unit, ucum               string
	low, high                float64 // normal range; the value drawn spans a bit beyond
	decimals                 int
	components               []quantityKind
}

const (
	vitalSigns = "vital-signs"
	laboratory = "laboratory"
)

var observationKinds = []quantityKind{
	{loinc: "85354-9", display: "Blood pressure panel with all children optional", category: vitalSigns, components: []quantityKind{
		{loinc: "8480-6", display: "Systolic blood pressure", unit: "mmHg", ucum: "mm[Hg]", low: 90, high: 130},
		{loinc: "8462-4", display: "Diastolic blood pressure", unit: "mmHg", ucum: "mm[Hg]", low: 60, high: 85},
	}},
	{loinc: "8867-4", display: "Heart rate", category: vitalSigns, unit: "beats/minute", ucum: "/min", low: 60, high: 100},
	{loinc: "9279-1", display: "Respiratory rate", category: vitalSigns, unit: "breaths/minute", ucum: "/min", low: 12, high: 20},
	{loinc: "8310-5", display: "Body temperature", category: vitalSigns, unit: "C", ucum: "Cel", low: 36.1, high: 37.2, decimals: 1},
	{loinc: "2708-6", display: "Oxygen saturation in Arterial blood", category: vitalSigns, unit: "%", ucum: "%", low: 95, high: 100},
	{loinc: "29463-7", display: "Body weight", category: vitalSigns, unit: "kg", ucum: "kg", low: 50, high: 100, decimals: 1},
	{loinc: "8302-2", display: "Body height", category: vitalSigns, unit: "cm", ucum: "cm", low: 150, high: 195, decimals: 1},
	{loinc: "39156-5", display: "Body mass index (BMI) [Ratio]", category: vitalSigns, unit: "kg/m2", ucum: "kg/m2", low: 18.5, high: 25, decimals: 1},
	{loinc: "2339-0", display: "Glucose [Mass/volume] in Blood", category: laboratory, unit: "mg/dL", ucum: "mg/dL", low: 70, high: 99},
	{loinc: "718-7", display: "Hemoglobin [Mass/volume] in Blood", category: laboratory, unit: "g/dL", ucum: "g/dL", low: 12, high: 17.5, decimals: 1},
	{loinc: "6690-2", display: "Leukocytes [#/volume] in Blood by Automated count", category: laboratory, unit: "10*3/uL", ucum: "10*3/uL", low: 4.5, high: 11, decimals: 1},
	{loinc: "777-3", display: "Platelets [#/volume] in Blood by Automated count", category: laboratory, unit: "10*3/uL", ucum: "10*3/uL", low: 150, high: 400},
	{loinc: "2951-2", display: "Sodium [Moles/volume] in Serum or Plasma", category: laboratory, unit: "mmol/L", ucum: "mmol/L", low: 136, high: 145},
	{loinc: "2823-3", display: "Potassium [Moles/volume] in Serum or Plasma", category: laboratory, unit: "mmol/L", ucum: "mmol/L", low: 3.5, high: 5.1, decimals: 1},
	{loinc: "2160-0", display: "Creatinine [Mass/volume] in Serum or Plasma", category: laboratory, unit: "mg/dL", ucum: "mg/dL", low: 0.6, high: 1.3, decimals: 2},
	{loinc: "4548-4", display: "Hemoglobin A1c/Hemoglobin.total in Blood", category: laboratory, unit: "%", ucum: "%", low: 4, high: 5.6, decimals: 1},
}

var categoryDisplay = map[string]string{vitalSigns: "Vital Signs", laboratory: "Laboratory"}

// appendObservation appends a final Observation of kind about subject,
// taken during encounter unless that is empty.
func appendObservation(b []byte, rng *rand.Rand, kind quantityKind, subject, encounter string, v visit) []byte {
	b = append(b, `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"`...)
	b = append(b, kind.category...)
	b = append(b, `","display":"`...)
	b = append(b, categoryDisplay[kind.category]...)
	b = append(b, `"}],"text":"`...)
	b = append(b, categoryDisplay[kind.category]...)
	b = append(b, `"}],"code":`...)
	b = appendLOINC(b, kind)
	b = append(b, `,"subject":{"reference":"`...)
	b = append(b, subject...)
	if encounter != "" {
		b = append(b, `"},"encounter":{"reference":"`...)
		b = append(b, encounter...)
	}
	b = append(b, `"},"effectiveDateTime":"`...)
	b = append(b, v.effective...)
	b = append(b, `","issued":"`...)
	b = append(b, v.issued...)
	b = append(b, '"')
	if len(kind.components) == 0 {
		b = append(b, ',')
		b = appendMeasurement(b, rng, kind)
	} else {
		b = append(b, `,"component":[`...)
		for i, c := range kind.components {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"code":`...)
			b = appendLOINC(b, c)
			b = append(b, ',')
			b = appendMeasurement(b, rng, c)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendLOINC appends kind's code as a CodeableConcept.
func appendLOINC(b []byte, kind quantityKind) []byte {
	b = append(b, `{"coding":[{"system":"http://loinc.org","code":"`...)
	b = append(b, kind.loinc...)
	b = append(b, `","display":`...)
	b = strconv.AppendQuote(b, kind.display)
	b = append(b, `}],"text":`...)
	b = strconv.AppendQuote(b, kind.display)
	return append(b, '}')
}

// appendMeasurement appends valueQuantity, interpretation and
// referenceRange members (no braces): a value drawn around the normal range
// and interpreted against it.
func appendMeasurement(b []byte, rng *rand.Rand, kind quantityKind) []byte {
	span := kind.high - kind.low
	value := kind.low - span/4 + rng.Float64()*span*1.5
	value = roundTo(value, kind.decimals)
	b = append(b, `"valueQuantity":`...)
	b = appendQuantity(b, kind, value)
	code, display := "N", "Normal"
	switch {
	case value < kind.low:
		code, display = "L", "Low"
	case value > kind.high:
		code, display = "H", "High"
	}
	b = append(b, `,"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"`...)
	b = append(b, code...)
	b = append(b, `","display":"`...)
	b = append(b, display...)
	b = append(b, `"}],"text":"`...)
	b = append(b, display...)
	b = append(b, `"}],"referenceRange":[{"low":`...)
	b = appendQuantity(b, kind, kind.low)
	b = append(b, `,"high":`...)
	b = appendQuantity(b, kind, kind.high)
	b = append(b, `,"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/referencerange-meaning","code":"normal","display":"Normal Range"}]}}]`...)
	return b
}

// appendQuantity appends a UCUM Quantity.
func appendQuantity(b []byte, kind quantityKind, value float64) []byte {
	b = append(b, `{"value":`...)
	b = strconv.AppendFloat(b, value, 'f', kind.decimals, 64)
	b = append(b, `,"unit":`...)
	b = strconv.AppendQuote(b, kind.unit)
	b = append(b, `,"system":"http://unitsofmeasure.org","code":`...)
	b = strconv.AppendQuote(b, kind.ucum)
	return append(b, '}')
}

func roundTo(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}
