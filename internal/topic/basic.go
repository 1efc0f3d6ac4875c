package topic

import (
	"encoding/json"
	"net/url"
	"strings"
)

// Basic wrapping of topics (Subscriptions Backport 1.2.0-ballot): R4 has no
// SubscriptionTopic, so topics are also discoverable as Basic resources with
// code fhir-types#SubscriptionTopic and the topic's elements as extensions.
const (
	basicIDPrefix   = "subscriptiontopic-"
	fhirTypesSystem = "http://hl7.org/fhir/fhir-types"
	ext5            = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."
	ext43           = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic."
)

type ext = map[string]any

// Basic renders the topic as a read-only R4 Basic resource.
func (t *Topic) Basic() []byte {
	var exts []any
	add := func(name, valueType, value string) {
		if value != "" {
			exts = append(exts, ext{"url": ext5 + name, valueType: value})
		}
	}
	add("url", "valueUri", t.URL)
	add("version", "valueString", t.Version)
	add("name", "valueString", t.Name)
	add("title", "valueString", t.Title)
	add("description", "valueMarkdown", t.Description)
	for _, tr := range t.Triggers {
		parts := []any{}
		if tr.Description != "" {
			parts = append(parts, ext{"url": "description", "valueMarkdown": tr.Description})
		}
		parts = append(parts, ext{"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/" + tr.ResourceType})
		for _, in := range tr.Interactions {
			parts = append(parts, ext{"url": "supportedInteraction", "valueCode": string(in)})
		}
		if q := tr.Query; q != nil {
			var qc []any
			if q.Previous != "" {
				qc = append(qc, ext{"url": "previous", "valueString": q.Previous}, ext{"url": "resultForCreate", "valueCode": testCode(q.ResultForCreate)})
			}
			if q.Current != "" {
				qc = append(qc, ext{"url": "current", "valueString": q.Current}, ext{"url": "resultForDelete", "valueCode": testCode(q.ResultForDelete)})
			}
			qc = append(qc, ext{"url": "requireBoth", "valueBoolean": q.RequireBoth})
			parts = append(parts, ext{"url": "queryCriteria", "extension": qc})
		}
		exts = append(exts, ext{"url": ext43 + "resourceTrigger", "extension": parts})
	}
	for _, fd := range t.CanFilterBy {
		parts := []any{}
		if fd.ResourceType != "" {
			parts = append(parts, ext{"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/" + fd.ResourceType})
		}
		parts = append(parts, ext{"url": "filterParameter", "valueString": fd.Param})
		if fd.Definition != "" {
			parts = append(parts, ext{"url": "filterDefinition", "valueUri": fd.Definition})
		}
		for _, m := range fd.Modifiers {
			parts = append(parts, ext{"url": "modifier", "valueCode": m})
		}
		exts = append(exts, ext{"url": ext43 + "canFilterBy", "extension": parts})
	}
	for _, s := range t.Shapes {
		parts := []any{ext{"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/" + s.ResourceType}}
		for _, inc := range s.Include {
			parts = append(parts, ext{"url": "include", "valueString": inc})
		}
		for _, inc := range s.RevInclude {
			parts = append(parts, ext{"url": "revInclude", "valueString": inc})
		}
		exts = append(exts, ext{"url": ext43 + "notificationShape", "extension": parts})
	}
	b, _ := json.Marshal(ext{
		"resourceType":      "Basic",
		"id":                basicIDPrefix + t.ID,
		"modifierExtension": []any{ext{"url": ext5 + "status", "valueCode": t.Status}},
		"extension":         exts,
		"code":              ext{"coding": []any{ext{"system": fhirTypesSystem, "code": "SubscriptionTopic"}}},
	})
	return b
}

func testCode(passes bool) string {
	if passes {
		return "test-passes"
	}
	return "test-fails"
}

// BasicView serves the library as Basic resources: search with
// code=http://hl7.org/fhir/fhir-types|SubscriptionTopic, and read by id.
type BasicView struct {
	Library *Library
}

// Search answers a Basic search that asks for topics; handled is false for
// any other Basic search, which then runs against stored Basic resources.
func (v *BasicView) Search(params url.Values) (bodies [][]byte, handled bool) {
	codes := params["code"]
	if len(codes) != 1 || !asksForTopics(codes[0]) {
		return nil, false
	}
	for _, t := range v.Library.All() {
		bodies = append(bodies, t.Basic())
	}
	return bodies, true
}

// Read returns the Basic form of one topic by its Basic id.
func (v *BasicView) Read(id string) ([]byte, bool) {
	topicID, ok := strings.CutPrefix(id, basicIDPrefix)
	if !ok {
		return nil, false
	}
	for _, t := range v.Library.All() {
		if t.ID == topicID {
			return t.Basic(), true
		}
	}
	return nil, false
}

func asksForTopics(code string) bool {
	for _, alt := range strings.Split(code, ",") {
		if alt == fhirTypesSystem+"|SubscriptionTopic" || alt == "SubscriptionTopic" {
			return true
		}
	}
	return false
}
