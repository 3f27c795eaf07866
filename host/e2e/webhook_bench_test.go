//go:build bench

package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// TestBenchWebhook measures POST /v1/hooks/{connection_id} through the real
// host binary and the real Shopify connector (against the Shopify fake):
// SYNCHRON_BENCH_HOOKS (200) signed customers/update deliveries, one at a
// time, each after the run of the previous one finished, so each queues a
// new run. It reports p50/p99 of the time from sending the hook to its
// answer (the run is queued before the answer) and to the run's started_at.
// Run with `go test -tags bench -run TestBenchWebhook -v ./host/e2e/`.
func TestBenchWebhook(t *testing.T) {
	hooks := envInt(t, "SYNCHRON_BENCH_HOOKS", 200)
	const token, secret = "wh-bench-token", "wh-bench-client-secret"
	shop := shopfake.New(shopfake.Options{Token: token})
	shopSrv := httptest.NewServer(shop)
	t.Cleanup(shopSrv.Close)

	dbURL := testdb.URL(t)
	h := startHost(t, dbURL, "SYNCHRON_SCHEDULER=off", "SYNCHRON_LOG_LEVEL=warn")
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text, updated_at timestamptz)`)

	tok := h.signup(t, "wh-bench@example.com")
	conn := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "shopify", "name": "Shop",
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": token, "client_secret": secret, "base_url": shopSrv.URL},
	})
	connID, _ := conn["id"].(string)
	dst := pgConnection(t, h, tok, "bench target", appURL, "contacts", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name": "webhook bench", "source": map[string]any{"connection_id": connID, "object": "customers"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"}, {"source": "id", "target": "source_id"},
		},
		"interval_seconds": 3600,
	})
	wfID, _ := wf["id"].(string)

	var queued, started []time.Duration
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range hooks {
		body := []byte(fmt.Sprintf(`{"id": %d, "admin_graphql_api_id": "gid://shopify/Customer/%d", "email": "c%d@example.com",
			"first_name": "C", "last_name": "Bench", "updated_at": "2026-11-27T05:00:00Z"}`, 1000+i, 1000+i, i))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.baseURL+"/v1/hooks/"+connID, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Shopify-Topic", "customers/update")
		req.Header.Set("X-Shopify-Webhook-Id", fmt.Sprintf("bench-%d", i))
		sent := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("hook %d: %v", i, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered := time.Since(sent)
		cancel()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("hook %d = %d: %s", i, resp.StatusCode, raw)
		}
		var run struct {
			ID        string    `db:"id"`
			StartedAt time.Time `db:"started_at"`
		}
		// The run this hook queued: the newest webhook run of the workflow.
		var runID string
		if err := db.Get(&runID, `SELECT id FROM runs WHERE workflow_id = $1 AND trigger = 'webhook' ORDER BY created_at DESC LIMIT 1`, wfID); err != nil {
			t.Fatalf("hook %d queued no run: %v", i, err)
		}
		final := h.waitRun(t, tok, runID, time.Minute)
		if final["status"] == "failed" {
			t.Fatalf("run %s failed: %v", runID, final)
		}
		if err := db.Get(&run, `SELECT id, started_at FROM runs WHERE id = $1`, runID); err != nil {
			t.Fatal(err)
		}
		queued = append(queued, answered)
		started = append(started, run.StartedAt.Sub(sent))
	}
	var webhookRuns int
	if err := db.Get(&webhookRuns, `SELECT count(*) FROM runs WHERE workflow_id = $1 AND trigger = 'webhook'`, wfID); err != nil {
		t.Fatal(err)
	}
	if webhookRuns != hooks {
		t.Fatalf("%d webhook runs for %d hooks", webhookRuns, hooks)
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[int(p*float64(len(s)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("%d hooks: hook -> run queued (answer received) p50 %v p99 %v max %v; hook -> run started p50 %v p99 %v max %v",
		hooks, pct(queued, 0.5), pct(queued, 0.99), pct(queued, 1), pct(started, 0.5), pct(started, 0.99), pct(started, 1))
}
