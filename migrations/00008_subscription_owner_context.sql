-- A Subscription belongs to a client in one launch context (issue 12):
-- "system" for system/ tokens, "patient/<id>" for patient/ tokens,
-- "user/<fhirUser or sub>" for user/ tokens. Existing rows get the context
-- their recorded scopes and patient imply; a user/ row's user was never
-- recorded, so it is keyed by the client and only admins reach it.
--
-- subscription_owners remembers the owner of every id ever stored, also
-- after the Subscription is deleted: its history carries the owner's data,
-- so no one else may re-create it.

-- +goose Up
ALTER TABLE subscriptions ADD COLUMN owner_context text COLLATE "C" NOT NULL DEFAULT '';
UPDATE subscriptions SET owner_context = CASE
	WHEN scopes ~ '(^|\s)system/' THEN 'system'
	WHEN patient <> '' AND scopes !~ '(^|\s)user/' THEN 'patient/' || patient
	ELSE 'user/?' || owner END;
DROP INDEX subscriptions_owner;
CREATE INDEX subscriptions_owner ON subscriptions (owner, owner_context, id);

CREATE TABLE subscription_owners (
    id            text COLLATE "C" PRIMARY KEY,
    owner         text COLLATE "C" NOT NULL,
    owner_context text COLLATE "C" NOT NULL
);
INSERT INTO subscription_owners (id, owner, owner_context) SELECT id, owner, owner_context FROM subscriptions;

-- +goose Down
DROP TABLE subscription_owners;
DROP INDEX subscriptions_owner;
CREATE INDEX subscriptions_owner ON subscriptions (owner, id);
ALTER TABLE subscriptions DROP COLUMN owner_context;
