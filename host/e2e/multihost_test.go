package e2e_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// startHosts starts n hosts on one database, sharing one secret key (each
// decrypts the connections another created), with a short run lease.
func startHosts(t *testing.T, dbURL string, n int, extraEnv ...string) []*host {
	t.Helper()
	env := append([]string{"SYNCHRON_SECRET_KEY=" + randomKey(t), "SYNCHRON_RUN_LEASE=2s"}, extraEnv...)
	hs := make([]*host, n)
	for i := range hs {
		hs[i] = startHost(t, dbURL, env...)
	}
	return hs
}

var hostIDLog = regexp.MustCompile(`host_id=(\S+)`)

// hostID is the name the host's executor leases runs under (from its logs).
func (h *host) hostID(t *testing.T) string {
	t.Helper()
	m := hostIDLog.FindStringSubmatch(h.logs.String())
	if m == nil {
		t.Fatalf("host logged no host_id:\n%s", h.logs.String())
	}
	return m[1]
}

// kill ends the host process with SIGKILL: no drain, no lease handed back;
// its connector processes die with it (parent-death signal).
func (h *host) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill host: %v", err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("killed host did not exit within 30s")
	}
}

type runRow struct {
	Status       string         `db:"status"`
	Trigger      string         `db:"trigger"`
	LeasedBy     sql.NullString `db:"leased_by"`
	ReadCount    int64          `db:"read_count"`
	Attempts     int            `db:"attempts"`
	ScheduledFor sql.NullTime   `db:"scheduled_for"`
	StartedAt    sql.NullTime   `db:"started_at"`
}

func getRun(t *testing.T, db *sqlx.DB, runID string) runRow {
	t.Helper()
	var r runRow
	if err := db.GetContext(context.Background(), &r, `SELECT status, trigger, leased_by, read_count, attempts,
		scheduled_for, started_at FROM runs WHERE id = $1`, runID); err != nil {
		t.Fatalf("read run %s: %v", runID, err)
	}
	return r
}

func sampleToContacts(t *testing.T, h *host, token, appURL string, count, interval int) string {
	t.Helper()
	srcM := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "sample", "name": "demo", "config": map[string]any{"count": count, "seed": 11},
	})
	src, _ := srcM["id"].(string)
	dst := pgConnection(t, h, token, "CRM DB", appURL, "contacts", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", token, map[string]any{
		"name": "sample to CRM", "source": map[string]any{"connection_id": src, "object": "contacts"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"}, {"source": "id", "target": "source_id"},
		},
		"interval_seconds": interval,
	})
	id, _ := wf["id"].(string)
	if id == "" {
		t.Fatalf("workflow has no id: %v", wf)
	}
	return id
}

// Two hosts share one database; the one running a long run is killed with
// SIGKILL mid-run. The other takes the run over once the lease (2s) expires
// and finishes it: every record lands in the target exactly once.
func TestMultiHostKilledHostRunIsTakenOver(t *testing.T) {
	t.Parallel()
	const total = 60000
	dbURL := testdb.URL(t)
	hosts := startHosts(t, dbURL, 2)
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text UNIQUE, updated_at timestamptz)`)

	tok := hosts[0].signup(t, "multihost@example.com")
	wfID := sampleToContacts(t, hosts[0], tok, appURL, total, 900)
	// The scheduler may have queued the new workflow's first run already:
	// then this answers that run.
	r := hosts[0].must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
	runID, _ := r["id"].(string)

	// As soon as the run has committed records, kill the host holding it.
	ids := map[string]*host{hosts[0].hostID(t): hosts[0], hosts[1].hostID(t): hosts[1]}
	var victim, survivor *host
	deadline := time.Now().Add(2 * time.Minute)
	for victim == nil {
		run := getRun(t, db, runID)
		if run.Status == "running" && run.ReadCount > 0 {
			victim = ids[run.LeasedBy.String]
			if victim == nil {
				t.Fatalf("run leased by %q, not one of the hosts %v", run.LeasedBy.String, ids)
			}
			victim.kill(t)
			t.Logf("killed %s after %d records committed", run.LeasedBy.String, run.ReadCount)
			break
		}
		if run.Status != "running" && run.Status != "queued" {
			t.Fatalf("run ended (%+v) before its host could be killed: make the run longer", run)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never started: %+v", run)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state
	}
	for _, h := range hosts {
		if h != victim {
			survivor = h
		}
	}
	killedAt := time.Now()

	run := survivor.waitRun(t, tok, runID, 3*time.Minute)
	row := getRun(t, db, runID)
	t.Logf("run %s %v after the kill: %+v, counts %v", row.Status, time.Since(killedAt).Round(time.Millisecond), row, counts(t, run))
	if run["status"] != "succeeded" {
		t.Fatalf("run after its host was killed = %v, want succeeded", run)
	}
	if row.Attempts < 2 {
		t.Fatalf("run attempts = %d: the surviving host did not take it over", row.Attempts)
	}
	var n, distinct int
	if err := app.Get(&n, `SELECT count(*) FROM contacts`); err != nil {
		t.Fatal(err)
	}
	if err := app.Get(&distinct, `SELECT count(DISTINCT source_id) FROM contacts`); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total {
		t.Fatalf("target holds %d rows (%d distinct source ids), want every one of %d exactly once", n, distinct, total)
	}
}

// A workflow on an Enterprise account with a 60s interval runs on its own:
// its first run when it is created, the next at its due time, once whatever
// the number of hosts scheduling.
func TestMultiHostSchedulerStartsRunsWithoutTrigger(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	hosts := startHosts(t, dbURL, 2)
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text UNIQUE, updated_at timestamptz)`)

	tok := hosts[0].signup(t, "scheduled@example.com")
	execSQL(t, db, `UPDATE accounts SET plan = 'enterprise'`)
	wfID := sampleToContacts(t, hosts[1], tok, appURL, 100, 60)

	// waitScheduledRuns waits until the workflow has n runs, the last one
	// finished, and returns the runs, oldest first.
	type sched struct {
		ID           string       `db:"id"`
		Status       string       `db:"status"`
		Trigger      string       `db:"trigger"`
		ScheduledFor sql.NullTime `db:"scheduled_for"`
		StartedAt    sql.NullTime `db:"started_at"`
		NextRunAt    time.Time    `db:"next_run_at"`
	}
	waitScheduledRuns := func(n int) []sched {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var rs []sched
			if err := db.Select(&rs, `SELECT r.id, r.status, r.trigger, r.scheduled_for, r.started_at, w.next_run_at
				FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.id = $1 ORDER BY r.created_at`, wfID); err != nil {
				t.Fatal(err)
			}
			if len(rs) > n {
				t.Fatalf("%d runs, want %d: %+v", len(rs), n, rs)
			}
			if len(rs) == n {
				if s := rs[n-1].Status; s == "succeeded" || s == "partial" || s == "failed" {
					return rs
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a minute, runs = %+v, want %d finished", rs, n)
			}
			time.Sleep(50 * time.Millisecond) // polling an observable state
		}
	}

	first := waitScheduledRuns(1)[0]
	if first.Trigger != "schedule" || first.Status != "succeeded" || !first.ScheduledFor.Valid {
		t.Fatalf("first run = %+v, want a succeeded schedule run", first)
	}
	var wrote int
	if err := app.Get(&wrote, `SELECT count(*) FROM contacts`); err != nil {
		t.Fatal(err)
	}
	if wrote != 100 {
		t.Fatalf("the scheduled run wrote %d contacts, want 100", wrote)
	}
	if got := first.NextRunAt.Sub(first.ScheduledFor.Time); got != time.Minute {
		t.Fatalf("next run due %v after the first, want the 60s interval", got)
	}

	// Bring the next due time 2s ahead rather than wait a minute.
	var due time.Time
	if err := db.Get(&due, `UPDATE workflows SET next_run_at = now() + interval '2 seconds' WHERE id = $1 RETURNING next_run_at`, wfID); err != nil {
		t.Fatal(err)
	}
	second := waitScheduledRuns(2)[1]
	if second.Trigger != "schedule" || second.Status != "succeeded" || !second.ScheduledFor.Time.Equal(due) {
		t.Fatalf("second run = %+v, want a succeeded schedule run for %v", second, due)
	}
	lag := second.StartedAt.Time.Sub(due)
	if lag < 0 || lag > 10*time.Second {
		t.Fatalf("second run started %v after its due time", lag)
	}
	if got := second.NextRunAt.Sub(due); got != time.Minute {
		t.Fatalf("next run due %v after the second, want 60s", got)
	}
	t.Logf("second run started %v after its due time", lag)
	if err := db.Get(new(int), `SELECT 1 FROM runs WHERE workflow_id = $1 AND trigger <> 'schedule'`, wfID); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("a run not started by the scheduler: %v", err)
	}
}
