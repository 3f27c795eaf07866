-- Creates in flight: a linked run journals each create it is about to send
-- (the record of the side read, and the side written), and removes the row
-- in the transaction that records the outcome (the link). A row left behind
-- means the create's outcome is unknown (the host died, or the app kept
-- answering retryable errors): the next attempt sends the create with
-- may_exist_since = started_at, so the connector looks for the record before
-- creating it again.
CREATE TABLE pending_creates (
    account_id  text NOT NULL,
    workflow_id text NOT NULL,
    side        text NOT NULL CHECK (side IN ('source', 'target')),
    record_id   text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, side, record_id),
    FOREIGN KEY (account_id, workflow_id) REFERENCES workflows (account_id, id) ON DELETE CASCADE
);
