package store_test

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// budgetPools opens n stores (connection pools, as n hosts would) on one
// migrated database and returns their budgets.
func budgetPools(t *testing.T, n int) []*store.Budgets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := testdb.URL(t)
	var out []*store.Budgets
	for i := range n {
		s, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if i == 0 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, s.Budgets())
	}
	return out
}

type grant struct {
	at   time.Time
	cost float64
}

// takeAll runs workers goroutines per pool, each taking cost units per
// grant until it got perWorker grants, waiting what the budget says.
func takeAll(t *testing.T, pools []*store.Budgets, workers, perWorker int, key string, limit sdk.Limit, cost float64, release bool) []grant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var grants []grant
	var wg sync.WaitGroup
	for _, b := range pools {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < perWorker; {
					g, err := b.TryTake(ctx, key, limit, cost)
					if err != nil {
						t.Error(err)
						return
					}
					if !g.Granted() {
						if err := sdk.SleepContext(ctx, g.Wait); err != nil {
							t.Error(err)
							return
						}
						continue
					}
					n++
					mu.Lock()
					grants = append(grants, grant{at: g.At, cost: cost})
					mu.Unlock()
					if release {
						if err := b.Observe(ctx, key, limit, sdk.Observation{Ticket: g.Ticket, Release: cost}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	sort.Slice(grants, func(i, j int) bool { return grants[i].at.Before(grants[j].at) })
	return grants
}

// Many goroutines on two pools (two hosts) never get more than max grants in
// any window of the interval.
func TestBudgetsWindowNeverExceeded(t *testing.T) {
	t.Parallel()
	pools := budgetPools(t, 2)
	const (
		max      = 20
		interval = 300 * time.Millisecond
	)
	limit := sdk.WindowLimit(max, interval, 0)
	grants := takeAll(t, pools, 6, 10, "test:window", limit, 1, false)
	if len(grants) != 2*6*10 {
		t.Fatalf("%d grants, want %d", len(grants), 2*6*10)
	}
	for i := range grants {
		n := 0
		for j := i; j < len(grants) && grants[j].at.Before(grants[i].at.Add(interval)); j++ {
			n++
		}
		if n > max {
			t.Fatalf("%d grants in the %v from %v (max %d)", n, interval, grants[i].at, max)
		}
	}
	// The budget was used: the 120 grants took about 5 intervals, not many more.
	if span := grants[len(grants)-1].at.Sub(grants[0].at); span > 12*interval {
		t.Errorf("120 grants at 20 per %v took %v", interval, span)
	}
}

// The bucket never grants more than its size plus what it restored.
func TestBudgetsBucketNeverNegative(t *testing.T) {
	t.Parallel()
	pools := budgetPools(t, 2)
	const (
		size = 100.0
		rate = 1000.0 // per second
		cost = 30.0
	)
	limit := sdk.BucketLimit(size, rate, 0)
	grants := takeAll(t, pools, 4, 8, "test:bucket", limit, cost, true)
	if len(grants) != 2*4*8 {
		t.Fatalf("%d grants, want %d", len(grants), 2*4*8)
	}
	for i := range grants {
		spent := 0.0
		for j := i; j < len(grants); j++ {
			spent += grants[j].cost
			allowed := size + rate*grants[j].at.Sub(grants[i].at).Seconds()
			if spent > allowed+1e-6 {
				t.Fatalf("%v granted from %v to %v, the bucket allows %v", spent, grants[i].at, grants[j].at, allowed)
			}
		}
	}
	st, err := pools[0].State(context.Background(), "test:bucket")
	if err != nil {
		t.Fatal(err)
	}
	if st.Avail < 0 || st.Inflight != 0 || st.Settled != int64(len(grants)) {
		t.Fatalf("state after the run: avail %v, inflight %v, settled %d", st.Avail, st.Inflight, st.Settled)
	}
}

// What the app says lowers the budget (and a 429 holds it), never raises it.
func TestBudgetsObserve(t *testing.T) {
	t.Parallel()
	b := budgetPools(t, 1)[0]
	ctx := context.Background()
	take := func(key string, limit sdk.Limit, cost float64) sdk.Grant {
		t.Helper()
		g, err := b.TryTake(ctx, key, limit, cost)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	observe := func(key string, limit sdk.Limit, obs sdk.Observation) {
		t.Helper()
		if err := b.Observe(ctx, key, limit, obs); err != nil {
			t.Fatal(err)
		}
	}

	// Window: 2 taken, the app says 3 remain of 10: 3 more, then wait.
	win := sdk.WindowLimit(10, time.Minute, 0)
	for range 2 {
		if g := take("w", win, 1); !g.Granted() {
			t.Fatal("window: a take of a fresh budget waits")
		}
	}
	observe("w", win, sdk.Observation{Max: 10, HasRemaining: true, Remaining: 3})
	observe("w", win, sdk.Observation{HasRemaining: true, Remaining: 9}) // stale: no raise
	for i := range 3 {
		if g := take("w", win, 1); !g.Granted() {
			t.Fatalf("window: take %d of the 3 remaining waits", i)
		}
	}
	if g := take("w", win, 1); g.Granted() || g.Wait < 50*time.Second {
		t.Fatalf("window: take beyond what the app said remains: %+v", g)
	}

	// Window: the app's max and interval replace the defaults.
	observe("w2", win, sdk.Observation{Max: 1, Interval: time.Hour})
	take("w2", win, 1)
	if g := take("w2", win, 1); g.Granted() || g.Wait < 59*time.Minute {
		t.Fatalf("window: the app's 1 per hour not applied: %+v", g)
	}

	// Retry-After holds every take.
	observe("w3", win, sdk.Observation{RetryAfter: 30 * time.Second})
	if g := take("w3", win, 1); g.Granted() || g.Wait < 29*time.Second {
		t.Fatalf("window: Retry-After not applied: %+v", g)
	}

	// Bucket: the shop's newest figure is taken as is.
	bk := sdk.BucketLimit(1000, 1e-3, 0)
	g := take("b", bk, 100)
	observe("b", bk, sdk.Observation{Ticket: g.Ticket, Release: 100, Max: 1000, Rate: 1e-3, HasRemaining: true, Remaining: 200})
	st, err := b.State(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(st.Avail-200) > 1 {
		t.Fatalf("bucket: avail %v after the shop said 200", st.Avail)
	}
	if g := take("b", bk, 300); g.Granted() {
		t.Fatal("bucket: 300 granted from 200")
	}
	// An older figure (another answer came since) never raises it.
	g1 := take("b", bk, 50)
	g2 := take("b", bk, 50)
	observe("b", bk, sdk.Observation{Ticket: g2.Ticket, Release: 50, Max: 1000, Rate: 1e-3, HasRemaining: true, Remaining: 120})
	observe("b", bk, sdk.Observation{Ticket: g1.Ticket, Release: 50, Max: 1000, Rate: 1e-3, HasRemaining: true, Remaining: 900})
	if st, _ := b.State(ctx, "b"); st.Avail > 101 || st.Inflight != 0 {
		t.Fatalf("bucket: avail %v inflight %v after an older figure", st.Avail, st.Inflight)
	}

	// Probe: until the size is known, one take at a time.
	pb := sdk.BucketLimit(1000, 50, 50)
	first := take("p", pb, 50)
	if !first.Granted() {
		t.Fatal("probe: the first take waits")
	}
	if g := take("p", pb, 10); g.Granted() || !g.Probing {
		t.Fatalf("probe: a second take while probing: %+v", g)
	}
	observe("p", pb, sdk.Observation{Ticket: first.Ticket, Release: 50, Max: 2000, Rate: 100, HasRemaining: true, Remaining: 1950})
	if g := take("p", pb, 1500); !g.Granted() {
		t.Fatalf("probe: after the size is known: %+v", g)
	}

	if _, err := b.TryTake(ctx, "bad", sdk.Limit{}, 1); err == nil {
		t.Fatal("an invalid limit created a budget")
	}
	if _, err := b.State(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("state of a budget never created: %v", err)
	}
}

// Budgets idle for longer than BudgetIdleExpiry are dropped when a new key
// is created (rotated tokens do not pile up); used ones stay.
func TestBudgetsIdleArePruned(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := testdb.URL(t)
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db := sqlx.MustOpen("postgres", url)
	t.Cleanup(func() { db.Close() })
	b := s.Budgets()
	limit := sdk.WindowLimit(10, time.Second, 0)
	for _, key := range []string{"idle", "busy"} {
		if _, err := b.TryTake(ctx, key, limit, 1); err != nil {
			t.Fatal(err)
		}
	}
	db.MustExec(`UPDATE rate_budgets SET updated_at = now() - $1::interval WHERE key = 'idle'`, (store.BudgetIdleExpiry + time.Hour).String())
	if _, err := b.State(ctx, "idle"); err != nil {
		t.Fatalf("idle budget gone before a new key: %v", err)
	}
	if _, err := b.TryTake(ctx, "new", limit, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.State(ctx, "idle"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("idle budget after a new key: %v, want it pruned", err)
	}
	for _, key := range []string{"busy", "new"} {
		if _, err := b.State(ctx, key); err != nil {
			t.Errorf("budget %q: %v, want it kept", key, err)
		}
	}
}
