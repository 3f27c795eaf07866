package api_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestApps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	b.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/apps"})
	apps := b.must(http.StatusOK, req{method: "GET", path: "/v1/apps", token: u.token})
	items := apps["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["name"] != "memdb" || items[1].(map[string]any)["name"] != "sample" {
		t.Fatalf("apps = %v", apps)
	}
	first := b.must(http.StatusOK, req{method: "GET", path: "/v1/apps?limit=1", token: u.token})
	if items := first["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "memdb" || first["next_cursor"] == "" {
		t.Fatalf("first page = %v", first)
	}
	second := b.must(http.StatusOK, req{method: "GET", path: "/v1/apps?limit=1&cursor=" + first["next_cursor"].(string), token: u.token})
	if items := second["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "sample" || second["next_cursor"] != "" {
		t.Fatalf("second page = %v", second)
	}
	b.must(http.StatusBadRequest, req{method: "GET", path: "/v1/apps?limit=9999", token: u.token})
	app := b.must(http.StatusOK, req{method: "GET", path: "/v1/apps/sample", token: u.token})
	if app["version"] != "0.1.0" || app["title"] != "Sample data" || len(app["objects"].([]any)) != 2 ||
		app["capabilities"].(map[string]any)["read"] != true || app["config_schema"].(map[string]any)["type"] != "object" {
		t.Fatalf("app = %v", app)
	}
	docs := b.do(req{method: "GET", path: "/v1/apps/sample/docs", token: u.token})
	if docs.Status != 200 || !strings.HasPrefix(docs.Header.Get("Content-Type"), "text/markdown") || !strings.HasPrefix(string(docs.Body), "# Sample data") {
		t.Fatalf("docs = %d %s %q", docs.Status, docs.Header.Get("Content-Type"), docs.Body)
	}
	for _, path := range []string{"/v1/apps/nope", "/v1/apps/nope/docs"} {
		resp := b.do(req{method: "GET", path: path, token: u.token})
		if code, msg := resp.errorCode(t); resp.Status != 404 || code != "not_found" || !strings.Contains(msg, `"nope"`) {
			t.Fatalf("%s = %d %s", path, resp.Status, resp.Body)
		}
	}
}

func TestConnectionSecretsNeverLeave(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	const secret = "very-secret-api-key-42"
	created := b.do(req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Memory", "config": map[string]any{"api_key": secret}}})
	if created.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", created.Status, created.Body)
	}
	c := created.JSON(t)
	id := c["id"].(string)
	if !strings.HasPrefix(id, "con_") || c["app"] != "memdb" || c["name"] != "Memory" || c["status"] != "ok" {
		t.Fatalf("created = %v", c)
	}
	if _, ok := c["config"]; ok {
		t.Fatal("config in the answer")
	}
	answers := [][]byte{created.Body}
	for _, r := range []req{
		{method: "GET", path: "/v1/connections", token: u.token},
		{method: "GET", path: "/v1/connections/" + id, token: u.token},
		{method: "POST", path: "/v1/connections/" + id + "/check", token: u.token},
		{method: "PATCH", path: "/v1/connections/" + id, token: u.token, body: map[string]any{"name": "Renamed"}},
	} {
		resp := b.do(r)
		if resp.Status != 200 {
			t.Fatalf("%s %s = %d %s", r.method, r.path, resp.Status, resp.Body)
		}
		answers = append(answers, resp.Body)
	}
	for _, a := range answers {
		if strings.Contains(string(a), secret) || strings.Contains(string(a), "config_enc") {
			t.Fatalf("an answer carries the config: %s", a)
		}
	}
	if strings.Contains(b.logs.String(), secret) {
		t.Fatal("the config reached the logs")
	}
	var raw []byte
	if err := b.db.GetContext(b.ctx, &raw, `SELECT config_enc FROM connections WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || strings.Contains(string(raw), secret) || strings.Contains(string(raw), "api_key") {
		t.Fatalf("config is not encrypted in the database: %q", raw)
	}
	// A ciphertext moved to another row does not open: the check of that row fails closed.
	other := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Other", "config": map[string]any{"api_key": "another-key-123"}}})
	if _, err := b.db.ExecContext(b.ctx, `UPDATE connections SET config_enc = $1 WHERE id = $2`, raw, other["id"]); err != nil {
		t.Fatal(err)
	}
	resp := b.do(req{method: "POST", path: "/v1/connections/" + other["id"].(string) + "/check", token: u.token})
	if resp.Status != http.StatusInternalServerError || strings.Contains(string(resp.Body), secret) {
		t.Fatalf("check of a moved ciphertext = %d %s", resp.Status, resp.Body)
	}
}

func TestConnectionValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	testCases := map[string]struct {
		body       any
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		"unknown app":         {body: map[string]any{"app": "nope", "name": "x", "config": map[string]any{}}, wantStatus: 422, wantCode: "unknown_app", wantInMsg: `"nope"`},
		"no app":              {body: map[string]any{"name": "x", "config": map[string]any{}}, wantStatus: 422, wantCode: "invalid_app"},
		"no name":             {body: map[string]any{"app": "sample", "config": map[string]any{"count": 1}}, wantStatus: 422, wantCode: "invalid_name"},
		"config not object":   {body: map[string]any{"app": "sample", "name": "x", "config": "count=1"}, wantStatus: 422, wantCode: "invalid_config", wantInMsg: "JSON object"},
		"config missing":      {body: map[string]any{"app": "sample", "name": "x"}, wantStatus: 422, wantCode: "invalid_config"},
		"config out of range": {body: map[string]any{"app": "sample", "name": "x", "config": map[string]any{"count": 0}}, wantStatus: 422, wantCode: "invalid_config", wantInMsg: "config/count"},
		"config unknown key":  {body: map[string]any{"app": "sample", "name": "x", "config": map[string]any{"count": 1, "colour": "red"}}, wantStatus: 422, wantCode: "invalid_config", wantInMsg: "colour"},
		"config bad format":   {body: map[string]any{"app": "sample", "name": "x", "config": map[string]any{"count": 1, "updated_at": "yesterday"}}, wantStatus: 422, wantCode: "invalid_config", wantInMsg: "config/updated_at"},
		"config required key": {body: map[string]any{"app": "memdb", "name": "x", "config": map[string]any{}}, wantStatus: 422, wantCode: "invalid_config", wantInMsg: "api_key"},
		"unknown field":       {body: map[string]any{"app": "sample", "name": "x", "config": map[string]any{"count": 1}, "secret": 1}, wantStatus: 400, wantCode: "unknown_field"},
		"malformed":           {body: `{"app": "sample", "name": }`, wantStatus: 400, wantCode: "malformed_json"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(req{method: "POST", path: "/v1/connections", token: u.token, body: tc.body})
			code, msg := resp.errorCode(t)
			if resp.Status != tc.wantStatus || code != tc.wantCode || !strings.Contains(msg, tc.wantInMsg) {
				t.Fatalf("= %d %s %q; want %d %s containing %q", resp.Status, code, msg, tc.wantStatus, tc.wantCode, tc.wantInMsg)
			}
		})
	}
	if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections", token: u.token}); len(got["items"].([]any)) != 0 {
		t.Fatalf("bad creates left connections: %v", got)
	}
}

func TestConnectionCheck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	c := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Memory", "config": map[string]any{"api_key": "rejected-key"}}})
	id := c["id"].(string)
	if c["status"] != "error" || !strings.Contains(c["status_message"].(string), "refused this api key") {
		t.Fatalf("create with a refused key = %v", c)
	}
	chk := b.must(http.StatusOK, req{method: "POST", path: "/v1/connections/" + id + "/check", token: u.token})
	diags := chk["diagnostics"].([]any)
	if chk["status"] != "error" || len(diags) != 1 || diags[0].(map[string]any)["severity"] != "error" ||
		diags[0].(map[string]any)["attribute"] != "api_key" || chk["connection"].(map[string]any)["checked_at"] == nil {
		t.Fatalf("check = %v", chk)
	}
	fixed := b.must(http.StatusOK, req{method: "PATCH", path: "/v1/connections/" + id, token: u.token,
		body: map[string]any{"config": map[string]any{"api_key": "good-key-123"}}})
	if fixed["status"] != "ok" || fixed["status_message"] != "" {
		t.Fatalf("after a new config = %v", fixed)
	}
	chk = b.must(http.StatusOK, req{method: "POST", path: "/v1/connections/" + id + "/check", token: u.token})
	if chk["status"] != "ok" || len(chk["diagnostics"].([]any)) != 0 {
		t.Fatalf("check = %v", chk)
	}
	// A new config is validated like a first one, and a refused PATCH changes nothing.
	resp := b.do(req{method: "PATCH", path: "/v1/connections/" + id, token: u.token, body: map[string]any{"name": "New", "config": map[string]any{"api_key": "short"}}})
	if code, msg := resp.errorCode(t); resp.Status != 422 || code != "invalid_config" || !strings.Contains(msg, "config/api_key") {
		t.Fatalf("bad PATCH = %d %s", resp.Status, resp.Body)
	}
	if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + id, token: u.token}); got["name"] != "Memory" || got["status"] != "ok" {
		t.Fatalf("after a refused PATCH = %v", got)
	}
	b.must(http.StatusUnprocessableEntity, req{method: "PATCH", path: "/v1/connections/" + id, token: u.token, body: map[string]any{}})
}

func TestDeleteConnection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wfID, src, _ := b.workflow(u)
	resp := b.do(req{method: "DELETE", path: "/v1/connections/" + src, token: u.token})
	if code, msg := resp.errorCode(t); resp.Status != 409 || code != "connection_in_use" || !strings.Contains(msg, wfID) || !strings.Contains(msg, "Contacts to people") {
		t.Fatalf("delete a used connection = %d %s", resp.Status, resp.Body)
	}
	b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + src, token: u.token})
	b.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/workflows/" + wfID, token: u.token})
	b.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/connections/" + src, token: u.token})
	b.must(http.StatusNotFound, req{method: "GET", path: "/v1/connections/" + src, token: u.token})
	b.must(http.StatusNotFound, req{method: "DELETE", path: "/v1/connections/" + src, token: u.token})
}
