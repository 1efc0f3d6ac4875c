package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

const (
	jwksRefreshInterval = time.Hour
	// jwksRefreshUnknownKID spaces out refreshes triggered by tokens with an
	// unknown kid, so forged kids cannot turn Herald into a JWKS hammer.
	jwksRefreshUnknownKID = time.Minute
	// jwksTimeout bounds one fetch. keyfunc also uses it as the longest a
	// request waits for the unknown-kid limiter; rate.Limiter fails at once
	// when the wait would be longer, so at most one request waits at a time.
	jwksTimeout = 10 * time.Second
)

var errKeyNotFound = errors.New("no JWKS key for the token")

func newJWKS(ctx context.Context, url string, client *http.Client, log *slog.Logger) (keyfunc.Keyfunc, error) {
	failFirst := false
	return keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: &failFirst,
		RateLimitWaitMax:          jwksTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.WarnContext(ctx, "auth: JWKS refresh failed", "url", u, "error", err)
			}
		},
		RefreshInterval:   jwksRefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksRefreshUnknownKID), 1),
	})
}

// jwksKey finds t's key in the set and insists its type fits alg: RSA for
// RS256, P-256 for ES256. jwt would refuse a mismatched type too; checking
// here keeps the guarantee local. A token without kid is tried against every
// key of the right type.
func jwksKey(ctx context.Context, jwks keyfunc.Keyfunc, t *jwt.Token, alg string) (any, error) {
	got, err := jwks.KeyfuncCtx(ctx)(t)
	if err != nil {
		// Unknown kid, a refresh refused by the rate limiter, or a JWK
		// whose alg/use does not fit: to the client all are "no key".
		return nil, errors.Join(errKeyNotFound, err)
	}
	if set, ok := got.(jwt.VerificationKeySet); ok {
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if keyFits(alg, k) {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, errKeyNotFound
		}
		return fit, nil
	}
	if !keyFits(alg, got) {
		return nil, errKeyNotFound
	}
	return got, nil
}

func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == algRS256
	case *ecdsa.PublicKey:
		return alg == algES256 && k.Curve == elliptic.P256()
	}
	return false
}
