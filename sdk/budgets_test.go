package sdk_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// checkBudget is the plugin side of TestAttachBudgetsProcess: three takes
// of a budget of 2 per hour from the host's authority, reported as
// warnings ("granted" or "wait").
func checkBudget(ctx context.Context) (*sdk.CheckResponse, error) {
	auth := sdk.BudgetAuthorityFrom(ctx)
	if auth == nil {
		return &sdk.CheckResponse{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "no budgets attached", "")}}, nil
	}
	limit := sdk.WindowLimit(2, time.Hour, 0)
	var out sdk.Diagnostics
	for range 3 {
		g, err := auth.TryTake(ctx, "proc:key", limit, 1)
		if err != nil {
			return nil, err
		}
		what := "granted"
		if !g.Granted() {
			what = "wait"
		}
		out = append(out, sdk.Diagnostic{Severity: sdk.SeverityWarning, Summary: what})
	}
	if err := auth.Observe(ctx, "proc:key", limit, sdk.Observation{RetryAfter: time.Minute}); err != nil {
		return nil, err
	}
	return &sdk.CheckResponse{Diagnostics: out}, nil
}

// countingAuthority counts the calls reaching the host's authority.
type countingAuthority struct {
	*sdk.LocalBudgets
	mu             sync.Mutex
	takes, observe int
}

func (c *countingAuthority) TryTake(ctx context.Context, key string, limit sdk.Limit, cost float64) (sdk.Grant, error) {
	c.mu.Lock()
	c.takes++
	c.mu.Unlock()
	return c.LocalBudgets.TryTake(ctx, key, limit, cost)
}

func (c *countingAuthority) Observe(ctx context.Context, key string, limit sdk.Limit, obs sdk.Observation) error {
	c.mu.Lock()
	c.observe++
	c.mu.Unlock()
	return c.LocalBudgets.Observe(ctx, key, limit, obs)
}

// A plugin process takes from the host's budgets once the host attached
// them over the go-plugin broker; before, it has none in its context.
func TestAttachBudgetsProcess(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, c := launch(t, nil)
	cfg := []byte(`"budget"`)
	resp, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || !resp.Diagnostics.HasError() {
		t.Fatalf("before attach: %v %+v", err, resp)
	}
	auth := &countingAuthority{LocalBudgets: sdk.NewLocalBudgets(nil)}
	if err := c.AttachBudgets(ctx, auth); err != nil {
		t.Fatalf("AttachBudgets: %v", err)
	}
	resp, err = c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("after attach: %v %+v", err, resp)
	}
	var got []string
	for _, d := range resp.Diagnostics {
		got = append(got, d.Summary)
	}
	if strings.Join(got, ",") != "granted,granted,wait" {
		t.Fatalf("takes answered %v, want granted,granted,wait", got)
	}
	st, ok := auth.State("proc:key")
	if !ok || len(st.Sent) != 2 || !st.BlockedUntil.After(time.Now()) || auth.takes != 3 || auth.observe != 1 {
		t.Fatalf("host state %+v (%v), %d takes, %d observes", st, ok, auth.takes, auth.observe)
	}
}

// An in-process test connection has no broker: AttachBudgets says so.
func TestAttachBudgetsUnsupported(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	conn, stop, err := sdk.ServeTestConn(ctx, newProcConn())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	err = conn.(*sdk.Client).AttachBudgets(ctx, sdk.NewLocalBudgets(nil))
	if !errors.Is(err, sdk.ErrBudgetsUnsupported) {
		t.Fatalf("AttachBudgets on a test connection: %v", err)
	}
}

// The local window grants max per interval, then says how long to wait;
// Budgets.Take waits that long on its sleep.
func TestLocalBudgetsWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept []time.Duration
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		now = now.Add(d)
		return ctx.Err()
	}
	b := sdk.NewBudgets(sdk.NewLocalBudgets(clock), sleep)
	limit := sdk.WindowLimit(3, time.Second, 100*time.Millisecond)
	for range 4 {
		if _, err := b.Take(context.Background(), "k", limit, 1); err != nil {
			t.Fatal(err)
		}
	}
	if len(slept) != 1 || slept[0] != 1100*time.Millisecond {
		t.Fatalf("waits %v, want [1.1s]", slept)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Take(ctx, "k", limit, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("take with a cancelled context: %v", err)
	}
	if _, err := b.Take(context.Background(), "bad", sdk.Limit{}, 1); err == nil {
		t.Fatal("an invalid limit was accepted")
	}
}

// Until a bucket's size is known one take at a time probes it; the others
// are woken by its answer.
func TestLocalBudgetsBucketProbe(t *testing.T) {
	t.Parallel()
	local := sdk.NewLocalBudgets(nil)
	b := sdk.NewBudgets(local, nil)
	limit := sdk.BucketLimit(1000, 50, 50)
	ctx := testCtx(t)
	first, err := b.Take(ctx, "shop", limit, 50)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	for range 3 {
		go func() {
			ticket, err := b.Take(ctx, "shop", limit, 100)
			if err == nil {
				err = b.Observe(ctx, "shop", limit, sdk.Observation{Ticket: ticket, Release: 100})
			}
			done <- err
		}()
	}
	if g, err := local.TryTake(ctx, "shop", limit, 1); err != nil || g.Granted() || !g.Probing || g.Wake == nil {
		t.Fatalf("a take while the bucket is probed: %+v %v", g, err)
	}
	if err := b.Observe(ctx, "shop", limit, sdk.Observation{Ticket: first, Release: 50, Max: 2000, Rate: 100, HasRemaining: true, Remaining: 1950}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	st, _ := local.State("shop")
	if !st.Known || st.Max != 2000 || st.Inflight != 0 || st.Avail > 1950-300+1 {
		t.Fatalf("state %+v", st)
	}
}
