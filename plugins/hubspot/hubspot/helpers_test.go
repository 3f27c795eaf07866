package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// fakeClock is a test clock; its sleep advances it instead of waiting and
// records each wait.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// env is a fake HubSpot and a connector sharing one fake clock.
type env struct {
	srv   *fake.Server
	clock *fakeClock
	conn  *Connector
}

func newEnv(t testing.TB, opts fake.Options) *env {
	t.Helper()
	clk := newClock()
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 1_000_000
	}
	if opts.SpecDir == "" {
		opts.SpecDir = fake.FindSpecDir()
	}
	srv := fake.New(opts)
	t.Cleanup(srv.Close)
	return &env{srv: srv, clock: clk, conn: New("0.1.0", "docs", WithClock(clk.Now, clk.Sleep))}
}

// config is a private-app config for the fake. Reads see every record at
// once (search_delay_seconds 0): tests of the delay set it themselves.
func (e *env) config(token string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"access_token": token, "base_url": e.srv.URL(), "search_delay_seconds": 0})
	return b
}

// readAll reads until done and returns the batches.
func readAll(t testing.TB, c sdk.Connector, req sdk.ReadRequest) []sdk.ReadBatch {
	t.Helper()
	var out []sdk.ReadBatch
	err := c.Read(context.Background(), req, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		if b.Diagnostics.HasError() {
			return fmt.Errorf("diagnostics: %s", b.Diagnostics.Error())
		}
		out = append(out, b)
		return nil
	}))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func contacts(n, from int) []map[string]string {
	out := make([]map[string]string, n)
	for i := range out {
		out[i] = map[string]string{"email": fmt.Sprintf("user%d@example.com", from+i), "firstname": fmt.Sprintf("U%d", from+i)}
	}
	return out
}
