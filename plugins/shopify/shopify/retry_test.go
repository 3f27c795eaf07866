package shopify

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
)

// A 429 waits, it never fails a run: a read meets many more throttled
// answers (THROTTLED and HTTP 429) than the retries of failures, and reads
// everything.
func TestReadWaitsOutThrottling(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seedCustomers(5, func(int) time.Time { return t0 })
	for range 5 * maxFailures {
		e.shop.Inject(fake.Fault{Throttle: true}, fake.Fault{Status: 429})
	}
	start := e.clock.Now()
	if ids, _ := readAll(t, e, "customers", 2, nil, 0); len(ids) != 5 {
		t.Fatalf("read %d, want 5", len(ids))
	}
	if e.clock.Now().Sub(start) <= 0 {
		t.Fatal("throttled answers were resent without waiting")
	}
	// Throttling stops when the call's context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.shop.Inject(fake.Fault{Throttle: true})
	err := e.conn.Read(ctx, sdk.ReadRequest{Config: e.config, Object: "customers"}, sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error { return nil }))
	if err == nil {
		t.Fatal("a cancelled read succeeded")
	}
}

// A shop that cannot be reached: Read returns sdk.Retryable (the host resumes
// the run later), Check still names the attribute at fault.
func TestUnreachableShop(t *testing.T) {
	e := newEnv(t, envOpts{})
	dead := httptest.NewServer(nil)
	dead.Close()
	cfg := e.cfg(map[string]any{"base_url": dead.URL})
	var diags sdk.Diagnostics
	err := e.conn.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: "customers"}, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		diags = append(diags, b.Diagnostics...)
		return nil
	}))
	if _, ok := sdk.IsRetryable(err); !ok || len(diags) > 0 {
		t.Fatalf("Read of an unreachable shop: %v, diagnostics %v; want an sdk.Retryable error", err, diags)
	}
	resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: cfg})
	if err != nil || !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != "base_url" {
		t.Fatalf("Check of an unreachable shop: %v %+v, want an error on base_url", err, resp)
	}
}
