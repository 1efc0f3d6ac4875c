-- Patient pinning: a write should cost in proportion to the Subscriptions it
-- can match, not to every Subscription of the topics it fires.
--
-- patient_key is "Patient/<id>" when the Subscription's filters can only
-- match resources that reference that one patient (for Patient resources:
-- the patient itself), and '' when it is not pinned to one patient
-- (store.SubscriptionState.PatientKey, set by subscription.Rules.Prepare);
-- existing rows are not pinned. The publisher loads a topic's receiving
-- Subscriptions with "patient_key = ANY('' and the written resource's
-- patients)", one index range per key rather than an OR of two scans; the
-- filters are still evaluated on every row it loads, so the key only has to
-- select a superset, never decide.
--
-- The new index leads with the columns of subscriptions_topic, which it
-- replaces.

-- +goose Up
ALTER TABLE subscriptions ADD COLUMN patient_key text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX subscriptions_topic_patient ON subscriptions (topic, status, patient_key);
DROP INDEX subscriptions_topic;

-- +goose Down
CREATE INDEX subscriptions_topic ON subscriptions (topic, status);
DROP INDEX subscriptions_topic_patient;
ALTER TABLE subscriptions DROP COLUMN patient_key;
