-- 004_retention: indexes that let retention (PurgeFinished, PurgeHistory)
-- find what is old without scanning whole tables.
--
-- A final RFQ's closed_at is when it completed, expired or was cancelled
-- (001 makes it set exactly when the status is not open), so no column is
-- added: the partial index below holds only final RFQs, oldest first.

-- Final RFQs in the order they closed (PurgeFinished).
CREATE INDEX rfqs_closed ON rfqs (closed_at, id) WHERE closed_at IS NOT NULL;

-- Dead letters by age (PurgeHistory).
CREATE INDEX dead_letters_created ON dead_letters (created_at, id);

-- Refused answers by age (PurgeHistory purges those whose RFQ is gone or
-- never existed; the others go with their RFQ).
CREATE INDEX rejections_received ON rejections (received_at, id);
