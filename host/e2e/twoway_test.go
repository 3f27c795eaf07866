package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// twoWayTables creates people (source) and contacts (target), keyed by
// email, soft-deleted through deleted_at, and seeds people 1..nPeople and
// contacts from..to.
func twoWayTables(t *testing.T, app *sqlx.DB, nPeople, contactsFrom, contactsTo int) {
	t.Helper()
	execSQL(t, app, `CREATE TABLE people (email text PRIMARY KEY, first_name text, last_name text, crm_id text,
		updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted_at timestamptz)`)
	execSQL(t, app, `CREATE INDEX ON people (updated_at, email)`)
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, firstname text, lastname text,
		updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted_at timestamptz)`)
	execSQL(t, app, `CREATE INDEX ON contacts (updated_at, email)`)
	if nPeople > 0 {
		execSQL(t, app, `INSERT INTO people (email, first_name, last_name)
			SELECT 'p' || i || '@example.com', 'First' || i, 'Last' || i FROM generate_series(1, $1::int) i`, nPeople)
	}
	if contactsTo >= contactsFrom {
		execSQL(t, app, `INSERT INTO contacts (email, firstname, lastname)
			SELECT 'p' || i || '@example.com', 'First' || i, 'Last' || i FROM generate_series($1::int, $2::int) i`, contactsFrom, contactsTo)
	}
}

// twoWayWorkflow creates the two connections and a two-way workflow.
func twoWayWorkflow(t *testing.T, h *host, token, appURL, deletes string) string {
	t.Helper()
	conn := func(name, table string) string {
		m := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
			"app": "postgres", "name": name,
			"config": map[string]any{"url": appURL, "table": table, "primary_key": "email",
				"updated_at_column": "updated_at", "deleted_column": "deleted_at"},
		})
		id, _ := m["id"].(string)
		return id
	}
	src, dst := conn("People", "people"), conn("CRM", "contacts")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", token, map[string]any{
		"name":      "People <-> CRM",
		"source":    map[string]any{"connection_id": src, "object": "people"},
		"target":    map[string]any{"connection_id": dst, "object": "contacts"},
		"direction": "two_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email", "transform": "trim,lower"},
			{"source": "first_name", "target": "firstname"},
			{"source": "last_name", "target": "lastname"},
		},
		"match":            map[string]any{"source": "email", "target": "email"},
		"conflict":         "newest_wins",
		"deletes":          deletes,
		"interval_seconds": 900,
	})
	id, _ := wf["id"].(string)
	return id
}

func (h *host) runWorkflow(t *testing.T, token, wfID string) map[string]any {
	t.Helper()
	r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", token, nil)
	id, _ := r["id"].(string)
	run := h.waitRun(t, token, id, 5*time.Minute)
	if run["status"] == "failed" {
		t.Fatalf("run failed: %v", run)
	}
	return run
}

func TestTwoWayThroughTheHost(t *testing.T) {
	t.Parallel()
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	twoWayTables(t, app, 300, 201, 400) // 100 on both sides
	tok := h.signup(t, "twoway@example.com")
	wfID := twoWayWorkflow(t, h, tok, appURL, "propagate")

	// The preview predicts the historical sync and changes nothing.
	p := h.must(t, http.StatusOK, "POST", "/v1/workflows/"+wfID+"/preview", tok, nil)
	if p["matched"] != float64(100) {
		t.Fatalf("preview = %v, want 100 matched", p)
	}
	var n int
	if err := app.Get(&n, `SELECT count(*) FROM contacts`); err != nil || n != 200 {
		t.Fatalf("preview wrote to the target: %d contacts, %v", n, err)
	}

	run := h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["matched"] != 100 || c["created"] != 300 || c["failed"] != 0 {
		t.Fatalf("historical sync = %v, want 100 matched and 300 created", run)
	}
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("idle run used %d transactions: echoes must be free", c["transactions"])
	}

	execSQL(t, app, `UPDATE people SET first_name = 'Edited', updated_at = clock_timestamp() WHERE email = 'p10@example.com'`)
	execSQL(t, app, `UPDATE contacts SET lastname = 'Edited', updated_at = clock_timestamp() WHERE email = 'p390@example.com'`)
	execSQL(t, app, `UPDATE people SET deleted_at = now(), updated_at = clock_timestamp() WHERE email = 'p11@example.com'`)
	run = h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["updated"] != 2 || c["deleted"] != 1 || c["transactions"] != 3 {
		t.Fatalf("run after two edits and a delete = %v, want 2 updated, 1 deleted", run)
	}
	var first, last string
	app.Get(&first, `SELECT firstname FROM contacts WHERE email = 'p10@example.com'`) //nolint:errcheck
	app.Get(&last, `SELECT last_name FROM people WHERE email = 'p390@example.com'`)   //nolint:errcheck
	if first != "Edited" || last != "Edited" {
		t.Fatalf("edits did not cross: contact firstname %q, person last_name %q", first, last)
	}
	if err := app.Get(&n, `SELECT count(*) FROM contacts WHERE email = 'p11@example.com' AND deleted_at IS NOT NULL`); err != nil || n != 1 {
		t.Fatalf("delete did not propagate: %d, %v", n, err)
	}
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("run after the edits used %d transactions: changes bounced back", c["transactions"])
	}

	// The linked record shows both ids and its history.
	recs := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID+"/records?source_id=p10@example.com", tok, nil)
	items, _ := recs["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("records?source_id = %v, want one link", recs)
	}
	link, _ := items[0].(map[string]any)
	rec := h.must(t, http.StatusOK, "GET", fmt.Sprintf("/v1/workflows/%s/records/%s", wfID, link["id"]), tok, nil)
	if rec["target_id"] != "p10@example.com" || fmt.Sprint(rec["history"]) == "[]" {
		t.Fatalf("linked record = %v, want the target id and a history", rec)
	}
}

func TestTwoWayConnectorKilledMidRunLeavesNoDuplicates(t *testing.T) {
	t.Parallel()
	const people, overlapFrom, contactsTo = 12000, 8001, 16000 // 4,000 on both sides
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	twoWayTables(t, app, people, overlapFrom, contactsTo)
	tok := h.signup(t, "twowaycrash@example.com")
	wfID := twoWayWorkflow(t, h, tok, appURL, "ignore")

	r := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
	runID, _ := r["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for killed := false; !killed; {
		run := h.must(t, http.StatusOK, "GET", "/v1/runs/"+runID, tok, nil)
		if c := counts(t, run); c["created"] > 0 && run["status"] == "running" {
			for _, pid := range connectorPIDs(t, h.cmd.Process.Pid, "postgres") {
				killed = syscall.Kill(pid, syscall.SIGKILL) == nil || killed
			}
		}
		if s := run["status"]; s != "running" && s != "queued" {
			t.Fatalf("run ended (%v) before the connector could be killed", run)
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never started writing")
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state
	}
	if run := h.waitRun(t, tok, runID, 5*time.Minute); run["status"] != "succeeded" {
		// The run may give up after the crash; the next one must finish the work.
		h.runWorkflow(t, tok, wfID)
	}
	ctx := context.Background()
	for _, table := range []string{"people", "contacts"} {
		var n, distinct int
		if err := app.GetContext(ctx, &n, `SELECT count(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if err := app.GetContext(ctx, &distinct, `SELECT count(DISTINCT lower(email)) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if n != contactsTo || distinct != contactsTo {
			t.Fatalf("%s holds %d rows (%d distinct emails), want every one of %d exactly once", table, n, distinct, contactsTo)
		}
	}
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("run after recovery used %d transactions, want 0", c["transactions"])
	}
}

// Two hosts share one database; the host running a two-way historical sync
// is killed; the other takes the run over when the lease expires, and in the
// end every record exists once on each side and nothing moves any more.
func TestTwoWayHostKilledMidRunIsTakenOver(t *testing.T) {
	t.Parallel()
	const people, overlapFrom, contactsTo = 12000, 8001, 16000
	dbURL := testdb.URL(t)
	hosts := startHosts(t, dbURL, 2, "SYNCHRON_SCHEDULER=off")
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	twoWayTables(t, app, people, overlapFrom, contactsTo)
	tok := hosts[0].signup(t, "twowayhosts@example.com")
	wfID := twoWayWorkflow(t, hosts[0], tok, appURL, "ignore")
	r := hosts[0].must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)
	runID, _ := r["id"].(string)

	ids := map[string]*host{hosts[0].hostID(t): hosts[0], hosts[1].hostID(t): hosts[1]}
	var victim, survivor *host
	deadline := time.Now().Add(2 * time.Minute)
	for victim == nil {
		var row struct {
			Status   string  `db:"status"`
			LeasedBy *string `db:"leased_by"`
			Created  int64   `db:"created_count"`
		}
		if err := db.Get(&row, `SELECT status, leased_by, created_count FROM runs WHERE id = $1`, runID); err != nil {
			t.Fatal(err)
		}
		if row.Status == "running" && row.Created > 0 && row.LeasedBy != nil {
			victim = ids[*row.LeasedBy]
			victim.kill(t)
			break
		}
		if row.Status != "running" && row.Status != "queued" {
			t.Fatalf("run ended (%s) before its host could be killed", row.Status)
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never started writing")
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state
	}
	for _, h := range hosts {
		if h != victim {
			survivor = h
		}
	}
	run := survivor.waitRun(t, tok, runID, 5*time.Minute)
	if run["status"] != "succeeded" {
		t.Fatalf("run after its host was killed = %v, want succeeded", run)
	}
	for _, table := range []string{"people", "contacts"} {
		var n, distinct int
		if err := app.Get(&n, `SELECT count(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if err := app.Get(&distinct, `SELECT count(DISTINCT lower(email)) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if n != contactsTo || distinct != contactsTo {
			t.Fatalf("%s holds %d rows (%d distinct), want each of %d exactly once", table, n, distinct, contactsTo)
		}
	}
	var links int
	if err := db.Get(&links, `SELECT count(*) FROM links WHERE workflow_id = $1`, wfID); err != nil || links != contactsTo {
		t.Fatalf("%d links, want %d: %v", links, contactsTo, err)
	}
	if c := counts(t, survivor.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("run after the takeover used %d transactions, want 0", c["transactions"])
	}
}
