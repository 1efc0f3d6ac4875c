-- Subscription states, the endpoint allow-list and the client registry.
--
-- As in 00001, nothing is schema-qualified, and ids use COLLATE "C" so that
-- ORDER BY follows byte order, which is Go's string order.

-- +goose Up

-- subscriptions is the server's own record of each Subscription
-- (store.SubscriptionState), written in the same transaction as the
-- Subscription's resource versions. A zero time.Time is stored as NULL in the
-- nullable timestamp columns; durations are whole milliseconds.
CREATE TABLE subscriptions (
    id                  text COLLATE "C" PRIMARY KEY,
    owner               text COLLATE "C" NOT NULL,   -- client id of the creator
    scopes              text             NOT NULL,   -- the creating token's scopes, space-separated
    patient             text             NOT NULL,   -- the creating token's patient claim; '' when none
    token_exp           timestamptz,                 -- the creating token's exp; NULL when unknown
    status              text             NOT NULL CHECK (status IN ('requested', 'active', 'error', 'off')),
    error               text             NOT NULL,   -- why the status is error or off; '' otherwise
    topic               text COLLATE "C" NOT NULL,   -- canonical, as in criteria
    filters             text[]           NOT NULL DEFAULT '{}', -- in the order given
    endpoint            text COLLATE "C" NOT NULL,
    content             text             NOT NULL CHECK (content IN ('empty', 'id-only', 'full-resource')),
    end_at              timestamptz,                 -- Subscription.end; NULL when none
    heartbeat_period_ms bigint           NOT NULL CHECK (heartbeat_period_ms >= 0), -- 0: none
    timeout_ms          bigint           NOT NULL CHECK (timeout_ms >= 0),          -- 0: none
    max_count           integer          NOT NULL CHECK (max_count >= 0),           -- 0: none
    sealed_secret       text             NOT NULL,   -- ciphertext (internal/secrets); '' when none
    sealed_headers      text             NOT NULL,   -- ciphertext of the JSON array of header lines
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL,

    -- Reserved for the delivery engine; not part of store.SubscriptionState
    -- yet. PutSubscription never writes them (replacing a state keeps them),
    -- DeleteSubscription drops them with the row.
    --   last_event_number: the newest event number assigned to this
    --     subscription (events are numbered 1, 2, 3, … per subscription).
    --   delivered_through: the newest event number acknowledged as
    --     delivered; the cursor is behind while it is < last_event_number.
    --   failure_count: consecutive failed delivery attempts.
    --   next_attempt_at: when to try again after a failure; NULL: now.
    --   last_sent_at: when a notification (event, heartbeat or handshake)
    --     last went out; heartbeats are due from it.
    last_event_number   bigint           NOT NULL DEFAULT 0 CHECK (last_event_number >= 0),
    delivered_through   bigint           NOT NULL DEFAULT 0 CHECK (delivered_through >= 0),
    failure_count       integer          NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    next_attempt_at     timestamptz,
    last_sent_at        timestamptz,
    CHECK (delivered_through <= last_event_number)
);

-- SubscriptionFilter lookups. Results are ordered by id, so the owner index
-- carries it; topic matching looks at live subscriptions of one topic.
CREATE INDEX subscriptions_owner ON subscriptions (owner, id);
CREATE INDEX subscriptions_status ON subscriptions (status);
CREATE INDEX subscriptions_topic ON subscriptions (topic, status);
CREATE INDEX subscriptions_endpoint ON subscriptions (endpoint);

-- The endpoint allow-list. url_prefix is normalised by internal/allowlist
-- before it is stored; the unique constraint makes a duplicate prefix a
-- conflict (store.ErrConflict).
CREATE TABLE allowed_endpoints (
    id                    text COLLATE "C" PRIMARY KEY,
    url_prefix            text COLLATE "C" NOT NULL UNIQUE,
    allow_private_network boolean          NOT NULL DEFAULT false,
    note                  text             NOT NULL DEFAULT '',
    created_at            timestamptz      NOT NULL
);

-- The client registry. Clients without a row get the configured defaults.
CREATE TABLE clients (
    client_id     text COLLATE "C" PRIMARY KEY,
    status        text             NOT NULL CHECK (status IN ('active', 'suspended')),
    max_payload   text             NOT NULL CHECK (max_payload IN ('empty', 'id-only', 'full-resource')),
    scope_ceiling text             NOT NULL DEFAULT '', -- space-separated; '' means no ceiling
    updated_at    timestamptz      NOT NULL
);

-- +goose Down
DROP TABLE clients;
DROP TABLE allowed_endpoints;
DROP TABLE subscriptions;
