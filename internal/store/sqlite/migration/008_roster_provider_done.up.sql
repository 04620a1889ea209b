-- 008_roster_provider_done: roster_provider leaves pending entries out.
--
-- A create inserts one pending entry per provider asked; with pending
-- entries in roster_provider each of them went into that provider's part of
-- the index, one page per provider written at every commit (creates ran
-- 40-60 % faster without). Only open RFQs have pending entries now
-- (cancelling withdraws them, as expiry times them out), so what needs a
-- provider's pending entries (withdrawal, its statistics) finds them
-- through the open RFQs and the roster's primary key.
--
-- RFQs cancelled before this version kept their pending entries: they
-- become withdrawn at the time the RFQ closed (no event is added to their
-- past). Expired RFQs have none; any left become timed_out all the same.

UPDATE roster
SET state = CASE (SELECT status FROM rfqs WHERE id = roster.rfq_id) WHEN 'expired' THEN 'timed_out' ELSE 'withdrawn' END,
    changed_at = (SELECT closed_at FROM rfqs WHERE id = roster.rfq_id)
WHERE state = 'pending'
    AND rfq_id IN (SELECT id FROM rfqs WHERE status <> 'open');

UPDATE rfqs SET pending = 0 WHERE status <> 'open' AND pending <> 0;

DROP INDEX roster_provider;

-- One provider's entries that are not pending, by state: its statistics
-- (counts by state, latest answers).
CREATE INDEX roster_provider ON roster (provider, state, changed_at) WHERE state <> 'pending';
