-- The delivery attempt log (store.AttemptLog): one row per send to a
-- subscriber, and per send refused because the owner may no longer have the
-- Subscription. Rows are written with the delivery outcome, in the same
-- statement (finishSQL's CTE). No request headers, secrets or notification
-- bodies: only what tells an operator or the owner why a send failed.
-- The retention loop prunes rows by age and keeps at most N per
-- Subscription; rows outlive a deleted Subscription until then.
--
-- seq is one sequence for all Subscriptions: ascending in recording order,
-- which is all paging needs. The primary key serves "newest first of one
-- Subscription"; delivery_attempts_at serves pruning by age. It is a BRIN
-- index: rows arrive in time order, and a BRIN costs the delivery path next
-- to nothing to maintain where a B-tree cost every outcome a second index
-- insertion (BenchmarkFinishDelivery).

-- +goose Up
CREATE TABLE delivery_attempts (
    subscription_id text        NOT NULL,
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    at              timestamptz NOT NULL,
    instance        text        NOT NULL,
    channel         text        NOT NULL,
    kind            text        NOT NULL,
    first_event     bigint      NOT NULL DEFAULT 0,
    last_event      bigint      NOT NULL DEFAULT 0,
    outcome         text        NOT NULL,
    class           text        NOT NULL DEFAULT '',
    status_code     integer     NOT NULL DEFAULT 0,
    latency_us      bigint      NOT NULL DEFAULT 0,
    response_bytes  bigint      NOT NULL DEFAULT 0,
    response_body   text        NOT NULL DEFAULT '',
    PRIMARY KEY (subscription_id, seq)
);
CREATE INDEX delivery_attempts_at ON delivery_attempts USING brin (at);

-- +goose Down
DROP TABLE delivery_attempts;
