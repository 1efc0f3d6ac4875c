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

// Load stores the built-in topics that are not stored yet (so it is
// idempotent across restarts and never overwrites an admin's change), then
// fills a Library from every stored SubscriptionTopic.
func Load(ctx context.Context, st store.Store, builtins fs.FS, now time.Time) (*Library, error) {
	topics, raws, err := Builtin(builtins)
	if err != nil {
		return nil, err
	}
	for i, t := range topics {
		if err := seed(ctx, st, t, raws[i], now); err != nil {
			return nil, err
		}
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
			return lib, nil
		}
		after = page[len(page)-1].ID
	}
}

func seed(ctx context.Context, st store.Store, t *Topic, raw []byte, now time.Time) error {
	return st.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.Lock(ctx, "SubscriptionTopic", t.ID); !errors.Is(err, store.ErrNotFound) {
			return err // present (nil error), or a real failure
		}
		r, err := fhir.Parse(raw)
		if err != nil {
			return err
		}
		ts := now.UTC().Truncate(time.Millisecond)
		return tx.Put(ctx, store.Version{
			Type: "SubscriptionTopic", ID: t.ID, VersionID: 1, Method: store.MethodUpdate,
			LastUpdated: ts, Body: r.Stamp(t.ID, 1, ts),
		})
	})
}
