package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Workflow values.
const (
	DirectionOneWay = "one_way"
	DirectionTwoWay = "two_way"

	ConflictSourceWins = "source_wins"
	ConflictTargetWins = "target_wins"
	ConflictNewestWins = "newest_wins"

	DeletesIgnore    = "ignore"
	DeletesPropagate = "propagate"
	DeletesApprove   = "approve"

	WorkflowActive = "active"
	WorkflowPaused = "paused"

	// DefaultDeleteThresholdPct is the share of linked records a run may
	// delete before it stops deleting and raises a notice.
	DefaultDeleteThresholdPct = 10.0
)

// Workflow is a flow of records of one object from a source connection to a
// target connection.
type Workflow struct {
	ID                 string          `db:"id"`
	AccountID          string          `db:"account_id"`
	Name               string          `db:"name"`
	SourceConnectionID string          `db:"source_connection_id"`
	SourceObject       string          `db:"source_object"`
	TargetConnectionID string          `db:"target_connection_id"`
	TargetObject       string          `db:"target_object"`
	Direction          string          `db:"direction"`
	Mapping            json.RawMessage `db:"mapping"`
	// Match and WriteBack are JSON objects, nil when not set.
	Match           []byte     `db:"match"`
	Conflict        string     `db:"conflict"`
	Deletes         string     `db:"deletes"`
	WriteBack       []byte     `db:"write_back"`
	IntervalSeconds int        `db:"interval_seconds"`
	Shared          bool       `db:"shared"`
	Status          string     `db:"status"`
	NextRunAt       *time.Time `db:"next_run_at"`
	// Cursor is the source checkpoint, written only by the engine.
	Cursor []byte `db:"cursor"`
	// TargetCursor is the target checkpoint of a two-way workflow, written
	// only by the engine.
	TargetCursor []byte `db:"target_cursor"`
	// Filter selects the records that sync: a JSON object, nil when not set.
	Filter []byte `db:"filter"`
	// DeleteThresholdPct (0 to 100) is stored as given: callers apply
	// DefaultDeleteThresholdPct.
	DeleteThresholdPct float64 `db:"delete_threshold_pct"`
	// TargetUpsertKey is the target object's upsert key when the workflow
	// was created ("": writes without id always create there; nil: not
	// known, a workflow created before it was recorded).
	TargetUpsertKey *string `db:"target_upsert_key"`
	// Version counts the changes of the settings (not of the cursor).
	Version   int       `db:"version"`
	CreatedBy string    `db:"created_by"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

const workflowColumns = `id, account_id, name, source_connection_id, source_object, target_connection_id, target_object,
	direction, mapping, match, conflict, deletes, write_back, interval_seconds, shared, status, next_run_at, cursor,
	target_cursor, filter, delete_threshold_pct, version, created_by, created_at, updated_at, target_upsert_key`

// CreateWorkflow inserts a workflow (w.ID is chosen when empty). ErrNotFound
// if a connection is not the account's.
func (s *Store) CreateWorkflow(ctx context.Context, w Workflow) (Workflow, error) {
	if w.ID == "" {
		w.ID = NewID(PrefixWorkflow)
	}
	var out Workflow
	err := s.db.GetContext(ctx, &out, `INSERT INTO workflows (id, account_id, name, source_connection_id, source_object,
			target_connection_id, target_object, direction, mapping, match, conflict, deletes, write_back,
			interval_seconds, shared, status, next_run_at, created_by, filter, delete_threshold_pct, target_upsert_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
		RETURNING `+workflowColumns,
		w.ID, w.AccountID, w.Name, w.SourceConnectionID, w.SourceObject, w.TargetConnectionID, w.TargetObject,
		w.Direction, []byte(w.Mapping), w.Match, w.Conflict, w.Deletes, w.WriteBack,
		w.IntervalSeconds, w.Shared, w.Status, w.NextRunAt, w.CreatedBy, w.Filter, w.DeleteThresholdPct, w.TargetUpsertKey)
	if err != nil {
		if code, _ := pgCode(err); code == pgForeignKeyViolation {
			return Workflow{}, fmt.Errorf("store: create workflow: connection: %w", ErrNotFound)
		}
		return Workflow{}, fmt.Errorf("store: create workflow: %w", err)
	}
	return out, nil
}

// GetWorkflow returns a workflow of the account.
func (s *Store) GetWorkflow(ctx context.Context, accountID, id string) (Workflow, error) {
	var w Workflow
	err := s.db.GetContext(ctx, &w, `SELECT `+workflowColumns+` FROM workflows WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		return Workflow{}, fmt.Errorf("store: get workflow: %w", notFound(err))
	}
	return w, nil
}

// ListWorkflows lists the account's workflows, newest first.
func (s *Store) ListWorkflows(ctx context.Context, accountID string, opts ListOptions) ([]Workflow, string, error) {
	return listNewest(ctx, s.db, opts, "workflows", func(w Workflow) (time.Time, string) { return w.CreatedAt, w.ID },
		`SELECT `+workflowColumns+` FROM workflows
		WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text))
		ORDER BY created_at DESC, id DESC LIMIT $4`,
		accountID)
}

// UpdateWorkflow writes the user-editable settings of w (name, mapping,
// match, conflict, deletes, write_back, filter, delete threshold, interval,
// shared) if its settings have not changed since it was read (w.Version):
// ErrConflict otherwise. A non-nil w.NextRunAt only brings the next run
// forward: the scheduler owns next_run_at, and an edit never undoes its advance. Connections, objects, direction, status and cursor are not
// changed here.
func (s *Store) UpdateWorkflow(ctx context.Context, w Workflow, now time.Time) (Workflow, error) {
	var out Workflow
	err := s.db.GetContext(ctx, &out, `UPDATE workflows SET
			name = $4, mapping = $5, match = $6, conflict = $7, deletes = $8, write_back = $9,
			interval_seconds = $10, shared = $11, next_run_at = CASE WHEN $12::timestamptz IS NULL THEN next_run_at ELSE LEAST(COALESCE(next_run_at, $12::timestamptz), $12::timestamptz) END, updated_at = $13, filter = $14,
			delete_threshold_pct = $15, version = version + 1
		WHERE account_id = $1 AND id = $2 AND version = $3 RETURNING `+workflowColumns,
		w.AccountID, w.ID, w.Version, w.Name, []byte(w.Mapping), w.Match, w.Conflict, w.Deletes, w.WriteBack,
		w.IntervalSeconds, w.Shared, w.NextRunAt, now, w.Filter, w.DeleteThresholdPct)
	if err == nil {
		return out, nil
	}
	if err := notFound(err); err != ErrNotFound {
		return Workflow{}, fmt.Errorf("store: update workflow: %w", err)
	}
	if _, gerr := s.GetWorkflow(ctx, w.AccountID, w.ID); gerr != nil {
		return Workflow{}, gerr
	}
	return Workflow{}, fmt.Errorf("store: update workflow: %w", ErrConflict)
}

// SetWorkflowStatus pauses or resumes a workflow of the account. nextRunAt
// replaces next_run_at when not nil.
func (s *Store) SetWorkflowStatus(ctx context.Context, accountID, id, status string, nextRunAt *time.Time, now time.Time) (Workflow, error) {
	var w Workflow
	err := s.db.GetContext(ctx, &w, `UPDATE workflows SET status = $3, next_run_at = COALESCE($4, next_run_at), updated_at = $5,
			version = version + 1
		WHERE account_id = $1 AND id = $2 RETURNING `+workflowColumns, accountID, id, status, nextRunAt, now)
	if err != nil {
		return Workflow{}, fmt.Errorf("store: set workflow status: %w", notFound(err))
	}
	return w, nil
}

// DeleteWorkflow deletes a workflow of the account and its runs.
func (s *Store) DeleteWorkflow(ctx context.Context, accountID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM workflows WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		return fmt.Errorf("store: delete workflow: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: delete workflow: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: delete workflow: %w", ErrNotFound)
	}
	return nil
}
