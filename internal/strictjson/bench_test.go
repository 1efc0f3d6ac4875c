package strictjson

import (
	"encoding/json"
	"os"
	"testing"
)

// benchDoc is a realistic resource: the R4 Patient example when the
// validator's corpus is present, else a small Patient.
func benchDoc(b *testing.B) []byte {
	if raw, err := os.ReadFile("../r4/testdata/examples/Patient-example.json"); err == nil {
		return raw
	}
	return []byte(`{"resourceType":"Patient","id":"p1","active":true,"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],"gender":"male","birthDate":"1974-12-25","address":[{"use":"home","line":["534 Erewhon St"],"city":"PleasantVille","postalCode":"3999"}]}`)
}

func BenchmarkParse(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAny(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := Parse(doc)
		if err != nil {
			b.Fatal(err)
		}
		_ = v.Any()
	}
}

// BenchmarkEncodingJSONMap is what the matcher's decode cost before strictjson.
func BenchmarkEncodingJSONMap(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStored is ParseAny's result for a body read back from the
// store, built directly.
func BenchmarkParseStored(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStored(doc); err != nil {
			b.Fatal(err)
		}
	}
}
