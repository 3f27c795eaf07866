-- Two-way sync: the link table, its history, the per-run staging of changes,
-- the delete approval queue, records waiting for a retry, and notifications.

ALTER TABLE workflows
    -- The target side's checkpoint (two-way workflows read both sides).
    ADD COLUMN target_cursor bytea,
    -- Which records sync: {"all": [{"side","field","op","value"}...]}.
    ADD COLUMN filter jsonb,
    -- A run that would delete more than this share of the linked records
    -- deletes nothing and raises a notice.
    ADD COLUMN delete_threshold_pct numeric NOT NULL DEFAULT 10 CHECK (delete_threshold_pct >= 0 AND delete_threshold_pct <= 100);

ALTER TABLE runs
    ADD COLUMN matched_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN ambiguous_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN notice text;

-- One row per pair of records Synchron keeps in step. *_hash is the hash of
-- the side's mapped fields as Synchron last wrote them there (or last saw them
-- when it synced them): a change whose hash equals it is Synchron's own echo.
CREATE TABLE links (
    id                 text PRIMARY KEY,
    account_id         text NOT NULL,
    workflow_id        text NOT NULL,
    source_id          text NOT NULL,
    target_id          text NOT NULL,
    source_hash        text NOT NULL DEFAULT '',
    target_hash        text NOT NULL DEFAULT '',
    -- The mapped fields of each side as last synced (JSON objects).
    source_values      jsonb NOT NULL DEFAULT '{}',
    target_values      jsonb NOT NULL DEFAULT '{}',
    source_modified_at timestamptz,
    target_modified_at timestamptz,
    -- The matching keys of each side's record (normalized), so a new record
    -- is never created twice next to an already linked one with its key.
    source_key         text,
    target_key         text,
    source_deleted     boolean NOT NULL DEFAULT false,
    target_deleted     boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id),
    UNIQUE (workflow_id, source_id),
    UNIQUE (workflow_id, target_id),
    FOREIGN KEY (account_id, workflow_id) REFERENCES workflows (account_id, id) ON DELETE CASCADE
);
CREATE INDEX links_workflow ON links (workflow_id, id);
CREATE INDEX links_source_key ON links (workflow_id, source_key);
CREATE INDEX links_target_key ON links (workflow_id, target_key);

-- What happened to a linked record, run by run.
CREATE TABLE link_history (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL,
    link_id    text NOT NULL,
    run_id     text,
    -- to_target, to_source
    direction  text NOT NULL,
    -- created, updated, matched, deleted, conflict, skipped
    action     text NOT NULL,
    values     jsonb NOT NULL DEFAULT '{}',
    note       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, link_id) REFERENCES links (account_id, id) ON DELETE CASCADE
);
CREATE INDEX link_history_link ON link_history (link_id, id);

-- Changes read in a run, before they are planned and written. Rows live
-- only for the run: a run that dies leaves them to the next attempt, which
-- starts by clearing them.
CREATE TABLE run_stage (
    run_id      text NOT NULL,
    side        text NOT NULL CHECK (side IN ('source', 'target')),
    record_id   text NOT NULL,
    fields      jsonb NOT NULL,
    modified_at timestamptz,
    deleted     boolean NOT NULL DEFAULT false,
    match_key   text,
    hash        text NOT NULL,
    -- Set once the record is handled (written, skipped, or settled by the
    -- other side's change winning a conflict).
    done        boolean NOT NULL DEFAULT false,
    -- Staged from the retry queue rather than read in this run.
    retry       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, side, record_id)
);
CREATE INDEX run_stage_key ON run_stage (run_id, side, match_key);

-- Deletions waiting for a user's decision (workflows with deletes = approve).
CREATE TABLE pending_deletes (
    id          text PRIMARY KEY,
    account_id  text NOT NULL,
    workflow_id text NOT NULL,
    link_id     text NOT NULL,
    -- The side whose record would be deleted.
    side        text NOT NULL CHECK (side IN ('source', 'target')),
    record_id   text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'discarded', 'done', 'failed')),
    message     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, workflow_id) REFERENCES workflows (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, link_id) REFERENCES links (account_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pending_deletes_open ON pending_deletes (link_id, side) WHERE status IN ('pending', 'approved');
CREATE INDEX pending_deletes_list ON pending_deletes (workflow_id, created_at, id);

-- Records whose write failed and will be retried by later runs.
CREATE TABLE retry_queue (
    account_id    text NOT NULL,
    workflow_id   text NOT NULL,
    -- The side the record was read from.
    side          text NOT NULL CHECK (side IN ('source', 'target')),
    record_id     text NOT NULL,
    -- The record as read when it failed, so a retry needs no read by id;
    -- a newer version read later replaces it.
    fields        jsonb NOT NULL,
    modified_at   timestamptz,
    deleted       boolean NOT NULL DEFAULT false,
    -- The run the record last failed in.
    run_id        text,
    attempts      integer NOT NULL DEFAULT 1,
    next_retry_at timestamptz NOT NULL,
    last_error    text NOT NULL DEFAULT '',
    -- retryable: retried automatically; rejected: only when a user asks.
    kind          text NOT NULL CHECK (kind IN ('retryable', 'rejected')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, side, record_id),
    FOREIGN KEY (account_id, workflow_id) REFERENCES workflows (account_id, id) ON DELETE CASCADE
);

-- Account notices: over quota, upgrade advised, delete safety stop...
CREATE TABLE notifications (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    message     text NOT NULL,
    workflow_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX notifications_list ON notifications (account_id, created_at, id);

ALTER TABLE run_records
    DROP CONSTRAINT run_records_status_check,
    ADD CONSTRAINT run_records_status_check CHECK (status IN ('failed', 'rejected', 'retryable', 'ambiguous', 'conflict')),
    ADD COLUMN side text NOT NULL DEFAULT 'source',
    ADD COLUMN link_id text;
