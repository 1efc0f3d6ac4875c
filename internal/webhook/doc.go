// Package webhook sends one signed notification POST to a subscriber
// endpoint, safely.
//
// # Network safety (SSRF)
//
// Notifications carry PHI to URLs that API clients chose, so the server must
// not become a way to reach its own network. The allow-list decides which URLs
// may be used at all; this package makes sure the connection really goes
// where the allow-list was told it would:
//
//   - The host is resolved by the dialer itself and every resolved address is
//     checked with [allowlist.IsPrivateIP] at connect time, immediately before
//     dialing. The connection is then made to the checked IP literally, so a
//     DNS answer that changes between the check and the connect (DNS
//     rebinding) cannot slip a private address through: there is no second
//     resolution. If any resolved address is private the send is refused
//     (fail closed), and a net.Dialer Control hook checks the socket address
//     again as a second line of defence.
//   - Private addresses are allowed only when the request says so (the
//     matching allow-list entry has allow_private_network). Strict and
//     permissive sends use separate transports, so a pooled connection made
//     under one decision is never reused under the other.
//   - Redirects are never followed (a 3xx is a failure), no proxy is used, TLS
//     certificates are verified (TLS 1.2 or later), and at most 64 KiB of a
//     response body is read.
//
// # Signing
//
// When a Subscription has a signing secret, each POST carries X-Hub-Signature
// (hex HMAC-SHA256 of the body) and the Standard Webhooks headers webhook-id,
// webhook-timestamp and webhook-signature; see [Sign].
//
// The package does no logging: [Client.Send] returns a [*SendError] whose
// Reason is short and safe to store, and no error ever contains the secret,
// channel header values or the body.
package webhook
