package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// IdempotencyKey is what a create request with an Idempotency-Key header
// answered (Status 0 while the first request is still in flight).
type IdempotencyKey struct {
	Method      string    `db:"method"`
	Path        string    `db:"path"`
	RequestHash []byte    `db:"request_hash"`
	Status      int       `db:"status"`
	Body        []byte    `db:"body"`
	CreatedAt   time.Time `db:"created_at"`
}

// ReserveIdempotencyKey claims a key for a request. It answers reserved=true
// when this request is the first with the key (or the key's earlier use is
// older than expireBefore and was forgotten); otherwise it returns what is
// stored for the key.
func (s *Store) ReserveIdempotencyKey(ctx context.Context, accountID, key, method, path string, requestHash []byte, expireBefore time.Time) (IdempotencyKey, bool, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND created_at < $3`,
		accountID, key, expireBefore); err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("store: expire idempotency key: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO idempotency_keys (account_id, key, method, path, request_hash)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, key) DO NOTHING`, accountID, key, method, path, requestHash)
	if err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("store: reserve idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("store: reserve idempotency key: %w", err)
	} else if n == 1 {
		return IdempotencyKey{}, true, nil
	}
	var k IdempotencyKey
	err = s.db.GetContext(ctx, &k, `SELECT method, path, request_hash, status, body, created_at
		FROM idempotency_keys WHERE account_id = $1 AND key = $2`, accountID, key)
	if errors.Is(err, sql.ErrNoRows) {
		// Released between our insert and select: the caller may try again.
		return IdempotencyKey{}, false, fmt.Errorf("store: idempotency key: %w", ErrConflict)
	}
	if err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("store: read idempotency key: %w", err)
	}
	return k, false, nil
}

// CompleteIdempotencyKey stores the answer of the request that reserved key.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, accountID, key string, status int, body []byte) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE idempotency_keys SET status = $3, body = $4 WHERE account_id = $1 AND key = $2`,
		accountID, key, status, body); err != nil {
		return fmt.Errorf("store: complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a reserved key whose request failed without
// an answer worth replaying, so the client may retry with it.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, accountID, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND status = 0`,
		accountID, key); err != nil {
		return fmt.Errorf("store: release idempotency key: %w", err)
	}
	return nil
}
