-- 005_audit: the audit log of administrative changes (rydes.AuditEntry).
--
-- Times are INTEGER Unix microseconds, UTC, as in 001. AUTOINCREMENT so
-- that an id is never reused after retention deleted its entry: ids order
-- entries and page through them.

CREATE TABLE audit_log (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL CHECK (actor <> ''),
    action      TEXT    NOT NULL CHECK (action <> ''),
    target      TEXT,             -- NULL when the action has no object
    remote_addr TEXT,             -- NULL when the change did not come over the network
    details     TEXT    CHECK (details IS NULL OR (json_valid(details) AND json_type(details) = 'object'))
) STRICT;

-- Listing one action's entries, newest first (ListAudit with Action).
CREATE INDEX audit_log_action ON audit_log (action, id);

-- Retention (PurgeHistory) deletes entries by age.
CREATE INDEX audit_log_at ON audit_log (at, id);
