package topic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// Load fills a Library from every stored SubscriptionTopic, then stores the
// built-in topics whose url|version is not stored yet. So seeding is
// idempotent by url and version across restarts, and never overwrites or
// revives what an admin changed or deleted (a deleted built-in keeps its
// delete marker under its id).
func Load(ctx context.Context, st store.Store, builtins fs.FS, now time.Time) (*Library, error) {
	topics, raws, err := Builtin(builtins)
	if err != nil {
		return nil, err
	}
	lib := NewLibrary()
	if err := lib.Reload(ctx, st); err != nil {
		return nil, err
	}
	seeded := false
	for i, t := range topics {
		if _, stored := lib.Lookup(t.URL + "|" + t.Version); stored {
			continue
		}
		created, err := seed(ctx, st, t, raws[i], now)
		if err != nil {
			return nil, err
		}
		seeded = seeded || created
	}
	if seeded {
		if err := lib.Reload(ctx, st); err != nil { // loaded as stored, like every topic
			return nil, err
		}
	}
	return lib, nil
}

// Reload makes the library what the store holds: every current
// SubscriptionTopic, whichever instance wrote it. Topics whose stored
// version it already holds are kept as they are (compiled Subscriptions
// keyed by them stay valid).
func (l *Library) Reload(ctx context.Context, st store.Reader) error {
	var versions []store.Version
	after := ""
	for {
		page, err := st.Search(ctx, store.SearchQuery{Type: "SubscriptionTopic", AfterID: after, Count: 500})
		if err != nil {
			return err
		}
		versions = append(versions, page...)
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	return l.replace(versions)
}

// replace swaps in the topics of versions, keeping those already loaded.
func (l *Library) replace(versions []store.Version) error {
	next := NewLibrary()
	for _, v := range versions {
		t, ok := l.loadedAt(v)
		if !ok {
			var err error
			if t, err = Parse(v.Body); err != nil {
				return fmt.Errorf("stored SubscriptionTopic/%s no longer parses: %w", v.ID, err)
			}
			t.ID = v.ID
		}
		next.Put(t)
		next.loaded[v.ID] = v.VersionID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byURL, l.byID, l.loaded = next.byURL, next.byID, next.loaded
	return nil
}

// loadedAt returns the topic the library holds for v's id if it was loaded
// from that very version.
func (l *Library) loadedAt(v store.Version) (*Topic, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t, ok := l.byID[v.ID]
	return t, ok && l.loaded[v.ID] == v.VersionID
}

// seed stores a built-in topic under its id unless that id was ever used.
func seed(ctx context.Context, st store.Store, t *Topic, raw []byte, now time.Time) (created bool, err error) {
	err = st.InTx(ctx, func(tx store.Tx) error {
		created = false
		if _, err := tx.Lock(ctx, "SubscriptionTopic", t.ID); !errors.Is(err, store.ErrNotFound) {
			return err // present or deleted (nil error), or a real failure
		}
		created = true
		r, err := fhir.Parse(raw)
		if err != nil {
			return err
		}
		v := store.Next(nil, "SubscriptionTopic", t.ID, store.MethodUpdate, now)
		v.Body = r.Stamp(t.ID, v.VersionID, v.LastUpdated)
		return tx.Put(ctx, v)
	})
	return created, err
}
