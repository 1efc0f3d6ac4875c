-- One counter for the configuration every instance caches or must see at
-- once: SubscriptionTopics, the allow-list and the client registry. A
-- trigger bumps it inside the changing transaction and notifies
-- herald_config, delivered at commit; instances reload when it moves (and
-- check it periodically, in case a notification was missed).

-- +goose Up
CREATE TABLE config_generation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value     bigint  NOT NULL
);
INSERT INTO config_generation (value) VALUES (0);

-- +goose StatementBegin
CREATE FUNCTION herald_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_generation SET value = value + 1;
    PERFORM pg_notify('herald_config', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER topics_changed AFTER INSERT OR UPDATE ON resources
    FOR EACH ROW WHEN (NEW.type = 'SubscriptionTopic') EXECUTE FUNCTION herald_config_changed();
CREATE TRIGGER endpoints_changed AFTER INSERT OR UPDATE OR DELETE ON allowed_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION herald_config_changed();
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION herald_config_changed();

-- +goose Down
DROP TRIGGER clients_changed ON clients;
DROP TRIGGER endpoints_changed ON allowed_endpoints;
DROP TRIGGER topics_changed ON resources;
DROP FUNCTION herald_config_changed();
DROP TABLE config_generation;
