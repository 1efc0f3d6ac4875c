package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verifyReasons are the fixed phrases a refusal may carry.
var verifyReasons = map[string]bool{
	"no token": true, "token too large": true, "token malformed": true, "signing method not allowed": true,
	"signing key not found": true, "signing key unavailable": true, "signature invalid": true,
	"token has no exp": true, "token expired": true, "token not yet valid": true, "issuer mismatch": true,
	"audience mismatch": true, "token invalid": true, "token has no client_id or sub": true,
}

// FuzzVerify feeds arbitrary strings to an HS256 Verifier (issuer and
// audience configured). It never panics; a refusal is an *Error wrapping
// ErrUnauthenticated with one of the fixed reasons (never token text); and
// a token is accepted only if it is exactly three segments whose header
// says HS256 and whose signature is the HMAC-SHA256 of the first two under
// the secret, carrying an exp still valid, the issuer, the audience and a
// client id. The second target input is glued in as the signature segment
// of a token built from the first, so mutations reach past the signature
// check too.
func FuzzVerify(f *testing.F) {
	mint := func(c MintClaims) string {
		c.ClientID, c.Issuer, c.Audience, c.Now = "client-1", "https://idp.example", "herald", testNow
		if c.TTL == 0 {
			c.TTL = time.Hour
		}
		tok, err := MintHS256(testSecret, c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	valid := mint(MintClaims{Scope: "system/*.rs"})
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		valid,
		mint(MintClaims{Scope: "patient/*.rs", Patient: "p1", TTL: time.Minute}),
		enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		enc([]byte(`{"alg":"HS512","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"client_id":"x","exp":1e99,"iss":"https://idp.example","aud":"herald"}`)) + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		parts[0] + "." + parts[1],
		"..", "", "a.b.c.d", strings.Repeat("a", 20000),
	} {
		f.Add(s, "")
	}
	f.Add(parts[0]+"."+parts[1], parts[2])
	f.Add(enc([]byte(`{"alg":"HS256"}`))+"."+enc([]byte(`{"client_id":"c","exp":1748782800,"iss":"https://idp.example","aud":["herald"],"scope":["a b","c"]}`)), "")

	v, err := NewVerifier(context.Background(), VerifierConfig{
		HS256Secret: testSecret, Issuer: "https://idp.example", Audience: "herald",
		Now: func() time.Time { return testNow }, CacheSize: -1,
	})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), valid); err != nil {
		f.Fatalf("the valid seed is refused: %v", err)
	}
	f.Fuzz(func(t *testing.T, token, sig string) {
		if sig != "" {
			token += "." + sig
		}
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || !errors.Is(err, ErrUnauthenticated) || !verifyReasons[ae.Reason] {
				t.Fatalf("refusal %v (%T) is not an *Error with a fixed reason", err, err)
			}
			if p != nil {
				t.Fatalf("refusal with a principal")
			}
			return
		}
		segs := strings.Split(token, ".")
		if len(segs) != 3 {
			t.Fatalf("accepted a token of %d segments", len(segs))
		}
		var header struct {
			Alg string `json:"alg"`
		}
		hb, err := base64.RawURLEncoding.DecodeString(segs[0])
		if err != nil || json.Unmarshal(hb, &header) != nil || header.Alg != "HS256" {
			t.Fatalf("accepted a token whose header is not HS256: %q", hb)
		}
		got, err := base64.RawURLEncoding.DecodeString(segs[2])
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(segs[0] + "." + segs[1]))
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			t.Fatalf("accepted a token not signed with the secret: %q", token)
		}
		if p.ClientID == "" || !p.ExpiresAt.After(testNow.Add(-leeway)) {
			t.Fatalf("accepted principal %+v", p)
		}
		var c jwt.MapClaims
		cb, _ := base64.RawURLEncoding.DecodeString(segs[1])
		if json.Unmarshal(cb, &c) != nil {
			t.Fatalf("accepted claims that are not JSON: %q", cb)
		}
		if iss, _ := c.GetIssuer(); iss != "https://idp.example" {
			t.Fatalf("accepted issuer %q", iss)
		}
		if aud, _ := c.GetAudience(); !containsString(aud, "herald") {
			t.Fatalf("accepted audience %q", aud)
		}
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
