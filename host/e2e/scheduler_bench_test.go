//go:build bench

package e2e_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/synchron-io/synchron/sdk/testdb"
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive number", name, v)
	}
	return n
}

// cpuSeconds is the user+system CPU time of a process so far (0 when it is
// gone).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	// After the ")": state ppid ...; utime and stime are stat fields 14, 15.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// machineCPU is the busy and total CPU time of the whole machine so far
// (/proc/stat, all cores), in USER_HZ ticks.
func machineCPU(t *testing.T) (busy, total float64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// backendCPU is the CPU time so far of each PostgreSQL backend serving the
// databases of the URLs, by pid.
func backendCPU(t *testing.T, db *sqlx.DB, urls ...string) map[int]float64 {
	t.Helper()
	var names []string
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimPrefix(pu.Path, "/"))
	}
	var pids []int
	if err := db.Select(&pids, `SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()`,
		pq.Array(names)); err != nil {
		t.Fatal(err)
	}
	out := map[int]float64{}
	for _, pid := range pids {
		out[pid] = cpuSeconds(pid)
	}
	return out
}

// TestBenchScheduler measures the scheduler and executor at capacity: 10,000
// (SYNCHRON_BENCH_WORKFLOWS) active workflows on a 60s interval, their due
// times spread over the minute, on one host with SYNCHRON_BENCH_WORKERS (16)
// workers, for SYNCHRON_BENCH_MINUTES (3) minutes. Each workflow reads a
// sample source of one record into a PostgreSQL table from the checkpoint
// after that record, so every run reads nothing: the figures are the per-run
// overhead (scheduling, claim, connector calls, bookkeeping).
// It reports runs started per second, lag (started_at - scheduled_for)
// p50/p99/max, and how many workflows ran in each minute.
// Run with `go test -tags bench -run TestBenchScheduler -v ./host/e2e/`.
func TestBenchScheduler(t *testing.T) {
	workflows := envInt(t, "SYNCHRON_BENCH_WORKFLOWS", 10000)
	workers := envInt(t, "SYNCHRON_BENCH_WORKERS", 16)
	minutes := envInt(t, "SYNCHRON_BENCH_MINUTES", 3)

	dbURL := testdb.URL(t)
	h := startHost(t, dbURL, "SYNCHRON_WORKERS="+strconv.Itoa(workers), "SYNCHRON_LOG_LEVEL=warn")
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text, updated_at timestamptz)`)

	tok := h.signup(t, "sched-bench@example.com")
	execSQL(t, db, `UPDATE accounts SET plan = 'enterprise'`)
	srcM := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sample", "name": "one record", "config": map[string]any{"count": 1, "seed": 1},
	})
	src, _ := srcM["id"].(string)
	dst := pgConnection(t, h, tok, "bench target", appURL, "contacts", "email")
	// One workflow through the API (validated mapping, encrypted
	// connections), paused at once; the others are copies made in SQL.
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name": "bench", "source": map[string]any{"connection_id": src, "object": "contacts"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"}, {"source": "id", "target": "source_id"},
		},
		"interval_seconds": 60,
	})
	tmpl, _ := wf["id"].(string)
	// Its first run writes the record; the copies start from its checkpoint,
	// so every measured run reads nothing: the figures are the per-run cost.
	r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+tmpl+"/run", tok, nil)
	runID, _ := r["id"].(string)
	if run := h.waitRun(t, tok, runID, time.Minute); run["status"] != "succeeded" {
		t.Fatalf("first run = %v", run)
	}
	h.must(t, http.StatusOK, "POST", "/v1/workflows/"+tmpl+"/pause", tok, nil)

	// Due times spread evenly over one minute, from 5s from now.
	var t0 time.Time
	if err := db.Get(&t0, `SELECT date_trunc('second', now()) + interval '5 seconds'`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	execSQL(t, db, `INSERT INTO workflows (id, account_id, name, source_connection_id, source_object, target_connection_id,
			target_object, direction, mapping, interval_seconds, status, next_run_at, cursor, created_by)
		SELECT 'wf_bench' || lpad(i::text, 6, '0'), account_id, name || ' ' || i, source_connection_id, source_object,
			target_connection_id, target_object, direction, mapping, 60, 'active',
			$2::timestamptz + (i * 60.0 / $3) * interval '1 second', cursor, created_by
		FROM workflows, generate_series(0, $3 - 1) i WHERE id = $1`, tmpl, t0, workflows)
	t.Logf("created %d workflows in %v; due from %s", workflows, time.Since(start).Round(time.Millisecond), t0.Format(time.RFC3339))

	cpu0, wall0 := cpuSeconds(h.cmd.Process.Pid), time.Now()
	busy0, total0 := machineCPU(t)
	pg0 := backendCPU(t, db, dbURL, appURL)
	xacts := func() (n float64) {
		t.Helper()
		if err := db.Get(&n, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	xact0 := xacts()
	// The measurement window: every due time of `minutes` minutes, plus
	// 15s for the last ones to start.
	end := t0.Add(time.Duration(minutes)*time.Minute + 15*time.Second)
	time.Sleep(time.Until(end)) // the benchmark's duration, not synchronisation
	hostCPU := (cpuSeconds(h.cmd.Process.Pid) - cpu0) / time.Since(wall0).Seconds()
	busy1, total1 := machineCPU(t)
	xact1 := xacts()
	pgCPU := 0.0
	for pid, c := range backendCPU(t, db, dbURL, appURL) {
		pgCPU += (c - pg0[pid]) / time.Since(wall0).Seconds()
	}
	machineBusy := (busy1 - busy0) / (total1 - total0)
	connCPU := map[string]float64{}
	for _, name := range []string{"sample", "postgres"} {
		for _, pid := range connectorPIDs(t, h.cmd.Process.Pid, name) {
			connCPU[name] += cpuSeconds(pid) / time.Since(wall0).Seconds()
		}
	}

	windowEnd := t0.Add(time.Duration(minutes) * time.Minute)
	var s struct {
		Runs        int     `db:"runs"`
		Started     int     `db:"started"`
		Succeeded   int     `db:"succeeded"`
		P50         float64 `db:"p50"`
		P99         float64 `db:"p99"`
		Max         float64 `db:"max"`
		EnqueueP50  float64 `db:"enqueue_p50"`
		EnqueueP99  float64 `db:"enqueue_p99"`
		PickupP50   float64 `db:"pickup_p50"`
		PickupP99   float64 `db:"pickup_p99"`
		DurationP50 float64 `db:"duration_p50"`
		DurationP99 float64 `db:"duration_p99"`
	}
	if err := db.Get(&s, `SELECT count(*) AS runs, count(started_at) AS started,
			count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - scheduled_for)), -1) AS p50,
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - scheduled_for)), -1) AS p99,
			COALESCE(max(extract(epoch FROM started_at - scheduled_for))::float8, -1) AS max,
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - scheduled_for)), -1) AS enqueue_p50,
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - scheduled_for)), -1) AS enqueue_p99,
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)), -1) AS pickup_p50,
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)), -1) AS pickup_p99,
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)), -1) AS duration_p50,
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)), -1) AS duration_p99
		FROM runs WHERE trigger = 'schedule' AND scheduled_for >= $1 AND scheduled_for < $2`, t0, windowEnd); err != nil {
		t.Fatal(err)
	}
	// Per minute: how many workflows had their due time of that minute run,
	// and the lag p99 of that minute (the first minute writes the record).
	type minute struct {
		K   int     `db:"k"`
		Ran int     `db:"ran"`
		P99 float64 `db:"p99"`
	}
	var perMinute []minute
	if err := db.Select(&perMinute, `SELECT floor(extract(epoch FROM scheduled_for - $1) / 60)::int AS k,
			count(DISTINCT workflow_id) FILTER (WHERE started_at IS NOT NULL) AS ran,
			COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - scheduled_for)), -1) AS p99
		FROM runs WHERE trigger = 'schedule' AND scheduled_for >= $1 AND scheduled_for < $2
		GROUP BY 1 ORDER BY 1`, t0, windowEnd); err != nil {
		t.Fatal(err)
	}
	everyMinute := len(perMinute) == minutes
	var ran []string
	for _, m := range perMinute {
		ran = append(ran, strconv.Itoa(m.Ran))
		everyMinute = everyMinute && m.Ran == workflows
		t.Logf("minute %d: %d of %d workflows ran, lag p99 %.3fs", m.K+1, m.Ran, workflows, m.P99)
	}
	window := windowEnd.Sub(t0).Seconds()
	t.Logf("BENCH scheduler workflows=%d workers=%d minutes=%d runs=%d started=%d succeeded=%d runs_started_per_s=%.1f "+
		"lag_p50_s=%.3f lag_p99_s=%.3f lag_max_s=%.3f enqueue_lag_p50_s=%.3f enqueue_lag_p99_s=%.3f pickup_p50_s=%.3f pickup_p99_s=%.3f "+
		"run_duration_p50_ms=%.1f run_duration_p99_ms=%.1f "+
		"ran_per_minute=%s every_workflow_every_minute=%v host_cpu_cores=%.2f sample_cpu_cores=%.2f postgres_connector_cpu_cores=%.2f pg_backends_cpu_cores=%.2f host_db_xacts_per_run=%.1f machine_busy=%.0f%%",
		workflows, workers, minutes, s.Runs, s.Started, s.Succeeded, float64(s.Started)/window,
		s.P50, s.P99, s.Max, s.EnqueueP50, s.EnqueueP99, s.PickupP50, s.PickupP99, s.DurationP50*1000, s.DurationP99*1000,
		strings.Join(ran, "/"), everyMinute, hostCPU, connCPU["sample"], connCPU["postgres"], pgCPU, (xact1-xact0)/float64(max(s.Started, 1)), machineBusy*100)
}
