-- The admin audit log: one row per change to the allow-list or the client
-- registry, written in the change's transaction. Append-only: a trigger
-- refuses updates and deletes.

-- +goose Up
CREATE TABLE admin_audit (
    seq    bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL,
    actor  text        NOT NULL,
    action text        NOT NULL,
    target text        NOT NULL,
    before jsonb,
    after  jsonb
);

-- +goose StatementBegin
CREATE FUNCTION herald_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION herald_audit_append_only();

-- +goose Down
DROP TRIGGER admin_audit_append_only ON admin_audit;
DROP FUNCTION herald_audit_append_only();
DROP TABLE admin_audit;
