//go:build bench

package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// TestBenchOneWay measures a one-way run of sample contacts (100,000, or
// SYNCHRON_BENCH_RECORDS) into a PostgreSQL table through the real host and
// both connector subprocesses: records/s from the run's own timing, and the
// host's peak RSS (VmHWM). Running it at 100k and 1M shows memory stays flat.
// Run with `make bench` (go test -tags bench -run TestBench ./host/e2e).
func TestBenchOneWay(t *testing.T) {
	total := 100000
	if v := os.Getenv("SYNCHRON_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SYNCHRON_BENCH_RECORDS=%q is not a positive number", v)
		}
		total = n
	}
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, phone text,
		company text, source_id text, updated_at timestamptz)`)

	tok := h.signup(t, "bench@example.com")
	srcM := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sample", "name": "bench", "config": map[string]any{"count": total, "seed": 1},
	})
	src, _ := srcM["id"].(string)
	dst := pgConnection(t, h, tok, "bench target", appURL, "contacts", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name": "bench", "source": map[string]any{"connection_id": src, "object": "contacts"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"}, {"source": "phone", "target": "phone"},
			{"source": "company", "target": "company"}, {"source": "id", "target": "source_id"},
		},
		"interval_seconds": 900,
	})
	wfID, _ := wf["id"].(string)
	r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
	runID, _ := r["id"].(string)
	run := h.waitRun(t, tok, runID, 30*time.Minute)
	if c := counts(t, run); run["status"] != "succeeded" || c["created"] != total {
		t.Fatalf("bench run = %v", run)
	}
	started, _ := time.Parse(time.RFC3339Nano, run["started_at"].(string))
	finished, _ := time.Parse(time.RFC3339Nano, run["finished_at"].(string))
	secs := finished.Sub(started).Seconds()
	rss := peakRSSKiB(t, h.cmd.Process.Pid)
	t.Logf("BENCH one_way_plugins records=%d seconds=%.2f records_per_s=%.0f host_peak_rss_mib=%.1f",
		total, secs, float64(total)/secs, float64(rss)/1024)
}

func peakRSSKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
