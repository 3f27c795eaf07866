package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// Connection statuses.
const (
	ConnectionUnchecked = "unchecked"
	ConnectionOK        = "ok"
	ConnectionError     = "error"
)

// Connection is an account's credentials for one app. ConfigEnc is the
// secrets.Box ciphertext of the JSON config, sealed with ConnectionAAD(ID).
type Connection struct {
	ID            string     `db:"id"`
	AccountID     string     `db:"account_id"`
	App           string     `db:"app"`
	Name          string     `db:"name"`
	ConfigEnc     []byte     `db:"config_enc"`
	Status        string     `db:"status"`
	StatusMessage string     `db:"status_message"`
	CheckedAt     *time.Time `db:"checked_at"`
	CreatedAt     time.Time  `db:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at"`
}

const connectionColumns = `id, account_id, app, name, config_enc, status, status_message, checked_at, created_at, updated_at`

// CreateConnection inserts a connection. The caller chooses c.ID (with
// NewID(PrefixConnection)) because the config is sealed with it.
func (s *Store) CreateConnection(ctx context.Context, c Connection) (Connection, error) {
	if c.Status == "" {
		c.Status = ConnectionUnchecked
	}
	var out Connection
	err := s.db.GetContext(ctx, &out, `INSERT INTO connections (id, account_id, app, name, config_enc, status, status_message)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+connectionColumns,
		c.ID, c.AccountID, c.App, c.Name, c.ConfigEnc, c.Status, c.StatusMessage)
	if err != nil {
		return Connection{}, fmt.Errorf("store: create connection: %w", err)
	}
	return out, nil
}

// GetConnection returns a connection of the account.
func (s *Store) GetConnection(ctx context.Context, accountID, id string) (Connection, error) {
	var c Connection
	err := s.db.GetContext(ctx, &c, `SELECT `+connectionColumns+` FROM connections WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		return Connection{}, fmt.Errorf("store: get connection: %w", notFound(err))
	}
	return c, nil
}

// ListConnections lists the account's connections, newest first.
func (s *Store) ListConnections(ctx context.Context, accountID string, opts ListOptions) ([]Connection, string, error) {
	return listNewest(ctx, s.db, opts, "connections", func(c Connection) (time.Time, string) { return c.CreatedAt, c.ID },
		`SELECT `+connectionColumns+` FROM connections
		WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text))
		ORDER BY created_at DESC, id DESC LIMIT $4`,
		accountID)
}

// ConnectionUpdate changes a connection; nil fields are left as they are.
// A new config resets the status to unchecked.
type ConnectionUpdate struct {
	Name      *string
	ConfigEnc []byte
}

// UpdateConnection applies u to a connection of the account.
func (s *Store) UpdateConnection(ctx context.Context, accountID, id string, u ConnectionUpdate, now time.Time) (Connection, error) {
	var c Connection
	err := s.db.GetContext(ctx, &c, `UPDATE connections SET
			name = COALESCE($3, name),
			config_enc = COALESCE($4, config_enc),
			status = CASE WHEN $4::bytea IS NULL THEN status ELSE $5 END,
			status_message = CASE WHEN $4::bytea IS NULL THEN status_message ELSE '' END,
			checked_at = CASE WHEN $4::bytea IS NULL THEN checked_at ELSE NULL END,
			updated_at = $6
		WHERE account_id = $1 AND id = $2 RETURNING `+connectionColumns,
		accountID, id, u.Name, u.ConfigEnc, ConnectionUnchecked, now)
	if err != nil {
		return Connection{}, fmt.Errorf("store: update connection: %w", notFound(err))
	}
	return c, nil
}

// ConnectionCheck is the outcome of a connector's Check of a config.
type ConnectionCheck struct {
	// CheckedConfigEnc is the ciphertext that was checked: the result is only
	// stored if the connection still has it.
	CheckedConfigEnc []byte
	Status           string // ConnectionOK or ConnectionError
	Message          string
	// NewConfigEnc, when set, replaces the config (the connector refreshed
	// credentials).
	NewConfigEnc []byte
	At           time.Time
}

// SetConnectionCheck stores the outcome of a check. ErrConflict if the
// config changed during the check, ErrNotFound if the connection is gone.
func (s *Store) SetConnectionCheck(ctx context.Context, accountID, id string, r ConnectionCheck) (Connection, error) {
	var c Connection
	err := s.db.GetContext(ctx, &c, `UPDATE connections SET
			status = $4, status_message = $5, checked_at = $6, config_enc = COALESCE($7, config_enc)
		WHERE account_id = $1 AND id = $2 AND config_enc = $3 RETURNING `+connectionColumns,
		accountID, id, r.CheckedConfigEnc, r.Status, r.Message, r.At, r.NewConfigEnc)
	if err == nil {
		return c, nil
	}
	if err := notFound(err); err != ErrNotFound {
		return Connection{}, fmt.Errorf("store: set connection check: %w", err)
	}
	cur, gerr := s.GetConnection(ctx, accountID, id)
	if gerr != nil {
		return Connection{}, gerr
	}
	if !bytes.Equal(cur.ConfigEnc, r.CheckedConfigEnc) {
		return Connection{}, fmt.Errorf("store: set connection check: %w", ErrConflict)
	}
	return Connection{}, fmt.Errorf("store: set connection check: %w", ErrNotFound)
}

// SaveRefreshedConfig replaces the config of a connection of the account
// with credentials its connector refreshed (sealed by the caller). The last
// refresh wins: a rotated refresh token invalidates the one before it.
func (s *Store) SaveRefreshedConfig(ctx context.Context, accountID, id string, configEnc []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE connections SET config_enc = $3, updated_at = now() WHERE account_id = $1 AND id = $2`,
		accountID, id, configEnc)
	if err != nil {
		return fmt.Errorf("store: save refreshed config of connection %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: save refreshed config of connection %s: %w", id, ErrNotFound)
	}
	return nil
}

// WorkflowRef names a workflow.
type WorkflowRef struct {
	ID   string `db:"id" json:"id"`
	Name string `db:"name" json:"name"`
}

// ConnectionInUseError is returned when deleting a connection that workflows
// read from or write to.
type ConnectionInUseError struct {
	Workflows []WorkflowRef
}

func (e *ConnectionInUseError) Error() string {
	names := make([]string, len(e.Workflows))
	for i, w := range e.Workflows {
		names[i] = fmt.Sprintf("%q (%s)", w.Name, w.ID)
	}
	return "the connection is used by workflow(s) " + strings.Join(names, ", ") + ": delete them or change their connections first"
}

// DeleteConnection deletes a connection of the account, unless workflows use
// it (*ConnectionInUseError).
func (s *Store) DeleteConnection(ctx context.Context, accountID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM connections WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		if code, _ := pgCode(err); code == pgForeignKeyViolation {
			return s.connectionInUse(ctx, accountID, id)
		}
		return fmt.Errorf("store: delete connection: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: delete connection: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: delete connection: %w", ErrNotFound)
	}
	return nil
}

func (s *Store) connectionInUse(ctx context.Context, accountID, id string) error {
	var refs []WorkflowRef
	if err := s.db.SelectContext(ctx, &refs, `SELECT id, name FROM workflows
		WHERE account_id = $1 AND (source_connection_id = $2 OR target_connection_id = $2)
		ORDER BY created_at, id LIMIT 20`, accountID, id); err != nil {
		return fmt.Errorf("store: delete connection: list workflows: %w", err)
	}
	return &ConnectionInUseError{Workflows: refs}
}
