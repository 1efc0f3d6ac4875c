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
	after := ""
	for {
		page, err := st.Search(ctx, store.SearchQuery{Type: "SubscriptionTopic", AfterID: after, Count: 500})
		if err != nil {
			return nil, err
		}
		for _, v := range page {
			t, err := Parse(v.Body)
			if err != nil {
				return nil, fmt.Errorf("stored SubscriptionTopic/%s no longer parses: %w", v.ID, err)
			}
			t.ID = v.ID
			lib.Put(t)
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	for i, t := range topics {
		if _, stored := lib.Lookup(t.URL + "|" + t.Version); stored {
			continue
		}
		created, err := seed(ctx, st, t, raws[i], now)
		if err != nil {
			return nil, err
		}
		if created {
			lib.Put(t)
		}
	}
	return lib, nil
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
