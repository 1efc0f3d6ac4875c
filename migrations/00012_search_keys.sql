-- Search index keys (internal/search: IndexKeys) of each live resource,
-- written by Put in the write's statement. NULL means not indexed (written
-- before this column, or by a writer that does not compute keys): such rows
-- are candidates for every indexed search, and the matcher decides, so a
-- search is never wrong, only slower. Changing which keys are written needs
-- a migration that sets search_keys to NULL (and a re-index).
--
-- A GIN index answers "holds one of these keys" (&&) per clause. Without
-- fastupdate: its pending list, which grows under steady writes until a
-- vacuum, is scanned by every search (measured: 178 searches/s with it after a
-- bulk load, 916/s without, creates unchanged within the noise).

-- +goose Up
ALTER TABLE resources ADD COLUMN search_keys text[];
CREATE INDEX resources_search_keys ON resources USING gin (search_keys) WITH (fastupdate = off) WHERE NOT deleted;
CREATE INDEX resources_unindexed ON resources (type, id) WHERE search_keys IS NULL AND NOT deleted;

-- +goose Down
DROP INDEX resources_unindexed;
DROP INDEX resources_search_keys;
ALTER TABLE resources DROP COLUMN search_keys;
