package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// route is one entry of the HTTP surface. FHIR routes carry the interaction
// they implement so the CapabilityStatement is generated from this table and
// cannot claim what the router does not serve.
type route struct {
	method, path string
	// interactions are CapabilityStatement codes: TypeRestfulInteraction
	// (read, vread, update, delete, history-instance, create, search-type)
	// or, with system, SystemRestfulInteraction (transaction, batch).
	interactions []string
	system       bool
	handlers     []gin.HandlerFunc
}

// routeTable is Herald's whole HTTP surface.
func (s *Server) routeTable() []route {
	fhir := []gin.HandlerFunc{s.fhirJSON, s.authenticate}
	with := func(h gin.HandlerFunc) []gin.HandlerFunc { return append(append([]gin.HandlerFunc(nil), fhir...), h) }
	admin := func(h gin.HandlerFunc) []gin.HandlerFunc {
		return []gin.HandlerFunc{s.authenticate, s.requireAdmin, s.adminJSON, h}
	}
	// Admin actions take no body (any is ignored), so no Content-Type either.
	adminAction := func(h gin.HandlerFunc) []gin.HandlerFunc {
		return []gin.HandlerFunc{s.authenticate, s.requireAdmin, h}
	}
	routes := []route{
		{method: "GET", path: "/healthz", handlers: []gin.HandlerFunc{s.healthz}},
		{method: "GET", path: "/readyz", handlers: []gin.HandlerFunc{s.readyz}},
		{method: "GET", path: "/metrics", handlers: []gin.HandlerFunc{s.metrics}},

		// The CapabilityStatement is public, as FHIR and SMART clients expect.
		{method: "GET", path: "/fhir/metadata", handlers: []gin.HandlerFunc{s.fhirJSON, s.metadata}},
		// SMART discovery is public too: clients read it to obtain a token.
		{method: "GET", path: "/fhir/.well-known/smart-configuration", handlers: []gin.HandlerFunc{s.smartConfiguration}},
		{method: "POST", path: "/fhir", interactions: []string{"transaction", "batch"}, system: true, handlers: with(s.bundle)},
		// Clients that join the base and an empty path (fhir-kit-client) post here.
		{method: "POST", path: "/fhir/", handlers: with(s.bundle)},

		{method: "GET", path: "/fhir/_history", interactions: []string{"history-system"}, system: true, handlers: with(s.systemHistory)},
		{method: "GET", path: "/fhir/:type", interactions: []string{"search-type"}, handlers: with(s.search)},
		{method: "GET", path: "/fhir/:type/_history", interactions: []string{"history-type"}, handlers: with(s.typeHistory)},
		{method: "POST", path: "/fhir/:type/_search", handlers: with(s.searchPost)},
		{method: "POST", path: "/fhir/:type", interactions: []string{"create"}, handlers: with(s.create)},
		// Conditional update and delete (the CapabilityStatement says so beside update and delete).
		{method: "PUT", path: "/fhir/:type", handlers: with(s.conditionalUpdate)},
		{method: "DELETE", path: "/fhir/:type", handlers: with(s.conditionalDelete)},
		{method: "GET", path: "/fhir/:type/:id", interactions: []string{"read"}, handlers: with(s.read)},
		{method: "PUT", path: "/fhir/:type/:id", interactions: []string{"update"}, handlers: with(s.update)},
		{method: "DELETE", path: "/fhir/:type/:id", interactions: []string{"delete"}, handlers: with(s.delete)},
		{method: "PATCH", path: "/fhir/:type/:id", interactions: []string{"patch"}, handlers: with(s.patch)},
		{method: "GET", path: "/fhir/:type/:id/_history", interactions: []string{"history-instance"}, handlers: with(s.history)},
		// Operations: /Subscription/$status (type level; gin sees "$status" as the id) and
		// /Subscription/{id}/$status|$events. Reads of ids starting with "$" are operations.
		{method: "POST", path: "/fhir/:type/:id", handlers: with(s.typeOperation)},
		{method: "GET", path: "/fhir/:type/:id/:op", handlers: with(s.instanceOperation)},
		{method: "POST", path: "/fhir/:type/:id/:op", handlers: with(s.instanceOperation)},
		{method: "GET", path: "/fhir/:type/:id/_history/:vid", interactions: []string{"vread"}, handlers: with(s.vread)},

		// The admin API (JSON, api/openapi.yaml); herald.admin scope required.
		// client_id is a catch-all: client ids may contain "/".
		{method: "GET", path: "/admin/endpoints", handlers: admin(s.listEndpoints)},
		{method: "POST", path: "/admin/endpoints", handlers: admin(s.addEndpoint)},
		{method: "DELETE", path: "/admin/endpoints/:id", handlers: admin(s.removeEndpoint)},
		{method: "POST", path: "/admin/allowlist/check", handlers: admin(s.checkEndpoint)},
		{method: "GET", path: "/admin/clients", handlers: admin(s.listClients)},
		{method: "GET", path: "/admin/clients/*client_id", handlers: admin(s.getClient)},
		{method: "PUT", path: "/admin/clients/*client_id", handlers: admin(s.putClient)},
		{method: "GET", path: "/admin/audit", handlers: admin(s.auditLog)},
		// Delivery: Subscriptions with their queue lag, the attempt log, actions.
		{method: "GET", path: "/admin/subscriptions", handlers: admin(s.listDeliveries)},
		{method: "GET", path: "/admin/subscriptions/:id/attempts", handlers: admin(s.listAttempts)},
		{method: "POST", path: "/admin/subscriptions/:id/retry", handlers: adminAction(s.retryDelivery)},
		{method: "POST", path: "/admin/subscriptions/:id/reactivate", handlers: adminAction(s.reactivate)},
	}
	if s.opts.Console != nil {
		// The admin console (HTML, internal/console) signs its admins in
		// itself, from a cookie, with the same verifier and admin check.
		console := gin.WrapH(s.opts.Console)
		routes = append(routes,
			route{method: "GET", path: "/admin/ui", handlers: []gin.HandlerFunc{func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/admin/ui/") }}},
			route{method: "GET", path: "/admin/ui/*page", handlers: []gin.HandlerFunc{console}},
			route{method: "POST", path: "/admin/ui/*page", handlers: []gin.HandlerFunc{console}})
	}
	return routes
}
