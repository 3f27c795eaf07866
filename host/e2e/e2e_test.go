// Package e2e_test drives the real host binary like a customer: HTTP API in,
// rows in real PostgreSQL tables out, through real connector subprocesses.
package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

func execSQL(t *testing.T, db *sqlx.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func pgConnection(t *testing.T, h *host, token, name, url, table, key string) string {
	t.Helper()
	m := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "postgres", "name": name,
		"config": map[string]any{"url": url, "table": table, "primary_key": key, "updated_at_column": "updated_at"},
	})
	id, _ := m["id"].(string)
	if id == "" {
		t.Fatalf("connection has no id: %v", m)
	}
	if _, leaked := m["config"]; leaked {
		t.Fatalf("connection response returns its config: %v", m)
	}
	return id
}

func TestCustomerJourneyOneWayPostgresToPostgres(t *testing.T) {
	t.Parallel()
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, first_name text, last_name text,
		updated_at timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z')`)
	// Many rows share one timestamp: the incremental read must still see each once.
	execSQL(t, app, `INSERT INTO people (id, email, first_name, last_name)
		SELECT i, 'Person.' || i || '@Example.com', 'First' || i, 'Last' || i FROM generate_series(1, 1500) i`)
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text,
		updated_at timestamptz)`)

	tok := h.signup(t, "journey@example.com")
	me := h.must(t, http.StatusOK, "GET", "/v1/me", tok, nil)
	if !strings.Contains(fmt.Sprint(me), "journey@example.com") {
		t.Fatalf("/v1/me does not show the user: %v", me)
	}
	apps := h.must(t, http.StatusOK, "GET", "/v1/apps", tok, nil)
	for _, want := range []string{"postgres", "sample"} {
		if !strings.Contains(fmt.Sprint(apps["items"]), want) {
			t.Fatalf("/v1/apps lacks %s: %v", want, apps)
		}
	}

	src := pgConnection(t, h, tok, "People DB", appURL, "people", "id")
	dst := pgConnection(t, h, tok, "CRM DB", appURL, "contacts", "email")
	for _, id := range []string{src, dst} {
		chk := h.must(t, http.StatusOK, "POST", "/v1/connections/"+id+"/check", tok, nil)
		if chk["status"] != "ok" {
			t.Fatalf("check %s = %v, want status ok", id, chk)
		}
	}

	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name":      "People to CRM",
		"source":    map[string]any{"connection_id": src, "object": "people"},
		"target":    map[string]any{"connection_id": dst, "object": "contacts"},
		"direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email", "transform": "trim,lower"},
			{"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"},
			{"source": "id", "target": "source_id"},
		},
		"interval_seconds": 900,
	})
	wfID, _ := wf["id"].(string)

	runOnce := func() map[string]any {
		t.Helper()
		r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
		id, _ := r["id"].(string)
		if id == "" {
			t.Fatalf("run has no id: %v", r)
		}
		return h.waitRun(t, tok, id, 2*time.Minute)
	}

	// First run: every row arrives.
	run := runOnce()
	c := counts(t, run)
	if run["status"] != "succeeded" || c["read"] != 1500 || c["created"] != 1500 || c["transactions"] != 1500 || c["failed"] != 0 {
		t.Fatalf("first run = %v, want succeeded with 1500 read/created/transactions", run)
	}
	if v, _ := run["connector_versions"].(map[string]any); v["postgres"] == nil {
		t.Fatalf("run does not pin connector versions: %v", run)
	}
	var n int
	if err := app.Get(&n, `SELECT count(*) FROM contacts WHERE email = lower(email) AND source_id IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if n != 1500 {
		t.Fatalf("contacts holds %d mapped rows, want 1500", n)
	}

	// Change 7 rows: only they move.
	execSQL(t, app, `UPDATE people SET first_name = 'Changed', updated_at = '2026-02-01T00:00:00Z' WHERE id IN (3, 30, 300, 301, 302, 999, 1500)`)
	run = runOnce()
	c = counts(t, run)
	if run["status"] != "succeeded" || c["read"] != 7 || c["updated"] != 7 || c["created"] != 0 || c["transactions"] != 7 {
		t.Fatalf("second run = %v, want 7 read and updated", run)
	}
	if err := app.Get(&n, `SELECT count(*) FROM contacts WHERE first_name = 'Changed'`); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Fatalf("%d contacts changed, want 7", n)
	}

	// Nothing changed: nothing moves, no transaction.
	run = runOnce()
	if c = counts(t, run); c["read"] != 0 || c["transactions"] != 0 {
		t.Fatalf("third run = %v, want nothing read", run)
	}

	runs := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID+"/runs", tok, nil)
	if items, _ := runs["items"].([]any); len(items) != 3 {
		t.Fatalf("run history has %d runs, want 3: %v", len(items), runs)
	}
}

func TestBadInputGetsClear4xx(t *testing.T) {
	t.Parallel()
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE t (id int PRIMARY KEY, email text, updated_at timestamptz)`)
	execSQL(t, app, `CREATE TABLE u (email text PRIMARY KEY, updated_at timestamptz)`)

	alice := h.signup(t, "alice@example.com")
	bob := h.signup(t, "bob@example.com")
	src := pgConnection(t, h, alice, "src", appURL, "t", "id")
	dst := pgConnection(t, h, alice, "dst", appURL, "u", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", alice, map[string]any{
		"name": "w", "source": map[string]any{"connection_id": src, "object": "t"},
		"target": map[string]any{"connection_id": dst, "object": "u"}, "direction": "one_way",
		"mapping": []map[string]any{{"source": "email", "target": "email"}}, "interval_seconds": 900,
	})
	wfID, _ := wf["id"].(string)

	testCases := map[string]struct {
		token, method, path string
		body                any
		status              int
		msg                 string
	}{
		"unknown app":    {alice, "POST", "/v1/connections", map[string]any{"app": "nosuchapp", "name": "x", "config": map[string]any{}}, 422, "nosuchapp"},
		"invalid config": {alice, "POST", "/v1/connections", map[string]any{"app": "postgres", "name": "x", "config": map[string]any{"url": appURL}}, 422, "table"},
		"mapping to a missing field": {alice, "POST", "/v1/workflows", map[string]any{
			"name": "w", "source": map[string]any{"connection_id": src, "object": "t"},
			"target": map[string]any{"connection_id": dst, "object": "u"}, "direction": "one_way",
			"mapping": []map[string]any{{"source": "email", "target": "no_such_column"}}, "interval_seconds": 900,
		}, 422, "no_such_column"},
		"interval below plan minimum": {alice, "POST", "/v1/workflows", map[string]any{
			"name": "w", "source": map[string]any{"connection_id": src, "object": "t"},
			"target": map[string]any{"connection_id": dst, "object": "u"}, "direction": "one_way",
			"mapping": []map[string]any{{"source": "email", "target": "email"}}, "interval_seconds": 60,
		}, 422, "interval"},
		"another account's workflow":     {bob, "GET", "/v1/workflows/" + wfID, nil, 404, ""},
		"another account's workflow run": {bob, "POST", "/v1/workflows/" + wfID + "/run", nil, 404, ""},
		"another account's delete":       {bob, "DELETE", "/v1/workflows/" + wfID, nil, 404, ""},
		"another account's connection":   {bob, "POST", "/v1/connections/" + src + "/check", nil, 404, ""},
		"no token":                       {"", "GET", "/v1/workflows", nil, 401, ""},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			r := h.do(t, tc.method, tc.path, tc.token, tc.body)
			if r.Status != tc.status {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			e, _ := r.json(t)["error"].(map[string]any)
			if e == nil || e["code"] == "" || e["message"] == "" {
				t.Fatalf("error body is not {error:{code,message}}: %s", r.Body)
			}
			if !strings.Contains(fmt.Sprint(e["message"]), tc.msg) {
				t.Fatalf("message %q does not say what to fix (want %q)", e["message"], tc.msg)
			}
		})
	}
	// Nothing changed: alice's workflow is still there and never ran.
	got := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID, alice, nil)
	if got["id"] != wfID {
		t.Fatalf("workflow changed by another account's requests: %v", got)
	}
	runs := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID+"/runs", alice, nil)
	if items, _ := runs["items"].([]any); len(items) != 0 {
		t.Fatalf("another account started a run: %v", runs)
	}
}

// connectorPIDs finds the connector processes started by the host.
func connectorPIDs(t *testing.T, hostPID int, name string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" of the command: state, ppid, ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) < 2 || fields[0] == "Z" || fields[1] != strconv.Itoa(hostPID) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasSuffix(exe, "synchron-connector-"+name) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestConnectorKilledMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	const total = 40000
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, last_name text, source_id text UNIQUE, updated_at timestamptz)`)

	tok := h.signup(t, "crash@example.com")
	srcM := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sample", "name": "demo", "config": map[string]any{"count": total, "seed": 7},
	})
	src, _ := srcM["id"].(string)
	dst := pgConnection(t, h, tok, "CRM DB", appURL, "contacts", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name": "sample to CRM", "source": map[string]any{"connection_id": src, "object": "contacts"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "last_name", "target": "last_name"}, {"source": "id", "target": "source_id"},
		},
		"interval_seconds": 900,
	})
	wfID, _ := wf["id"].(string)
	r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
	runID, _ := r["id"].(string)

	// Kill the target connector as soon as the run has committed some records.
	deadline := time.Now().Add(time.Minute)
	killed := 0
	for killed == 0 {
		run := h.must(t, http.StatusOK, "GET", "/v1/runs/"+runID, tok, nil)
		if c := counts(t, run); c["read"] > 0 && run["status"] == "running" {
			for _, pid := range connectorPIDs(t, h.cmd.Process.Pid, "postgres") {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
		if s := run["status"]; s != "running" && s != "queued" {
			t.Fatalf("run ended (%v) before the connector could be killed: make the run longer", run)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no postgres connector process found under host pid %d", h.cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state
	}

	run := h.waitRun(t, tok, runID, 3*time.Minute)
	if run["status"] != "succeeded" {
		// The run may give up; the next one must then finish the work.
		r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
		id, _ := r["id"].(string)
		run = h.waitRun(t, tok, id, 3*time.Minute)
		if run["status"] != "succeeded" {
			t.Fatalf("run after the crash = %v, want succeeded", run)
		}
	}
	var n, distinct int
	if err := app.Get(&n, `SELECT count(*) FROM contacts`); err != nil {
		t.Fatal(err)
	}
	if err := app.Get(&distinct, `SELECT count(DISTINCT source_id) FROM contacts WHERE source_id ~ '^c_[0-9]+$'`); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total {
		t.Fatalf("target holds %d rows (%d distinct source ids), want every one of %d exactly once", n, distinct, total)
	}
	if !strings.Contains(h.logs.String(), "resuming from the last checkpoint") {
		t.Fatalf("the host never noticed the crash: the connector kill did not hit the run")
	}
}
