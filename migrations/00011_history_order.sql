-- Type and system history (Changes) read resource_versions in history order:
-- newest first, ties by type, id and version. One index per shape of query,
-- each a backward scan with the paging position as a row comparison.

-- +goose Up
CREATE INDEX resource_versions_type_history ON resource_versions (type, last_updated, id, version_id);
CREATE INDEX resource_versions_system_history ON resource_versions (last_updated, type, id, version_id);

-- +goose Down
DROP INDEX resource_versions_system_history;
DROP INDEX resource_versions_type_history;
