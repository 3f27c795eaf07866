package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed openapi/components.json
var openAPIComponents []byte

// pathParam finds the {name} parameters of an OpenAPI path.
var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// Security of an operation.
const (
	public = ""
	user   = "bearer"
	admin  = "admin"
)

// operation is one route as documented. The table below is the whole API;
// TestOpenAPIMatchesRoutes keeps it equal to the Gin routes.
type operation struct {
	method, path, summary, tag string
	security                   string
	body                       string // schema of the request body ("": none)
	status                     int    // success status
	resp                       string // schema of the answer ("": no body)
	contentType                string // of the answer; "": application/json
	list                       bool   // a list: ?limit, ?cursor, {items, next_cursor}
	paged                      bool   // takes ?limit and ?cursor for a list inside the answer
	idempotent                 bool   // accepts Idempotency-Key
	query                      []queryParam
}

// queryParam is an optional query parameter other than limit and cursor.
type queryParam struct {
	name, description string
	schema            map[string]any
}

func stringParam(name, description string, enum ...string) queryParam {
	schema := map[string]any{"type": "string"}
	if len(enum) > 0 {
		schema["enum"] = enum
	}
	return queryParam{name: name, description: description, schema: schema}
}

func operations() []operation {
	return []operation{
		{method: "GET", path: "/healthz", summary: "Liveness: 200 while the process serves.", tag: "ops", status: 200, resp: "Status"},
		{method: "GET", path: "/readyz", summary: "Readiness: 200 when the database and the connectors answer, else 503.", tag: "ops", status: 200, resp: "Status"},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics.", tag: "ops", status: 200, resp: "text", contentType: "text/plain"},
		{method: "GET", path: "/v1/openapi.json", summary: "This document.", tag: "meta", status: 200, resp: "object"},

		{method: "POST", path: "/v1/signup", summary: "Create an account (Individual plan, 14-day trial), its admin user and a session.", tag: "users", body: "SignupRequest", status: 201, resp: "SignupResponse"},
		{method: "POST", path: "/v1/login", summary: "Open a session. Rate limited per email and per IP (429 with Retry-After).", tag: "users", body: "LoginRequest", status: 200, resp: "LoginResponse"},
		{method: "POST", path: "/v1/logout", summary: "Revoke the token of this request.", tag: "users", security: user, status: 204},
		{method: "GET", path: "/v1/me", summary: "The user, their account and role.", tag: "users", security: user, status: 200, resp: "Me"},
		{method: "GET", path: "/v1/tokens", summary: "The user's API tokens (never their secrets).", tag: "tokens", security: user, status: 200, resp: "Token", list: true},
		{method: "POST", path: "/v1/tokens", summary: "Create an API token; its secret is in this answer only.", tag: "tokens", security: user, body: "TokenRequest", status: 201, resp: "Token", idempotent: true},
		{method: "DELETE", path: "/v1/tokens/{id}", summary: "Revoke an API token.", tag: "tokens", security: user, status: 204},

		{method: "GET", path: "/v1/apps", summary: "The connector catalog.", tag: "apps", security: user, status: 200, resp: "App", list: true},
		{method: "GET", path: "/v1/apps/{app}", summary: "One app: active version, objects and fields, capabilities, config schema.", tag: "apps", security: user, status: 200, resp: "App"},
		{method: "GET", path: "/v1/apps/{app}/docs", summary: "The app's user documentation.", tag: "apps", security: user, status: 200, resp: "text", contentType: "text/markdown"},

		{method: "GET", path: "/v1/connections", summary: "The account's connections.", tag: "connections", security: user, status: 200, resp: "Connection", list: true},
		{method: "POST", path: "/v1/connections", summary: "Create a connection; its config is validated, encrypted and checked with the app.", tag: "connections", security: user, body: "ConnectionCreate", status: 201, resp: "Connection", idempotent: true},
		{method: "GET", path: "/v1/connections/{id}", summary: "One connection.", tag: "connections", security: user, status: 200, resp: "Connection"},
		{method: "PATCH", path: "/v1/connections/{id}", summary: "Rename a connection or replace its config.", tag: "connections", security: user, body: "ConnectionUpdate", status: 200, resp: "Connection"},
		{method: "DELETE", path: "/v1/connections/{id}", summary: "Delete a connection; 409 while workflows use it.", tag: "connections", security: user, status: 204},
		{method: "POST", path: "/v1/connections/{id}/check", summary: "Ask the connector to verify the credentials.", tag: "connections", security: user, status: 200, resp: "ConnectionCheck"},
		{method: "GET", path: "/v1/connections/{id}/webhooks", summary: "The webhook deliveries received for a connection, newest first, refused ones included; kept 30 days, at most the newest 1,000 per connection.", tag: "connections", security: user, status: 200, resp: "WebhookEvent", list: true},
		{method: "POST", path: "/v1/hooks/{connection_id}", summary: "Incoming webhook of an app: no bearer token, the connection's connector verifies the signature (401 invalid_signature otherwise, recorded); the workflows reading from the connection are queued. 413 over 1 MiB, 429 over 50 deliveries a second per connection (per host), 503 when the connector is down.", tag: "webhooks", body: "object", status: 200, resp: "WebhookReceipt"},

		{method: "GET", path: "/v1/workflows", summary: "The account's workflows.", tag: "workflows", security: user, status: 200, resp: "Workflow", list: true},
		{method: "POST", path: "/v1/workflows", summary: "Create a one-way or two-way workflow.", tag: "workflows", security: user, body: "WorkflowCreate", status: 201, resp: "Workflow", idempotent: true},
		{method: "GET", path: "/v1/workflows/{id}", summary: "One workflow.", tag: "workflows", security: user, status: 200, resp: "Workflow"},
		{method: "PATCH", path: "/v1/workflows/{id}", summary: "Change a workflow's settings.", tag: "workflows", security: user, body: "WorkflowUpdate", status: 200, resp: "Workflow"},
		{method: "DELETE", path: "/v1/workflows/{id}", summary: "Delete a workflow and its runs.", tag: "workflows", security: user, status: 204},
		{method: "POST", path: "/v1/workflows/{id}/pause", summary: "Pause a workflow.", tag: "workflows", security: user, status: 200, resp: "Workflow"},
		{method: "POST", path: "/v1/workflows/{id}/resume", summary: "Resume a workflow; it runs soon.", tag: "workflows", security: user, status: 200, resp: "Workflow"},
		{method: "POST", path: "/v1/workflows/{id}/run", summary: "Run now: queues a run, or answers the run already queued or running.", tag: "workflows", security: user, status: 202, resp: "Run", idempotent: true},
		{method: "POST", path: "/v1/workflows/{id}/preview", summary: "Dry run: what the next run would create, update, match, skip and delete, and the transactions it would use; writes nothing.", tag: "workflows", security: user, status: 200, resp: "Preview"},
		{method: "GET", path: "/v1/workflows/{id}/runs", summary: "A workflow's runs, newest first.", tag: "runs", security: user, status: 200, resp: "Run", list: true},
		{method: "GET", path: "/v1/runs/{id}", summary: "One run: status, counts, transactions, connector versions, timing.", tag: "runs", security: user, status: 200, resp: "Run"},
		{method: "GET", path: "/v1/runs/{id}/records", summary: "The records of a run that did not simply sync: failed, rejected, retryable, ambiguous, conflict.", tag: "runs", security: user, status: 200, resp: "RunRecord", list: true},
		{method: "POST", path: "/v1/runs/{id}/records/retry", summary: "Queue a run that retries the failed records of this run; 409 when it has none.", tag: "runs", security: user, status: 202, resp: "RetryResult", idempotent: true},

		{method: "GET", path: "/v1/workflows/{id}/records", summary: "The workflow's linked records, newest first.", tag: "records", security: user, status: 200, resp: "Link", list: true,
			query: []queryParam{stringParam("source_id", "only the link of this source record"), stringParam("target_id", "only the link of this target record")}},
		{method: "GET", path: "/v1/workflows/{id}/records/{link_id}", summary: "One linked record: both ids, the values last written each way, and its history, newest first (?limit and ?cursor page the history).", tag: "records", security: user, status: 200, resp: "LinkDetail", paged: true},

		{method: "GET", path: "/v1/workflows/{id}/deletes", summary: "Deletions of a workflow with deletes = approve, newest first.", tag: "deletes", security: user, status: 200, resp: "PendingDelete", list: true,
			query: []queryParam{stringParam("status", "pending (default), approved, discarded, done, failed, or all", "pending", "approved", "discarded", "done", "failed", "all")}},
		{method: "POST", path: "/v1/workflows/{id}/deletes/{delete_id}/approve", summary: "Approve a pending delete; the next run executes it (a run is queued now). 409 unless pending.", tag: "deletes", security: user, status: 200, resp: "PendingDelete"},
		{method: "POST", path: "/v1/workflows/{id}/deletes/{delete_id}/discard", summary: "Discard a pending delete: the record is kept. 409 unless pending.", tag: "deletes", security: user, status: 200, resp: "PendingDelete"},
		{method: "POST", path: "/v1/workflows/{id}/deletes/approve-all", summary: "Approve every pending delete of the workflow and queue a run.", tag: "deletes", security: user, status: 200, resp: "BulkDecision"},
		{method: "POST", path: "/v1/workflows/{id}/deletes/discard-all", summary: "Discard every pending delete of the workflow.", tag: "deletes", security: user, status: 200, resp: "BulkDecision"},

		{method: "GET", path: "/v1/notifications", summary: "The account's notices, newest first.", tag: "notifications", security: user, status: 200, resp: "Notification", list: true,
			query: []queryParam{{name: "unread", description: "true: only the notices not yet read", schema: map[string]any{"type": "boolean"}}}},
		{method: "POST", path: "/v1/notifications/{id}/read", summary: "Mark a notice read.", tag: "notifications", security: user, status: 200, resp: "Notification"},

		{method: "GET", path: "/admin/connectors", summary: "Installed connectors (operator): every version with its sha256, state, process and crashes, and the active one.", tag: "admin", security: admin, status: 200, resp: "AdminConnector", list: true},
		{method: "POST", path: "/admin/connectors/{name}/versions", summary: "Install a version put in the plugin directory (<dir>/<name>/<version>/); 409 when its sha256 differs from the one given or it changed since install.", tag: "admin", security: admin, body: "AdminInstall", status: 200, resp: "AdminConnector"},
		{method: "POST", path: "/admin/connectors/{name}/activate", summary: "New runs use this version on every host (within seconds); runs in flight finish on theirs; no run fails.", tag: "admin", security: admin, body: "AdminActivate", status: 200, resp: "AdminConnector"},
		{method: "POST", path: "/admin/connectors/{name}/rollback", summary: "Back to the previous active version, with the same guarantees; 409 when there is none.", tag: "admin", security: admin, status: 200, resp: "AdminConnector"},
	}
}

func ref(schema string) map[string]any {
	switch schema {
	case "text":
		return map[string]any{"type": "string"}
	case "object":
		return map[string]any{"type": "object"}
	}
	return map[string]any{"$ref": "#/components/schemas/" + schema}
}

// openAPIDocument builds the OpenAPI 3 document of operations().
func openAPIDocument() ([]byte, error) {
	var components map[string]any
	if err := json.Unmarshal(openAPIComponents, &components); err != nil {
		return nil, fmt.Errorf("openapi components: %w", err)
	}
	errorResp := map[string]any{
		"description": "An error: the right status and {\"error\": {\"code\", \"message\"}}.",
		"content":     map[string]any{"application/json": map[string]any{"schema": ref("Error")}},
	}
	paths := map[string]map[string]any{}
	for _, op := range operations() {
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if op.list || op.paged {
			params = append(params, map[string]any{"$ref": "#/components/parameters/limit"}, map[string]any{"$ref": "#/components/parameters/cursor"})
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "required": false, "description": q.description, "schema": q.schema})
		}
		if op.idempotent {
			params = append(params, map[string]any{"$ref": "#/components/parameters/IdempotencyKey"})
		}
		ok := map[string]any{"description": http.StatusText(op.status)}
		if op.resp != "" {
			schema := ref(op.resp)
			if op.list {
				schema = map[string]any{"type": "object", "required": []string{"items", "next_cursor"}, "properties": map[string]any{
					"items":       map[string]any{"type": "array", "items": ref(op.resp)},
					"next_cursor": map[string]any{"type": "string", "description": "empty on the last page"},
				}}
			}
			ct := op.contentType
			if ct == "" {
				ct = "application/json"
			}
			ok["content"] = map[string]any{ct: map[string]any{"schema": schema}}
		}
		o := map[string]any{
			"summary":     op.summary,
			"operationId": operationID(op),
			"tags":        []string{op.tag},
			"responses":   map[string]any{strconv.Itoa(op.status): ok, "default": errorResp},
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.body != "" {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(op.body)}}}
		}
		if op.security != public {
			o["security"] = []any{map[string]any{op.security: []string{}}}
		}
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][strings.ToLower(op.method)] = o
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "Synchron API",
			"version":     "1",
			"description": "Two-way data sync between business apps. Errors are {\"error\": {\"code\", \"message\"}}; lists take ?limit (1-500, default 50) and ?cursor and answer {\"items\", \"next_cursor\"}.",
		},
		"paths":      paths,
		"components": components,
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return b, nil
}

// operationID is a stable name such as get_v1_workflows_id_runs.
func operationID(op operation) string {
	id := strings.ToLower(op.method)
	word := false
	for _, c := range op.path {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			if !word {
				id += "_"
				word = true
			}
			id += string(c)
		default:
			word = false
		}
	}
	return id
}

func (s *server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.openAPIDoc)
}
