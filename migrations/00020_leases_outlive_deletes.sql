-- A live lease counts toward its owner's share (HERALD_DELIVERY_MAX_PER_OWNER)
-- until it ends, also when its Subscription is deleted while being sent: the
-- send may still hold a worker for up to its timeout. With ON DELETE CASCADE
-- the lease went with the Subscription, so an owner deleting and re-creating
-- its leased Subscriptions took its share of workers again each round.
-- Rows of deleted Subscriptions are removed once their lease has ended
-- (store PruneEvents, the retention job).

-- +goose Up
ALTER TABLE subscription_leases DROP CONSTRAINT subscription_leases_id_fkey;

-- +goose Down
DELETE FROM subscription_leases l WHERE NOT EXISTS (SELECT FROM subscriptions s WHERE s.id = l.id);
ALTER TABLE subscription_leases ADD CONSTRAINT subscription_leases_id_fkey
    FOREIGN KEY (id) REFERENCES subscriptions (id) ON DELETE CASCADE;
