package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Link is a pair of records, one on each side of a workflow, that Synchron
// keeps in step. The hashes the engine keeps to drop echoes are not part of
// it: they mean nothing to a user.
type Link struct {
	ID         string `db:"id"`
	AccountID  string `db:"account_id"`
	WorkflowID string `db:"workflow_id"`
	SourceID   string `db:"source_id"`
	TargetID   string `db:"target_id"`
	// SourceValues and TargetValues are the mapped fields last written to
	// (or last seen on) each side: JSON objects.
	SourceValues     json.RawMessage `db:"source_values"`
	TargetValues     json.RawMessage `db:"target_values"`
	SourceModifiedAt *time.Time      `db:"source_modified_at"`
	TargetModifiedAt *time.Time      `db:"target_modified_at"`
	SourceDeleted    bool            `db:"source_deleted"`
	TargetDeleted    bool            `db:"target_deleted"`
	CreatedAt        time.Time       `db:"created_at"`
	UpdatedAt        time.Time       `db:"updated_at"`
}

const linkColumns = `id, account_id, workflow_id, source_id, target_id, source_values, target_values,
	source_modified_at, target_modified_at, source_deleted, target_deleted, created_at, updated_at`

// GetLink returns a link of a workflow of the account.
func (s *Store) GetLink(ctx context.Context, accountID, workflowID, id string) (Link, error) {
	var l Link
	err := s.db.GetContext(ctx, &l, `SELECT `+linkColumns+` FROM links WHERE account_id = $1 AND workflow_id = $2 AND id = $3`,
		accountID, workflowID, id)
	if err != nil {
		return Link{}, fmt.Errorf("store: get link: %w", notFound(err))
	}
	return l, nil
}

// LinkFilter narrows ListLinks; empty fields do not filter.
type LinkFilter struct {
	SourceID string
	TargetID string
}

// ListLinks lists the links of a workflow of the account, newest first.
func (s *Store) ListLinks(ctx context.Context, accountID, workflowID string, f LinkFilter, opts ListOptions) ([]Link, string, error) {
	return listNewest(ctx, s.db, opts, "links", func(l Link) (time.Time, string) { return l.CreatedAt, l.ID },
		`SELECT `+linkColumns+` FROM links
		WHERE account_id = $1 AND workflow_id = $2
			AND ($3 = '' OR source_id = $3) AND ($4 = '' OR target_id = $4)
			AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::text))
		ORDER BY created_at DESC, id DESC LIMIT $7`,
		accountID, workflowID, f.SourceID, f.TargetID)
}

// LinkEvent is one entry of a link's history: what a run did to the pair.
type LinkEvent struct {
	ID     int64  `db:"id"`
	LinkID string `db:"link_id"`
	// RunID is "" when no run is known.
	RunID string `db:"run_id"`
	// Direction is to_target or to_source.
	Direction string `db:"direction"`
	// Action is created, updated, matched, deleted, conflict or skipped.
	Action    string          `db:"action"`
	Values    json.RawMessage `db:"values"`
	Note      string          `db:"note"`
	CreatedAt time.Time       `db:"created_at"`
}

// ListLinkHistory lists the history of a link of the account, newest first.
func (s *Store) ListLinkHistory(ctx context.Context, accountID, linkID string, opts ListOptions) ([]LinkEvent, string, error) {
	before, ok, err := decodeSeqCursor(opts.Cursor)
	if err != nil {
		return nil, "", err
	}
	var beforeArg any
	if ok {
		beforeArg = before
	}
	limit := opts.limit()
	var es []LinkEvent
	err = s.db.SelectContext(ctx, &es, `SELECT id, link_id, COALESCE(run_id, '') AS run_id, direction, action, values, note, created_at
		FROM link_history WHERE account_id = $1 AND link_id = $2 AND ($3::bigint IS NULL OR id < $3)
		ORDER BY id DESC LIMIT $4`, accountID, linkID, beforeArg, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("store: list link history: %w", err)
	}
	es, next := page(es, limit, func(e LinkEvent) string { return encodeSeqCursor(e.ID) })
	return es, next, nil
}
