-- Incoming webhooks (POST /v1/hooks/{connection_id}): one row per delivery,
-- verified or refused, so a user sees what the app sent and what was
-- refused. Neither the body nor the headers are kept (they can carry
-- secrets and personal data): only what the host concluded.
CREATE TABLE webhook_events (
    id            text PRIMARY KEY,
    account_id    text NOT NULL,
    connection_id text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    verified      boolean NOT NULL,
    -- A short description of the delivery (e.g. "customers/update: 1 change").
    summary       text NOT NULL DEFAULT '',
    -- How many changed records the connector announced.
    changes       integer NOT NULL DEFAULT 0,
    -- How many runs were queued or joined.
    runs          integer NOT NULL DEFAULT 0,
    -- Why the delivery was refused or failed ('' when it was accepted).
    error         text NOT NULL DEFAULT '',
    FOREIGN KEY (account_id, connection_id) REFERENCES connections (account_id, id) ON DELETE CASCADE
);
-- GET /v1/connections/{id}/webhooks: newest first.
CREATE INDEX webhook_events_list ON webhook_events (connection_id, received_at, id);
-- The workflows a webhook triggers are found with workflows_source and
-- workflows_target (0001).
