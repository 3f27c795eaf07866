-- A change announced while a run is already running (a webhook, a manual
-- "run now") may come after that run read its side: the run is marked, and a
-- follow-up run is queued the moment it ends.
ALTER TABLE runs ADD COLUMN rerun_trigger text;
