package auth

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// claims is the JWT body Herald reads and mints.
type claims struct {
	jwt.RegisteredClaims
	ClientID string     `json:"client_id,omitempty"`
	Scope    scopeClaim `json:"scope,omitempty"`
	Patient  string     `json:"patient,omitempty"`
	FHIRUser string     `json:"fhirUser,omitempty"`
}

// UnmarshalJSON reads a token body with strictjson's exact names, so a
// "Patient" or duplicate "patient" claim can never stand in for "patient".
func (c *claims) UnmarshalJSON(b []byte) error {
	type plain claims // no methods: no recursion
	return strictjson.Unmarshal(b, (*plain)(c))
}

// scopeClaim accepts the OAuth space-separated string and, as some issuers
// emit, a JSON array of strings. It is written as a string.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var one string
	if err := strictjson.Unmarshal(b, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var many []string
	if err := strictjson.Unmarshal(b, &many); err != nil {
		return errors.New("scope claim must be a string or an array of strings")
	}
	*s = nil
	for _, m := range many {
		*s = append(*s, strings.Fields(m)...)
	}
	return nil
}

func (s scopeClaim) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.Join(s, " "))
}
