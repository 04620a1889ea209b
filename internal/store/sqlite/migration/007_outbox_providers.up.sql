-- 007_outbox_providers: a new RFQ's dispatches are one outbox row, not one
-- per asked provider: providers holds the JSON array of the providers it
-- goes to, and provider is NULL. The request (payload), the same for each,
-- is written once; the relay publishes it to each provider's queue. Rows
-- written before hold one provider in provider, and providers NULL.

ALTER TABLE outbox ADD COLUMN providers TEXT
    CHECK (providers IS NULL OR (json_valid(providers) AND json_type(providers) = 'array'));
