-- The delivery queue (store.DeliveryQueue) lives on the subscriptions row,
-- beside the cursor columns of 00002:
--
--   due_at: when delivery work is next due (a handshake, events, a
--     heartbeat, a retry, the end of the lease); NULL: nothing is due.
--   lease_token, lease_until: the worker that claimed the row and until
--     when. A lease is a value, not a row lock: workers hold no lock while
--     they send, so writers appending events never wait for a slow
--     subscriber. An expired lease can be claimed again.
--   handshake_pending: a handshake is owed (the Subscription was created or
--     changed and has not been acknowledged since).
--   error_since: when the status last became error; NULL outside error.
--
-- next_attempt_at (reserved in 00002) is replaced by due_at.
--
-- Workers claim with SELECT … WHERE due_at <= now ORDER BY due_at … FOR
-- UPDATE SKIP LOCKED; the partial index keeps that to the due rows.

-- +goose Up
ALTER TABLE subscriptions
    DROP COLUMN next_attempt_at,
    ADD COLUMN due_at            timestamptz,
    ADD COLUMN lease_token       text,
    ADD COLUMN lease_until       timestamptz,
    ADD COLUMN handshake_pending boolean NOT NULL DEFAULT false,
    ADD COLUMN error_since       timestamptz;
CREATE INDEX subscriptions_due ON subscriptions (due_at) WHERE due_at IS NOT NULL;
-- Existing Subscriptions: a requested one owes its handshake; every live
-- one is due now, and its first claim schedules what comes next
-- (heartbeat, end, switch-off after error).
UPDATE subscriptions SET
    handshake_pending = (status = 'requested'),
    due_at = CASE WHEN status IN ('requested', 'active', 'error') THEN now() END,
    error_since = CASE WHEN status = 'error' THEN updated_at END;

-- +goose Down
DROP INDEX subscriptions_due;
ALTER TABLE subscriptions
    DROP COLUMN error_since,
    DROP COLUMN handshake_pending,
    DROP COLUMN lease_until,
    DROP COLUMN lease_token,
    DROP COLUMN due_at,
    ADD COLUMN next_attempt_at timestamptz;
