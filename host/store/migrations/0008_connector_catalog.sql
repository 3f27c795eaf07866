-- The connector catalog (host/connectors): every installed version of every
-- connector with the checksum of its executable, and the active alias.
-- Earlier builds created these tables themselves, hence IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS connector_versions (
    name         text        NOT NULL,
    version      text        NOT NULL,
    sha256       text        NOT NULL,
    path         text        NOT NULL,
    status       text        NOT NULL DEFAULT 'installed'
                 CHECK (status IN ('installed', 'checksum_mismatch', 'missing')),
    spec         jsonb,
    docs         text,
    installed_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS connectors (
    name             text        PRIMARY KEY,
    active_version   text,
    previous_version text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (name, active_version) REFERENCES connector_versions (name, version),
    FOREIGN KEY (name, previous_version) REFERENCES connector_versions (name, version)
);
