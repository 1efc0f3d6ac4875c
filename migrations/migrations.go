// Package migrations holds Herald's PostgreSQL schema as goose SQL files,
// embedded so the binary can migrate the database it is pointed at.
package migrations

import "embed"

// FS holds every migration, named NNNNN_description.sql, at its root.
//
//go:embed *.sql
var FS embed.FS
