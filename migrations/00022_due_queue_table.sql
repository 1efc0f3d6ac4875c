-- The due queue in a narrow table of its own, so that the subscriptions row
-- is updated in place (HOT) on every event.
--
-- Each event changed due_at twice (the append makes the Subscription due,
-- the outcome clears it), and due_at was in subscriptions_owner_due (00019):
-- so every event added a new version of the wide row to all six indexes of
-- subscriptions. Until autovacuum came by (a minute later), the publisher's
-- look-up of the matching Subscriptions, run in every write, read those dead
-- entries: with 100 Subscriptions and a closed loop of 32 writers, 27,546
-- dead rows after ten seconds and about 700 index entries read per look-up
-- (264 µs of a write's PostgreSQL time).
--
-- subscription_due holds (id, owner, due_at) of the rows whose due_at is set,
-- kept by a trigger on subscriptions as subscription_leases is (00019). The
-- claim (store.DeliveryQueue.ClaimDue) finds owners and their due rows in
-- it; subscriptions.due_at stays the truth the claim re-checks on the locked
-- row. A change of due_at costs a row here instead of six index entries
-- there, and due_at is in no index of subscriptions any more.

-- +goose Up
CREATE TABLE subscription_due (
    id     text COLLATE "C" PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    owner  text COLLATE "C" NOT NULL,
    due_at timestamptz NOT NULL
);
CREATE INDEX subscription_due_owner ON subscription_due (owner, due_at, id);
INSERT INTO subscription_due (id, owner, due_at)
    SELECT id, owner, due_at FROM subscriptions WHERE due_at IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION herald_due_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.due_at IS NULL THEN
        DELETE FROM subscription_due WHERE id = NEW.id;
    ELSE
        INSERT INTO subscription_due (id, owner, due_at) VALUES (NEW.id, NEW.owner, NEW.due_at)
        ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, due_at = excluded.due_at;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER subscriptions_due_inserted AFTER INSERT ON subscriptions
    FOR EACH ROW WHEN (NEW.due_at IS NOT NULL)
    EXECUTE FUNCTION herald_due_changed();
CREATE TRIGGER subscriptions_due_changed AFTER UPDATE OF due_at, owner ON subscriptions
    FOR EACH ROW WHEN (NEW.due_at IS DISTINCT FROM OLD.due_at OR NEW.owner IS DISTINCT FROM OLD.owner)
    EXECUTE FUNCTION herald_due_changed();
DROP INDEX subscriptions_owner_due;
-- Statistics now: without them the planner reads the whole queue in every
-- claim (a hash join of both tables) until autovacuum first analyzes it.
ANALYZE subscription_due;

-- +goose Down
CREATE INDEX subscriptions_owner_due ON subscriptions (owner, due_at, id) WHERE due_at IS NOT NULL;
DROP TRIGGER subscriptions_due_changed ON subscriptions;
DROP TRIGGER subscriptions_due_inserted ON subscriptions;
DROP FUNCTION herald_due_changed();
DROP TABLE subscription_due;
