package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Statuses of a pending delete. A user moves a pending delete to approved or
// discarded; the engine executes approved ones and sets done or failed.
const (
	DeletePending   = "pending"
	DeleteApproved  = "approved"
	DeleteDiscarded = "discarded"
	DeleteDone      = "done"
	DeleteFailed    = "failed"
)

// DeleteStatuses lists every status of a pending delete.
var DeleteStatuses = []string{DeletePending, DeleteApproved, DeleteDiscarded, DeleteDone, DeleteFailed}

// PendingDelete is a deletion waiting for (or given) a user's decision, in a
// workflow whose deletes policy is approve.
type PendingDelete struct {
	ID         string `db:"id"`
	AccountID  string `db:"account_id"`
	WorkflowID string `db:"workflow_id"`
	LinkID     string `db:"link_id"`
	// Side is the side whose record would be deleted.
	Side      string     `db:"side"`
	RecordID  string     `db:"record_id"`
	Status    string     `db:"status"`
	Message   string     `db:"message"`
	CreatedAt time.Time  `db:"created_at"`
	DecidedAt *time.Time `db:"decided_at"`
}

const pendingDeleteColumns = `id, account_id, workflow_id, link_id, side, record_id, status, message, created_at, decided_at`

// GetPendingDelete returns a pending delete of a workflow of the account.
func (s *Store) GetPendingDelete(ctx context.Context, accountID, workflowID, id string) (PendingDelete, error) {
	var d PendingDelete
	err := s.db.GetContext(ctx, &d, `SELECT `+pendingDeleteColumns+` FROM pending_deletes
		WHERE account_id = $1 AND workflow_id = $2 AND id = $3`, accountID, workflowID, id)
	if err != nil {
		return PendingDelete{}, fmt.Errorf("store: get pending delete: %w", notFound(err))
	}
	return d, nil
}

// ListPendingDeletes lists the deletes of a workflow of the account with the
// given status ("" for every status), newest first.
func (s *Store) ListPendingDeletes(ctx context.Context, accountID, workflowID, status string, opts ListOptions) ([]PendingDelete, string, error) {
	return listNewest(ctx, s.db, opts, "pending deletes", func(d PendingDelete) (time.Time, string) { return d.CreatedAt, d.ID },
		`SELECT `+pendingDeleteColumns+` FROM pending_deletes
		WHERE account_id = $1 AND workflow_id = $2 AND ($3 = '' OR status = $3)
			AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::text))
		ORDER BY created_at DESC, id DESC LIMIT $6`,
		accountID, workflowID, status)
}

// DecidePendingDelete moves a pending delete of a workflow of the account to
// status (DeleteApproved or DeleteDiscarded). ErrNotFound when there is no
// such delete; when it is no longer pending, it returns the delete as it is
// with an error wrapping ErrConflict, and changes nothing.
func (s *Store) DecidePendingDelete(ctx context.Context, accountID, workflowID, id, status string, now time.Time) (PendingDelete, error) {
	if status != DeleteApproved && status != DeleteDiscarded {
		return PendingDelete{}, fmt.Errorf("store: decide pending delete: status %q is not a decision", status)
	}
	var d PendingDelete
	err := s.db.GetContext(ctx, &d, `UPDATE pending_deletes SET status = $4, decided_at = $5
		WHERE account_id = $1 AND workflow_id = $2 AND id = $3 AND status = 'pending'
		RETURNING `+pendingDeleteColumns, accountID, workflowID, id, status, now)
	if err == nil {
		return d, nil
	}
	if !errors.Is(notFound(err), ErrNotFound) {
		return PendingDelete{}, fmt.Errorf("store: decide pending delete: %w", err)
	}
	cur, err := s.GetPendingDelete(ctx, accountID, workflowID, id)
	if err != nil {
		return PendingDelete{}, err
	}
	return cur, fmt.Errorf("store: decide pending delete: %s, not pending: %w", cur.Status, ErrConflict)
}

// DecideAllPendingDeletes moves every pending delete of a workflow of the
// account to status (DeleteApproved or DeleteDiscarded) and returns how many
// it moved.
func (s *Store) DecideAllPendingDeletes(ctx context.Context, accountID, workflowID, status string, now time.Time) (int64, error) {
	if status != DeleteApproved && status != DeleteDiscarded {
		return 0, fmt.Errorf("store: decide pending deletes: status %q is not a decision", status)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE pending_deletes SET status = $3, decided_at = $4
		WHERE account_id = $1 AND workflow_id = $2 AND status = 'pending'`, accountID, workflowID, status, now)
	if err != nil {
		return 0, fmt.Errorf("store: decide pending deletes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: decide pending deletes: %w", err)
	}
	return n, nil
}
