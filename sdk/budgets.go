package sdk

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// BudgetAuthority decides the rate-limit budgets of app credentials. TryTake
// never blocks for long: it grants cost units of the key's budget or says
// how long to wait. Keys name a credential and a limit, e.g.
// "hubspot:<sha256 of the token>:requests"; they must not hold secrets.
//
// LocalBudgets is the in-process implementation. A connector served by a
// host that shares budgets between its hosts gets the host's implementation
// in the context of every call (BudgetAuthorityFrom).
type BudgetAuthority interface {
	TryTake(ctx context.Context, key string, limit Limit, cost float64) (Grant, error)
	Observe(ctx context.Context, key string, limit Limit, obs Observation) error
}

type budgetsCtxKey struct{}

// WithBudgetAuthority returns ctx carrying a. The SDK's server puts the
// host's authority in the context of every connector call once the host
// attached it.
func WithBudgetAuthority(ctx context.Context, a BudgetAuthority) context.Context {
	return context.WithValue(ctx, budgetsCtxKey{}, a)
}

// BudgetAuthorityFrom returns the authority ctx carries, or nil (a
// connector not served by a host that shares budgets, or called in
// process by a test).
func BudgetAuthorityFrom(ctx context.Context) BudgetAuthority {
	a, _ := ctx.Value(budgetsCtxKey{}).(BudgetAuthority)
	return a
}

// Budgets is what a connector calls around each request to an app: Take
// before sending (it waits until the units are granted), Observe with what
// the answer said.
type Budgets struct {
	auth  BudgetAuthority
	sleep func(context.Context, time.Duration) error
}

// NewBudgets returns Budgets deciding with auth and waiting with sleep
// (nil: a timer honouring ctx).
func NewBudgets(auth BudgetAuthority, sleep func(context.Context, time.Duration) error) *Budgets {
	if sleep == nil {
		sleep = SleepContext
	}
	return &Budgets{auth: auth, sleep: sleep}
}

// Authority returns the authority b decides with.
func (b *Budgets) Authority() BudgetAuthority { return b.auth }

// Take waits until cost units of key's budget are granted and returns the
// grant's ticket (pass it to Observe for a bucket), or ctx's error.
func (b *Budgets) Take(ctx context.Context, key string, limit Limit, cost float64) (int64, error) {
	for {
		g, err := b.auth.TryTake(ctx, key, limit, cost)
		if err != nil {
			return 0, fmt.Errorf("sdk: take %s budget %q: %w", limit.Model, key, err)
		}
		if g.Granted() {
			return g.Ticket, nil
		}
		if g.Wake != nil {
			t := time.NewTimer(g.Wait)
			select {
			case <-g.Wake:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			continue
		}
		if err := b.sleep(ctx, g.Wait); err != nil {
			return 0, err
		}
	}
}

// Observe passes what the app said about key's budget.
func (b *Budgets) Observe(ctx context.Context, key string, limit Limit, obs Observation) error {
	if err := b.auth.Observe(ctx, key, limit, obs); err != nil {
		return fmt.Errorf("sdk: observe %s budget %q: %w", limit.Model, key, err)
	}
	return nil
}

// SleepContext waits d or until ctx is done.
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// LocalBudgets keeps budgets in the process: the budgets of a connector
// not attached to a host that shares them (every call of the process with
// one credential still shares one budget).
type LocalBudgets struct {
	now func() time.Time

	mu     sync.Mutex
	states map[string]*localBudget
}

type localBudget struct {
	BudgetState
	// wake is closed when a bucket's probing Takes should ask again.
	wake chan struct{}
}

// NewLocalBudgets returns empty in-process budgets on the clock now (nil:
// time.Now).
func NewLocalBudgets(now func() time.Time) *LocalBudgets {
	if now == nil {
		now = time.Now
	}
	return &LocalBudgets{now: now, states: map[string]*localBudget{}}
}

var _ BudgetAuthority = (*LocalBudgets)(nil)

func (l *LocalBudgets) get(key string, limit Limit, now time.Time) (*localBudget, error) {
	b := l.states[key]
	if b == nil {
		if err := limit.Validate(); err != nil {
			return nil, err
		}
		b = &localBudget{BudgetState: NewBudgetState(limit, now), wake: make(chan struct{})}
		l.states[key] = b
	}
	return b, nil
}

// TryTake implements BudgetAuthority.
func (l *LocalBudgets) TryTake(_ context.Context, key string, limit Limit, cost float64) (Grant, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, err := l.get(key, limit, now)
	if err != nil {
		return Grant{}, err
	}
	g := b.Take(now, cost)
	if g.Probing {
		g.Wake = b.wake
		// The answer wakes a probing Take; the wait only bounds it in case
		// the probe is never answered (its reservation goes stale).
		g.Wait = staleInflight + time.Millisecond
	}
	return g, nil
}

// Observe implements BudgetAuthority.
func (l *LocalBudgets) Observe(_ context.Context, key string, limit Limit, obs Observation) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, err := l.get(key, limit, now)
	if err != nil {
		return err
	}
	if b.BudgetState.Observe(now, obs) {
		close(b.wake)
		b.wake = make(chan struct{})
	}
	return nil
}

// State returns a copy of key's state, if it exists (tests, sizes).
func (l *LocalBudgets) State(key string) (BudgetState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.states[key]
	if b == nil {
		return BudgetState{}, false
	}
	s := b.BudgetState
	s.Sent = append([]time.Time(nil), s.Sent...)
	return s, true
}
