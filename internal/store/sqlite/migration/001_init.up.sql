-- 001_init: providers, RFQs with their rosters and staged answers, the audit
-- of refused answers, and the outbox of messages to publish.
--
-- Times are INTEGER Unix microseconds, UTC. NULL stands for "not given".

CREATE TABLE providers (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('simulated', 'nats', 'webhook')),
    status     TEXT    NOT NULL CHECK (status IN ('active', 'paused')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE rfqs (
    id         TEXT    NOT NULL PRIMARY KEY,
    customer   TEXT    NOT NULL,
    from_place TEXT    NOT NULL,
    to_place   TEXT    NOT NULL,
    passengers INTEGER NOT NULL DEFAULT 0 CHECK (passengers >= 0),
    pickup_at  INTEGER,
    attributes TEXT    CHECK (attributes IS NULL OR json_valid(attributes)),
    created_at INTEGER NOT NULL,
    deadline   INTEGER NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('open', 'complete', 'expired', 'cancelled')),
    closed_at  INTEGER,
    -- pending counts the roster entries still pending, so that completion is
    -- decided without counting the roster.
    pending    INTEGER NOT NULL CHECK (pending >= 0),
    -- event_seq is the seq of the RFQ's last event.
    event_seq  INTEGER NOT NULL CHECK (event_seq >= 1),
    CHECK ((status = 'open') = (closed_at IS NULL))
) STRICT;

-- Due RFQs (ExpireDue) and the next deadline (NextDeadline).
CREATE INDEX rfqs_open_deadline ON rfqs (deadline, id) WHERE status = 'open';

-- One row per asked provider of an RFQ, with the answer it staged. The
-- primary key is the key of the idempotent upsert of answers.
CREATE TABLE roster (
    rfq_id       TEXT    NOT NULL REFERENCES rfqs (id) ON DELETE CASCADE,
    provider     TEXT    NOT NULL,
    position     INTEGER NOT NULL CHECK (position >= 0), -- order asked
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'quoted', 'declined', 'timed_out')),
    changed_at   INTEGER NOT NULL,
    reason       TEXT,             -- a decline's reason
    -- The staged answer, NULL until the provider answered.
    kind         TEXT    CHECK (kind IN ('quote', 'decline')),
    price_amount TEXT,             -- as given, so redeliveries compare exactly
    price_units  INTEGER,          -- rydes.Price.Units, for ordering
    currency     TEXT,
    eta_seconds  INTEGER,
    expires_at   INTEGER,
    received_at  INTEGER,
    PRIMARY KEY (rfq_id, provider),
    UNIQUE (rfq_id, position),
    CHECK ((state IN ('quoted', 'declined')) = (kind IS NOT NULL)),
    CHECK ((state = 'quoted') = (price_units IS NOT NULL))
) STRICT, WITHOUT ROWID;

-- Refused answers, kept for audit. No foreign key: answers for unknown RFQs
-- are kept too.
CREATE TABLE rejections (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    rfq_id      TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    received_at INTEGER,
    payload     BLOB
) STRICT;

CREATE INDEX rejections_rfq ON rejections (rfq_id, id);

-- Messages committed for publication, deleted once published. AUTOINCREMENT
-- so that an id is never reused after its message was deleted.
CREATE TABLE outbox (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('dispatch', 'event')),
    rfq_id     TEXT    NOT NULL,
    provider   TEXT,
    payload    TEXT    NOT NULL CHECK (json_valid(payload)),
    created_at INTEGER NOT NULL
) STRICT;
