package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// definitions are the canonical URLs of the parameters whose URL the
// generated table does not carry.
var definitions = map[string]string{
	"_id":          "http://hl7.org/fhir/SearchParameter/Resource-id",
	"_lastUpdated": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
}

// searchParams are the parameters REST search evaluates on typ: the
// supported entries of the generated R4 table, which is what the search
// reads too, so the statement cannot claim a parameter search ignores.
func searchParams(typ string) []models.CapabilityStatementRestResourceSearchParam {
	var out []models.CapabilityStatementRestResourceSearchParam
	for _, p := range search.Params(typ) {
		if !p.Supported() {
			continue
		}
		sp := models.CapabilityStatementRestResourceSearchParam{Name: p.Code, Type: enum[models.SearchParamType](string(p.Type))}
		if d, ok := definitions[p.Code]; ok {
			sp.Definition = ptr(d)
		}
		out = append(out, sp)
	}
	return out
}

func (s *Server) metadata(c *gin.Context) {
	c.Data(http.StatusOK, fhirJSONType, s.capabilityStatement())
}

// capabilityStatement describes what the route table serves: every
// interaction listed here has a route, and every FHIR route is listed.
func (s *Server) capabilityStatement() []byte {
	var typeInteractions, systemInteractions []string
	for _, r := range s.routes {
		if r.system {
			systemInteractions = append(systemInteractions, r.interactions...)
		} else {
			typeInteractions = append(typeInteractions, r.interactions...)
		}
	}
	rest := models.CapabilityStatementRest{
		Mode: models.RestfulCapabilityModeServer,
		Security: &models.CapabilityStatementRestSecurity{
			Service: []models.CodeableConcept{{Coding: []models.Coding{{
				System: ptr("http://terminology.hl7.org/CodeSystem/restful-security-service"),
				Code:   ptr("SMART-on-FHIR"),
			}}}},
			Description: ptr("Bearer JWT (SMART on FHIR v1/v2 scopes) on every request except this CapabilityStatement."),
		},
	}
	rest.Security.Extension = s.oauthURIs()
	for _, code := range systemInteractions {
		rest.Interaction = append(rest.Interaction, models.CapabilityStatementRestInteraction{Code: enum[models.SystemRestfulInteraction](code)})
	}
	for _, typ := range fhir.ResourceTypes() {
		res := models.CapabilityStatementRestResource{
			Type:         enum[models.ResourceType](typ),
			Versioning:   ptr(models.ResourceVersionPolicyVersionedUpdate),
			ReadHistory:  ptr(true),
			UpdateCreate: ptr(slices.Contains(typeInteractions, "update")),
			// Served by create's If-None-Exist and the PUT and DELETE routes on the type.
			ConditionalCreate: ptr(true),
			ConditionalUpdate: ptr(true),
			ConditionalDelete: ptr(models.ConditionalDeleteStatusSingle),
			SearchParam:       searchParams(typ),
		}
		res.SearchInclude, res.SearchRevInclude = resources.Includes(typ)
		if typ == "Subscription" {
			s.describeSubscriptions(&res)
		}
		for _, code := range typeInteractions {
			res.Interaction = append(res.Interaction, models.CapabilityStatementRestResourceInteraction{Code: enum[models.TypeRestfulInteraction](code)})
		}
		rest.Resource = append(rest.Resource, res)
	}
	rest.Documentation = ptr("SubscriptionTopic resources (R4B/R5 JSON shape, a Herald addition to R4) are served at /SubscriptionTopic: read and search (url, status, _id) for any authenticated client, writes for admins.")
	cs := models.CapabilityStatement{
		Instantiates: []string{fhir.CapabilityServerR4},
		Status:       models.PublicationStatusActive,
		Date:         time.Now().UTC().Format(time.RFC3339),
		Publisher:    ptr("Herald"),
		Kind:         models.CapabilityStatementKindInstance,
		Software:     &models.CapabilityStatementSoftware{Name: "Herald", Version: ptr(s.opts.Version)},
		Implementation: &models.CapabilityStatementImplementation{
			Description: "Herald FHIR Subscriptions server",
			Url:         ptr(s.opts.BaseURL),
		},
		FhirVersion: models.FHIRVersion4_0_1,
		Format:      []string{"application/fhir+json", "json"},
		Rest:        []models.CapabilityStatementRest{rest},
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic("api: CapabilityStatement does not marshal: " + err.Error())
	}
	return b
}

// enum converts a FHIR code into a samply enum through its JSON form; the
// codes come from Herald's own route table, so a failure is a programming error.
func enum[T any](code string) T {
	var v T
	b, _ := json.Marshal(code)
	if err := strictjson.Unmarshal(b, &v); err != nil {
		panic("api: unknown FHIR code " + code)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// subscriptionSearchParams are the Subscription search parameters Herald
// supports beyond the common ones.
var subscriptionSearchParams = []struct{ name, typ, definition string }{
	{"status", "token", "http://hl7.org/fhir/SearchParameter/Subscription-status"},
	{"url", "uri", "http://hl7.org/fhir/SearchParameter/Subscription-url"},
	{"topic", "uri", "http://hl7.org/fhir/uv/subscriptions-backport/SearchParameter/Subscription-topic"},
}

// describeSubscriptions adds the backport profile, the searchable
// parameters and every active topic canonical to the Subscription entry.
func (s *Server) describeSubscriptions(res *models.CapabilityStatementRestResource) {
	res.SupportedProfile = []string{fhir.ProfileSubscription}
	// Subscriptions are owner-isolated by their rules; conditions do not apply.
	res.ConditionalCreate, res.ConditionalUpdate = ptr(false), ptr(false)
	res.ConditionalDelete = ptr(models.ConditionalDeleteStatusNotSupported)
	// The rules' own parameters replace the generic ones of the same name.
	params := slices.DeleteFunc(slices.Clone(res.SearchParam), func(sp models.CapabilityStatementRestResourceSearchParam) bool {
		return slices.ContainsFunc(subscriptionSearchParams, func(p struct{ name, typ, definition string }) bool { return p.name == sp.Name })
	})
	for _, p := range subscriptionSearchParams {
		params = append(params, models.CapabilityStatementRestResourceSearchParam{
			Name: p.name, Type: enum[models.SearchParamType](p.typ), Definition: ptr(p.definition),
		})
	}
	res.SearchParam = params
	if s.opts.Operations != nil {
		for _, op := range subscriptionOperations {
			res.Operation = append(res.Operation, models.CapabilityStatementRestResourceOperation{Name: op.name, Definition: op.definition})
		}
	}
	if s.opts.BindingTokens != nil {
		res.Operation = append(res.Operation, models.CapabilityStatementRestResourceOperation{Name: getWSBindingToken, Definition: fhir.OperationGetWSBindingToken})
	}
	if s.opts.Topics == nil {
		return
	}
	// Each topic both versioned (url|version) and bare: a Subscription's
	// criteria may be either (the bare one follows the active version).
	bare := map[string]bool{}
	for _, t := range s.opts.Topics.Active() {
		res.Extension = append(res.Extension, models.Extension{Url: fhir.ExtTopicCanonical, ValueCanonical: ptr(t.Canonical())})
		if t.Version != "" && !bare[t.URL] {
			bare[t.URL] = true
			res.Extension = append(res.Extension, models.Extension{Url: fhir.ExtTopicCanonical, ValueCanonical: ptr(t.URL)})
		}
	}
}

// oauthURIs is SMART's oauth-uris extension (the endpoints of
// /.well-known/smart-configuration, for clients that read them here), when
// configured.
func (s *Server) oauthURIs() []models.Extension {
	sm := s.opts.SMART
	if sm.TokenEndpoint == "" {
		return nil
	}
	uris := []models.Extension{{Url: "token", ValueUri: ptr(sm.TokenEndpoint)}}
	if sm.AuthorizationEndpoint != "" {
		uris = append(uris, models.Extension{Url: "authorize", ValueUri: ptr(sm.AuthorizationEndpoint)})
	}
	return []models.Extension{{Url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", Extension: uris}}
}
