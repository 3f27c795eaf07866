package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// NewTokenParams creates a token.
type NewTokenParams struct {
	AccountID string
	UserID    string
	Kind      string // TokenSession or TokenAPI
	Name      string
	Hash      []byte // sha256 of the secret
	ExpiresAt *time.Time
}

// CreateToken stores a new token of a user of the account.
func (s *Store) CreateToken(ctx context.Context, p NewTokenParams) (Token, error) {
	return insertToken(ctx, s.db, p)
}

func insertToken(ctx context.Context, q sqlx.QueryerContext, p NewTokenParams) (Token, error) {
	var t Token
	// The user must belong to the account: the insert selects it under both ids.
	err := sqlx.GetContext(ctx, q, &t, `INSERT INTO tokens (id, account_id, user_id, kind, name, token_hash, expires_at)
		SELECT $1, u.account_id, u.id, $4, $5, $6, $7 FROM users u WHERE u.account_id = $2 AND u.id = $3
		RETURNING `+tokenColumns,
		NewID(PrefixToken), p.AccountID, p.UserID, p.Kind, p.Name, p.Hash, p.ExpiresAt)
	if err != nil {
		return Token{}, fmt.Errorf("store: create token: %w", notFound(err))
	}
	return t, nil
}

// Principal is who a bearer token speaks for.
type Principal struct {
	Token   Token
	User    User
	Account Account
}

// lastUsedGranularity bounds how often a token's last_used_at is written:
// not on every request.
const lastUsedGranularity = time.Minute

// Authenticate finds the live token with this hash (not revoked, not expired,
// of an account that is not deleted) and records its use. ErrNotFound
// otherwise.
func (s *Store) Authenticate(ctx context.Context, hash []byte, now time.Time) (Principal, error) {
	var row struct {
		Token
		U User    `db:"u"`
		A Account `db:"a"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT t.id, t.account_id, t.user_id, t.kind, t.name, t.created_at,
			t.last_used_at, t.expires_at, t.revoked_at,
			u.id "u.id", u.account_id "u.account_id", u.email "u.email", u.name "u.name",
			u.password_hash "u.password_hash", u.role "u.role", u.is_primary "u.is_primary", u.created_at "u.created_at",
			a.id "a.id", a.name "a.name", a.plan "a.plan", a.status "a.status", a.trial_ends_at "a.trial_ends_at",
			a.created_at "a.created_at", a.updated_at "a.updated_at"
		FROM tokens t
		JOIN users u ON u.id = t.user_id AND u.account_id = t.account_id
		JOIN accounts a ON a.id = t.account_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL
		  AND (t.expires_at IS NULL OR t.expires_at > $2)
		  AND a.status <> $3`, hash, now, AccountDeleted)
	if err != nil {
		return Principal{}, fmt.Errorf("store: authenticate: %w", notFound(err))
	}
	if row.LastUsedAt == nil || now.Sub(*row.LastUsedAt) >= lastUsedGranularity {
		if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used_at = $2 WHERE id = $1`, row.ID, now); err != nil {
			return Principal{}, fmt.Errorf("store: authenticate: touch token: %w", err)
		}
		row.LastUsedAt = &now
	}
	return Principal{Token: row.Token, User: row.U, Account: row.A}, nil
}

// ListTokens lists the live tokens of one kind of a user, newest first.
func (s *Store) ListTokens(ctx context.Context, accountID, userID, kind string, opts ListOptions) ([]Token, string, error) {
	return listNewest(ctx, s.db, opts, "tokens", func(t Token) (time.Time, string) { return t.CreatedAt, t.ID },
		`SELECT `+tokenColumns+` FROM tokens
		WHERE account_id = $1 AND user_id = $2 AND kind = $3 AND revoked_at IS NULL
		  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::text))
		ORDER BY created_at DESC, id DESC LIMIT $6`,
		accountID, userID, kind)
}

// RevokeToken revokes a live token of a user. ErrNotFound if the user has no
// such live token.
func (s *Store) RevokeToken(ctx context.Context, accountID, userID, tokenID string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = $4
		WHERE account_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL`, accountID, userID, tokenID, now)
	if err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: revoke token: %w", ErrNotFound)
	}
	return nil
}
