-- 003_customers_notifications: where an RFQ's final state is POSTed and the
-- secret that signs it, customers with their API keys, and the log of the
-- notifications sent.
--
-- Times are INTEGER Unix microseconds, UTC, as in 001; NULL stands for "not
-- given". The new rfqs columns are NULL for the RFQs of before, which have no
-- notify URL, so ADD COLUMN suffices and the table is not rebuilt.

-- Where rydes POSTs the final RFQ, and the secret that signs it; an RFQ with
-- neither has NULL in both, and a secret needs a URL.
ALTER TABLE rfqs ADD COLUMN notify_url TEXT CHECK (notify_url <> '');
ALTER TABLE rfqs ADD COLUMN notify_secret TEXT CHECK (notify_secret IS NULL OR (notify_secret <> '' AND notify_url IS NOT NULL));

-- Customer apps and accounts, each with the hash of its API key (never the
-- key itself).
CREATE TABLE customers (
    id           TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    name         TEXT    NOT NULL CHECK (name <> ''),
    api_key_hash TEXT    NOT NULL CHECK (api_key_hash <> ''),
    created_at   INTEGER NOT NULL
) STRICT;

-- Authentication looks customers up by the hash of the API key they present.
-- Unique, so that a key names one customer.
CREATE UNIQUE INDEX customers_api_key_hash ON customers (api_key_hash);

-- Attempts to deliver an RFQ's final state to its notify URL, numbered from 1
-- per RFQ and event.
CREATE TABLE notifications (
    rfq_id    TEXT    NOT NULL REFERENCES rfqs (id) ON DELETE CASCADE,
    event     TEXT    NOT NULL CHECK (event IN ('complete', 'expired', 'cancelled')),
    attempt   INTEGER NOT NULL CHECK (attempt >= 1),
    at        INTEGER NOT NULL,
    status    INTEGER CHECK (status BETWEEN 100 AND 599), -- NULL if no response came back
    error     TEXT    CHECK (error <> ''),                -- NULL when accepted
    delivered INTEGER NOT NULL CHECK (delivered IN (0, 1)),
    PRIMARY KEY (rfq_id, event, attempt),
    CHECK (NOT delivered OR error IS NULL)
) STRICT, WITHOUT ROWID;
