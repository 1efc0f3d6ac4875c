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

// shape is how a resource is cut for the reader: to the top-level elements
// _elements names, or to a _summary (true, text or data); the zero shape
// keeps everything.
type shape struct {
	elements []string
	summary  string
}

// parseShape reads _elements (top-level element names; "value" keeps
// value[x], e.g. valueQuantity) and _summary=true|text|data|false; count is
// the search's business (parseResults).
func parseShape(params, applied url.Values) (shape, error) {
	var sh shape
	for _, v := range params["_elements"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); !elementName(name) {
				return sh, fhir.Errorf(fhir.KindInvalid, "_elements: %q is not an element name", clip(name))
			}
			sh.elements = append(sh.elements, name)
		}
		applied.Add("_elements", v)
	}
	for _, v := range params["_summary"] {
		switch v {
		case "true", "text", "data":
			if sh.summary != "" && sh.summary != v {
				return sh, fhir.Errorf(fhir.KindInvalid, "_summary may be given once")
			}
			sh.summary = v
		case "false", "count":
		default:
			return sh, fhir.Errorf(fhir.KindInvalid, "_summary must be true, text, data, count or false, not %q", clip(v))
		}
	}
	if sh.summary != "" && len(sh.elements) > 0 {
		return sh, fhir.Errorf(fhir.KindInvalid, "_summary=%s and _elements cannot be combined; use one", sh.summary)
	}
	return sh, nil
}

// ShapeRead cuts a read's answer (GET /{type}/{id}) as its _summary or
// _elements parameters ask; a body without them comes back as it is.
func ShapeRead(typ string, params url.Values, body []byte) ([]byte, error) {
	if params.Get("_summary") == "count" {
		return nil, fhir.Errorf(fhir.KindInvalid, "_summary=count applies to searches, not reads")
	}
	sh, err := parseShape(params, url.Values{})
	if err != nil {
		return nil, err
	}
	return sh.apply(typ, body), nil
}

// apply cuts body (a resource of typ) to the shape.
func (sh shape) apply(typ string, body []byte) []byte {
	switch {
	case len(sh.elements) > 0:
		return subset(body, func(name string) bool { return listed(name, sh.elements) })
	case sh.summary == "true":
		return subset(body, func(name string) bool {
			return listed(name, summaryElements[typ]) || listed(name, mandatoryElements[typ])
		})
	case sh.summary == "text":
		return subset(body, func(name string) bool { return name == "text" || listed(name, mandatoryElements[typ]) })
	case sh.summary == "data":
		return subset(body, func(name string) bool { return name != "text" })
	}
	return body
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

// matchEntry is a search match, cut to the shape _elements or _summary asked.
func (s *Service) matchEntry(v store.Version, sh shape) fhir.BundleEntry {
	body := sh.apply(v.Type, v.Body)
	return fhir.BundleEntry{FullURL: s.fullURL(v.Type, v.ID), Resource: body, Search: &fhir.EntrySearch{Mode: "match"}}
}

// subset keeps resourceType, id, meta and the elements keep accepts (with
// their _element siblings), and tags meta SUBSETTED, by a JSON Patch so that
// what is kept is byte for byte what was stored.
//
// A stored body's trees (this parse and the patch's) are built within the
// stored-body budget, as strictjson.ParseStored's are.
func subset(body []byte, keep func(name string) bool) []byte {
	defer strictjson.ShareStored(2 * len(body))()
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
		if name := strings.TrimPrefix(m.Name, "_"); name != "resourceType" && name != "id" && name != "meta" && !keep(name) {
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

// listed reports whether a top-level JSON member name is one of elements,
// a choice element ("value") naming all its typed forms.
func listed(name string, elements []string) bool {
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
