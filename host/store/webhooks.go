package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// WebhookEvent is one webhook delivery received for a connection: what the
// host concluded, never the body or the headers.
type WebhookEvent struct {
	ID           string    `db:"id"`
	AccountID    string    `db:"account_id"`
	ConnectionID string    `db:"connection_id"`
	ReceivedAt   time.Time `db:"received_at"`
	Verified     bool      `db:"verified"`
	Summary      string    `db:"summary"`
	Changes      int       `db:"changes"`
	Runs         int       `db:"runs"`
	Error        string    `db:"error"`
	// DeliveryID is the app's id of the delivery ("" when it has none).
	DeliveryID string `db:"delivery_id"`
}

const webhookEventColumns = `id, account_id, connection_id, received_at, verified, summary, changes, runs, error, delivery_id`

// ErrDuplicateDelivery: a processed delivery with this id is already
// recorded for the connection.
var ErrDuplicateDelivery = errors.New("webhook delivery already processed")

// WebhookDelivered reports whether the connection already processed the
// delivery (recorded without error).
func (s *Store) WebhookDelivered(ctx context.Context, connectionID, deliveryID string) (bool, error) {
	if deliveryID == "" {
		return false, nil
	}
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM webhook_events WHERE connection_id = $1 AND delivery_id = $2 AND error = ''`,
		connectionID, deliveryID); err != nil {
		return false, fmt.Errorf("store: webhook delivered: %w", err)
	}
	return n > 0, nil
}

// GetConnectionByID returns a connection whatever its account. Only the
// webhook route uses it: the app that calls it knows the connection id but
// not the account, and the connector's signature check is what authorises
// the call.
func (s *Store) GetConnectionByID(ctx context.Context, id string) (Connection, error) {
	var c Connection
	err := s.db.GetContext(ctx, &c, `SELECT `+connectionColumns+` FROM connections WHERE id = $1`, id)
	if err != nil {
		return Connection{}, fmt.Errorf("store: get connection by id: %w", notFound(err))
	}
	return c, nil
}

// Webhook events are kept for WebhookEventRetention. Processed deliveries
// (a delivery id, no error) are kept that long whatever their number: their
// ids are what refuses a redelivery (WebhookDelivered, ErrDuplicateDelivery),
// and only verified deliveries can be processed. The other events (refused,
// failed, without a delivery id) are kept at most WebhookEventsKept per
// connection (the newest): enough to see what an app sent lately, while a
// flood of deliveries (or of forged ones) cannot grow the table without
// bound, nor push out the ids of processed deliveries.
const (
	WebhookEventRetention = 30 * 24 * time.Hour
	WebhookEventsKept     = 1000
)

// RecordWebhookEvent inserts e (e.ID is chosen when empty) and returns it as
// stored. In the same transaction it drops the connection's events older
// than WebhookEventRetention, and its events other than processed
// deliveries beyond the newest WebhookEventsKept of them.
func (s *Store) RecordWebhookEvent(ctx context.Context, e WebhookEvent) (WebhookEvent, error) {
	if e.ID == "" {
		e.ID = NewID(PrefixWebhookEvent)
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = time.Now().UTC()
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return WebhookEvent{}, fmt.Errorf("store: record webhook event: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var out WebhookEvent
	err = tx.GetContext(ctx, &out, `INSERT INTO webhook_events (id, account_id, connection_id, received_at, verified, summary, changes, runs, error, delivery_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (connection_id, delivery_id) WHERE delivery_id <> '' AND error = '' DO NOTHING
		RETURNING `+webhookEventColumns,
		e.ID, e.AccountID, e.ConnectionID, e.ReceivedAt, e.Verified, e.Summary, e.Changes, e.Runs, e.Error, e.DeliveryID)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookEvent{}, fmt.Errorf("store: record webhook event %s: %w", e.DeliveryID, ErrDuplicateDelivery)
	}
	if err != nil {
		return WebhookEvent{}, fmt.Errorf("store: record webhook event for connection %s: %w", e.ConnectionID, err)
	}
	if _, err := tx.ExecContext(ctx, `
		DELETE FROM webhook_events w
		WHERE w.connection_id = $1 AND (w.received_at < now() - make_interval(secs => $2)
			OR (NOT (w.delivery_id <> '' AND w.error = '')
				AND (w.received_at, w.id) < (SELECT received_at, id FROM webhook_events
					WHERE connection_id = $1 AND NOT (delivery_id <> '' AND error = '')
					ORDER BY received_at DESC, id DESC OFFSET $3 - 1 LIMIT 1)))`,
		e.ConnectionID, WebhookEventRetention.Seconds(), WebhookEventsKept); err != nil {
		return WebhookEvent{}, fmt.Errorf("store: prune webhook events of connection %s: %w", e.ConnectionID, err)
	}
	if err := tx.Commit(); err != nil {
		return WebhookEvent{}, fmt.Errorf("store: record webhook event for connection %s: %w", e.ConnectionID, err)
	}
	return out, nil
}

// ListWebhookEvents lists the webhook deliveries of a connection of the
// account, newest first. A connection of another account lists nothing;
// callers check the connection first to answer 404.
func (s *Store) ListWebhookEvents(ctx context.Context, accountID, connectionID string, opts ListOptions) ([]WebhookEvent, string, error) {
	return listNewest(ctx, s.db, opts, "webhook events", func(e WebhookEvent) (time.Time, string) { return e.ReceivedAt, e.ID },
		`SELECT `+webhookEventColumns+` FROM webhook_events
		WHERE account_id = $1 AND connection_id = $2 AND ($3::timestamptz IS NULL OR (received_at, id) < ($3, $4::text))
		ORDER BY received_at DESC, id DESC LIMIT $5`,
		accountID, connectionID)
}

// WebhookWorkflow is a workflow a webhook of a connection may trigger.
type WebhookWorkflow struct {
	ID                 string `db:"id"`
	SourceConnectionID string `db:"source_connection_id"`
	SourceObject       string `db:"source_object"`
	TargetConnectionID string `db:"target_connection_id"`
	TargetObject       string `db:"target_object"`
}

// ObjectOn is the object the workflow reads on the connection (the source
// object when it is the source).
func (w WebhookWorkflow) ObjectOn(connectionID string) string {
	if w.SourceConnectionID == connectionID {
		return w.SourceObject
	}
	return w.TargetObject
}

// WebhookWorkflows returns the account's active workflows that a webhook of
// the connection triggers: those reading from it (its source), and two-way
// workflows whose target it is (they read both sides).
func (s *Store) WebhookWorkflows(ctx context.Context, accountID, connectionID string) ([]WebhookWorkflow, error) {
	var ws []WebhookWorkflow
	err := s.db.SelectContext(ctx, &ws, `SELECT id, source_connection_id, source_object, target_connection_id, target_object FROM workflows
		WHERE account_id = $1 AND status = $2
		  AND (source_connection_id = $3 OR (direction = $4 AND target_connection_id = $3))
		ORDER BY created_at, id`, accountID, WorkflowActive, connectionID, DirectionTwoWay)
	if err != nil {
		return nil, fmt.Errorf("store: workflows triggered by connection %s: %w", connectionID, err)
	}
	return ws, nil
}
