-- Resource versions. Every version lives in resource_versions; the newest
-- version of each resource is also copied into resources (the head), so that
-- Current is one primary-key lookup and Search scans only live rows.
--
-- No table is schema-qualified: the connection's search_path decides where the
-- schema lives (tests run each in its own schema).
--
-- type and id use COLLATE "C" so that ORDER BY id and id > $1 follow byte
-- order, which is Go's string order.

-- +goose Up
CREATE TABLE resource_versions (
    type         text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    version_id   bigint           NOT NULL CHECK (version_id > 0),
    last_updated timestamptz      NOT NULL,
    method       text             NOT NULL,
    deleted      boolean          NOT NULL,
    body         bytea,                       -- exact JSON bytes; NULL for a delete marker
    patients     text[]           NOT NULL DEFAULT '{}',
    PRIMARY KEY (type, id, version_id),
    CHECK (deleted = (body IS NULL))
);

-- The head: one row per resource, the newest version (possibly a delete
-- marker). Put moves it forward only from version_id = v-1, which is what
-- makes versions gap-free and concurrent writers conflict.
CREATE TABLE resources (
    type         text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    version_id   bigint           NOT NULL CHECK (version_id > 0),
    last_updated timestamptz      NOT NULL,
    method       text             NOT NULL,
    deleted      boolean          NOT NULL,
    body         bytea,
    patients     text[]           NOT NULL DEFAULT '{}',
    PRIMARY KEY (type, id),
    CHECK (deleted = (body IS NULL))
);

-- Search by _lastUpdated. Search never returns delete markers.
CREATE INDEX resources_type_last_updated ON resources (type, last_updated) WHERE NOT deleted;

-- Search by patient compartment: patients @> ARRAY[$1].
CREATE INDEX resources_patients ON resources USING gin (patients) WHERE NOT deleted;

-- +goose Down
DROP TABLE resources;
DROP TABLE resource_versions;
