-- The version of a workflow's settings, for optimistic concurrency of edits.
-- updated_at cannot serve: the engine bumps it with every checkpoint.
ALTER TABLE workflows ADD COLUMN version integer NOT NULL DEFAULT 1;
