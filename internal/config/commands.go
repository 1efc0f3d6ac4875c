package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// Token is the configuration of `herald token`.
type Token struct {
	Secret           Secret
	Issuer, Audience string
	ClientID         string
	Scope            string
	Patient          string
	TTL              time.Duration
}

// LoadToken reads `herald token --client ID --scope "..." [--patient ID] [--ttl 1h]`.
func LoadToken(getenv func(string) string, args []string, stderr io.Writer) (Token, error) {
	fs := flag.NewFlagSet("herald token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	t := Token{
		Secret:   Secret(getenv("HERALD_AUTH_HS256_SECRET")),
		Issuer:   getenv("HERALD_AUTH_ISSUER"),
		Audience: getenv("HERALD_AUTH_AUDIENCE"),
	}
	fs.StringVar(&t.ClientID, "client", "", "client id (client_id and sub claims); required")
	fs.StringVar(&t.Scope, "scope", "", `space-separated scopes, e.g. "system/*.rs herald.admin"; required`)
	fs.StringVar(&t.Patient, "patient", "", "patient id for patient/ scopes (patient claim)")
	fs.DurationVar(&t.TTL, "ttl", time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return Token{}, err
	}
	var errs []error
	if t.Secret == "" {
		errs = append(errs, errors.New("HERALD_AUTH_HS256_SECRET: required to mint tokens (herald token signs HS256 tokens with it)"))
	}
	if t.ClientID == "" {
		errs = append(errs, errors.New("--client: required"))
	}
	if t.Scope == "" {
		errs = append(errs, errors.New("--scope: required"))
	}
	if t.TTL <= 0 {
		errs = append(errs, fmt.Errorf("--ttl: must be positive, not %s", t.TTL))
	}
	return t, errors.Join(errs...)
}

// Migrate is the configuration of `herald migrate [up|status]`.
type Migrate struct {
	DatabaseURL string
	Action      string // up or status
}

// LoadMigrate reads `herald migrate [up|status]`.
func LoadMigrate(getenv func(string) string, args []string, stderr io.Writer) (Migrate, error) {
	fs := flag.NewFlagSet("herald migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m := Migrate{}
	fs.StringVar(&m.DatabaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL ($DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return Migrate{}, err
	}
	m.Action = "up"
	switch fs.NArg() {
	case 0:
	case 1:
		m.Action = fs.Arg(0)
	default:
		return Migrate{}, errors.New("usage: herald migrate [up|status]")
	}
	if m.Action != "up" && m.Action != "status" {
		return Migrate{}, fmt.Errorf("herald migrate: unknown action %q (use up or status)", m.Action)
	}
	if m.DatabaseURL == "" {
		return Migrate{}, errors.New("DATABASE_URL: required for migrations (the embedded store needs none)")
	}
	return m, nil
}
