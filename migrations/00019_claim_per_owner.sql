-- A claim (store.DeliveryQueue.ClaimDue) that sees every owner with due
-- work, at a cost that does not grow with the queue:
--
-- subscriptions_owner_due: the claim walks the distinct owners of scheduled
--   rows (a skip scan: one probe per owner) and reads from each owner its
--   earliest due rows, one range of this index. It replaces
--   subscriptions_due (00006), whose only reader was the claim: same rows
--   (due_at IS NOT NULL), and owner and id never change, so row updates cost
--   no more index writes than before and HOT updates stay HOT.
--
-- subscription_leases: the rows whose lease_until is set, with their owner,
--   kept by a trigger on subscriptions. The per-owner cap counts an owner's
--   live leases here, in proportion to its leases, not to its due rows (an
--   owner with 20,000 due rows and none leased would otherwise be read whole
--   by every claim). lease_until is in no index of subscriptions, so a claim
--   stays a HOT update there. A row whose lease expired stays until the
--   Subscription's lease changes again (its next claim) or it is deleted;
--   the count ignores it.

-- +goose Up
CREATE INDEX subscriptions_owner_due ON subscriptions (owner, due_at, id) WHERE due_at IS NOT NULL;
DROP INDEX subscriptions_due;

CREATE TABLE subscription_leases (
    id          text COLLATE "C" PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    owner       text COLLATE "C" NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE INDEX subscription_leases_owner ON subscription_leases (owner, lease_until);
INSERT INTO subscription_leases (id, owner, lease_until)
    SELECT id, owner, lease_until FROM subscriptions WHERE lease_until IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION herald_lease_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.lease_until IS NULL THEN
        DELETE FROM subscription_leases WHERE id = NEW.id;
    ELSE
        INSERT INTO subscription_leases (id, owner, lease_until) VALUES (NEW.id, NEW.owner, NEW.lease_until)
        ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER subscriptions_lease_changed AFTER UPDATE OF lease_until, owner ON subscriptions
    FOR EACH ROW WHEN (NEW.lease_until IS DISTINCT FROM OLD.lease_until OR NEW.owner IS DISTINCT FROM OLD.owner)
    EXECUTE FUNCTION herald_lease_changed();

-- +goose Down
DROP TRIGGER subscriptions_lease_changed ON subscriptions;
DROP FUNCTION herald_lease_changed();
DROP TABLE subscription_leases;
CREATE INDEX subscriptions_due ON subscriptions (due_at) WHERE due_at IS NOT NULL;
DROP INDEX subscriptions_owner_due;
