-- subscriptions rows are updated on every event (the counter) and every
-- send (the cursor). Free space on each page lets PostgreSQL update a row
-- in place (a HOT update: no index entries to add) when no indexed column
-- changes, which is most of those updates.

-- +goose Up
ALTER TABLE subscriptions SET (fillfactor = 50);

-- +goose Down
ALTER TABLE subscriptions RESET (fillfactor);
