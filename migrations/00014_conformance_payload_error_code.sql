-- IG conformance (issue 15): what a Subscription's notifications carry.
--
-- payload is channel.payload exactly as the client wrote it (the rest-hook
-- Content-Type SHALL equal it); rows stored before it was kept were all
-- application/fhir+json, the only payload Herald accepted.
-- error_code is the http://terminology.hl7.org/CodeSystem/subscription-error
-- code of error (no-response, dns-resolution-error, error-response, …); ''
-- when error is empty or has no code.
-- notification_token: the Subscription asked for notification access tokens
-- (Herald's notification-access-token extension on channel).
-- events.includes are the notificationShape includes of the focus as they
-- were when the event was written ("Type/id/_history/N"), so $events and a
-- late delivery show the versions the event saw, not the current ones;
-- NULL for events written before they were recorded (those read current
-- versions, as before).

-- +goose Up
ALTER TABLE subscriptions
    ADD COLUMN payload    text NOT NULL DEFAULT 'application/fhir+json',
    ADD COLUMN error_code text NOT NULL DEFAULT '',
    ADD COLUMN notification_token boolean NOT NULL DEFAULT false;
ALTER TABLE events ADD COLUMN includes text[];

-- +goose Down
ALTER TABLE events DROP COLUMN includes;
ALTER TABLE subscriptions DROP COLUMN notification_token, DROP COLUMN error_code, DROP COLUMN payload;
