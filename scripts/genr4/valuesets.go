package main

// Required code sets: a ValueSet is used when the package's CodeSystems
// enumerate it fully (no filters, no external or incomplete systems).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type valueSetDef struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []composeRule `json:"include"`
		Exclude []composeRule `json:"exclude"`
	} `json:"compose"`
}

type composeRule struct {
	System   string                  `json:"system"`
	Concept  []struct{ Code string } `json:"concept"`
	Filter   []json.RawMessage       `json:"filter"`
	ValueSet []string                `json:"valueSet"`
}

type codeSystemDef struct {
	URL     string    `json:"url"`
	Content string    `json:"content"`
	Concept []concept `json:"concept"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

type codeSet struct {
	url   string
	codes []string
}

// valueSets expands value sets on demand and numbers those used.
type valueSets struct {
	defs    map[string]*valueSetDef
	systems map[string]*codeSystemDef
	used    []codeSet
	byURL   map[string]int // url → index in used, or -1 when not enumerable
}

func loadValueSets(dir string) (*valueSets, error) {
	vs := &valueSets{defs: map[string]*valueSetDef{}, systems: map[string]*codeSystemDef{}, byURL: map[string]int{}}
	if err := readAll(filepath.Join(dir, "ValueSet-*.json"), func(raw []byte) error {
		d := &valueSetDef{}
		err := json.Unmarshal(raw, d)
		vs.defs[d.URL] = d
		return err
	}); err != nil {
		return nil, err
	}
	if err := readAll(filepath.Join(dir, "CodeSystem-*.json"), func(raw []byte) error {
		d := &codeSystemDef{}
		err := json.Unmarshal(raw, d)
		vs.systems[d.URL] = d
		return err
	}); err != nil {
		return nil, err
	}
	return vs, nil
}

func readAll(glob string, each func([]byte) error) error {
	files, err := filepath.Glob(glob)
	if err != nil {
		return err
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := each(raw); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// index returns the table index of a binding's value set (canonical, maybe
// with |version), when it can be enumerated.
func (vs *valueSets) index(canonical string) (int, bool) {
	url, _, _ := strings.Cut(canonical, "|")
	if i, ok := vs.byURL[url]; ok {
		return i, i >= 0
	}
	codes, ok := vs.expand(url, 0)
	if !ok || len(codes) == 0 {
		vs.byURL[url] = -1
		return 0, false
	}
	sort.Strings(codes)
	vs.used = append(vs.used, codeSet{url: url, codes: codes})
	vs.byURL[url] = len(vs.used) - 1
	return len(vs.used) - 1, true
}

func (vs *valueSets) expand(url string, depth int) ([]string, bool) {
	d := vs.defs[url]
	if d == nil || d.Compose == nil || depth > 8 {
		return nil, false
	}
	set := map[string]bool{}
	for _, r := range d.Compose.Include {
		codes, ok := vs.rule(r, depth)
		if !ok {
			return nil, false
		}
		for _, c := range codes {
			set[c] = true
		}
	}
	for _, r := range d.Compose.Exclude {
		codes, ok := vs.rule(r, depth)
		if !ok {
			return nil, false
		}
		for _, c := range codes {
			delete(set, c)
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		if strings.ContainsAny(c, " \t\r\n") {
			return nil, false // the table separates codes by spaces
		}
		out = append(out, c)
	}
	return out, true
}

func (vs *valueSets) rule(r composeRule, depth int) ([]string, bool) {
	if len(r.Filter) > 0 || (len(r.ValueSet) > 0 && r.System != "") || len(r.ValueSet) > 1 {
		return nil, false
	}
	if len(r.ValueSet) == 1 {
		url, _, _ := strings.Cut(r.ValueSet[0], "|")
		return vs.expand(url, depth+1)
	}
	if len(r.Concept) > 0 { // listed codes need no CodeSystem (e.g. UCUM's units of time)
		var codes []string
		for _, c := range r.Concept {
			codes = append(codes, c.Code)
		}
		return codes, true
	}
	cs := vs.systems[r.System]
	if cs == nil || cs.Content != "complete" {
		return nil, false
	}
	return allCodes(cs.Concept, nil), true
}

func allCodes(cs []concept, into []string) []string {
	for _, c := range cs {
		into = append(into, c.Code)
		into = allCodes(c.Concept, into)
	}
	return into
}
