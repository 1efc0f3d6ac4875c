-- Notification events (store.Event): one row per event of one Subscription.
--
-- Numbers are assigned from subscriptions.last_event_number (00002) in the
-- transaction of the write that fired the event: AppendEvent increments the
-- counter and inserts the row in one statement, and the row lock of that
-- UPDATE serialises concurrent appenders, so numbers are 1, 2, 3, … per
-- Subscription without gaps. Deleting a Subscription's state deletes its
-- events.
--
-- As in 00001 and 00002, nothing is schema-qualified and ids use COLLATE "C".

-- +goose Up
CREATE TABLE events (
    subscription_id text COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    number          bigint           NOT NULL CHECK (number > 0),
    timestamp       timestamptz      NOT NULL,
    topic           text COLLATE "C" NOT NULL,   -- the topic canonical that fired
    focus_type      text COLLATE "C" NOT NULL,
    focus_id        text COLLATE "C" NOT NULL,
    focus_version   bigint           NOT NULL CHECK (focus_version > 0),
    method          text             NOT NULL CHECK (method IN ('POST', 'PUT', 'DELETE')),
    -- Serves Events (a range of numbers of one Subscription, ascending) and
    -- the cascade from subscriptions.
    PRIMARY KEY (subscription_id, number)
);

-- +goose Down
DROP TABLE events;
