package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Account statuses.
const (
	AccountTrialing = "trialing"
	AccountActive   = "active"
	AccountCanceled = "canceled"
	AccountDeleted  = "deleted"
)

// User roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Token kinds.
const (
	TokenSession = "session"
	TokenAPI     = "api"
)

// Account is a customer: the owner of every other row.
type Account struct {
	ID          string     `db:"id"`
	Name        string     `db:"name"`
	Plan        string     `db:"plan"`
	Status      string     `db:"status"`
	TrialEndsAt *time.Time `db:"trial_ends_at"`
	CreatedAt   time.Time  `db:"created_at"`
	UpdatedAt   time.Time  `db:"updated_at"`
}

// User is a person who logs in to an account.
type User struct {
	ID           string    `db:"id"`
	AccountID    string    `db:"account_id"`
	Email        string    `db:"email"`
	Name         string    `db:"name"`
	PasswordHash string    `db:"password_hash"`
	Role         string    `db:"role"`
	IsPrimary    bool      `db:"is_primary"`
	CreatedAt    time.Time `db:"created_at"`
}

// Token is a bearer token of a user. Its secret is never stored: only its
// hash, which is not part of this type.
type Token struct {
	ID         string     `db:"id"`
	AccountID  string     `db:"account_id"`
	UserID     string     `db:"user_id"`
	Kind       string     `db:"kind"`
	Name       string     `db:"name"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	ExpiresAt  *time.Time `db:"expires_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
}

const accountColumns = `id, name, plan, status, trial_ends_at, created_at, updated_at`
const userColumns = `id, account_id, email, name, password_hash, role, is_primary, created_at`
const tokenColumns = `id, account_id, user_id, kind, name, created_at, last_used_at, expires_at, revoked_at`

// SignupParams creates an account, its primary admin user and a first session.
type SignupParams struct {
	AccountName  string
	Email        string // lowercased by the caller
	Name         string
	PasswordHash string
	TrialEndsAt  time.Time
	// SessionHash is the sha256 of the session token handed to the user.
	SessionHash      []byte
	SessionExpiresAt time.Time
}

// Signup creates an account on the Individual plan in trial, its primary
// admin user and a session token, in one transaction. ErrEmailTaken if the
// email is registered.
func (s *Store) Signup(ctx context.Context, p SignupParams) (Account, User, Token, error) {
	var (
		acc Account
		usr User
		tok Token
	)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &acc, `INSERT INTO accounts (id, name, plan, status, trial_ends_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+accountColumns,
			NewID(PrefixAccount), p.AccountName, PlanIndividual, AccountTrialing, p.TrialEndsAt); err != nil {
			return fmt.Errorf("store: signup: insert account: %w", err)
		}
		if err := tx.GetContext(ctx, &usr, `INSERT INTO users (id, account_id, email, name, password_hash, role, is_primary)
			VALUES ($1, $2, $3, $4, $5, $6, true) RETURNING `+userColumns,
			NewID(PrefixUser), acc.ID, p.Email, p.Name, p.PasswordHash, RoleAdmin); err != nil {
			if code, _ := pgCode(err); code == pgUniqueViolation {
				return ErrEmailTaken
			}
			return fmt.Errorf("store: signup: insert user: %w", err)
		}
		var err error
		tok, err = insertToken(ctx, tx, NewTokenParams{
			AccountID: acc.ID, UserID: usr.ID, Kind: TokenSession, Hash: p.SessionHash, ExpiresAt: &p.SessionExpiresAt,
		})
		return err
	})
	if err != nil {
		return Account{}, User{}, Token{}, err
	}
	return acc, usr, tok, nil
}

// GetAccount returns an account.
func (s *Store) GetAccount(ctx context.Context, accountID string) (Account, error) {
	var a Account
	err := s.db.GetContext(ctx, &a, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`, accountID)
	if err != nil {
		return Account{}, fmt.Errorf("store: get account: %w", notFound(err))
	}
	return a, nil
}

// GetUser returns a user of an account.
func (s *Store) GetUser(ctx context.Context, accountID, userID string) (User, error) {
	var u User
	err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE account_id = $1 AND id = $2`, accountID, userID)
	if err != nil {
		return User{}, fmt.Errorf("store: get user: %w", notFound(err))
	}
	return u, nil
}

// UserByEmail finds the user who logs in with an email (lowercased by the
// caller). Login is the one lookup not scoped by account: the email is what
// identifies the account.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	var u User
	err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE email = $1`, email)
	if err != nil {
		return User{}, fmt.Errorf("store: user by email: %w", notFound(err))
	}
	return u, nil
}
