// Package topics embeds Herald's built-in SubscriptionTopic definitions
// (R5 JSON shape), loaded into the topic library at start.
package topics

import "embed"

// FS holds the built-in topics, one *.json file each.
//
//go:embed *.json
var FS embed.FS
