package connectors

// Shared rate-limit budgets across hosts: two Managers (two hosts) on one
// database each run their own connector process against the same fake app,
// concurrently. With the database's budgets (the default) the app never
// answers 429 / THROTTLED; with each process keeping its own budget (the
// control) it does.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hubfake "github.com/synchron-io/synchron/plugins/hubspot/fake"
	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// buildConnector builds plugins/<name> from this source tree into dir as
// <name>/<version>/synchron-connector-<name> (prebuilt binaries could
// predate the shared budgets; go's build cache makes this quick).
func buildConnector(t testing.TB, dir, name string) {
	t.Helper()
	root, err := testdb.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "plugins", name, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name, strings.TrimSpace(string(raw)), "synchron-connector-"+name)
	cmd := exec.Command("go", "build", "-o", out, "./plugins/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugins/%s: %v\n%s", name, err, b)
	}
}

// startHosts starts n Managers (n hosts) on one database and plugin
// directory and returns a lease of connector name from each (released at
// the end): n connector processes.
func startHosts(t testing.TB, dir string, name string, n int, opts ...Option) []sdk.Connector {
	t.Helper()
	db := migratedDB(t)
	out := make([]sdk.Connector, n)
	for i := range out {
		e := &env{t: t, dir: dir, db: db, events: &recorder{}, logger: testLogger(t)}
		m := e.open(opts...)
		l, err := m.Acquire(testCtx(t), name)
		if err != nil {
			t.Fatalf("host %d: acquire %s: %v", i, name, err)
		}
		t.Cleanup(l.Release)
		out[i] = l
	}
	return out
}

func twoHosts(t testing.TB, dir string, name string, opts ...Option) [2]sdk.Connector {
	h := startHosts(t, dir, name, 2, opts...)
	return [2]sdk.Connector{h[0], h[1]}
}

// writeFromHosts runs workers writers per host, each writing batches
// batches of size records made by record(host, worker, batch, i). It fails
// on any error or rejected record, and returns how many records came back
// retryable (the engine would retry them in a later attempt).
func writeFromHosts(t testing.TB, hosts []sdk.Connector, cfg json.RawMessage, object string, workers, batches, size int, record func(h, w, b, i int) string) int {
	t.Helper()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	var retryable atomic.Int64
	errs := make(chan error, len(hosts)*workers)
	for h, conn := range hosts {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					recs := make([]sdk.WriteRecord, size)
					for i := range recs {
						recs[i] = sdk.WriteRecord{Ref: fmt.Sprintf("%d-%d-%d-%d", h, w, b, i), Fields: json.RawMessage(record(h, w, b, i))}
					}
					resp, err := conn.Write(ctx, sdk.WriteRequest{Config: cfg, Object: object, Records: recs})
					if err != nil {
						errs <- fmt.Errorf("host %d: %w", h, err)
						return
					}
					for _, r := range resp.Results {
						switch r.Status {
						case sdk.WriteOK:
						case sdk.WriteRetryable:
							retryable.Add(1)
						default:
							errs <- fmt.Errorf("host %d: record %s: %v %s", h, r.Ref, r.Status, r.Message)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(retryable.Load())
}

// hubspotTwoHosts writes 2 hosts x 2 workers x 8 batches of 25 contacts
// (64 batch requests) to a fake HubSpot allowing 10 requests per 500 ms and
// returns its counters.
func hubspotTwoHosts(t *testing.T, opts ...Option) hubfake.Stats {
	dir := t.TempDir()
	buildConnector(t, dir, "hubspot")
	srv := hubfake.New(hubfake.Options{RateLimit: 10, RateWindow: 500 * time.Millisecond})
	t.Cleanup(srv.Close)
	hosts := twoHosts(t, dir, "hubspot", opts...)
	cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
	// Each process learns HubSpot's limit from the headers of its first
	// answer (until then it assumes 100 per 10 s).
	for i, h := range hosts {
		resp, err := h.Check(testCtx(t), sdk.CheckRequest{Config: cfg})
		if err != nil || resp.Diagnostics.HasError() {
			t.Fatalf("host %d: check: %v %+v", i, err, resp)
		}
	}
	const workers, batches, size = 2, 8, 25
	retryable := writeFromHosts(t, hosts[:], cfg, "contacts", workers, batches, size, func(h, w, b, i int) string {
		return fmt.Sprintf(`{"email":"c-%d-%d-%d-%d@example.com","firstname":"C"}`, h, w, b, i)
	})
	if n, want := srv.Count("contacts"), 2*workers*batches*size; n != want || retryable != 0 {
		t.Fatalf("%d contacts stored (want %d), %d retryable", n, want, retryable)
	}
	return srv.Stats()
}

// Two hosts' HubSpot processes sharing the database's budget together stay
// within HubSpot's limit: no 429, every contact written.
func TestSharedBudgetTwoHostsHubSpot(t *testing.T) {
	t.Parallel()
	st := hubspotTwoHosts(t)
	if st.RateLimited != 0 {
		t.Fatalf("%d of %d requests answered 429 with the shared budget", st.RateLimited, st.Requests)
	}
	t.Logf("%d requests, no 429", st.Requests)
}

// The control: each process with its own budget, the two together exceed
// HubSpot's limit (they still write everything: a 429 waits and retries).
func TestSharedBudgetTwoHostsHubSpotControl(t *testing.T) {
	t.Parallel()
	st := hubspotTwoHosts(t, WithBudgets(nil))
	if st.RateLimited == 0 {
		t.Fatalf("no 429 in %d requests without the shared budget: the test does not prove anything", st.Requests)
	}
	t.Logf("%d of %d requests answered 429 without the shared budget", st.RateLimited, st.Requests)
}

// shopifyTwoHosts writes 2 hosts x 2 workers x 3 batches of 4 customers
// (13 points each) to a fake shop whose bucket holds 100 points restored at
// 200 per second, and returns how many queries it throttled and how many
// records came back retryable (throttled beyond the connector's retries).
func shopifyTwoHosts(t *testing.T, opts ...Option) (throttled, retryable int) {
	dir := t.TempDir()
	buildConnector(t, dir, "shopify")
	shop := shopfake.New(shopfake.Options{Token: "shpat_test", MaximumAvailable: 100, RestoreRate: 200})
	srv := httptest.NewServer(shop)
	t.Cleanup(srv.Close)
	hosts := twoHosts(t, dir, "shopify", opts...)
	cfg, _ := json.Marshal(map[string]string{"shop": "acme.myshopify.com", "access_token": "shpat_test", "base_url": srv.URL})
	for i, h := range hosts {
		resp, err := h.Check(testCtx(t), sdk.CheckRequest{Config: cfg})
		if err != nil || resp.Diagnostics.HasError() {
			t.Fatalf("host %d: check: %v %+v", i, err, resp)
		}
	}
	const workers, batches, size = 2, 3, 4
	retryable = writeFromHosts(t, hosts[:], cfg, "customers", workers, batches, size, func(h, w, b, i int) string {
		return fmt.Sprintf(`{"email":"s-%d-%d-%d-%d@example.com"}`, h, w, b, i)
	})
	if n, want := len(shop.Customers()), 2*workers*batches*size; n+retryable != want {
		t.Fatalf("%d customers stored and %d retryable, want %d", n, retryable, want)
	}
	return shop.Throttled(), retryable
}

// Two hosts' Shopify processes sharing the database's cost bucket are
// never throttled.
func TestSharedBudgetTwoHostsShopify(t *testing.T) {
	t.Parallel()
	if n, retryable := shopifyTwoHosts(t); n != 0 || retryable != 0 {
		t.Fatalf("the shop throttled %d queries with the shared bucket (%d records retryable)", n, retryable)
	}
}

// The control: each process with its own bucket, the shop throttles (and
// some records may outlast the connector's retries: retryable, for the
// engine's next attempt).
func TestSharedBudgetTwoHostsShopifyControl(t *testing.T) {
	t.Parallel()
	n, retryable := shopifyTwoHosts(t, WithBudgets(nil))
	if n == 0 {
		t.Fatal("no THROTTLED answer without the shared bucket: the test does not prove anything")
	}
	t.Logf("the shop throttled %d queries without the shared bucket (%d records retryable)", n, retryable)
}

// A process launched by a Manager whose budgets are on is attached to them:
// its budgets live in the database.
func TestBudgetsInDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	buildConnector(t, dir, "hubspot")
	srv := hubfake.New(hubfake.Options{})
	t.Cleanup(srv.Close)
	e := &env{t: t, dir: dir, db: migratedDB(t), events: &recorder{}, logger: testLogger(t)}
	m := e.open()
	l, err := m.Acquire(testCtx(t), "hubspot")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
	if _, err := l.Check(testCtx(t), sdk.CheckRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := e.db.SelectContext(context.Background(), &keys, `SELECT key FROM rate_budgets`); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "hubspot:") || strings.Contains(keys[0], "test-token") {
		t.Fatalf("budget keys %v, want one hubspot key without the token", keys)
	}
}
