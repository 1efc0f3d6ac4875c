package fhir

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// encodingJSON is what Bundle.JSON wrote before it was hand-written.
func encodingJSON(t testing.TB, b *Bundle) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(b))
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// Tricky text: escapes, HTML characters, separators JSONP chokes on,
// invalid UTF-8, multi-byte runes.
var trickyText = []string{
	"", "a", "Patient/p1", `q"uote`, `back\slash`, "<&>", "tab\tnl\ncr\rbs\bff\f", "\x00\x01\x1f\x7f",
	"é漢字😀", "\u2028\u2029", "\xff\xfe", "a\xc3", "https://h.example/fhir/Observation?code=http://loinc.org|8867-4&_count=20&date=ge2000",
}

func TestBundleJSONEqualsEncodingJSON(t *testing.T) {
	examples, _ := filepath.Glob("../r4/testdata/examples/*.json")
	require.NotEmpty(t, examples)
	var resources []json.RawMessage
	for _, p := range examples[:40] {
		raw, err := os.ReadFile(p) // pretty-printed: compaction is exercised
		require.NoError(t, err)
		resources = append(resources, raw)
	}
	resources = append(resources,
		json.RawMessage(`{"resourceType":"Patient","id":"p1","text":{"div":"<div> a  b\t\"c\" \\ </div>"}}`),
		json.RawMessage(" {\n \"resourceType\" : \"Basic\" , \"x\" : [ 1 , 2.50 , -0e+1 , true , null , { } , [ ] ] }\n"),
		// Runs of backslashes before quotes, even and odd, and spaces after.
		json.RawMessage(`{"resourceType" : "Basic", "a" : "x\\" , "b" : "\\\" \\" , "c" : [ "\"" , "\\\\" ] }`),
	)
	outcome := json.RawMessage(`{"resourceType": "OperationOutcome", "issue": [ {"severity":"error","code":"invalid","diagnostics":"bad \"x\" < y"} ]}`)

	fixed := []*Bundle{
		{ResourceType: "Bundle", Type: "searchset"},
		NewBundle("history", time.Date(2026, 12, 7, 13, 0, 0, 123e6, time.UTC)),
		{ResourceType: "Bundle", ID: "b1", Meta: &BundleMeta{}, Type: "batch-response", Total: new(int), Link: []BundleLink{}, Entry: []BundleEntry{}},
		{ResourceType: "Bundle", Meta: &BundleMeta{LastUpdated: "2026-01-01T00:00:00Z"}, Type: "searchset", Total: ptrInt(-3),
			Link: []BundleLink{{Relation: "self", URL: trickyText[12]}, {Relation: "next", URL: "<&>\u2028"}},
			Entry: []BundleEntry{
				{},
				{FullURL: "https://h/fhir/Patient/p1", Resource: resources[0], Search: &EntrySearch{Mode: "match"}},
				{Resource: resources[1], Search: &EntrySearch{Mode: "include"}},
				{Search: &EntrySearch{Mode: "outcome"}, Resource: outcome},
				{Request: &EntryRequest{Method: "POST", URL: "Patient"}},
				{Response: &EntryResponse{Status: "201 Created", Location: "Patient/p1/_history/1", Etag: `W/"1"`, LastModified: "2026-01-01T00:00:00Z", Outcome: outcome}},
				{Response: &EntryResponse{Status: "400 Bad Request", Outcome: outcome}},
				{FullURL: "urn:uuid:x", Resource: resources[len(resources)-1], Request: &EntryRequest{Method: "DELETE", URL: "Patient/p1"}, Response: &EntryResponse{Status: "204 No Content"}},
			}},
	}
	for i, b := range fixed {
		require.Equal(t, string(encodingJSON(t, b)), string(b.JSON()), "fixed bundle %d", i)
	}

	rng := rand.New(rand.NewPCG(14, 2026))
	text := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		var sb strings.Builder
		for range rng.IntN(4) + 1 {
			sb.WriteString(trickyText[rng.IntN(len(trickyText))])
		}
		return sb.String()
	}
	for i := range 2000 {
		b := &Bundle{ResourceType: "Bundle", ID: text(), Type: text(), Timestamp: text()}
		if rng.IntN(2) == 0 {
			b.Meta = &BundleMeta{LastUpdated: text()}
		}
		if rng.IntN(2) == 0 {
			b.Total = ptrInt(rng.IntN(2000) - 1)
		}
		for range rng.IntN(4) {
			b.Link = append(b.Link, BundleLink{Relation: text(), URL: text()})
		}
		for range rng.IntN(6) {
			var e BundleEntry
			e.FullURL = text()
			if rng.IntN(4) > 0 {
				e.Resource = resources[rng.IntN(len(resources))]
			}
			if rng.IntN(2) == 0 {
				e.Search = &EntrySearch{Mode: []string{"match", "include", "outcome", text()}[rng.IntN(4)]}
			}
			if rng.IntN(3) == 0 {
				e.Request = &EntryRequest{Method: text(), URL: text()}
			}
			if rng.IntN(3) == 0 {
				e.Response = &EntryResponse{Status: text(), Location: text(), Etag: text(), LastModified: text()}
				if rng.IntN(2) == 0 {
					e.Response.Outcome = outcome
				}
			}
			b.Entry = append(b.Entry, e)
		}
		require.Equal(t, string(encodingJSON(t, b)), string(b.JSON()), "random bundle %d", i)
	}
}

func ptrInt(n int) *int { return &n }

// BenchmarkBundleJSON: a searchset page of 20 Observations with links.
func BenchmarkBundleJSON(b *testing.B) {
	raw, err := os.ReadFile("../r4/testdata/examples/Observation-example.json")
	if err != nil {
		b.Skip(err)
	}
	var compact bytes.Buffer
	require.NoError(b, json.Compact(&compact, raw))
	bundle := NewBundle("searchset", time.Now())
	bundle.Total = ptrInt(120)
	bundle.Link = []BundleLink{{Relation: "self", URL: "https://h/fhir/Observation?patient=Patient/p1&_count=20"}, {Relation: "next", URL: "https://h/fhir/Observation?patient=Patient/p1&_count=20&_cursor=abc"}}
	for range 20 {
		bundle.Entry = append(bundle.Entry, BundleEntry{FullURL: "https://h/fhir/Observation/example", Resource: compact.Bytes(), Search: &EntrySearch{Mode: "match"}})
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = encodingJSON(b, bundle)
		}
	})
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = bundle.JSON()
		}
	})
}
