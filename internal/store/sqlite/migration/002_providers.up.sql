-- 002_providers: providers registered at run time (webhook URL, routing
-- filter, why rydes paused them, their credentials), the roster states
-- withdrawn and failed, dead letters of webhook deliveries, and settings.
--
-- SQLite cannot change a table's CHECK constraints, so providers and roster
-- are rebuilt the standard way: create the new table, copy the rows, drop the
-- old table, rename the new one, recreate the indexes. It all happens in the
-- migration's transaction. No foreign key refers to either table, so the
-- drops delete nothing else. Times are INTEGER Unix microseconds, UTC, as in
-- 001; NULL stands for "not given".

CREATE TABLE providers_new (
    id                 TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('simulated', 'nats', 'webhook')),
    status             TEXT    NOT NULL CHECK (status IN ('active', 'paused')),
    -- Where rydes POSTs requests; only webhook providers have one.
    webhook_url        TEXT    CHECK (webhook_url IS NULL OR (kind = 'webhook' AND webhook_url <> '')),
    -- The routing filter, rydes.Filter as a JSON object; NULL for the zero
    -- filter, which wants every request.
    filter             TEXT    CHECK (filter IS NULL OR (json_valid(filter) AND json_type(filter) = 'object')),
    -- Why rydes paused the provider itself; only a paused provider has one.
    paused_reason      TEXT    CHECK (paused_reason IS NULL OR (status = 'paused' AND paused_reason <> '')),
    -- Credentials: hashes of the API key and of the NATS password (never the
    -- secrets themselves), and the webhook signing secret, which rydes needs
    -- to sign. NULL when the provider has none (simulated providers).
    api_key_hash       TEXT    CHECK (api_key_hash <> ''),
    nats_password_hash TEXT    CHECK (nats_password_hash <> ''),
    webhook_secret     TEXT    CHECK (webhook_secret <> ''),
    secrets_changed_at INTEGER, -- when the credentials were last set
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

INSERT INTO providers_new (id, name, kind, status, created_at, updated_at)
    SELECT id, name, kind, status, created_at, updated_at FROM providers;
DROP TABLE providers;
ALTER TABLE providers_new RENAME TO providers;

-- Authentication looks providers up by the hash of the API key they present.
-- Unique, so that a key names one provider; NULLs (no key) are distinct.
CREATE UNIQUE INDEX providers_api_key_hash ON providers (api_key_hash);

-- As 001's roster, with the states withdrawn (the provider was removed while
-- the RFQ was open) and failed (rydes could not deliver the request to it).
-- rfqs.pending counts the entries still pending: failed, withdrawn and
-- timed_out entries are done. A failed provider may still answer while the
-- RFQ is open; its entry then becomes quoted or declined.
CREATE TABLE roster_new (
    rfq_id       TEXT    NOT NULL REFERENCES rfqs (id) ON DELETE CASCADE,
    provider     TEXT    NOT NULL,
    position     INTEGER NOT NULL CHECK (position >= 0), -- order asked
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'quoted', 'declined', 'timed_out', 'withdrawn', 'failed')),
    changed_at   INTEGER NOT NULL,
    reason       TEXT,             -- a decline's reason, or a failed provider's last delivery error
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
    CHECK ((state = 'quoted') = (price_units IS NOT NULL)),
    CHECK (reason IS NULL OR state IN ('declined', 'failed'))
) STRICT, WITHOUT ROWID;

INSERT INTO roster_new (rfq_id, provider, position, state, changed_at, reason, kind, price_amount,
        price_units, currency, eta_seconds, expires_at, received_at)
    SELECT rfq_id, provider, position, state, changed_at, reason, kind, price_amount,
        price_units, currency, eta_seconds, expires_at, received_at
    FROM roster;
DROP TABLE roster;
ALTER TABLE roster_new RENAME TO roster;

-- One provider's entries, by state: the open RFQs a deleted provider is
-- withdrawn from, and its statistics (counts by state, latest answers).
CREATE INDEX roster_provider ON roster (provider, state, changed_at);

-- Deliveries to webhook providers that exhausted their retries. No foreign
-- keys: dead letters outlive their provider, for audit.
CREATE TABLE dead_letters (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    rfq_id      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL CHECK (attempts >= 0),
    last_error  TEXT    NOT NULL,
    last_status INTEGER CHECK (last_status BETWEEN 100 AND 599), -- NULL if no response came back
    request     TEXT    NOT NULL CHECK (json_valid(request)),  -- rydes.ProviderRequest
    created_at  INTEGER NOT NULL,
    replayed_at INTEGER
) STRICT;

CREATE INDEX dead_letters_provider ON dead_letters (provider, id);

-- Named settings of the installation, such as the admin key's hash.
CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    value TEXT NOT NULL
) STRICT;
