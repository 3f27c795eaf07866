package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk"
)

// Budgets is the host's sdk.BudgetAuthority: the rate-limit budgets of the
// apps' credentials in the rate_budgets table, shared by every host of the
// installation (and so by every connector process using one credential).
//
// Each TryTake and Observe is one short transaction: the key's row is
// locked (SELECT ... FOR UPDATE), the database's clock is read after the
// lock is held, sdk.BudgetState applies the algorithm, and the new state is
// written before the lock is released. Decisions on one key are therefore
// serialised, in the order of their (non-decreasing) clock readings, on one
// clock: a window grants a unit only while fewer than max grants lie in the
// last interval+margin, so no interval ever holds more than max grants,
// whatever the number of hosts.
type Budgets struct {
	db *sqlx.DB
}

// BudgetIdleExpiry is how long an unused budget is kept: far longer than
// any app's window (HubSpot 10 s) or the time a bucket takes to refill.
const BudgetIdleExpiry = 24 * time.Hour

var _ sdk.BudgetAuthority = (*Budgets)(nil)

// NewBudgets returns the budgets stored in db (migrated by Store.Migrate).
func NewBudgets(db *sqlx.DB) *Budgets { return &Budgets{db: db} }

// Budgets returns the rate-limit budgets of the store's database.
func (s *Store) Budgets() *Budgets { return NewBudgets(s.db) }

// TryTake implements sdk.BudgetAuthority. A refused Take writes nothing.
func (b *Budgets) TryTake(ctx context.Context, key string, limit sdk.Limit, cost float64) (sdk.Grant, error) {
	var g sdk.Grant
	err := b.apply(ctx, key, limit, func(st *sdk.BudgetState, now time.Time) bool {
		g = st.Take(now, cost)
		if g.Probing {
			g.Wake = nil // no one to close it: ask again after Wait
		}
		return g.Granted()
	})
	if err != nil {
		return sdk.Grant{}, fmt.Errorf("store: take budget: %w", err)
	}
	return g, nil
}

// Observe implements sdk.BudgetAuthority.
func (b *Budgets) Observe(ctx context.Context, key string, limit sdk.Limit, obs sdk.Observation) error {
	err := b.apply(ctx, key, limit, func(st *sdk.BudgetState, now time.Time) bool {
		st.Observe(now, obs)
		return true
	})
	if err != nil {
		return fmt.Errorf("store: observe budget: %w", err)
	}
	return nil
}

// State returns key's stored state (tests, operators).
func (b *Budgets) State(ctx context.Context, key string) (sdk.BudgetState, error) {
	var raw []byte
	err := b.db.QueryRowContext(ctx, `SELECT state FROM rate_budgets WHERE key = $1`, key).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return sdk.BudgetState{}, ErrNotFound
	}
	if err != nil {
		return sdk.BudgetState{}, fmt.Errorf("store: budget state: %w", err)
	}
	var st sdk.BudgetState
	if err := json.Unmarshal(raw, &st); err != nil {
		return sdk.BudgetState{}, fmt.Errorf("store: budget state %q: %w", key, err)
	}
	return st, nil
}

// apply runs fn on key's state under the row lock, at the database's time,
// creating the budget from limit when it does not exist, and stores the
// state when fn reports a change.
func (b *Budgets) apply(ctx context.Context, key string, limit sdk.Limit, fn func(st *sdk.BudgetState, now time.Time) bool) error {
	if key == "" {
		return errors.New("empty budget key")
	}
	for attempt := 0; ; attempt++ {
		done, err := b.applyOnce(ctx, key, limit, fn)
		if err != nil || done {
			return err
		}
		if attempt >= 2 {
			return fmt.Errorf("budget %q: could not create or lock its row", key)
		}
	}
}

func (b *Budgets) applyOnce(ctx context.Context, key string, limit sdk.Limit, fn func(st *sdk.BudgetState, now time.Time) bool) (bool, error) {
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var raw []byte
	err = tx.QueryRowContext(ctx, `SELECT state FROM rate_budgets WHERE key = $1 FOR UPDATE`, key).Scan(&raw)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("lock %q: %w", key, err)
	}
	// The clock is read with the row locked: decisions on a key are made in
	// the order of their clock readings.
	var now time.Time
	if err := tx.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return false, fmt.Errorf("read the clock: %w", err)
	}
	var st sdk.BudgetState
	if exists {
		if err := json.Unmarshal(raw, &st); err != nil {
			return false, fmt.Errorf("decode %q: %w", key, err)
		}
	} else {
		if err := limit.Validate(); err != nil {
			return false, err
		}
		st = sdk.NewBudgetState(limit, now)
	}
	changed := fn(&st, now)
	if !changed && exists {
		return true, tx.Commit()
	}
	enc, err := json.Marshal(st)
	if err != nil {
		return false, fmt.Errorf("encode %q: %w", key, err)
	}
	if exists {
		if _, err := tx.ExecContext(ctx, `UPDATE rate_budgets SET state = $2, updated_at = $3 WHERE key = $1`, key, enc, now); err != nil {
			return false, fmt.Errorf("update %q: %w", key, err)
		}
	} else {
		res, err := tx.ExecContext(ctx, `INSERT INTO rate_budgets (key, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`, key, enc, now)
		if err != nil {
			return false, fmt.Errorf("create %q: %w", key, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			// Another host created it meanwhile: start over on its row.
			return false, nil
		}
		// A new key is rare (a new credential; HubSpot OAuth tokens rotate
		// every 30 minutes): drop budgets idle for longer than any window or
		// refill, so the table does not grow with every rotated token.
		if _, err := tx.ExecContext(ctx, `DELETE FROM rate_budgets WHERE updated_at < $1`, now.Add(-BudgetIdleExpiry)); err != nil {
			return false, fmt.Errorf("prune idle budgets: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
