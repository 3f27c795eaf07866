package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
)

// testRegistry serves real connectors over the real gRPC wire, in process.
type testRegistry struct {
	apps map[string]connectors.App
	conn map[string]sdk.Connector
	// down makes Apps fail, as a registry that cannot reach its catalog.
	down atomic.Bool
}

var _ connectors.Registry = (*testRegistry)(nil)

func newTestRegistry(t *testing.T, impls ...sdk.Connector) *testRegistry {
	t.Helper()
	r := &testRegistry{apps: map[string]connectors.App{}, conn: map[string]sdk.Connector{}}
	ctx := context.Background()
	for _, impl := range impls {
		client, stop, err := sdk.ServeTestConn(ctx, impl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		spec, err := client.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.apps[spec.Name] = connectors.App{Name: spec.Name, Version: spec.Version, Spec: *spec}
		r.conn[spec.Name] = client
	}
	return r
}

func (r *testRegistry) Apps(context.Context) ([]connectors.App, error) {
	if r.down.Load() {
		return nil, errors.New("catalog unreachable")
	}
	var out []connectors.App
	for _, a := range r.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (r *testRegistry) App(_ context.Context, name string) (connectors.App, error) {
	if name == "panic" {
		panic("registry exploded with internal details")
	}
	a, ok := r.apps[name]
	if !ok {
		return connectors.App{}, fmt.Errorf("app %q: %w", name, connectors.ErrUnknownApp)
	}
	return a, nil
}

func (r *testRegistry) Acquire(_ context.Context, name string) (*connectors.Lease, error) {
	a, ok := r.apps[name]
	if !ok {
		return nil, fmt.Errorf("app %q: %w", name, connectors.ErrUnknownApp)
	}
	return connectors.NewLease(r.conn[name], a.Name, a.Version, nil), nil
}

func newSample() sdk.Connector {
	return sample.New("0.1.0\n", "# Sample data\n\nFake contacts and orders.\n")
}

// memConnector is a tiny write-capable connector keeping records in memory.
// Its config is {"api_key": "..."}; the key "rejected-key" fails Check.
type memConnector struct {
	mu      sync.Mutex
	records map[string]json.RawMessage
}

const memSchema = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["api_key"],
  "properties": {"api_key": {"type": "string", "minLength": 8}}
}`

func memObjects() []sdk.Object {
	return []sdk.Object{
		{
			Name: "people",
			Fields: []sdk.Field{
				{Name: "id", Type: sdk.TypeString, ReadOnly: true},
				{Name: "email", Type: sdk.TypeString},
				{Name: "first_name", Type: sdk.TypeString},
				{Name: "last_name", Type: sdk.TypeString},
				{Name: "sample_id", Type: sdk.TypeString},
				{Name: "birthday", Type: sdk.TypeDate},
				{Name: "notes", Type: sdk.TypeString},
			},
			IDField: "id", Readable: true, Writable: true,
		},
		{
			Name:    "outbox",
			Fields:  []sdk.Field{{Name: "id", Type: sdk.TypeString, ReadOnly: true}, {Name: "email", Type: sdk.TypeString}},
			IDField: "id", Writable: true,
		},
		{
			Name:    "audit",
			Fields:  []sdk.Field{{Name: "id", Type: sdk.TypeString, ReadOnly: true}, {Name: "email", Type: sdk.TypeString}},
			IDField: "id", Readable: true,
		},
	}
}

func (m *memConnector) config(raw json.RawMessage) (string, sdk.Diagnostics) {
	var cfg struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.APIKey == "" {
		return "", sdk.Diagnostics{sdk.Errorf("api_key", "api_key is required", "")}
	}
	if cfg.APIKey == "rejected-key" {
		return "", sdk.Diagnostics{sdk.Errorf("api_key", "the app refused this api key", "create a new key in the app's settings")}
	}
	return cfg.APIKey, nil
}

func (m *memConnector) Spec(context.Context) (*sdk.Spec, error) {
	return &sdk.Spec{
		Name: "memdb", Version: "1.2.3", Title: "Memory DB", ConfigSchema: json.RawMessage(memSchema),
		Objects: memObjects(), Capabilities: sdk.Capabilities{Read: true, Write: true, Discover: true},
		Docs: "# Memory DB\n\nKeeps records in memory.\n", ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

func (m *memConnector) Check(_ context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	_, diags := m.config(req.Config)
	return &sdk.CheckResponse{Diagnostics: diags}, nil
}

func (m *memConnector) Discover(_ context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	if _, diags := m.config(req.Config); diags.HasError() {
		return &sdk.DiscoverResponse{Diagnostics: diags}, nil
	}
	return &sdk.DiscoverResponse{Objects: memObjects()}, nil
}

func (m *memConnector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	m.mu.Lock()
	var recs []sdk.Record
	for id, f := range m.records {
		recs = append(recs, sdk.Record{ID: id, Fields: f})
	}
	m.mu.Unlock()
	return sink.Emit(ctx, sdk.ReadBatch{Records: recs})
}

func (m *memConnector) Write(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = map[string]json.RawMessage{}
	}
	out := make([]sdk.WriteResult, len(req.Records))
	for i, r := range req.Records {
		id := r.ID
		action := sdk.ActionUpdated
		if id == "" {
			id = fmt.Sprintf("m%d", len(m.records)+1)
			action = sdk.ActionCreated
		}
		m.records[id] = r.Fields
		out[i] = sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteOK, Action: action, ID: id}
	}
	return &sdk.WriteResponse{Results: out}, nil
}

// HandleWebhook verifies X-Mem-Signature, the hex HMAC-SHA256 of the body
// keyed with the api_key; the body {"object": ..., "ids": [...]} announces
// changed records. A body {"fail": true} fails in transport.
func (m *memConnector) HandleWebhook(_ context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	key, diags := m.config(req.Config)
	if diags.HasError() {
		return &sdk.WebhookResponse{Diagnostics: diags}, nil
	}
	got, err := hex.DecodeString(http.Header(req.Headers).Get("X-Mem-Signature"))
	if err != nil || !hmac.Equal(got, memSign(key, req.Body)) {
		return &sdk.WebhookResponse{}, nil
	}
	var body struct {
		Object string   `json:"object"`
		IDs    []string `json:"ids"`
		Fail   bool     `json:"fail"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return &sdk.WebhookResponse{Verified: true, Diagnostics: sdk.Diagnostics{sdk.Errorf("", "body is not JSON", "")}}, nil
	}
	if body.Fail {
		return nil, errors.New("memdb: webhook failed")
	}
	resp := &sdk.WebhookResponse{Verified: true}
	for _, id := range body.IDs {
		resp.Changes = append(resp.Changes, sdk.ChangeNotice{Object: body.Object, ID: id})
	}
	return resp, nil
}

func memSign(key string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return mac.Sum(nil)
}

func (m *memConnector) Stop(context.Context) error { return nil }
