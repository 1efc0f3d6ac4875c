// Package admin is the administrators' service: the endpoint allow-list and
// the client registry, with the validation of what an admin sends. The JSON
// admin API (internal/api) and the browser console (internal/console) both
// call it, so each rule lives here once. Errors are *fhir.Error values whose
// messages are safe to show the admin.
package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
)

// Limits of admin input, documented in api/openapi.yaml.
const (
	MaxClientIDLen = 128
	MaxNoteLen     = 1024 // characters
)

// Enumerations of the client registry (the store enforces the same sets).
var (
	ClientStatuses    = []string{"active", "suspended"}
	ClientMaxPayloads = []string{"empty", "id-only", "full-resource"}
	// SubscriptionStatuses are the statuses operators filter Subscriptions by.
	SubscriptionStatuses = []string{fhir.StatusRequested, fhir.StatusActive, fhir.StatusError, fhir.StatusOff}
)

// Service changes and reads the allow-list and the client registry. The
// actor recorded in the audit log comes from ctx (store.WithActor).
type Service struct {
	Store store.AdminStore
}

// EndpointInput is a new allow-list entry as an admin writes it.
type EndpointInput struct {
	URLPrefix           string
	AllowPrivateNetwork bool
	Note                string
}

// ClientInput is a client registry entry as an admin writes it.
type ClientInput struct {
	Status       string
	MaxPayload   string
	ScopeCeiling string // space-separated SMART scopes; "" for none
}

// now is the time admin writes record, to the store's millisecond.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Endpoints is the allow-list, ordered by prefix.
func (s *Service) Endpoints(ctx context.Context) ([]store.AllowedEndpoint, error) {
	return s.Store.Endpoints(ctx)
}

// AddEndpoint normalises the prefix, checks the note and stores the entry.
func (s *Service) AddEndpoint(ctx context.Context, in EndpointInput) (store.AllowedEndpoint, error) {
	prefix, err := allowlist.ParseEntry(in.URLPrefix)
	if err != nil {
		// The *URLError text is meant for admins and never repeats user information.
		return store.AllowedEndpoint{}, &fhir.Error{Kind: fhir.KindUnprocessable, Message: "url_prefix: " + err.Error()}
	}
	if err := checkNote(in.Note); err != nil {
		return store.AllowedEndpoint{}, err
	}
	e := store.AllowedEndpoint{
		ID:                  uuid.NewString(),
		URLPrefix:           prefix.String(),
		AllowPrivateNetwork: in.AllowPrivateNetwork,
		Note:                in.Note,
		CreatedAt:           now(),
	}
	if err := s.Store.AddEndpoint(ctx, e); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.AllowedEndpoint{}, &fhir.Error{Kind: fhir.KindConflict, Message: fmt.Sprintf("an allow-list entry for %s exists already", e.URLPrefix), Err: err}
		}
		return store.AllowedEndpoint{}, err
	}
	return e, nil
}

func checkNote(note string) error {
	if utf8.RuneCountInString(note) > MaxNoteLen {
		return &fhir.Error{Kind: fhir.KindUnprocessable, Message: fmt.Sprintf("note: longer than %d characters", MaxNoteLen)}
	}
	for _, r := range note {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return &fhir.Error{Kind: fhir.KindUnprocessable, Message: "note: must not contain control characters other than tab and newline"}
		}
	}
	return nil
}

// RemoveEndpoint deletes the entry with id.
func (s *Service) RemoveEndpoint(ctx context.Context, id string) error {
	return NotFound(s.Store.RemoveEndpoint(ctx, id), fmt.Sprintf("no allow-list entry has id %q", clip(id)))
}

// CheckEndpoint tells whether a Subscription could use endpoint now, and
// why not, with the matcher Subscription writes and sends use.
func (s *Service) CheckEndpoint(ctx context.Context, endpoint string) (allowlist.Verdict, error) {
	entries, err := s.Store.Endpoints(ctx)
	if err != nil {
		return allowlist.Verdict{}, err
	}
	return subscription.CompileAllowList(entries).Explain(endpoint), nil
}

// Clients is the registry, ordered by client id.
func (s *Service) Clients(ctx context.Context) ([]store.Client, error) {
	return s.Store.Clients(ctx)
}

// Client is one registry entry.
func (s *Service) Client(ctx context.Context, id string) (store.Client, error) {
	if err := CheckClientID(id); err != nil {
		return store.Client{}, err
	}
	c, err := s.Store.Client(ctx, id)
	return c, NotFound(err, fmt.Sprintf("client %q has no registry entry (it gets the configured defaults)", id))
}

// PutClient validates in and creates or replaces the entry of client id;
// created reports a new entry.
func (s *Service) PutClient(ctx context.Context, id string, in ClientInput) (c store.Client, created bool, err error) {
	if err := CheckClientID(id); err != nil {
		return store.Client{}, false, err
	}
	if err := OneOf("status", in.Status, ClientStatuses); err != nil {
		return store.Client{}, false, err
	}
	if err := OneOf("max_payload", in.MaxPayload, ClientMaxPayloads); err != nil {
		return store.Client{}, false, err
	}
	scopes := strings.Fields(in.ScopeCeiling)
	for _, sc := range scopes {
		if _, err := auth.ParseScope(sc); err != nil {
			return store.Client{}, false, &fhir.Error{Kind: fhir.KindUnprocessable, Message: "scope_ceiling: " + err.Error()}
		}
	}
	c = store.Client{ClientID: id, Status: in.Status, MaxPayload: in.MaxPayload, ScopeCeiling: strings.Join(scopes, " "), UpdatedAt: now()}
	created, err = s.Store.PutClient(ctx, c)
	if err != nil {
		return store.Client{}, false, err
	}
	return c, created, nil
}

// CheckClientID admits 1–128 characters of [A-Za-z0-9._:@/-].
func CheckClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen {
		return fhir.Errorf(fhir.KindInvalid, "client_id must be 1 to %d characters long", MaxClientIDLen)
	}
	for i := range len(id) {
		if !clientIDChar(id[i]) {
			return fhir.Errorf(fhir.KindInvalid, "client_id may contain only letters, digits and . _ : @ / -")
		}
	}
	return nil
}

func clientIDChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._:@/-", b) >= 0
}

// OneOf refuses v unless it is one of allowed, naming field (422).
func OneOf(field, v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	what := fmt.Sprintf("%q is not", clip(v))
	if v == "" {
		what = "is required and must be"
	}
	return &fhir.Error{Kind: fhir.KindUnprocessable, Message: fmt.Sprintf("%s: %s one of %s", field, what, strings.Join(allowed, ", "))}
}

// NotFound maps the store's ErrNotFound to a 404 saying what is missing.
func NotFound(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &fhir.Error{Kind: fhir.KindNotFound, Message: what, Err: err}
	}
	return err
}

// clip shortens what an admin sent before it is repeated in a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
