package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/synchron-io/synchron/host/api"
	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/secrets"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

const adminToken = "admin-secret-for-tests"

type testBundle struct {
	t        *testing.T
	ctx      context.Context
	handler  http.Handler
	store    *store.Store
	db       *sqlx.DB
	registry *testRegistry
	runner   *testRunner
	clock    *testClock
	logs     *syncBuffer
	metrics  *prometheus.Registry
	box      *secrets.Box
}

type setupOptions struct {
	noRunner   bool
	adminToken string
	connectors []sdk.Connector
}

type setupOption func(*setupOptions)

func withoutRunner() setupOption { return func(o *setupOptions) { o.noRunner = true } }

func withAdminToken(tok string) setupOption { return func(o *setupOptions) { o.adminToken = tok } }

// withConnectors serves more connectors besides sample and memdb.
func withConnectors(cs ...sdk.Connector) setupOption {
	return func(o *setupOptions) { o.connectors = append(o.connectors, cs...) }
}

func setup(t *testing.T, opts ...setupOption) *testBundle {
	t.Helper()
	var o setupOptions
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := store.Open(ctx, testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{
		t: t, ctx: ctx, store: s, db: s.DB(),
		registry: newTestRegistry(t, append([]sdk.Connector{newSample(), &memConnector{}}, o.connectors...)...),
		clock:    &testClock{now: time.Now().UTC()},
		logs:     &syncBuffer{},
		metrics:  prometheus.NewRegistry(),
		box:      box,
	}
	b.runner = &testRunner{db: s.DB()}
	deps := api.Deps{
		Store: s, Registry: b.registry, Runner: b.runner, Secrets: box, AdminToken: o.adminToken,
		Logger:  hclog.New(&hclog.LoggerOptions{Output: b.logs, Level: hclog.Trace, JSONFormat: true}),
		Metrics: b.metrics, PasswordCost: bcrypt.MinCost, Now: b.clock.Now, GinMode: "test",
	}
	if o.noRunner {
		deps.Runner = nil
	}
	b.handler = api.New(deps)
	return b
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// testRunner queues runs the way the engine does: one active run per
// workflow, answering the active one when there is one. Preview answers
// preview for the account's workflows; RetryFailed queues a retry run for
// the failed records of the account's runs.
type testRunner struct {
	db      *sqlx.DB
	preview engine.Preview
	mu      sync.Mutex
	// nothingToRetry makes RetryFailed find nothing to retry.
	nothingToRetry bool
	// failEnqueue makes the next Enqueue calls fail (a database outage).
	failEnqueue int
	calls       []enqueueCall
	other       []runnerCall
}

type enqueueCall struct{ AccountID, WorkflowID, Trigger string }

// runnerCall is a call of Preview or RetryFailed; ID is the workflow or run.
type runnerCall struct{ Method, AccountID, ID string }

func (r *testRunner) Preview(ctx context.Context, accountID, workflowID string) (*engine.Preview, error) {
	r.mu.Lock()
	r.other = append(r.other, runnerCall{"Preview", accountID, workflowID})
	r.mu.Unlock()
	var n int
	if err := r.db.GetContext(ctx, &n, `SELECT count(*) FROM workflows WHERE account_id = $1 AND id = $2`, accountID, workflowID); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, store.ErrNotFound
	}
	p := r.preview
	return &p, nil
}

func (r *testRunner) RetryFailed(ctx context.Context, accountID, runID string) (string, int, error) {
	r.mu.Lock()
	r.other = append(r.other, runnerCall{"RetryFailed", accountID, runID})
	r.mu.Unlock()
	r.mu.Lock()
	nothing := r.nothingToRetry
	r.mu.Unlock()
	var workflowID string
	if err := r.db.GetContext(ctx, &workflowID, `SELECT workflow_id FROM runs WHERE account_id = $1 AND id = $2`, accountID, runID); err != nil {
		return "", 0, store.ErrNotFound
	}
	var n int
	if err := r.db.GetContext(ctx, &n, `SELECT count(*) FROM run_records WHERE account_id = $1 AND run_id = $2
		AND status IN ('failed', 'rejected', 'retryable')`, accountID, runID); err != nil {
		return "", 0, err
	}
	if n == 0 || nothing {
		return "", 0, nil
	}
	id, err := r.Enqueue(ctx, accountID, workflowID, store.TriggerRetry)
	return id, n, err
}

func (r *testRunner) OtherCalls() []runnerCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runnerCall(nil), r.other...)
}

func (r *testRunner) Enqueue(ctx context.Context, accountID, workflowID, trigger string) (string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, enqueueCall{accountID, workflowID, trigger})
	fail := r.failEnqueue > 0
	if fail {
		r.failEnqueue--
	}
	r.mu.Unlock()
	if fail {
		return "", errors.New("enqueue: the database is unreachable")
	}
	var id string
	err := r.db.GetContext(ctx, &id, `INSERT INTO runs (id, account_id, workflow_id, status, trigger)
		SELECT $1, $2, $3, 'queued', $4 FROM workflows WHERE account_id = $2 AND id = $3
		ON CONFLICT (workflow_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id`,
		store.NewID(store.PrefixRun), accountID, workflowID, trigger)
	if err == nil {
		return id, nil
	}
	err = r.db.GetContext(ctx, &id, `SELECT id FROM runs WHERE account_id = $1 AND workflow_id = $2 AND status IN ('queued', 'running')`,
		accountID, workflowID)
	if err != nil {
		return "", store.ErrNotFound
	}
	return id, nil
}

func (r *testRunner) Calls() []enqueueCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]enqueueCall(nil), r.calls...)
}

// response is an answer of the API.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// errorCode checks the error format and returns the code and message.
func (r response) errorCode(t *testing.T) (string, string) {
	t.Helper()
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("answer %d is not in the error format: %s", r.Status, r.Body)
	}
	return e.Error.Code, e.Error.Message
}

type req struct {
	method, path, token string
	body                any // string, []byte or a value marshalled as JSON
	header              map[string]string
	remoteAddr          string
}

func (b *testBundle) do(r req) response {
	b.t.Helper()
	var body io.Reader
	switch v := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	case []byte:
		body = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	hr := httptest.NewRequest(r.method, r.path, body).WithContext(b.ctx)
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.remoteAddr != "" {
		hr.RemoteAddr = r.remoteAddr
	}
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, hr)
	return response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// must does a request and fails the test unless it answers want.
func (b *testBundle) must(want int, r req) map[string]any {
	b.t.Helper()
	resp := b.do(r)
	if resp.Status != want {
		b.t.Fatalf("%s %s = %d, want %d: %s", r.method, r.path, resp.Status, want, resp.Body)
	}
	if len(resp.Body) == 0 {
		return nil
	}
	return resp.JSON(b.t)
}

// user is a signed-up user.
type user struct {
	token, accountID, userID, email, password string
}

func (b *testBundle) signup(email string) user {
	b.t.Helper()
	password := "correct horse " + email
	m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/signup", body: map[string]string{"email": email, "password": password, "name": "Ann Example"}})
	return user{
		token: m["token"].(string), accountID: m["account"].(map[string]any)["id"].(string),
		userID: m["user"].(map[string]any)["id"].(string), email: email, password: password,
	}
}

const memKey = "mem-secret-key-0123456789"

// connections creates a sample (source) and a memdb (target) connection.
func (b *testBundle) connections(u user) (sampleID, memID string) {
	b.t.Helper()
	s := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "sample", "name": "Demo data", "config": map[string]any{"count": 25}}})
	m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Memory", "config": map[string]any{"api_key": memKey}}})
	return s["id"].(string), m["id"].(string)
}

func workflowBody(src, dst string) map[string]any {
	return map[string]any{
		"name":   "Contacts to people",
		"source": map[string]string{"connection_id": src, "object": "contacts"},
		"target": map[string]string{"connection_id": dst, "object": "people"},
		"mapping": []map[string]any{
			{"source": "email", "target": "email", "transform": "trim,lower"},
			{"source": "first_name", "target": "first_name"},
			{"target": "last_name", "value": "Imported"},
		},
		"match":            map[string]string{"source": "email", "target": "email"},
		"interval_seconds": 900,
	}
}

func (b *testBundle) workflow(u user) (wfID, src, dst string) {
	b.t.Helper()
	src, dst = b.connections(u)
	m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/workflows", token: u.token, body: workflowBody(src, dst)})
	return m["id"].(string), src, dst
}
