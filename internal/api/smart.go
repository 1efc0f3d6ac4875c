package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
)

// SMARTConfig describes the authorization server whose tokens Herald
// accepts, for GET /fhir/.well-known/smart-configuration. A zero
// TokenEndpoint means not configured.
type SMARTConfig struct {
	Issuer                string // tokens' iss, when Herald checks it
	JWKSURL               string // the issuer's keys, when Herald uses them
	TokenEndpoint         string
	AuthorizationEndpoint string   // empty: no authorization-code grant
	Capabilities          []string // of the authorization server
}

// heraldCapabilities are the SMART capabilities Herald itself honours as a
// resource server: v1 and v2 scopes, patient and user contexts.
var heraldCapabilities = []string{"permission-v1", "permission-v2", "permission-patient", "permission-user"}

// scopesSupported are the scope shapes Herald grants access by (see
// internal/auth); TestSMARTScopesParse holds each to auth.ParseScope.
var scopesSupported = []string{
	"system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/*.*",
	"user/*.cruds", "user/*.rs", "user/*.read", "user/*.write", "user/*.*",
	"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write", "patient/*.*",
	"herald.admin",
}

// smartDocument is the SMART App Launch 2.0 configuration document.
type smartDocument struct {
	Issuer                        string   `json:"issuer,omitempty"`
	JWKSURI                       string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	ResponseTypesSupported        []string `json:"response_types_supported,omitempty"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	ScopesSupported               []string `json:"scopes_supported"`
	Capabilities                  []string `json:"capabilities"`
}

func (c SMARTConfig) document() smartDocument {
	d := smartDocument{
		Issuer: c.Issuer, JWKSURI: c.JWKSURL,
		AuthorizationEndpoint: c.AuthorizationEndpoint, TokenEndpoint: c.TokenEndpoint,
		GrantTypesSupported:           []string{"client_credentials"},
		CodeChallengeMethodsSupported: []string{"S256"},
		ScopesSupported:               scopesSupported,
		Capabilities:                  slices.Clone(heraldCapabilities),
	}
	if c.AuthorizationEndpoint != "" {
		d.GrantTypesSupported = append(d.GrantTypesSupported, "authorization_code")
		d.ResponseTypesSupported = []string{"code"}
	}
	for _, cap := range c.Capabilities {
		if !slices.Contains(d.Capabilities, cap) {
			d.Capabilities = append(d.Capabilities, cap)
		}
	}
	return d
}

// smartConfiguration is public, as SMART clients read it before they hold a
// token; without configuration it is a 404, never a 401.
func (s *Server) smartConfiguration(c *gin.Context) {
	if s.opts.SMART.TokenEndpoint == "" {
		writeError(c, fhir.Errorf(fhir.KindNotFound, "SMART configuration is not published: the operator has not set HERALD_SMART_TOKEN_ENDPOINT"))
		return
	}
	body, err := json.Marshal(s.opts.SMART.document())
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}
