package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/store"
)

// exec runs a fixture statement.
func (b *testBundle) exec(query string, args ...any) {
	b.t.Helper()
	if _, err := b.db.ExecContext(b.ctx, query, args...); err != nil {
		b.t.Fatal(err)
	}
}

// link inserts a link of a workflow created age before now.
func (b *testBundle) link(u user, wfID, sourceID, targetID string, age time.Duration) string {
	b.t.Helper()
	id := store.NewID(store.PrefixLink)
	b.exec(`INSERT INTO links (id, account_id, workflow_id, source_id, target_id, source_hash, target_hash,
			source_values, target_values, source_modified_at, created_at)
		VALUES ($1, $2, $3, $4, $5, 'secret-hash-s', 'secret-hash-t', $6, $7, '2025-03-01T10:00:00Z', $8)`,
		id, u.accountID, wfID, sourceID, targetID,
		fmt.Sprintf(`{"email": "%s@example.com"}`, sourceID), fmt.Sprintf(`{"email": "%s@example.com", "first_name": "Ann"}`, targetID),
		time.Now().Add(-age))
	return id
}

func (b *testBundle) pendingDelete(u user, wfID, linkID, side, status string, age time.Duration) string {
	b.t.Helper()
	id := store.NewID(store.PrefixPendingDelete)
	b.exec(`INSERT INTO pending_deletes (id, account_id, workflow_id, link_id, side, record_id, status, message, created_at)
		VALUES ($1, $2, $3, $4, $5, 'rec-' || $1, $6, 'deleted in the other app', $7)`,
		id, u.accountID, wfID, linkID, side, status, time.Now().Add(-age))
	return id
}

func (b *testBundle) deleteStatus(id string) string {
	b.t.Helper()
	var st string
	if err := b.db.GetContext(b.ctx, &st, `SELECT status FROM pending_deletes WHERE id = $1`, id); err != nil {
		b.t.Fatal(err)
	}
	return st
}

func ids(m map[string]any) []string {
	var out []string
	for _, it := range m["items"].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func TestPreview(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, _, _ := b.workflow(ann)
	b.runner.preview = engine.Preview{
		ToTarget: engine.Counts{Read: 25, Created: 20, Updated: 2}, ToSource: engine.Counts{Read: 3, Updated: 1},
		Matched: 3, Ambiguous: 1, Conflicts: 1, QueuedDeletes: 2, Transactions: 23,
		Actions: []engine.PlannedAction{{Kind: engine.ActCreate, Direction: engine.ToTarget, SourceID: "c_00000001"}},
	}

	p := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/preview", token: ann.token})
	if p["transactions"] != 23.0 || p["matched"] != 3.0 || p["queued_deletes"] != 2.0 || p["delete_safety_stop"] != false ||
		p["to_target"].(map[string]any)["created"] != 20.0 || p["to_source"].(map[string]any)["updated"] != 1.0 {
		t.Fatalf("preview = %v", p)
	}
	acts := p["actions"].([]any)
	if len(acts) != 1 || acts[0].(map[string]any)["kind"] != "create" || acts[0].(map[string]any)["source_id"] != "c_00000001" {
		t.Fatalf("actions = %v", acts)
	}
	want := []runnerCall{{"Preview", ann.accountID, wfID}}
	if got := b.runner.OtherCalls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("runner calls = %v, want %v", got, want)
	}

	// Empty actions are an empty list, not null.
	b.runner.preview = engine.Preview{}
	if p := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/preview", token: ann.token}); p["actions"] == nil {
		t.Fatalf("actions of an empty preview = %v", p)
	}

	for name, r := range map[string]req{
		"foreign":  {method: "POST", path: "/v1/workflows/" + wfID + "/preview", token: bob.token},
		"unknown":  {method: "POST", path: "/v1/workflows/wf_nope/preview", token: ann.token},
		"no token": {method: "POST", path: "/v1/workflows/" + wfID + "/preview"},
	} {
		resp := b.do(r)
		want := http.StatusNotFound
		if name == "no token" {
			want = http.StatusUnauthorized
		}
		if resp.Status != want {
			t.Fatalf("%s: = %d %s", name, resp.Status, resp.Body)
		}
	}
	if n := len(b.runner.OtherCalls()); n != 2 {
		t.Fatalf("the runner was asked %d previews, want 2 (none for a foreign id)", n)
	}
}

func TestRetryFailedRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, _, _ := b.workflow(ann)
	runID := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: ann.token})["id"].(string)
	b.exec(`UPDATE runs SET status = 'partial', failed_count = 2, finished_at = now() WHERE id = $1`, runID)
	cleanID := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: ann.token})["id"].(string)
	b.exec(`UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1`, cleanID)
	for i, st := range []string{"rejected", "retryable", "ambiguous"} {
		b.exec(`INSERT INTO run_records (run_id, account_id, record_id, direction, status, message, side, link_id)
			VALUES ($1, $2, $3, 'to_target', $4, 'no', 'source', NULLIF($5, ''))`, runID, ann.accountID, fmt.Sprint("c_", i), st,
			map[bool]string{true: "lnk_1"}[i == 0])
	}

	// The records show their side, link and new statuses.
	recs := b.must(http.StatusOK, req{method: "GET", path: "/v1/runs/" + runID + "/records", token: ann.token})["items"].([]any)
	first, last := recs[0].(map[string]any), recs[2].(map[string]any)
	if len(recs) != 3 || first["side"] != "source" || first["link_id"] != "lnk_1" || last["link_id"] != nil || last["status"] != "ambiguous" {
		t.Fatalf("records = %v", recs)
	}

	// Bob cannot retry Ann's run, and a run without failures has nothing to retry.
	for name, tc := range map[string]struct {
		r        req
		status   int
		code, in string
	}{
		"foreign":    {r: req{method: "POST", path: "/v1/runs/" + runID + "/records/retry", token: bob.token}, status: 404, code: "not_found"},
		"unknown":    {r: req{method: "POST", path: "/v1/runs/run_nope/records/retry", token: ann.token}, status: 404, code: "not_found"},
		"no failure": {r: req{method: "POST", path: "/v1/runs/" + cleanID + "/records/retry", token: ann.token}, status: 409, code: "nothing_to_retry", in: "no failed records"},
	} {
		resp := b.do(tc.r)
		if code, msg := resp.errorCode(t); resp.Status != tc.status || code != tc.code || !strings.Contains(msg, tc.in) {
			t.Fatalf("%s: = %d %s", name, resp.Status, resp.Body)
		}
	}
	if calls := b.runner.OtherCalls(); len(calls) != 0 {
		t.Fatalf("the runner was called: %v", calls)
	}

	out := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/runs/" + runID + "/records/retry", token: ann.token})
	run := out["run"].(map[string]any)
	if out["retried"] != 2.0 || run["trigger"] != "retry" || run["status"] != "queued" || run["workflow_id"] != wfID || run["id"] == runID {
		t.Fatalf("retry = %v", out)
	}
	if got, want := b.runner.OtherCalls(), []runnerCall{{"RetryFailed", ann.accountID, runID}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("runner calls = %v, want %v", got, want)
	}

	// The engine finds nothing left to retry (later runs retried them): 409 too.
	b.exec(`UPDATE runs SET status = 'succeeded' WHERE id = $1`, run["id"])
	b.runner.mu.Lock()
	b.runner.nothingToRetry = true
	b.runner.mu.Unlock()
	resp := b.do(req{method: "POST", path: "/v1/runs/" + runID + "/records/retry", token: ann.token})
	if code, msg := resp.errorCode(t); resp.Status != 409 || code != "nothing_to_retry" || !strings.Contains(msg, "nothing is left to retry") {
		t.Fatalf("retry with nothing left = %d %s", resp.Status, resp.Body)
	}
}

func TestRetryWithoutRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, withoutRunner())
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	runID := store.NewID(store.PrefixRun)
	b.exec(`INSERT INTO runs (id, account_id, workflow_id, status, trigger) VALUES ($1, $2, $3, 'partial', 'manual')`, runID, u.accountID, wfID)
	b.exec(`INSERT INTO run_records (run_id, account_id, record_id, status) VALUES ($1, $2, 'x', 'failed')`, runID, u.accountID)
	for _, r := range []req{
		{method: "POST", path: "/v1/runs/" + runID + "/records/retry", token: u.token},
		{method: "POST", path: "/v1/workflows/" + wfID + "/preview", token: u.token},
	} {
		resp := b.do(r)
		if code, _ := resp.errorCode(t); resp.Status != 503 || code != "runner_unavailable" {
			t.Fatalf("%s = %d %s", r.path, resp.Status, resp.Body)
		}
	}
}

func TestPendingDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, _, _ := b.workflow(ann)
	otherWF, _, _ := b.workflow(ann)
	bobWF, _, _ := b.workflow(bob)
	l1 := b.link(ann, wfID, "s1", "t1", time.Hour)
	l2 := b.link(ann, wfID, "s2", "t2", time.Hour)
	l3 := b.link(ann, wfID, "s3", "t3", time.Hour)
	lo := b.link(ann, otherWF, "s1", "t1", time.Hour)
	d1 := b.pendingDelete(ann, wfID, l1, "target", "pending", 3*time.Minute)
	d2 := b.pendingDelete(ann, wfID, l2, "source", "pending", 2*time.Minute)
	d3 := b.pendingDelete(ann, wfID, l3, "target", "pending", time.Minute)
	done := b.pendingDelete(ann, wfID, l3, "source", "done", 4*time.Minute)
	elsewhere := b.pendingDelete(ann, otherWF, lo, "target", "pending", time.Minute)
	base := "/v1/workflows/" + wfID + "/deletes"

	list := b.must(http.StatusOK, req{method: "GET", path: base, token: ann.token})
	if got := ids(list); !reflect.DeepEqual(got, []string{d3, d2, d1}) {
		t.Fatalf("pending = %v, want newest first %v", got, []string{d3, d2, d1})
	}
	item := list["items"].([]any)[2].(map[string]any)
	if item["link_id"] != l1 || item["side"] != "target" || item["status"] != "pending" || item["message"] != "deleted in the other app" ||
		item["decided_at"] != nil || item["record_id"] != "rec-"+d1 || item["created_at"] == nil {
		t.Fatalf("pending delete = %v", item)
	}
	page := b.must(http.StatusOK, req{method: "GET", path: base + "?limit=2", token: ann.token})
	next := b.must(http.StatusOK, req{method: "GET", path: base + "?limit=2&cursor=" + page["next_cursor"].(string), token: ann.token})
	if got := append(ids(page), ids(next)...); !reflect.DeepEqual(got, []string{d3, d2, d1}) || next["next_cursor"] != "" {
		t.Fatalf("paged = %v", got)
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: base + "?status=done", token: ann.token})); !reflect.DeepEqual(got, []string{done}) {
		t.Fatalf("done = %v", got)
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: base + "?status=all", token: ann.token})); len(got) != 4 {
		t.Fatalf("all = %v", got)
	}

	// Another account: 404 everywhere, and nothing changes.
	for name, r := range map[string]req{
		"list":        {method: "GET", path: base},
		"approve":     {method: "POST", path: base + "/" + d1 + "/approve"},
		"discard":     {method: "POST", path: base + "/" + d1 + "/discard"},
		"approve all": {method: "POST", path: base + "/approve-all"},
		"discard all": {method: "POST", path: base + "/discard-all"},
		"through own": {method: "POST", path: "/v1/workflows/" + bobWF + "/deletes/" + d1 + "/approve"},
	} {
		r.token = bob.token
		if resp := b.do(r); resp.Status != http.StatusNotFound {
			t.Fatalf("bob %s = %d %s", name, resp.Status, resp.Body)
		}
	}
	for _, id := range []string{d1, d2, d3} {
		if st := b.deleteStatus(id); st != "pending" {
			t.Fatalf("%s is %s after bob's attempts", id, st)
		}
	}
	if n := len(b.runner.Calls()); n != 0 {
		t.Fatalf("bob's attempts queued %d runs", n)
	}

	testCases := []struct {
		name, path string
		status     int
		code, in   string
	}{
		{name: "bad status filter", path: base + "?status=maybe", status: 400, code: "invalid_status"},
		{name: "delete of another workflow", path: base + "/" + elsewhere + "/approve", status: 404, code: "not_found"},
		{name: "unknown delete", path: base + "/del_nope/discard", status: 404, code: "not_found"},
		{name: "approve a done delete", path: base + "/" + done + "/approve", status: 409, code: "delete_not_pending", in: "is done"},
	}
	for _, tc := range testCases {
		method := "POST"
		if strings.Contains(tc.path, "?") {
			method = "GET"
		}
		resp := b.do(req{method: method, path: tc.path, token: ann.token})
		if code, msg := resp.errorCode(t); resp.Status != tc.status || code != tc.code || !strings.Contains(msg, tc.in) {
			t.Fatalf("%s = %d %s", tc.name, resp.Status, resp.Body)
		}
	}

	// Approve one: it is approved and a run is queued to execute it.
	a := b.must(http.StatusOK, req{method: "POST", path: base + "/" + d1 + "/approve", token: ann.token})
	if a["id"] != d1 || a["status"] != "approved" || a["decided_at"] == nil {
		t.Fatalf("approve = %v", a)
	}
	if calls := b.runner.Calls(); len(calls) != 1 || calls[0] != (enqueueCall{ann.accountID, wfID, "manual"}) {
		t.Fatalf("runner calls = %v", calls)
	}
	// ...and cannot be decided again.
	for _, action := range []string{"approve", "discard"} {
		resp := b.do(req{method: "POST", path: base + "/" + d1 + "/" + action, token: ann.token})
		if code, msg := resp.errorCode(t); resp.Status != 409 || code != "delete_not_pending" || !strings.Contains(msg, "approved") {
			t.Fatalf("%s an approved delete = %d %s", action, resp.Status, resp.Body)
		}
	}
	d := b.must(http.StatusOK, req{method: "POST", path: base + "/" + d2 + "/discard", token: ann.token})
	if d["status"] != "discarded" || len(b.runner.Calls()) != 1 {
		t.Fatalf("discard = %v; runner calls %v", d, b.runner.Calls())
	}

	// Bulk: discard-all takes the one left; approve-all then finds nothing.
	all := b.must(http.StatusOK, req{method: "POST", path: base + "/discard-all", token: ann.token})
	if all["status"] != "discarded" || all["count"] != 1.0 || all["run_id"] != nil {
		t.Fatalf("discard-all = %v", all)
	}
	if none := b.must(http.StatusOK, req{method: "POST", path: base + "/approve-all", token: ann.token}); none["count"] != 0.0 || none["run_id"] != nil {
		t.Fatalf("approve-all of nothing = %v", none)
	}
	want := map[string]string{d1: "approved", d2: "discarded", d3: "discarded", done: "done", elsewhere: "pending"}
	for id, st := range want {
		if got := b.deleteStatus(id); got != st {
			t.Fatalf("%s = %s, want %s", id, got, st)
		}
	}
	if n := len(b.runner.Calls()); n != 1 {
		t.Fatalf("%d runs queued, want 1", n)
	}

	// approve-all on the other workflow approves its delete and queues its run.
	ob := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + otherWF + "/deletes/approve-all", token: ann.token})
	if ob["status"] != "approved" || ob["count"] != 1.0 || ob["run_id"] == nil || b.deleteStatus(elsewhere) != "approved" {
		t.Fatalf("approve-all = %v", ob)
	}
	if calls := b.runner.Calls(); len(calls) != 2 || calls[1] != (enqueueCall{ann.accountID, otherWF, "manual"}) {
		t.Fatalf("runner calls = %v", calls)
	}
}

func TestApprovingOnAPausedWorkflowQueuesNoRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	d := b.pendingDelete(u, wfID, b.link(u, wfID, "s", "t", 0), "target", "pending", 0)
	b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/pause", token: u.token})
	if a := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/deletes/" + d + "/approve", token: u.token}); a["status"] != "approved" {
		t.Fatalf("approve = %v", a)
	}
	if calls := b.runner.Calls(); len(calls) != 0 {
		t.Fatalf("a paused workflow got a run: %v", calls)
	}
}

func TestLinkedRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, _, _ := b.workflow(ann)
	otherWF, _, _ := b.workflow(ann)
	l1 := b.link(ann, wfID, "s1", "t1", 3*time.Minute)
	l2 := b.link(ann, wfID, "s2", "t2", 2*time.Minute)
	l3 := b.link(ann, wfID, "s3", "t3", time.Minute)
	runID := store.NewID(store.PrefixRun)
	b.exec(`INSERT INTO runs (id, account_id, workflow_id, status, trigger) VALUES ($1, $2, $3, 'succeeded', 'schedule')`, runID, ann.accountID, wfID)
	for i, ev := range []struct{ dir, action string }{
		{"to_target", "created"}, {"to_source", "updated"}, {"to_target", "updated"}, {"to_target", "conflict"}, {"to_source", "deleted"},
	} {
		var run any
		if i > 0 {
			run = runID
		}
		b.exec(`INSERT INTO link_history (account_id, link_id, run_id, direction, action, values, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, ann.accountID, l1, run, ev.dir, ev.action, fmt.Sprintf(`{"n": %d}`, i), fmt.Sprint("step ", i))
	}
	base := "/v1/workflows/" + wfID + "/records"

	r := b.must(http.StatusOK, req{method: "GET", path: base + "/" + l1, token: ann.token})
	if r["id"] != l1 || r["workflow_id"] != wfID || r["source_id"] != "s1" || r["target_id"] != "t1" ||
		r["source_deleted"] != false || r["target_deleted"] != false || r["source_modified_at"] != "2025-03-01T10:00:00Z" || r["target_modified_at"] != nil ||
		!reflect.DeepEqual(r["source_values"], map[string]any{"email": "s1@example.com"}) ||
		!reflect.DeepEqual(r["target_values"], map[string]any{"email": "t1@example.com", "first_name": "Ann"}) {
		t.Fatalf("record = %v", r)
	}
	for k := range r {
		if strings.Contains(k, "hash") {
			t.Fatalf("record exposes %s", k)
		}
	}
	if strings.Contains(string(b.do(req{method: "GET", path: base + "/" + l1, token: ann.token}).Body), "secret-hash") {
		t.Fatal("a hash is in the answer")
	}
	hist := r["history"].(map[string]any)
	var notes []string
	for _, it := range hist["items"].([]any) {
		notes = append(notes, it.(map[string]any)["note"].(string))
	}
	if !reflect.DeepEqual(notes, []string{"step 4", "step 3", "step 2", "step 1", "step 0"}) || hist["next_cursor"] != "" {
		t.Fatalf("history = %v, want newest first", hist)
	}
	newest, oldest := hist["items"].([]any)[0].(map[string]any), hist["items"].([]any)[4].(map[string]any)
	if newest["run_id"] != runID || newest["direction"] != "to_source" || newest["action"] != "deleted" ||
		!reflect.DeepEqual(newest["values"], map[string]any{"n": 4.0}) || oldest["run_id"] != nil {
		t.Fatalf("history items = %v / %v", newest, oldest)
	}

	// The history pages with ?limit and ?cursor.
	notes = nil
	cursor := ""
	var sizes []int
	for range 5 {
		path := base + "/" + l1 + "?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		h := b.must(http.StatusOK, req{method: "GET", path: path, token: ann.token})["history"].(map[string]any)
		sizes = append(sizes, len(h["items"].([]any)))
		for _, it := range h["items"].([]any) {
			notes = append(notes, it.(map[string]any)["note"].(string))
		}
		if cursor = h["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if !reflect.DeepEqual(sizes, []int{2, 2, 1}) || !reflect.DeepEqual(notes, []string{"step 4", "step 3", "step 2", "step 1", "step 0"}) {
		t.Fatalf("paged history = %v %v", sizes, notes)
	}
	if h := b.must(http.StatusOK, req{method: "GET", path: base + "/" + l2, token: ann.token})["history"].(map[string]any); len(h["items"].([]any)) != 0 {
		t.Fatalf("history of l2 = %v", h)
	}

	// The list: newest first, filtered by either side's id.
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: base, token: ann.token})); !reflect.DeepEqual(got, []string{l3, l2, l1}) {
		t.Fatalf("records = %v", got)
	}
	for q, want := range map[string][]string{
		"?source_id=s2": {l2}, "?target_id=t3": {l3}, "?source_id=s9": nil, "?source_id=s1&target_id=t1": {l1}, "?limit=1&source_id=s1": {l1},
	} {
		if got := ids(b.must(http.StatusOK, req{method: "GET", path: base + q, token: ann.token})); !reflect.DeepEqual(got, want) {
			t.Fatalf("records%s = %v, want %v", q, got, want)
		}
	}
	page := b.must(http.StatusOK, req{method: "GET", path: base + "?limit=2", token: ann.token})
	rest := b.must(http.StatusOK, req{method: "GET", path: base + "?limit=2&cursor=" + page["next_cursor"].(string), token: ann.token})
	if got := append(ids(page), ids(rest)...); !reflect.DeepEqual(got, []string{l3, l2, l1}) {
		t.Fatalf("paged records = %v", got)
	}

	for name, tc := range map[string]struct {
		r      req
		status int
		code   string
	}{
		"bob reads":          {r: req{method: "GET", path: base + "/" + l1, token: bob.token}, status: 404, code: "not_found"},
		"bob lists":          {r: req{method: "GET", path: base, token: bob.token}, status: 404, code: "not_found"},
		"other workflow":     {r: req{method: "GET", path: "/v1/workflows/" + otherWF + "/records/" + l1, token: ann.token}, status: 404, code: "not_found"},
		"unknown link":       {r: req{method: "GET", path: base + "/lnk_nope", token: ann.token}, status: 404, code: "not_found"},
		"bad history cursor": {r: req{method: "GET", path: base + "/" + l1 + "?cursor=zz", token: ann.token}, status: 400, code: "invalid_cursor"},
		"bad limit":          {r: req{method: "GET", path: base + "/" + l1 + "?limit=0", token: ann.token}, status: 400, code: "invalid_limit"},
		"NUL in source_id":   {r: req{method: "GET", path: base + "?source_id=a%00", token: ann.token}, status: 400, code: "invalid_source_id"},
	} {
		resp := b.do(tc.r)
		if code, _ := resp.errorCode(t); resp.Status != tc.status || code != tc.code {
			t.Fatalf("%s = %d %s", name, resp.Status, resp.Body)
		}
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, _, _ := b.workflow(ann)
	var ns []string
	for i := range 4 {
		n, err := b.store.CreateNotification(b.ctx, store.Notification{AccountID: ann.accountID, Kind: "delete_safety_stop",
			Message: fmt.Sprint("notice ", i), WorkflowID: map[bool]string{true: wfID}[i == 3], CreatedAt: time.Now().Add(time.Duration(i-10) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n.ID)
	}
	bobs, err := b.store.CreateNotification(b.ctx, store.Notification{AccountID: bob.accountID, Kind: "upgrade_advised", Message: "upgrade"})
	if err != nil {
		t.Fatal(err)
	}

	all := b.must(http.StatusOK, req{method: "GET", path: "/v1/notifications", token: ann.token})
	if got := ids(all); !reflect.DeepEqual(got, []string{ns[3], ns[2], ns[1], ns[0]}) {
		t.Fatalf("notifications = %v", got)
	}
	top := all["items"].([]any)[0].(map[string]any)
	if top["kind"] != "delete_safety_stop" || top["message"] != "notice 3" || top["workflow_id"] != wfID || top["read"] != false || top["read_at"] != nil {
		t.Fatalf("notification = %v", top)
	}
	if w := all["items"].([]any)[1].(map[string]any)["workflow_id"]; w != nil {
		t.Fatalf("workflow_id of an account notice = %v", w)
	}

	read := b.must(http.StatusOK, req{method: "POST", path: "/v1/notifications/" + ns[2] + "/read", token: ann.token})
	if read["read"] != true || read["read_at"] == nil {
		t.Fatalf("read = %v", read)
	}
	b.clock.Advance(time.Hour)
	if again := b.must(http.StatusOK, req{method: "POST", path: "/v1/notifications/" + ns[2] + "/read", token: ann.token}); again["read_at"] != read["read_at"] {
		t.Fatalf("read again moved read_at: %v -> %v", read["read_at"], again["read_at"])
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: "/v1/notifications?unread=true", token: ann.token})); !reflect.DeepEqual(got, []string{ns[3], ns[1], ns[0]}) {
		t.Fatalf("unread = %v", got)
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: "/v1/notifications?unread=false&limit=1", token: ann.token})); !reflect.DeepEqual(got, []string{ns[3]}) {
		t.Fatalf("unread=false&limit=1 = %v", got)
	}

	for name, tc := range map[string]struct {
		r      req
		status int
		code   string
	}{
		"bob reads ann's":  {r: req{method: "POST", path: "/v1/notifications/" + ns[0] + "/read", token: bob.token}, status: 404, code: "not_found"},
		"ann reads bob's":  {r: req{method: "POST", path: "/v1/notifications/" + bobs.ID + "/read", token: ann.token}, status: 404, code: "not_found"},
		"unknown":          {r: req{method: "POST", path: "/v1/notifications/ntf_nope/read", token: ann.token}, status: 404, code: "not_found"},
		"bad unread":       {r: req{method: "GET", path: "/v1/notifications?unread=maybe", token: ann.token}, status: 400, code: "invalid_unread"},
		"bad cursor":       {r: req{method: "GET", path: "/v1/notifications?cursor=zz", token: ann.token}, status: 400, code: "invalid_cursor"},
		"no token to list": {r: req{method: "GET", path: "/v1/notifications"}, status: 401, code: "unauthorized"},
	} {
		resp := b.do(tc.r)
		if code, _ := resp.errorCode(t); resp.Status != tc.status || code != tc.code {
			t.Fatalf("%s = %d %s", name, resp.Status, resp.Body)
		}
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: "/v1/notifications?unread=true", token: ann.token})); len(got) != 3 {
		t.Fatalf("bob's attempt changed ann's notices: %v", got)
	}
	if got := ids(b.must(http.StatusOK, req{method: "GET", path: "/v1/notifications?unread=true", token: bob.token})); !reflect.DeepEqual(got, []string{bobs.ID}) {
		t.Fatalf("bob's notices = %v", got)
	}
}

// memConnections creates two memdb connections: both read and write people.
func (b *testBundle) memConnections(u user) (a, z string) {
	b.t.Helper()
	for _, name := range []string{"Shop", "CRM"} {
		m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
			body: map[string]any{"app": "memdb", "name": name, "config": map[string]any{"api_key": memKey}}})
		a, z = z, m["id"].(string)
	}
	return a, z
}

func twoWayBody(src, dst string) map[string]any {
	return map[string]any{
		"name":      "Shop people <-> CRM people",
		"source":    map[string]string{"connection_id": src, "object": "people"},
		"target":    map[string]string{"connection_id": dst, "object": "people"},
		"direction": "two_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email", "transform": "trim,lower"},
			{"source": "first_name", "target": "first_name", "direction": "both", "allow_empty": true},
			{"source": "last_name", "target": "last_name", "direction": "to_target", "transform": "trim,map", "map": map[string]string{"doe": "Doe"}, "default": "Unknown"},
			{"source": "birthday", "target": "birthday", "transform": "format_date", "format": "DD/MM/YYYY"},
			{"source": "notes", "target": "notes", "direction": "to_source", "transform": "upper"},
			{"target": "sample_id", "value": "from-shop"},
		},
		"match":                map[string]string{"source": "email", "target": "email"},
		"conflict":             "newest_wins",
		"deletes":              "approve",
		"write_back":           map[string]string{"field": "sample_id"},
		"filter":               map[string]any{"all": []map[string]any{{"side": "source", "field": "email", "op": "exists"}, {"side": "target", "field": "last_name", "op": "ne", "value": "Test"}}},
		"delete_threshold_pct": 25,
		"interval_seconds":     900,
	}
}

func TestTwoWayWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	src, dst := b.memConnections(u)
	body := twoWayBody(src, dst)
	w := b.must(http.StatusCreated, req{method: "POST", path: "/v1/workflows", token: u.token, body: body})
	id := w["id"].(string)
	if w["direction"] != "two_way" || w["conflict"] != "newest_wins" || w["deletes"] != "approve" || w["delete_threshold_pct"] != 25.0 {
		t.Fatalf("created = %v", w)
	}
	// Every setting comes back as it was sent.
	for _, k := range []string{"mapping", "match", "write_back", "filter"} {
		sent, err := json.Marshal(body[k])
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(sent, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w[k], want) {
			t.Fatalf("%s = %v, want %v", k, w[k], want)
		}
	}
	if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows/" + id, token: u.token}); !reflect.DeepEqual(got, w) {
		t.Fatalf("GET = %v\nwant %v", got, w)
	}
	var stored struct {
		Filter    []byte  `db:"filter"`
		Threshold float64 `db:"delete_threshold_pct"`
	}
	if err := b.db.GetContext(b.ctx, &stored, `SELECT filter, delete_threshold_pct FROM workflows WHERE id = $1`, id); err != nil ||
		!strings.Contains(string(stored.Filter), `"exists"`) || stored.Threshold != 25 {
		t.Fatalf("stored = %s %v, %v", stored.Filter, stored.Threshold, err)
	}

	// PATCH changes the two-way settings and keeps the others.
	p := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/workflows/" + id, token: u.token, body: map[string]any{
		"filter":               map[string]any{"any": []map[string]any{{"field": "email", "op": "starts_with", "value": "vip"}}},
		"delete_threshold_pct": 0, "conflict": "target_wins", "deletes": "propagate",
	}})
	if p["delete_threshold_pct"] != 0.0 || p["conflict"] != "target_wins" || p["deletes"] != "propagate" ||
		p["filter"].(map[string]any)["any"] == nil || !reflect.DeepEqual(p["mapping"], w["mapping"]) || !reflect.DeepEqual(p["match"], w["match"]) {
		t.Fatalf("patched = %v", p)
	}
	resp := b.do(req{method: "PATCH", path: "/v1/workflows/" + id, token: u.token, body: map[string]any{"match": nil}})
	if code, msg := resp.errorCode(t); resp.Status != 422 || code != "invalid_match" || !strings.Contains(msg, "required for two_way") {
		t.Fatalf("PATCH match null = %d %s", resp.Status, resp.Body)
	}
	cleared := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/workflows/" + id, token: u.token, body: map[string]any{"filter": nil}})
	if cleared["filter"] != nil || cleared["match"] == nil {
		t.Fatalf("filter cleared = %v", cleared)
	}

	// A one-way workflow may keep its defaults: no match, threshold 10.
	one := twoWayBody(src, dst)
	for _, k := range []string{"direction", "match", "filter", "delete_threshold_pct", "conflict", "deletes"} {
		delete(one, k)
	}
	one["mapping"] = []map[string]any{{"source": "id", "target": "sample_id"}, {"source": "email", "target": "email"}}
	o := b.must(http.StatusCreated, req{method: "POST", path: "/v1/workflows", token: u.token, body: one})
	if o["direction"] != "one_way" || o["match"] != nil || o["filter"] != nil || o["delete_threshold_pct"] != 10.0 {
		t.Fatalf("one-way = %v", o)
	}
}

func TestTwoWayValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	src, dst := b.memConnections(u)
	sample, _ := b.connections(u)
	with := func(changes map[string]any) map[string]any {
		body := twoWayBody(src, dst)
		for k, v := range changes {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return body
	}
	rule := func(r map[string]any) map[string]any {
		return with(map[string]any{"mapping": []map[string]any{{"source": "email", "target": "email"}, r}})
	}
	filter := func(conds ...map[string]any) map[string]any {
		return with(map[string]any{"filter": map[string]any{"all": conds}})
	}
	testCases := map[string]struct {
		body      map[string]any
		wantCode  string
		wantInMsg string
	}{
		"no match":                 {body: with(map[string]any{"match": nil}), wantCode: "invalid_match", wantInMsg: "match is required for two_way"},
		"match unknown field":      {body: with(map[string]any{"match": map[string]string{"source": "mail", "target": "email"}}), wantCode: "invalid_match", wantInMsg: `"mail"`},
		"match half":               {body: with(map[string]any{"match": map[string]string{"source": "email"}}), wantCode: "invalid_match", wantInMsg: "match"},
		"match not an object":      {body: with(map[string]any{"match": "email"}), wantCode: "invalid_match", wantInMsg: "match"},
		"bad conflict":             {body: with(map[string]any{"conflict": "coin_flip"}), wantCode: "invalid_conflict", wantInMsg: "newest_wins"},
		"bad deletes":              {body: with(map[string]any{"deletes": "shred"}), wantCode: "invalid_deletes", wantInMsg: "approve"},
		"bad direction":            {body: with(map[string]any{"direction": "three_way"}), wantCode: "invalid_direction", wantInMsg: "two_way"},
		"threshold over 100":       {body: with(map[string]any{"delete_threshold_pct": 150}), wantCode: "invalid_delete_threshold_pct", wantInMsg: "0 to 100"},
		"threshold negative":       {body: with(map[string]any{"delete_threshold_pct": -5}), wantCode: "invalid_delete_threshold_pct", wantInMsg: "delete_threshold_pct"},
		"write_back unknown field": {body: with(map[string]any{"write_back": map[string]string{"field": "crm_id"}}), wantCode: "invalid_write_back", wantInMsg: `"crm_id"`},
		"write_back read-only":     {body: with(map[string]any{"write_back": map[string]string{"field": "id"}}), wantCode: "invalid_write_back", wantInMsg: "read-only"},
		"write_back no field":      {body: with(map[string]any{"write_back": map[string]string{}}), wantCode: "invalid_write_back", wantInMsg: "write_back.field"},
		"filter unknown field":     {body: filter(map[string]any{"field": "colour", "op": "eq", "value": "red"}), wantCode: "invalid_filter", wantInMsg: `"colour"`},
		"filter unknown op":        {body: filter(map[string]any{"field": "email", "op": "like", "value": "a%"}), wantCode: "invalid_filter", wantInMsg: `"like"`},
		"filter bad side":          {body: filter(map[string]any{"side": "middle", "field": "email", "op": "exists"}), wantCode: "invalid_filter", wantInMsg: "side"},
		"filter not all or any":    {body: with(map[string]any{"filter": map[string]any{"some": []any{}}}), wantCode: "invalid_filter", wantInMsg: "filter"},
		"rule bad direction":       {body: rule(map[string]any{"source": "notes", "target": "notes", "direction": "sideways"}), wantCode: "invalid_mapping", wantInMsg: `"sideways"`},
		"rule unknown transform":   {body: rule(map[string]any{"source": "notes", "target": "notes", "transform": "reverse"}), wantCode: "invalid_mapping", wantInMsg: `"reverse"`},
		"format_date no format":    {body: rule(map[string]any{"source": "birthday", "target": "birthday", "transform": "format_date"}), wantCode: "invalid_mapping", wantInMsg: "format"},
		"map without map":          {body: rule(map[string]any{"source": "notes", "target": "notes", "transform": "map"}), wantCode: "invalid_mapping", wantInMsg: "map"},
		"map not reversible":       {body: rule(map[string]any{"source": "notes", "target": "notes", "transform": "map", "map": map[string]string{"a": "x", "b": "x"}}), wantCode: "invalid_mapping", wantInMsg: `"x"`},
		"constant both ways":       {body: rule(map[string]any{"target": "notes", "value": "x", "direction": "both"}), wantCode: "invalid_mapping", wantInMsg: "both"},
		"writes a read-only field": {body: rule(map[string]any{"source": "id", "target": "notes"}), wantCode: "invalid_mapping", wantInMsg: "read-only"},
		"source not writable":      {body: with(map[string]any{"source": map[string]string{"connection_id": src, "object": "audit"}}), wantCode: "invalid_source", wantInMsg: "also writes to its source"},
		"source app read-only":     {body: with(map[string]any{"source": map[string]string{"connection_id": sample, "object": "contacts"}}), wantCode: "invalid_source", wantInMsg: "cannot be written"},
		"target not readable":      {body: with(map[string]any{"target": map[string]string{"connection_id": dst, "object": "outbox"}}), wantCode: "invalid_target", wantInMsg: "also reads its target"},
		"one way, to_source rule":  {body: rule(map[string]any{"source": "notes", "target": "notes", "direction": "to_source"}), wantCode: "invalid_mapping", wantInMsg: "two_way"},
	}
	testCases["one way, to_source rule"].body["direction"] = "one_way"
	// The group returns once every parallel case is done.
	t.Run("cases", func(t *testing.T) {
		for name, tc := range testCases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				resp := b.do(req{method: "POST", path: "/v1/workflows", token: u.token, body: tc.body})
				code, msg := resp.errorCode(t)
				if resp.Status != 422 || code != tc.wantCode || !strings.Contains(msg, tc.wantInMsg) {
					t.Fatalf("= %d %s %q; want 422 %s containing %q", resp.Status, code, msg, tc.wantCode, tc.wantInMsg)
				}
			})
		}
	})
	if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows", token: u.token}); len(got["items"].([]any)) != 0 {
		t.Fatalf("bad creates left workflows: %v", got)
	}
}
