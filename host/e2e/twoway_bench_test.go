//go:build bench

package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// TestBenchTwoWaySteadyState links 100,000 records (SYNCHRON_BENCH_RECORDS)
// between two PostgreSQL tables through the real host, then changes 1% on
// each side and measures one run: its time and its transactions, which must
// equal the changed records exactly (no echoes).
func TestBenchTwoWaySteadyState(t *testing.T) {
	total := envInt(t, "SYNCHRON_BENCH_RECORDS", 100000)
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	twoWayTables(t, app, total, 1, total) // the same records on both sides
	tok := h.signup(t, "bench2@example.com")
	wfID := twoWayWorkflow(t, h, tok, appURL, "ignore")

	timed := func(label string) (map[string]any, float64) {
		r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
		id, _ := r["id"].(string)
		run := h.waitRun(t, tok, id, 30*time.Minute)
		started, _ := time.Parse(time.RFC3339Nano, run["started_at"].(string))
		finished, _ := time.Parse(time.RFC3339Nano, run["finished_at"].(string))
		secs := finished.Sub(started).Seconds()
		t.Logf("BENCH two_way_%s records=%d seconds=%.2f counts=%v transactions=%v", label, total, secs, run["counts"], run["transactions"])
		return run, secs
	}
	if run, _ := timed("historical"); counts(t, run)["matched"] != total {
		t.Fatalf("historical sync = %v, want every record matched", run)
	}
	timed("echo") // the first run's writes come back once as echoes
	changed := total / 100
	execSQL(t, app, `UPDATE people SET first_name = 'S' || first_name, updated_at = clock_timestamp()
		WHERE email IN (SELECT 'p' || i || '@example.com' FROM generate_series(1, $1::int) i)`, changed)
	execSQL(t, app, `UPDATE contacts SET lastname = 'T' || lastname, updated_at = clock_timestamp()
		WHERE email IN (SELECT 'p' || i || '@example.com' FROM generate_series($1::int + 1, 2 * $1::int) i)`, changed)
	run, secs := timed("steady_1pct")
	if c := counts(t, run); c["transactions"] != 2*changed {
		t.Fatalf("steady-state run used %d transactions for %d changed records", c["transactions"], 2*changed)
	}
	t.Logf("BENCH two_way_steady_state linked=%d changed=%d seconds=%.2f transactions=%d", total, 2*changed, secs, 2*changed)
	if run, _ := timed("after"); counts(t, run)["transactions"] != 0 {
		t.Fatalf("run after the steady-state run bounced changes: %v", run)
	}
}
