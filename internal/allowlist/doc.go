// Package allowlist decides which URLs may ever receive notifications (and so
// PHI): it parses and normalises admin-supplied allow-list prefixes and
// Subscription channel endpoints, and matches one against the other.
//
// # Matching
//
// An endpoint matches an [Entry] when, after normalisation, scheme, host and
// port are equal and the entry's path is a prefix of the endpoint's path on a
// segment boundary: prefix /hooks admits /hooks, /hooks/ and /hooks/a but not
// /hooksx; prefix /hooks/ admits /hooks/ and /hooks/a but not /hooks. An
// https entry never admits an http endpoint, nor the other way round. The
// endpoint's query is ignored. When several entries match, the one with the
// longest path wins, so its AllowPrivateNetwork applies; between entries with
// the same normalised prefix the one with AllowPrivateNetwork false wins
// (fail closed), then the earlier one.
//
// # Normalisation
//
// [ParseEntry] and [ParseEndpoint] apply the same rules:
//
//   - Only absolute http and https URLs; the scheme is lower-cased.
//   - No user information (user@host), no fragment, no whitespace, control
//     characters or backslashes anywhere. Prefixes also may not carry a query.
//   - Host names are converted to lower-case ASCII with IDNA (UTS #46 lookup
//     mapping, non-transitional, STD3 rules, DNS length checks), so
//     bücher.example and xn--bcher-kva.example are the same host, full-width
//     letters map to ASCII, and a Cyrillic look-alike stays a different host.
//     Underscores and invalid punycode are rejected.
//   - Host names ending in a dot (example.com.) are rejected rather than
//     normalised: the absolute and relative forms can differ in DNS search-list
//     expansion, TLS name checks and virtual-host routing, and refusing them
//     keeps one spelling per host.
//   - A host whose last label is numeric (127.1, 0x7f.0.0.1, 2130706433,
//     010.0.0.1) is rejected unless it is a canonical dotted-decimal IPv4
//     address: some resolvers read those forms as IP addresses.
//   - IPv6 literals are written in brackets and kept in RFC 5952 form; zone
//     identifiers are rejected. IPv4-mapped IPv6 literals ([::ffff:10.0.0.1])
//     become the IPv4 address they denote.
//   - The port is always known: an absent (or empty) port is 443 for https and
//     80 for http, so https://a:443/x and https://a/x are equal. String omits
//     a default port. Port 0 and ports above 65535 are rejected.
//   - The path: empty becomes "/"; percent-encoded unreserved characters
//     (ALPHA DIGIT - . _ ~) are decoded, other percent-encodings get upper-case
//     hex, and characters not allowed in a path (space-like, non-ASCII, "<>"
//     and so on) are percent-encoded; then dot-segments are resolved per
//     RFC 3986 5.2.4, so /hooks/%2e%2e/admin is /admin. Encoded slashes and
//     backslashes (%2F, %5C), their double-encodings and %252E, dot-segments
//     carrying parameters (/..;/) and paths mixing empty segments (//) with
//     dot-segments are rejected: receivers disagree on what those mean.
//   - Endpoint queries are kept, with the same percent-encoding rules; an
//     empty query ("?" alone) is dropped.
//
// Errors are [*URLError] values wrapping [ErrInvalidURL]; their text is meant
// for API clients and never repeats user information from the input.
//
// [IsPrivateIP] classifies addresses for the dial-time network check.
package allowlist
