-- Scheduler (host/scheduler): due workflows become queued runs.

-- The due time a scheduled run was enqueued for (NULL for manual, webhook
-- and retry runs): lag = started_at - scheduled_for.
ALTER TABLE runs ADD COLUMN scheduled_for timestamptz;

-- The scheduler's scan: active workflows in due order. A workflow whose
-- next_run_at is NULL (never scheduled) is due at once, so it sorts first.
CREATE INDEX workflows_due_at ON workflows ((COALESCE(next_run_at, '-infinity'::timestamptz)))
    WHERE status = 'active';

