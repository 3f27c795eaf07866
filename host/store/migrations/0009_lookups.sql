-- Lookups: rules that write the id of a record of another object of the
-- target's connection (the Sage contact of an order's email), found by one
-- of its fields. lookup_refs indexes those records by the field's normalized
-- value; it is filled by incremental reads of the object (lookup_cursors)
-- and by the records the lookups create.
CREATE TABLE lookup_refs (
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    object        text NOT NULL,
    field         text NOT NULL,
    key           text NOT NULL,
    record_id     text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object, field, key, record_id)
);
CREATE INDEX lookup_refs_record ON lookup_refs (connection_id, object, field, record_id);

CREATE TABLE lookup_cursors (
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    object        text NOT NULL,
    field         text NOT NULL,
    cursor        bytea,
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object, field)
);
