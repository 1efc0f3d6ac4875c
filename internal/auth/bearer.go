package auth

import "strings"

// BearerToken extracts the token from an Authorization header value. The
// scheme is case-insensitive (RFC 9110); surrounding space is ignored. It
// reports false for any other scheme, an empty token, or a token with inner
// whitespace, which no JWT has.
func BearerToken(authorizationHeader string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorizationHeader), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", false
	}
	return token, true
}
