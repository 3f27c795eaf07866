package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestWorkflowLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	src, dst := b.connections(u)
	w := b.must(http.StatusCreated, req{method: "POST", path: "/v1/workflows", token: u.token, body: workflowBody(src, dst)})
	id := w["id"].(string)
	if !strings.HasPrefix(id, "wf_") || w["status"] != "active" || w["direction"] != "one_way" || w["conflict"] != "source_wins" ||
		w["deletes"] != "ignore" || w["shared"] != false || w["interval_seconds"] != 900.0 || w["next_run_at"] == nil ||
		w["created_by"] != u.userID || w["write_back"] != nil || w["filter"] != nil || w["delete_threshold_pct"] != 10.0 {
		t.Fatalf("created = %v", w)
	}
	if w["source"].(map[string]any)["connection_id"] != src || w["target"].(map[string]any)["object"] != "people" {
		t.Fatalf("ends = %v %v", w["source"], w["target"])
	}
	if len(w["mapping"].([]any)) != 3 || w["match"].(map[string]any)["source"] != "email" {
		t.Fatalf("mapping/match = %v %v", w["mapping"], w["match"])
	}
	if _, ok := w["cursor"]; ok {
		t.Fatal("the cursor is exposed")
	}

	got := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows/" + id, token: u.token})
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("GET = %v\nwant %v", got, w)
	}
	list := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows", token: u.token})
	if items := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id || list["next_cursor"] != "" {
		t.Fatalf("list = %v", list)
	}

	patched := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/workflows/" + id, token: u.token, body: map[string]any{
		"name": "Renamed", "interval_seconds": 3600, "shared": true, "conflict": "newest_wins", "match": nil,
	}})
	if patched["name"] != "Renamed" || patched["interval_seconds"] != 3600.0 || patched["shared"] != true ||
		patched["conflict"] != "newest_wins" || patched["match"] != nil || len(patched["mapping"].([]any)) != 3 {
		t.Fatalf("patched = %v", patched)
	}
}

func TestWorkflowWriteBackToReadOnlySource(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	resp := b.do(req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"write_back": map[string]any{"field": "phone"}}})
	if code, _ := resp.errorCode(t); resp.Status != 422 || code != "invalid_write_back" {
		t.Fatalf("write_back to the sample app = %d %s", resp.Status, resp.Body)
	}
}

func TestWorkflowPauseResumeDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	p := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/pause", token: u.token})
	if p["status"] != "paused" {
		t.Fatalf("pause = %v", p)
	}
	b.clock.Advance(time.Hour)
	r := b.must(http.StatusOK, req{method: "POST", path: "/v1/workflows/" + wfID + "/resume", token: u.token})
	next, _ := time.Parse(time.RFC3339Nano, r["next_run_at"].(string))
	if r["status"] != "active" || !next.Equal(b.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("resume = %v (now %v)", r, b.clock.Now())
	}
	b.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/workflows/" + wfID, token: u.token})
	for _, r := range []req{
		{method: "GET", path: "/v1/workflows/" + wfID},
		{method: "DELETE", path: "/v1/workflows/" + wfID},
		{method: "POST", path: "/v1/workflows/" + wfID + "/pause"},
	} {
		r.token = u.token
		b.must(http.StatusNotFound, r)
	}
}

func TestWorkflowValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	src, dst := b.connections(u)
	bad := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Refused", "config": map[string]any{"api_key": "rejected-key"}}})
	with := func(changes map[string]any) map[string]any {
		body := workflowBody(src, dst)
		for k, v := range changes {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return body
	}
	testCases := map[string]struct {
		body      map[string]any
		wantCode  string
		wantInMsg string
	}{
		"unknown target field":      {body: with(map[string]any{"mapping": []map[string]any{{"source": "email", "target": "e_mail"}}}), wantCode: "invalid_mapping", wantInMsg: `"e_mail"`},
		"unknown source field":      {body: with(map[string]any{"mapping": []map[string]any{{"source": "mail", "target": "email"}}}), wantCode: "invalid_mapping", wantInMsg: `"mail"`},
		"read-only target":          {body: with(map[string]any{"mapping": []map[string]any{{"source": "email", "target": "id"}}}), wantCode: "invalid_mapping", wantInMsg: `"id"`},
		"no mapping":                {body: with(map[string]any{"mapping": nil}), wantCode: "invalid_mapping"},
		"empty mapping":             {body: with(map[string]any{"mapping": []any{}}), wantCode: "invalid_mapping"},
		"interval too short":        {body: with(map[string]any{"interval_seconds": 300}), wantCode: "interval_too_short", wantInMsg: "900"},
		"interval too long":         {body: with(map[string]any{"interval_seconds": 365 * 24 * 3600}), wantCode: "interval_too_long"},
		"two way without match":     {body: with(map[string]any{"direction": "two_way", "match": nil}), wantCode: "invalid_match", wantInMsg: "match is required for two_way"},
		"two way, source read-only": {body: with(map[string]any{"direction": "two_way"}), wantCode: "invalid_source", wantInMsg: "cannot be written"},
		"threshold above 100":       {body: with(map[string]any{"delete_threshold_pct": 101}), wantCode: "invalid_delete_threshold_pct", wantInMsg: "0 to 100"},
		"threshold below 0":         {body: with(map[string]any{"delete_threshold_pct": -1}), wantCode: "invalid_delete_threshold_pct"},
		"bad direction":             {body: with(map[string]any{"direction": "sideways"}), wantCode: "invalid_direction"},
		"bad conflict":              {body: with(map[string]any{"conflict": "coin_flip"}), wantCode: "invalid_conflict"},
		"bad deletes":               {body: with(map[string]any{"deletes": "shred"}), wantCode: "invalid_deletes"},
		"no name":                   {body: with(map[string]any{"name": nil}), wantCode: "invalid_name"},
		"no source":                 {body: with(map[string]any{"source": nil}), wantCode: "invalid_source"},
		"unknown connection":        {body: with(map[string]any{"source": map[string]string{"connection_id": "con_nope", "object": "contacts"}}), wantCode: "invalid_source", wantInMsg: "con_nope"},
		"unknown object":            {body: with(map[string]any{"source": map[string]string{"connection_id": src, "object": "invoices"}}), wantCode: "invalid_source", wantInMsg: "contacts, orders"},
		"target not writable":       {body: with(map[string]any{"target": map[string]string{"connection_id": dst, "object": "audit"}}), wantCode: "invalid_target", wantInMsg: "cannot be written"},
		"read-only app target":      {body: with(map[string]any{"target": map[string]string{"connection_id": src, "object": "orders"}}), wantCode: "invalid_target"},
		"target fails discover":     {body: with(map[string]any{"target": map[string]string{"connection_id": bad["id"].(string), "object": "people"}}), wantCode: "connection_error", wantInMsg: "refused this api key"},
		"match unknown field":       {body: with(map[string]any{"match": map[string]string{"source": "email", "target": "mail"}}), wantCode: "invalid_match", wantInMsg: `"mail"`},
		"match half":                {body: with(map[string]any{"match": map[string]string{"source": "email"}}), wantCode: "invalid_match"},
		"write_back no field":       {body: with(map[string]any{"write_back": map[string]string{}}), wantCode: "invalid_write_back"},
	}
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

func TestWorkflowPlanMinimumOnPatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	resp := b.do(req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"interval_seconds": 60}})
	if code, _ := resp.errorCode(t); resp.Status != 422 || code != "interval_too_short" {
		t.Fatalf("PATCH below the plan minimum = %d %s", resp.Status, resp.Body)
	}
	resp = b.do(req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"direction": "two_way"}})
	if code, _ := resp.errorCode(t); resp.Status != 422 || code != "immutable_field" {
		t.Fatalf("PATCH direction = %d %s", resp.Status, resp.Body)
	}
	// A Team account may go down to 5 minutes.
	if _, err := b.db.ExecContext(b.ctx, `UPDATE accounts SET plan = 'team' WHERE id = $1`, u.accountID); err != nil {
		t.Fatal(err)
	}
	w := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"interval_seconds": 300}})
	if w["interval_seconds"] != 300.0 {
		t.Fatalf("team PATCH = %v", w)
	}
	b.must(http.StatusUnprocessableEntity, req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"interval_seconds": 299}})
}

func TestOtherAccountsIDsAre404(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ann := b.signup("ann@example.com")
	bob := b.signup("bob@example.com")
	wfID, src, dst := b.workflow(ann)
	run := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: ann.token})
	runID := run["id"].(string)
	beforeWF := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows/" + wfID, token: ann.token})
	beforeCon := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + src, token: ann.token})
	calls := len(b.runner.Calls())

	bobSrc, bobDst := b.connections(bob)
	testCases := map[string]req{
		"GET workflow":       {method: "GET", path: "/v1/workflows/" + wfID},
		"PATCH workflow":     {method: "PATCH", path: "/v1/workflows/" + wfID, body: map[string]any{"name": "mine"}},
		"DELETE workflow":    {method: "DELETE", path: "/v1/workflows/" + wfID},
		"run workflow":       {method: "POST", path: "/v1/workflows/" + wfID + "/run"},
		"pause workflow":     {method: "POST", path: "/v1/workflows/" + wfID + "/pause"},
		"resume workflow":    {method: "POST", path: "/v1/workflows/" + wfID + "/resume"},
		"list workflow runs": {method: "GET", path: "/v1/workflows/" + wfID + "/runs"},
		"GET connection":     {method: "GET", path: "/v1/connections/" + src},
		"PATCH connection":   {method: "PATCH", path: "/v1/connections/" + src, body: map[string]any{"name": "mine"}},
		"DELETE connection":  {method: "DELETE", path: "/v1/connections/" + dst},
		"check connection":   {method: "POST", path: "/v1/connections/" + src + "/check"},
		"GET run":            {method: "GET", path: "/v1/runs/" + runID},
		"GET run records":    {method: "GET", path: "/v1/runs/" + runID + "/records"},
		"retry run records":  {method: "POST", path: "/v1/runs/" + runID + "/records/retry"},
		"preview workflow":   {method: "POST", path: "/v1/workflows/" + wfID + "/preview"},
		"list records":       {method: "GET", path: "/v1/workflows/" + wfID + "/records"},
		"GET record":         {method: "GET", path: "/v1/workflows/" + wfID + "/records/lnk_x"},
		"list deletes":       {method: "GET", path: "/v1/workflows/" + wfID + "/deletes"},
		"approve all":        {method: "POST", path: "/v1/workflows/" + wfID + "/deletes/approve-all"},
		"discard all":        {method: "POST", path: "/v1/workflows/" + wfID + "/deletes/discard-all"},
		"approve delete":     {method: "POST", path: "/v1/workflows/" + wfID + "/deletes/del_x/approve"},
		"discard delete":     {method: "POST", path: "/v1/workflows/" + wfID + "/deletes/del_x/discard"},
		"GET unknown":        {method: "GET", path: "/v1/workflows/wf_doesnotexist"},
		"GET unknown run":    {method: "GET", path: "/v1/runs/run_doesnotexist"},
		"GET unknown conn":   {method: "GET", path: "/v1/connections/con_doesnotexist"},
	}
	// The group returns once every parallel case is done, so that
	// "nothing changed" runs after them.
	t.Run("cases", func(t *testing.T) {
		for name, r := range testCases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r.token = bob.token
				resp := b.do(r)
				if code, _ := resp.errorCode(t); resp.Status != http.StatusNotFound || code != "not_found" {
					t.Fatalf("= %d %s, want 404", resp.Status, resp.Body)
				}
			})
		}
	})
	// Bob cannot build a workflow on Ann's connections either.
	resp := b.do(req{method: "POST", path: "/v1/workflows", token: bob.token, body: workflowBody(src, bobDst)})
	if code, _ := resp.errorCode(t); resp.Status != 422 || code != "invalid_source" {
		t.Fatalf("workflow on a foreign connection = %d %s", resp.Status, resp.Body)
	}
	resp = b.do(req{method: "POST", path: "/v1/workflows", token: bob.token, body: workflowBody(bobSrc, dst)})
	if code, _ := resp.errorCode(t); resp.Status != 422 || code != "invalid_target" {
		t.Fatalf("workflow on a foreign target = %d %s", resp.Status, resp.Body)
	}

	t.Run("nothing changed", func(t *testing.T) {
		if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows/" + wfID, token: ann.token}); !reflect.DeepEqual(got, beforeWF) {
			t.Fatalf("workflow changed: %v\nwas %v", got, beforeWF)
		}
		if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + src, token: ann.token}); !reflect.DeepEqual(got, beforeCon) {
			t.Fatalf("connection changed: %v\nwas %v", got, beforeCon)
		}
		b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + dst, token: ann.token})
		b.must(http.StatusOK, req{method: "GET", path: "/v1/runs/" + runID, token: ann.token})
		if n := len(b.runner.Calls()); n != calls {
			t.Fatalf("the runner got %d more calls", n-calls)
		}
		if other := b.runner.OtherCalls(); len(other) != 0 {
			t.Fatalf("the runner got calls: %v", other)
		}
	})
}

func TestRunWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	run := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: u.token})
	calls := b.runner.Calls()
	if len(calls) != 1 || calls[0] != (enqueueCall{AccountID: u.accountID, WorkflowID: wfID, Trigger: "manual"}) {
		t.Fatalf("runner calls = %v", calls)
	}
	runID := run["id"].(string)
	if run["status"] != "queued" || run["trigger"] != "manual" || run["workflow_id"] != wfID {
		t.Fatalf("run = %v", run)
	}
	// A second run-now answers the run already queued.
	again := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: u.token})
	if again["id"] != runID {
		t.Fatalf("second run = %v, want %s", again["id"], runID)
	}

	// The engine finishes the run.
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := b.db.ExecContext(b.ctx, `UPDATE runs SET status = 'partial', read_count = 120, created_count = 3, updated_count = 5,
		skipped_count = 111, failed_count = 1, matched_count = 4, ambiguous_count = 2, notice = 'deleted nothing: over the threshold',
		transactions = 8, connector_versions = '{"sample": "0.1.0", "memdb": "1.2.3"}',
		started_at = $2, finished_at = $3 WHERE id = $1`, runID, started, started.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(b.ctx, `INSERT INTO run_records (run_id, account_id, record_id, direction, status, message)
		VALUES ($1, $2, 'c_00000007', 'forward', 'rejected', 'email is invalid')`, runID, u.accountID); err != nil {
		t.Fatal(err)
	}
	resp := b.do(req{method: "GET", path: "/v1/runs/" + runID, token: u.token})
	var got map[string]any
	if err := json.Unmarshal(resp.Body, &got); err != nil || resp.Status != 200 {
		t.Fatalf("GET run = %d %s", resp.Status, resp.Body)
	}
	want := map[string]any{
		"id": runID, "workflow_id": wfID, "status": "partial", "trigger": "manual",
		"counts": map[string]any{"read": 120.0, "created": 3.0, "updated": 5.0, "deleted": 0.0, "skipped": 111.0, "failed": 1.0,
			"matched": 4.0, "ambiguous": 2.0},
		"notice":       "deleted nothing: over the threshold",
		"transactions": 8.0, "connector_versions": map[string]any{"sample": "0.1.0", "memdb": "1.2.3"},
		"attempts": 0.0, "created_at": got["created_at"],
		"started_at": "2025-03-01T10:00:00Z", "finished_at": "2025-03-01T10:01:30Z",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("run = %v\nwant %v", got, want)
	}
	if _, err := time.Parse(time.RFC3339, got["created_at"].(string)); err != nil || !strings.HasSuffix(got["created_at"].(string), "Z") {
		t.Fatalf("created_at = %v", got["created_at"])
	}

	recs := b.must(http.StatusOK, req{method: "GET", path: "/v1/runs/" + runID + "/records", token: u.token})
	items := recs["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["record_id"] != "c_00000007" || items[0].(map[string]any)["message"] != "email is invalid" ||
		items[0].(map[string]any)["side"] != "source" || items[0].(map[string]any)["link_id"] != nil {
		t.Fatalf("records = %v", recs)
	}
	runs := b.must(http.StatusOK, req{method: "GET", path: "/v1/workflows/" + wfID + "/runs", token: u.token})
	if items := runs["items"].([]any); len(items) != 1 || !reflect.DeepEqual(items[0], got) {
		t.Fatalf("runs = %v\nwant [%v]", runs, got)
	}
	// Finished: run-now queues a new run.
	third := b.must(http.StatusAccepted, req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: u.token})
	if third["id"] == runID {
		t.Fatal("a finished run was answered as the active one")
	}
}

func TestRunWithoutRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, withoutRunner())
	u := b.signup("ann@example.com")
	wfID, _, _ := b.workflow(u)
	resp := b.do(req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: u.token})
	if code, _ := resp.errorCode(t); resp.Status != 503 || code != "runner_unavailable" {
		t.Fatalf("= %d %s", resp.Status, resp.Body)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	want := map[string]bool{}
	for range 7 {
		c := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
			body: map[string]any{"app": "sample", "name": "S", "config": map[string]any{"count": 1}}})
		want[c["id"].(string)] = true
	}
	var got []string
	var sizes []int
	cursor := ""
	for range 10 {
		path := "/v1/connections?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page := b.must(http.StatusOK, req{method: "GET", path: path, token: u.token})
		items := page["items"].([]any)
		sizes = append(sizes, len(items))
		for _, it := range items {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		cursor = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if !reflect.DeepEqual(sizes, []int{3, 3, 1}) {
		t.Fatalf("page sizes = %v, want [3 3 1]", sizes)
	}
	sort.Strings(got)
	if len(got) != 7 || !func() bool {
		for _, id := range got {
			if !want[id] {
				return false
			}
		}
		return true
	}() {
		t.Fatalf("paged ids = %v", got)
	}
	def := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections", token: u.token})
	if len(def["items"].([]any)) != 7 || def["next_cursor"] != "" {
		t.Fatalf("default page = %v", def)
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=abc", "limit=-1", "cursor=%21%21", "cursor=bm9wZQ"} {
		resp := b.do(req{method: "GET", path: "/v1/connections?" + q, token: u.token})
		code, _ := resp.errorCode(t)
		if resp.Status != 400 || (code != "invalid_limit" && code != "invalid_cursor") {
			t.Fatalf("?%s = %d %s", q, resp.Status, resp.Body)
		}
	}
	b.must(http.StatusOK, req{method: "GET", path: "/v1/connections?limit=500", token: u.token})
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	other := b.signup("bob@example.com")
	create := req{method: "POST", path: "/v1/connections", token: u.token, header: map[string]string{"Idempotency-Key": "k-123"},
		body: map[string]any{"app": "sample", "name": "Once", "config": map[string]any{"count": 3}}}
	first := b.do(create)
	second := b.do(create)
	if first.Status != 201 || second.Status != 201 || string(first.Body) != string(second.Body) || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s / %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	if l := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections", token: u.token}); len(l["items"].([]any)) != 1 {
		t.Fatalf("two connections after a replay: %v", l)
	}
	// The same key with another body is refused; another account has its own keys.
	changed := create
	changed.body = map[string]any{"app": "sample", "name": "Twice", "config": map[string]any{"count": 3}}
	if resp := b.do(changed); resp.Status != 422 {
		t.Fatalf("same key, other body = %d %s", resp.Status, resp.Body)
	}
	theirs := create
	theirs.token = other.token
	if resp := b.do(theirs); resp.Status != 201 || string(resp.Body) == string(first.Body) {
		t.Fatalf("other account, same key = %d %s", resp.Status, resp.Body)
	}
	// Errors are replayed too.
	bad := req{method: "POST", path: "/v1/connections", token: u.token, header: map[string]string{"Idempotency-Key": "k-bad"},
		body: map[string]any{"app": "nope", "name": "x", "config": map[string]any{}}}
	e1, e2 := b.do(bad), b.do(bad)
	if e1.Status != 422 || e2.Status != 422 || string(e1.Body) != string(e2.Body) {
		t.Fatalf("error replay: %d %s / %d %s", e1.Status, e1.Body, e2.Status, e2.Body)
	}
	// A token created idempotently is replayed, but never stored in clear.
	tok := req{method: "POST", path: "/v1/tokens", token: u.token, header: map[string]string{"Idempotency-Key": "t-1"}, body: map[string]any{"name": "CI"}}
	t1, t2 := b.do(tok), b.do(tok)
	if t1.Status != 201 || string(t1.Body) != string(t2.Body) {
		t.Fatalf("token replay: %s / %s", t1.Body, t2.Body)
	}
	secret := t1.JSON(t)["token"].(string)
	var n int
	if err := b.db.GetContext(b.ctx, &n, `SELECT count(*) FROM idempotency_keys WHERE position(convert_to($1, 'UTF8') in body) > 0`, secret); err != nil || n != 0 {
		t.Fatalf("token stored in clear in idempotency_keys (%d, %v)", n, err)
	}
	// The run-now of a workflow is idempotent as well.
	wfID, _, _ := b.workflow(u)
	runReq := req{method: "POST", path: "/v1/workflows/" + wfID + "/run", token: u.token, header: map[string]string{"Idempotency-Key": "r-1"}}
	r1, r2 := b.do(runReq), b.do(runReq)
	if r1.Status != 202 || string(r1.Body) != string(r2.Body) || len(b.runner.Calls()) != 1 {
		t.Fatalf("run replay: %s / %s, %d calls", r1.Body, r2.Body, len(b.runner.Calls()))
	}
	if resp := b.do(req{method: "POST", path: "/v1/connections", token: u.token, header: map[string]string{"Idempotency-Key": "bad key"}, body: map[string]any{}}); resp.Status != 400 {
		t.Fatalf("key with a space = %d", resp.Status)
	}
}

func TestWorkflowEditsWhileAConnectionIsBroken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, _, dst := b.workflow(u)
	broken := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/connections/" + dst, token: u.token,
		body: map[string]any{"config": map[string]any{"api_key": "rejected-key"}}})
	if broken["status"] != "error" {
		t.Fatalf("connection = %v", broken)
	}
	// Settings that do not depend on the objects can still change...
	w := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token, body: map[string]any{"name": "Still editable", "interval_seconds": 1800}})
	if w["name"] != "Still editable" {
		t.Fatalf("PATCH = %v", w)
	}
	// ...but a new mapping must be checked against the target's objects.
	resp := b.do(req{method: "PATCH", path: "/v1/workflows/" + wfID, token: u.token,
		body: map[string]any{"mapping": []map[string]any{{"source": "email", "target": "email"}}}})
	if code, msg := resp.errorCode(t); resp.Status != 422 || code != "connection_error" || !strings.Contains(msg, dst) {
		t.Fatalf("PATCH mapping = %d %s", resp.Status, resp.Body)
	}
}
