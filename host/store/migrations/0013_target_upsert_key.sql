-- The target object's upsert key as its connector described it when the
-- workflow was created ('' : a write without id always creates there). A
-- one-way workflow into an object without one keeps links (so that a
-- changed source record updates the record it created instead of creating
-- another); NULL (workflows created before) keeps the earlier behaviour.
ALTER TABLE workflows ADD COLUMN target_upsert_key text;
