-- Accounts, users and their tokens, connections, workflows, runs.
-- Every customer row carries account_id: every query filters by it.

CREATE TABLE accounts (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    plan          text NOT NULL DEFAULT 'individual' CHECK (plan IN ('individual', 'team', 'enterprise')),
    status        text NOT NULL DEFAULT 'trialing' CHECK (status IN ('trialing', 'active', 'canceled', 'deleted')),
    trial_ends_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Stored lowercased (the application lowercases; the check keeps it so).
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    name          text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'member')),
    is_primary    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_account_id ON users (account_id);
-- One primary user per account.
CREATE UNIQUE INDEX users_primary ON users (account_id) WHERE is_primary;

CREATE TABLE tokens (
    id           text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('session', 'api')),
    name         text NOT NULL DEFAULT '',
    -- sha256 of the token: the token itself is never stored.
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX tokens_user ON tokens (account_id, user_id, created_at);

-- Failed logins, for rate limiting shared by every host.
CREATE TABLE login_attempts (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL,
    ip         text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email ON login_attempts (email, created_at);
CREATE INDEX login_attempts_ip ON login_attempts (ip, created_at);
CREATE INDEX login_attempts_created_at ON login_attempts (created_at);

CREATE TABLE connections (
    id             text PRIMARY KEY,
    account_id     text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    app            text NOT NULL,
    name           text NOT NULL,
    -- secrets.Box ciphertext of the JSON config, AAD = id.
    config_enc     bytea NOT NULL,
    status         text NOT NULL DEFAULT 'unchecked' CHECK (status IN ('unchecked', 'ok', 'error')),
    status_message text NOT NULL DEFAULT '',
    checked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- Lets workflows reference (account_id, id) so a workflow can only use
    -- connections of its own account.
    UNIQUE (account_id, id)
);
CREATE INDEX connections_list ON connections (account_id, created_at, id);

CREATE TABLE workflows (
    id                   text PRIMARY KEY,
    account_id           text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    source_connection_id text NOT NULL,
    source_object        text NOT NULL,
    target_connection_id text NOT NULL,
    target_object        text NOT NULL,
    direction            text NOT NULL DEFAULT 'one_way' CHECK (direction IN ('one_way', 'two_way')),
    mapping              jsonb NOT NULL,
    match                jsonb,
    conflict             text NOT NULL DEFAULT 'source_wins' CHECK (conflict IN ('source_wins', 'target_wins', 'newest_wins')),
    deletes              text NOT NULL DEFAULT 'ignore' CHECK (deletes IN ('ignore', 'propagate', 'approve')),
    write_back           jsonb,
    interval_seconds     integer NOT NULL CHECK (interval_seconds > 0),
    shared               boolean NOT NULL DEFAULT false,
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    next_run_at          timestamptz,
    -- The source checkpoint: written only by the engine.
    cursor               bytea,
    -- usr_ id of the creator ('' when created by the system).
    created_by           text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id),
    -- No cascade: a connection in use cannot be deleted.
    FOREIGN KEY (account_id, source_connection_id) REFERENCES connections (account_id, id),
    FOREIGN KEY (account_id, target_connection_id) REFERENCES connections (account_id, id)
);
CREATE INDEX workflows_list ON workflows (account_id, created_at, id);
CREATE INDEX workflows_source ON workflows (source_connection_id);
CREATE INDEX workflows_target ON workflows (target_connection_id);
CREATE INDEX workflows_due ON workflows (next_run_at) WHERE status = 'active';

CREATE TABLE runs (
    id                 text PRIMARY KEY,
    account_id         text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    workflow_id        text NOT NULL,
    status             text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed')),
    trigger            text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'webhook', 'retry')),
    read_count         bigint NOT NULL DEFAULT 0,
    created_count      bigint NOT NULL DEFAULT 0,
    updated_count      bigint NOT NULL DEFAULT 0,
    deleted_count      bigint NOT NULL DEFAULT 0,
    skipped_count      bigint NOT NULL DEFAULT 0,
    failed_count       bigint NOT NULL DEFAULT 0,
    transactions       bigint NOT NULL DEFAULT 0,
    connector_versions jsonb NOT NULL DEFAULT '{}',
    error              text,
    attempts           integer NOT NULL DEFAULT 0,
    leased_by          text,
    lease_expires_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, workflow_id) REFERENCES workflows (account_id, id) ON DELETE CASCADE
);
-- A workflow never has two active runs.
CREATE UNIQUE INDEX runs_one_active ON runs (workflow_id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_workflow_list ON runs (workflow_id, created_at, id);
CREATE INDEX runs_account ON runs (account_id);

CREATE TABLE run_records (
    id         bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    account_id text NOT NULL,
    record_id  text NOT NULL,
    direction  text NOT NULL DEFAULT '',
    status     text NOT NULL CHECK (status IN ('failed', 'rejected')),
    message    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, run_id) REFERENCES runs (account_id, id) ON DELETE CASCADE
);
CREATE INDEX run_records_run ON run_records (run_id, id);

-- Answers to create requests, replayed for a repeated Idempotency-Key.
CREATE TABLE idempotency_keys (
    account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    -- sha256 of the request body: the same key with another body is refused.
    request_hash bytea NOT NULL,
    -- 0 while the first request is in flight.
    status       integer NOT NULL DEFAULT 0,
    -- secrets.Box ciphertext of the response body (it may hold a new token).
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
