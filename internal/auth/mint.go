package auth

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintClaims describes a token for [MintHS256].
type MintClaims struct {
	ClientID string
	// Scope is space-separated, written as given (normalised spacing).
	Scope   string
	Patient string
	// Subject is the sub claim (the client id when empty); FHIRUser the
	// fhirUser claim. They name the user of a user/ token.
	Subject, FHIRUser string
	// TTL must be positive: every Herald token expires.
	TTL              time.Duration
	Issuer, Audience string
	// Now is the issue time; time.Now() when zero.
	Now time.Time
}

// MintHS256 signs a token that a [Verifier] with the same secret accepts:
// client_id and sub are the client, plus scope, exp, iat, a random jti, and
// patient, iss and aud when set. It is for `herald token` and dev mode.
func MintHS256(secret []byte, c MintClaims) (string, error) {
	switch {
	case len(secret) < MinHS256SecretLen:
		return "", fmt.Errorf("auth: the HS256 secret must be at least %d bytes", MinHS256SecretLen)
	case c.ClientID == "":
		return "", errors.New("auth: a token needs a client id")
	case c.TTL <= 0:
		return "", errors.New("auth: a token needs a positive TTL")
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	body := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   cmp.Or(c.Subject, c.ClientID),
			Issuer:    c.Issuer,
			ExpiresAt: jwt.NewNumericDate(now.Add(c.TTL)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		ClientID: c.ClientID,
		Scope:    strings.Fields(c.Scope),
		Patient:  c.Patient,
		FHIRUser: c.FHIRUser,
	}
	if c.Audience != "" {
		body.Audience = jwt.ClaimStrings{c.Audience}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, body).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}
