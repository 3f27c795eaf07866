package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// loginAttemptsKept is how long failed logins are kept: longer than any
// rate-limit window.
const loginAttemptsKept = 24 * time.Hour

// RecordLoginFailure records a failed login for an email and an IP, and
// prunes failures older than a day.
func (s *Store) RecordLoginFailure(ctx context.Context, email, ip string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO login_attempts (email, ip, created_at) VALUES ($1, $2, $3)`, email, ip, now); err != nil {
		return fmt.Errorf("store: record login failure: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_attempts WHERE created_at < $1`, now.Add(-loginAttemptsKept)); err != nil {
		return fmt.Errorf("store: prune login attempts: %w", err)
	}
	return nil
}

// ClearLoginFailures forgets the failures of an email (after it logs in).
func (s *Store) ClearLoginFailures(ctx context.Context, email string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_attempts WHERE email = $1`, email); err != nil {
		return fmt.Errorf("store: clear login failures: %w", err)
	}
	return nil
}

// LoginLimit is a rate limit: at most Max failures within Window.
type LoginLimit struct {
	Max    int
	Window time.Duration
}

// LoginBlockedUntil answers when logins for this email or from this IP are
// allowed again: the zero time when they are allowed now. A key is blocked
// while it has Max failures within Window; it is unblocked when the Max-th
// newest of them leaves the window.
func (s *Store) LoginBlockedUntil(ctx context.Context, email, ip string, perEmail, perIP LoginLimit, now time.Time) (time.Time, error) {
	var until time.Time
	for _, q := range []struct {
		col, val string
		lim      LoginLimit
	}{{"email", email, perEmail}, {"ip", ip, perIP}} {
		if q.lim.Max <= 0 {
			continue
		}
		var at time.Time
		err := s.db.GetContext(ctx, &at, `SELECT created_at FROM login_attempts
			WHERE `+q.col+` = $1 AND created_at > $2
			ORDER BY created_at DESC OFFSET $3 LIMIT 1`, q.val, now.Add(-q.lim.Window), q.lim.Max-1)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("store: login rate limit by %s: %w", q.col, err)
		}
		if end := at.Add(q.lim.Window); end.After(until) {
			until = end
		}
	}
	return until, nil
}
