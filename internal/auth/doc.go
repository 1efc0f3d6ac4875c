// Package auth verifies bearer JWTs and answers what their SMART on FHIR
// scopes allow.
//
// A request's token becomes a [Principal] through [Verifier.Verify]. The
// Principal's methods ([Principal.Can], [Principal.Granular],
// [Principal.PatientScoped]) are the only questions callers should ask of
// scopes; they encode the fail-closed rules (patient/ scopes without a
// patient claim grant nothing, granular grants are never unrestricted).
//
// The package knows nothing about HTTP handlers: [BearerToken] extracts the
// token from a header value, and errors are [*Error] values that wrap
// [ErrUnauthenticated] and never carry the token text.
package auth
