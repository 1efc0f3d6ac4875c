package r4

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-fhir/herald/internal/strictjson"
)

const examplesDir = "testdata/examples"

func exampleFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples under %s: %v", examplesDir, err)
	}
	return files
}

func validateBytes(t testing.TB, body []byte) []Problem {
	t.Helper()
	v, err := strictjson.Parse(body)
	if err != nil {
		t.Fatalf("strictjson: %v", err)
	}
	return Validate(v)
}

// loadDoc reads an example as generic JSON, keeping numbers' text.
func loadDoc(t testing.TB, file string) map[string]any {
	raw, err := os.ReadFile(filepath.Join(examplesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func jsonValue(text string) any {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic("bad JSON in a test: " + text)
	}
	return v
}

// edit changes a document; paths are dot-separated names and indexes
// ("name.0.given").
type edit func(doc map[string]any)

// set sets the value at path (the last step may append to an array).
func set(path, jsonText string) edit {
	return func(doc map[string]any) {
		parent, last := walkTo(doc, path)
		v := jsonValue(jsonText)
		switch p := parent.(type) {
		case map[string]any:
			p[last] = v
		case []any:
			p[index(last)] = v
		}
	}
}

// del removes the member at path.
func del(path string) edit {
	return func(doc map[string]any) {
		parent, last := walkTo(doc, path)
		delete(parent.(map[string]any), last)
	}
}

// rename moves a member to a new name in the same object.
func rename(path, to string) edit {
	return func(doc map[string]any) {
		parent, last := walkTo(doc, path)
		m := parent.(map[string]any)
		m[to] = m[last]
		delete(m, last)
	}
}

// inBundle wraps the document as the second entry of a transaction Bundle.
func inBundle(doc map[string]any) {
	res := map[string]any{}
	for k, v := range doc {
		res[k] = v
		delete(doc, k)
	}
	entry := func(r any) any {
		return map[string]any{"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "resource": r,
			"request": map[string]any{"method": "POST", "url": res["resourceType"]}}
	}
	doc["resourceType"] = "Bundle"
	doc["type"] = "transaction"
	doc["entry"] = []any{entry(map[string]any{"resourceType": "Basic", "code": map[string]any{"text": "x"}}), entry(res)}
}

func walkTo(doc map[string]any, path string) (parent any, last string) {
	steps := strings.Split(path, ".")
	var cur any = doc
	for _, s := range steps[:len(steps)-1] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[s]
		case []any:
			cur = c[index(s)]
		}
		if cur == nil {
			panic("no " + s + " in " + path)
		}
	}
	return cur, steps[len(steps)-1]
}

func index(s string) int {
	i, err := strconv.Atoi(s)
	if err != nil {
		panic("not an index: " + s)
	}
	return i
}

func mustMarshal(t testing.TB, doc map[string]any) []byte {
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func summary(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Expression + " " + p.Code
	}
	return out
}
