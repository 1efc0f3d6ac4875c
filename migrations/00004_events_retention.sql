-- Event retention: PruneEvents deletes events older than a cut-off that their
-- Subscription has acknowledged (number <= subscriptions.delivered_through).
-- This index lets it find the old events without scanning the table; event
-- timestamps grow with time, so inserts land at its right edge.

-- +goose Up
CREATE INDEX events_timestamp ON events (timestamp);

-- +goose Down
DROP INDEX events_timestamp;
