// Package topic parses SubscriptionTopics (R4B/R5 JSON shape, as Herald
// stores them on R4) into compiled triggers, and keeps the library of topics
// the server can evaluate: the built-in ones from topics/ and those admins
// store at /fhir/SubscriptionTopic.
package topic

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// Topic is a SubscriptionTopic Herald can evaluate.
type Topic struct {
	ID, URL, Version, Name, Title, Status, Description string
	Triggers                                           []Trigger
	CanFilterBy                                        []FilterDef
	Shapes                                             []Shape
}

// Interaction is a resourceTrigger.supportedInteraction code.
type Interaction string

const (
	Create Interaction = "create"
	Update Interaction = "update"
	Delete Interaction = "delete"
)

// Trigger is one resourceTrigger.
type Trigger struct {
	Description  string
	ResourceType string
	Interactions []Interaction
	Query        *QueryCriteria // nil: every supported interaction fires
}

// QueryCriteria is resourceTrigger.queryCriteria.
type QueryCriteria struct {
	Previous, Current string // search query strings ("status:not=finished"); "" means no test
	// ResultForCreate is the result of Previous on create (no previous
	// version); ResultForDelete the result of Current on delete.
	ResultForCreate, ResultForDelete bool
	RequireBoth                      bool
}

// FilterDef is one canFilterBy entry.
type FilterDef struct {
	ResourceType string // "" means any type the topic triggers on
	Param        string
	Definition   string
	Modifiers    []string // R4B modifier codes, incl. comparators; empty: equality only
	Comparators  []string // R5 comparators
}

// Shape is one notificationShape.
type Shape struct {
	ResourceType string
	Include      []string
	RevInclude   []string
}

// wire mirrors the topic JSON Herald reads.
type wire struct {
	ResourceType    string `json:"resourceType"`
	ID              string `json:"id"`
	URL             string `json:"url"`
	Version         string `json:"version"`
	Name            string `json:"name"`
	Title           string `json:"title"`
	Status          string `json:"status"`
	Description     string `json:"description"`
	ResourceTrigger []struct {
		Description          string   `json:"description"`
		Resource             string   `json:"resource"`
		SupportedInteraction []string `json:"supportedInteraction"`
		QueryCriteria        *struct {
			Previous        string `json:"previous"`
			ResultForCreate string `json:"resultForCreate"`
			Current         string `json:"current"`
			ResultForDelete string `json:"resultForDelete"`
			RequireBoth     *bool  `json:"requireBoth"`
		} `json:"queryCriteria"`
		FHIRPathCriteria string `json:"fhirPathCriteria"`
	} `json:"resourceTrigger"`
	EventTrigger json.RawMessage `json:"eventTrigger"`
	CanFilterBy  []struct {
		Resource         string   `json:"resource"`
		FilterParameter  string   `json:"filterParameter"`
		FilterDefinition string   `json:"filterDefinition"`
		Modifier         []string `json:"modifier"`
		Comparator       []string `json:"comparator"`
	} `json:"canFilterBy"`
	NotificationShape []struct {
		Resource   string   `json:"resource"`
		Include    []string `json:"include"`
		RevInclude []string `json:"revInclude"`
	} `json:"notificationShape"`
}

// Parse reads a topic and checks that Herald can evaluate it. 400 for JSON
// of the wrong shape; 422 naming the part Herald does not support.
func Parse(body []byte) (*Topic, error) {
	var w wire
	if err := strictjson.Unmarshal(body, &w); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the SubscriptionTopic is malformed: %s", err)
	}
	if w.ResourceType != "SubscriptionTopic" {
		return nil, fhir.Errorf(fhir.KindInvalid, "resourceType must be SubscriptionTopic")
	}
	t := &Topic{ID: w.ID, URL: w.URL, Version: w.Version, Name: w.Name, Title: w.Title, Status: w.Status, Description: w.Description}
	if t.URL == "" || strings.ContainsAny(t.URL, "|? ") || !strings.Contains(t.URL, "://") {
		return nil, unsupported("SubscriptionTopic.url", "url is required: an absolute canonical URL without a version or query")
	}
	switch t.Status {
	case "draft", "active", "retired":
	default:
		return nil, unsupported("SubscriptionTopic.status", "status must be draft, active or retired")
	}
	if len(w.EventTrigger) > 0 && string(w.EventTrigger) != "null" && string(w.EventTrigger) != "[]" {
		return nil, unsupported("SubscriptionTopic.eventTrigger", "eventTrigger is not supported: Herald evaluates resourceTrigger only")
	}
	if len(w.ResourceTrigger) == 0 {
		return nil, unsupported("SubscriptionTopic.resourceTrigger", "at least one resourceTrigger is required")
	}
	for i, rt := range w.ResourceTrigger {
		at := fmt.Sprintf("SubscriptionTopic.resourceTrigger[%d]", i)
		typ, ok := ResourceTypeOf(rt.Resource)
		if !ok {
			return nil, unsupported(at+".resource", "%q is not an R4 resource type (use a type name or http://hl7.org/fhir/StructureDefinition/[type])", clip(rt.Resource))
		}
		tr := Trigger{Description: rt.Description, ResourceType: typ}
		for _, in := range rt.SupportedInteraction {
			switch Interaction(in) {
			case Create, Update, Delete:
				if !slices.Contains(tr.Interactions, Interaction(in)) {
					tr.Interactions = append(tr.Interactions, Interaction(in))
				}
			default:
				return nil, unsupported(at+".supportedInteraction", "interaction %q is not supported (create, update or delete)", clip(in))
			}
		}
		if len(tr.Interactions) == 0 {
			tr.Interactions = []Interaction{Create, Update, Delete} // R5: absent means all
		}
		if rt.FHIRPathCriteria != "" {
			return nil, unsupported(at+".fhirPathCriteria", "fhirPathCriteria is not supported; express the trigger with queryCriteria")
		}
		if qc := rt.QueryCriteria; qc != nil {
			q := &QueryCriteria{Previous: qc.Previous, Current: qc.Current, RequireBoth: qc.RequireBoth != nil && *qc.RequireBoth}
			var err error
			if q.ResultForCreate, err = testResult(qc.ResultForCreate, at+".queryCriteria.resultForCreate"); err != nil {
				return nil, err
			}
			if q.ResultForDelete, err = testResult(qc.ResultForDelete, at+".queryCriteria.resultForDelete"); err != nil {
				return nil, err
			}
			for name, query := range map[string]string{"previous": q.Previous, "current": q.Current} {
				if query == "" {
					continue
				}
				if _, err := search.ParseCriteria(typ, query); err != nil {
					return nil, unsupported(at+".queryCriteria."+name, "%s", err)
				}
			}
			if q.Previous != "" || q.Current != "" {
				tr.Query = q
			}
		}
		t.Triggers = append(t.Triggers, tr)
	}
	for i, cf := range w.CanFilterBy {
		at := fmt.Sprintf("SubscriptionTopic.canFilterBy[%d]", i)
		fd := FilterDef{Param: cf.FilterParameter, Definition: cf.FilterDefinition, Modifiers: cf.Modifier, Comparators: cf.Comparator}
		if cf.Resource != "" {
			typ, ok := ResourceTypeOf(cf.Resource)
			if !ok || !t.TriggersOn(typ) {
				return nil, unsupported(at+".resource", "%q is not a resource type this topic triggers on", clip(cf.Resource))
			}
			fd.ResourceType = typ
		}
		if fd.Param == "" {
			return nil, unsupported(at+".filterParameter", "filterParameter is required")
		}
		for _, typ := range t.filterTypes(fd) {
			if err := filterParamSupported(typ, fd.Param); err != nil && !isHeraldParam(typ, fd) {
				return nil, unsupported(at+".filterParameter", "%s", err)
			}
		}
		t.CanFilterBy = append(t.CanFilterBy, fd)
	}
	for _, ns := range w.NotificationShape {
		typ, ok := ResourceTypeOf(ns.Resource)
		if !ok {
			return nil, unsupported("SubscriptionTopic.notificationShape.resource", "%q is not an R4 resource type", clip(ns.Resource))
		}
		t.Shapes = append(t.Shapes, Shape{ResourceType: typ, Include: ns.Include, RevInclude: ns.RevInclude})
	}
	return t, nil
}

// Canonical is url|version, or url without a version.
func (t *Topic) Canonical() string {
	if t.Version == "" {
		return t.URL
	}
	return t.URL + "|" + t.Version
}

// TriggersOn reports whether some trigger watches the resource type.
func (t *Topic) TriggersOn(typ string) bool {
	for _, tr := range t.Triggers {
		if tr.ResourceType == typ {
			return true
		}
	}
	return false
}

// ResourceTypes lists the types the topic triggers on, in trigger order.
func (t *Topic) ResourceTypes() []string {
	var out []string
	for _, tr := range t.Triggers {
		if !slices.Contains(out, tr.ResourceType) {
			out = append(out, tr.ResourceType)
		}
	}
	return out
}

// IncludedTypes lists the resource types notificationShape includes can
// add to a full-resource notification (the targets of "Type:param" includes,
// when the parameter names one target type; "*" when it may be any).
func (t *Topic) IncludedTypes(targets func(typ, param string) []string) []string {
	var out []string
	for _, s := range t.Shapes {
		for _, inc := range append(append([]string(nil), s.Include...), s.RevInclude...) {
			spec, _, _ := strings.Cut(inc, "&") // drop &iterate=…
			parts := strings.Split(spec, ":")
			if len(parts) < 2 {
				continue
			}
			var types []string
			if len(parts) == 3 {
				types = []string{parts[2]}
			} else {
				types = targets(parts[0], parts[1])
			}
			if slices.Contains(s.RevInclude, inc) {
				types = []string{parts[0]}
			}
			for _, typ := range types {
				if !slices.Contains(out, typ) {
					out = append(out, typ)
				}
			}
		}
	}
	return out
}

// FilterFor returns the canFilterBy entry that admits param on typ.
func (t *Topic) FilterFor(typ, param string) (FilterDef, bool) {
	for _, fd := range t.CanFilterBy {
		if fd.Param == param && (fd.ResourceType == "" || fd.ResourceType == typ) {
			return fd, true
		}
	}
	return FilterDef{}, false
}

func (t *Topic) filterTypes(fd FilterDef) []string {
	if fd.ResourceType != "" {
		return []string{fd.ResourceType}
	}
	return t.ResourceTypes()
}

// ResourceTypeOf accepts "Encounter" or its StructureDefinition URL.
func ResourceTypeOf(resource string) (string, bool) {
	typ := strings.TrimPrefix(resource, "http://hl7.org/fhir/StructureDefinition/")
	return typ, fhir.IsR4ResourceType(typ)
}

func testResult(code, at string) (bool, error) {
	switch code {
	case "", "test-passes":
		return code == "test-passes", nil
	case "test-fails":
		return false, nil
	default:
		return false, unsupported(at, "must be test-passes or test-fails")
	}
}

func unsupported(at, format string, args ...any) *fhir.Error {
	return &fhir.Error{Kind: fhir.KindUnprocessable, Code: "not-supported", Expression: []string{at},
		Message: at + ": " + fmt.Sprintf(format, args...)}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// filterParamSupported reports whether Herald can evaluate the search
// parameter on the type.
func filterParamSupported(typ, param string) error {
	p, ok := search.Lookup(typ, param)
	if !ok {
		return fmt.Errorf("unknown search parameter %q for %s", param, typ)
	}
	if !p.Supported() {
		return fmt.Errorf("search parameter %q on %s is not supported", param, typ)
	}
	return nil
}
