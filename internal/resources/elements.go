package resources

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/jsonpatch"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// subsetted marks a resource that _elements left elements out of.
const subsettedTag = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}`

// parseElements reads _elements: top-level element names ("value" keeps
// value[x], e.g. valueQuantity).
func parseElements(params, applied url.Values) ([]string, error) {
	var out []string
	for _, v := range params["_elements"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); !elementName(name) {
				return nil, fhir.Errorf(fhir.KindInvalid, "_elements: %q is not an element name", clip(name))
			}
			out = append(out, name)
		}
		applied.Add("_elements", v)
	}
	return out, nil
}

func elementName(s string) bool {
	if s == "" || !unicode.IsLetter(rune(s[0])) {
		return false
	}
	for _, r := range s {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// matchEntry is a search match, cut to elements when _elements asked.
func (s *Service) matchEntry(v store.Version, elements []string) fhir.BundleEntry {
	body := v.Body
	if len(elements) > 0 {
		body = subset(body, elements)
	}
	return fhir.BundleEntry{FullURL: s.fullURL(v.Type, v.ID), Resource: body, Search: &fhir.EntrySearch{Mode: "match"}}
}

// subset keeps resourceType, id, meta and the named elements (with their
// _element siblings), and tags meta SUBSETTED, by a JSON Patch so that what
// is kept is byte for byte what was stored.
func subset(body []byte, elements []string) []byte {
	root, err := strictjson.Parse(body)
	if err != nil {
		return body
	}
	type op struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value,omitempty"`
	}
	var ops []op
	for _, m := range root.Members {
		if !kept(m.Name, elements) {
			ops = append(ops, op{Op: "remove", Path: "/" + m.Name})
		}
	}
	switch meta := root.Get("meta"); {
	case meta == nil:
		ops = append(ops, op{Op: "add", Path: "/meta", Value: json.RawMessage(`{"tag":[` + subsettedTag + `]}`)})
	case meta.Get("tag") == nil:
		ops = append(ops, op{Op: "add", Path: "/meta/tag", Value: json.RawMessage(`[` + subsettedTag + `]`)})
	default:
		ops = append(ops, op{Op: "add", Path: "/meta/tag/-", Value: json.RawMessage(subsettedTag)})
	}
	patch, _ := json.Marshal(ops)
	out, err := jsonpatch.Apply(body, patch)
	if err != nil {
		return body
	}
	return out
}

func kept(name string, elements []string) bool {
	if name == "resourceType" || name == "id" || name == "meta" {
		return true
	}
	name = strings.TrimPrefix(name, "_")
	for _, e := range elements {
		if name == e {
			return true
		}
		// A choice element: "value" keeps valueQuantity, valueString, …
		if rest, ok := strings.CutPrefix(name, e); ok && rest != "" && unicode.IsUpper(rune(rest[0])) {
			return true
		}
	}
	return false
}
