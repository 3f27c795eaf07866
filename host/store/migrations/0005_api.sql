-- Indexes for the lists the API serves from the two-way tables.

-- GET /v1/workflows/{id}/records: a workflow's links, newest first.
CREATE INDEX links_list ON links (workflow_id, created_at, id);

-- GET /v1/notifications?unread=true.
CREATE INDEX notifications_unread ON notifications (account_id, created_at, id) WHERE read_at IS NULL;
