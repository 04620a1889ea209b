-- 006_providers_version: a version of the providers table, raised by
-- triggers at every change to it, from any process sharing the file. The
-- store keeps the provider lists it read with the version they are of,
-- and reads the version, one row, instead of the list while it holds
-- (creating an RFQ lists the active providers).

INSERT INTO settings (name, value) VALUES ('providers.version', '0')
    ON CONFLICT (name) DO NOTHING;

CREATE TRIGGER providers_version_insert AFTER INSERT ON providers BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'providers.version';
END;

CREATE TRIGGER providers_version_update AFTER UPDATE ON providers BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'providers.version';
END;

CREATE TRIGGER providers_version_delete AFTER DELETE ON providers BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'providers.version';
END;
