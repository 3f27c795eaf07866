package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	testCases := map[string]struct {
		r          req
		wantStatus int
		wantCode   string
	}{
		"unknown route":            {r: req{method: "GET", path: "/v1/nope"}, wantStatus: 404, wantCode: "not_found"},
		"unknown route, authed":    {r: req{method: "GET", path: "/v2/connections", token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"trailing slash":           {r: req{method: "GET", path: "/v1/me/", token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"wrong method":             {r: req{method: "PUT", path: "/v1/connections", token: u.token}, wantStatus: 405, wantCode: "method_not_allowed"},
		"malformed json":           {r: req{method: "POST", path: "/v1/workflows", token: u.token, body: `{"name": "x",,}`}, wantStatus: 400, wantCode: "malformed_json"},
		"wrong type":               {r: req{method: "POST", path: "/v1/workflows", token: u.token, body: `{"interval_seconds": "soon"}`}, wantStatus: 400, wantCode: "malformed_json"},
		"panic":                    {r: req{method: "GET", path: "/v1/apps/panic", token: u.token}, wantStatus: 500, wantCode: "internal"},
		"no token":                 {r: req{method: "GET", path: "/v1/workflows"}, wantStatus: 401, wantCode: "unauthorized"},
		"admin disabled":           {r: req{method: "GET", path: "/admin/connectors", header: map[string]string{"Authorization": "Bearer " + adminToken}}, wantStatus: 404, wantCode: "not_found"},
		"malformed json, PATCH":    {r: req{method: "PATCH", path: "/v1/connections/con_x", token: u.token, body: `nope`}, wantStatus: 400, wantCode: "malformed_json"},
		"NUL in a path id":         {r: req{method: "GET", path: "/v1/workflows/wf_%00", token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"invalid UTF-8 in a path":  {r: req{method: "DELETE", path: "/v1/connections/con_%ff", token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"long path id":             {r: req{method: "GET", path: "/v1/runs/" + strings.Repeat("r", 300), token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"NUL in a name":            {r: req{method: "POST", path: "/v1/signup", body: `{"email": "nul@example.com", "password": "correct horse", "name": "a\u0000b"}`}, wantStatus: 422, wantCode: "invalid_text"},
		"NUL in a mapping":         {r: req{method: "POST", path: "/v1/workflows", token: u.token, body: `{"name": "x", "mapping": [{"source": "a\u0000", "target": "b"}]}`}, wantStatus: 422, wantCode: "invalid_text"},
		"cursor out of range":      {r: req{method: "GET", path: "/v1/workflows?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("999999999999999999.wf_x")), token: u.token}, wantStatus: 400, wantCode: "invalid_cursor"},
		"cursor with NUL":          {r: req{method: "GET", path: "/v1/connections?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("1700000000000000.a\x00")), token: u.token}, wantStatus: 400, wantCode: "invalid_cursor"},
		"records cursor":           {r: req{method: "GET", path: "/v1/runs/run_x/records?cursor=zz", token: u.token}, wantStatus: 404, wantCode: "not_found"},
		"body too large on create": {r: req{method: "POST", path: "/v1/connections", token: u.token, header: map[string]string{"Idempotency-Key": "big"}, body: `{"name": "` + strings.Repeat("x", 1<<20) + `"}`}, wantStatus: 413, wantCode: "request_too_large"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(tc.r)
			code, msg := resp.errorCode(t)
			if resp.Status != tc.wantStatus || code != tc.wantCode {
				t.Fatalf("= %d %s %q, want %d %s", resp.Status, code, msg, tc.wantStatus, tc.wantCode)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("Content-Type = %q", resp.Header.Get("Content-Type"))
			}
			if strings.Contains(msg, "exploded") || strings.Contains(msg, "goroutine") {
				t.Fatalf("internals in the message: %q", msg)
			}
			if code == "internal" && !strings.Contains(b.logs.String(), "registry exploded") {
				t.Fatal("the panic was not logged")
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.must(http.StatusOK, req{method: "GET", path: "/healthz"})
	b.must(http.StatusOK, req{method: "GET", path: "/readyz"})
	b.registry.down.Store(true)
	resp := b.do(req{method: "GET", path: "/readyz"})
	if code, _ := resp.errorCode(t); resp.Status != 503 || code != "not_ready" {
		t.Fatalf("readyz with the registry down = %d %s", resp.Status, resp.Body)
	}
	b.must(http.StatusOK, req{method: "GET", path: "/healthz"})
	b.registry.down.Store(false)

	b.do(req{method: "GET", path: "/v1/nope"})
	m := b.do(req{method: "GET", path: "/metrics"})
	body := string(m.Body)
	for _, want := range []string{
		`synchron_http_requests_total{method="GET",route="/healthz",status="200"} 2`,
		`synchron_http_requests_total{method="GET",route="/readyz",status="503"} 1`,
		`synchron_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`synchron_http_request_duration_seconds_bucket{method="GET",route="/readyz",le="+Inf"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestAdminConnectors(t *testing.T) {
	t.Parallel()
	b := setup(t, withAdminToken(adminToken))
	u := b.signup("ann@example.com")
	for name, header := range map[string]string{"none": "", "wrong": "Bearer nope", "user token": "Bearer " + u.token, "no scheme": adminToken} {
		h := map[string]string{}
		if header != "" {
			h["Authorization"] = header
		}
		resp := b.do(req{method: "GET", path: "/admin/connectors", header: h})
		if code, _ := resp.errorCode(t); resp.Status != 401 || code != "unauthorized" {
			t.Fatalf("%s: = %d %s", name, resp.Status, resp.Body)
		}
	}
	got := b.must(http.StatusOK, req{method: "GET", path: "/admin/connectors", header: map[string]string{"Authorization": "Bearer " + adminToken}})
	items := got["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["name"] != "memdb" || items[0].(map[string]any)["active_version"] != "1.2.3" {
		t.Fatalf("admin connectors = %v", got)
	}
	// A runtime that cannot be administered says so.
	resp := b.do(req{method: "POST", path: "/admin/connectors/memdb/rollback", header: map[string]string{"Authorization": "Bearer " + adminToken}})
	if code, _ := resp.errorCode(t); resp.Status != http.StatusNotImplemented || code != "not_available" {
		t.Fatalf("rollback without a connector admin = %d %s, want 501 not_available", resp.Status, resp.Body)
	}
}
