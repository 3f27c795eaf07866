package store

import (
	"context"
	"fmt"
	"time"
)

// Notification is a notice to an account's members.
type Notification struct {
	ID        string `db:"id"`
	AccountID string `db:"account_id"`
	// Kind is a snake_case word for programs, such as upgrade_advised.
	Kind    string `db:"kind"`
	Message string `db:"message"`
	// WorkflowID is the workflow the notice is about ("" for none).
	WorkflowID string     `db:"workflow_id"`
	CreatedAt  time.Time  `db:"created_at"`
	ReadAt     *time.Time `db:"read_at"`
}

const notificationColumns = `id, account_id, kind, message, COALESCE(workflow_id, '') AS workflow_id, created_at, read_at`

// CreateNotification inserts a notification (n.ID is chosen when empty;
// n.CreatedAt is now when zero).
func (s *Store) CreateNotification(ctx context.Context, n Notification) (Notification, error) {
	if n.ID == "" {
		n.ID = NewID(PrefixNotification)
	}
	var wf, at any
	if n.WorkflowID != "" {
		wf = n.WorkflowID
	}
	if !n.CreatedAt.IsZero() {
		at = n.CreatedAt
	}
	var out Notification
	err := s.db.GetContext(ctx, &out, `INSERT INTO notifications (id, account_id, kind, message, workflow_id, created_at)
		VALUES ($1, $2, $3, $4, $5, COALESCE($6, now())) RETURNING `+notificationColumns,
		n.ID, n.AccountID, n.Kind, n.Message, wf, at)
	if err != nil {
		if code, _ := pgCode(err); code == pgForeignKeyViolation {
			return Notification{}, fmt.Errorf("store: create notification: account: %w", ErrNotFound)
		}
		return Notification{}, fmt.Errorf("store: create notification: %w", err)
	}
	return out, nil
}

// ListNotifications lists the account's notifications, newest first; with
// unreadOnly, only those not yet read.
func (s *Store) ListNotifications(ctx context.Context, accountID string, unreadOnly bool, opts ListOptions) ([]Notification, string, error) {
	return listNewest(ctx, s.db, opts, "notifications", func(n Notification) (time.Time, string) { return n.CreatedAt, n.ID },
		`SELECT `+notificationColumns+` FROM notifications
		WHERE account_id = $1 AND (NOT $2 OR read_at IS NULL)
			AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::text))
		ORDER BY created_at DESC, id DESC LIMIT $5`,
		accountID, unreadOnly)
}

// MarkNotificationRead marks a notification of the account read at now; one
// already read keeps its first read time.
func (s *Store) MarkNotificationRead(ctx context.Context, accountID, id string, now time.Time) (Notification, error) {
	var n Notification
	err := s.db.GetContext(ctx, &n, `UPDATE notifications SET read_at = COALESCE(read_at, $3)
		WHERE account_id = $1 AND id = $2 RETURNING `+notificationColumns, accountID, id, now)
	if err != nil {
		return Notification{}, fmt.Errorf("store: mark notification read: %w", notFound(err))
	}
	return n, nil
}
