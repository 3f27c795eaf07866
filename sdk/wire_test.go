package sdk

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// viaWire marshals m to bytes and back, like gRPC does.
func viaWire[M proto.Message](t *testing.T, m M) M {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return out
}

func assertEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("round trip mismatch\n got: %s\nwant: %s\n(got %#v)", g, w, got)
	}
}

var (
	t0     = time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC)
	diags  = Diagnostics{Errorf("api_key", "bad key", "401 from app"), {Severity: SeverityWarning, Summary: "slow"}}
	fields = []Field{{Name: "id", Type: TypeString, Required: true, ReadOnly: true, Description: "the id"}, {Name: "n", Type: TypeInteger}}
)

func TestTimeConversion(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   time.Time
		us   int64
		want time.Time
	}{
		{"zero", time.Time{}, 0, time.Time{}},
		{"utc", t0, t0.UnixMicro(), t0},
		{"other zone comes back in UTC", t0.In(paris), t0.UnixMicro(), t0},
		{"nanoseconds truncated", t0.Add(789 * time.Nanosecond), t0.UnixMicro(), t0},
		{"before 1970", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			us := timeToMicros(tt.in)
			if us != tt.us {
				t.Fatalf("timeToMicros = %d, want %d", us, tt.us)
			}
			got := timeFromMicros(us)
			if !got.Equal(tt.want) || got.Location() != tt.want.Location() {
				t.Fatalf("timeFromMicros = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnumConversion(t *testing.T) {
	t.Parallel()
	t.Run("severity", func(t *testing.T) {
		t.Parallel()
		for _, s := range []Severity{0, SeverityError, SeverityWarning} {
			if got := severityFromProto(severityToProto(s)); got != s {
				t.Errorf("severity %v -> %v", s, got)
			}
		}
		if got := severityToProto(Severity(42)); got != connectorv1.Diagnostic_SEVERITY_UNSPECIFIED {
			t.Errorf("unknown severity -> %v", got)
		}
		if got := severityFromProto(connectorv1.Diagnostic_Severity(42)); got != 0 {
			t.Errorf("unknown proto severity -> %v", got)
		}
	})
	t.Run("status", func(t *testing.T) {
		t.Parallel()
		for _, s := range []WriteStatus{0, WriteOK, WriteRetryable, WriteRejected} {
			if got := writeStatusFromProto(writeStatusToProto(s)); got != s {
				t.Errorf("status %v -> %v", s, got)
			}
		}
		if got := writeStatusFromProto(connectorv1.WriteResult_Status(42)); got != 0 {
			t.Errorf("unknown proto status -> %v", got)
		}
	})
	t.Run("action", func(t *testing.T) {
		t.Parallel()
		for _, a := range []WriteAction{0, ActionCreated, ActionUpdated, ActionUnchanged, ActionDeleted} {
			if got := writeActionFromProto(writeActionToProto(a)); got != a {
				t.Errorf("action %v -> %v", a, got)
			}
		}
		if got := writeActionFromProto(connectorv1.WriteResult_Action(42)); got != 0 {
			t.Errorf("unknown proto action -> %v", got)
		}
	})
}

func TestSpecRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   *Spec
	}{
		{"empty", &Spec{}},
		{"full", &Spec{
			Name: "app", Version: "1.2.3", Title: "App",
			ConfigSchema: json.RawMessage(`{"type":"object"}`),
			Objects: []Object{
				{Name: "contacts", Description: "people", Fields: fields, IDField: "id", Readable: true, Writable: true, Incremental: true, Deletes: true},
				{Name: "bare"},
			},
			Capabilities:    Capabilities{Read: true, Write: true, Webhooks: true, Discover: true},
			Docs:            "# App",
			ProtocolVersion: ProtocolVersion,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertEqual(t, specFromProto(viaWire(t, specToProto(tt.in))), tt.in)
		})
	}
}

func TestRequestResponseRoundTrip(t *testing.T) {
	t.Parallel()
	cfg := json.RawMessage(`{"k":"v"}`)
	tests := []struct {
		name string
		// run converts want to proto, through the wire and back.
		run  func(t *testing.T) any
		want any
	}{
		{"check request", func(t *testing.T) any {
			return checkRequestFromProto(viaWire(t, checkRequestToProto(CheckRequest{Config: cfg})))
		}, CheckRequest{Config: cfg}},
		{"check request empty", func(t *testing.T) any {
			return checkRequestFromProto(viaWire(t, checkRequestToProto(CheckRequest{})))
		}, CheckRequest{}},
		{"check response", func(t *testing.T) any {
			return checkResponseFromProto(viaWire(t, checkResponseToProto(&CheckResponse{Diagnostics: diags, UpdatedConfig: cfg})))
		}, &CheckResponse{Diagnostics: diags, UpdatedConfig: cfg}},
		{"check response nil", func(t *testing.T) any {
			return checkResponseFromProto(viaWire(t, checkResponseToProto(nil)))
		}, &CheckResponse{}},
		{"discover request", func(t *testing.T) any {
			return discoverRequestFromProto(viaWire(t, discoverRequestToProto(DiscoverRequest{Config: cfg})))
		}, DiscoverRequest{Config: cfg}},
		{"discover response", func(t *testing.T) any {
			in := &DiscoverResponse{Objects: []Object{{Name: "o", Fields: fields, Readable: true}}, Diagnostics: diags, UpdatedConfig: cfg}
			return discoverResponseFromProto(viaWire(t, discoverResponseToProto(in)))
		}, &DiscoverResponse{Objects: []Object{{Name: "o", Fields: fields, Readable: true}}, Diagnostics: diags, UpdatedConfig: cfg}},
		{"read request", func(t *testing.T) any {
			in := ReadRequest{Config: cfg, Object: "contacts", Cursor: []byte(`{"next":3}`), BatchSize: 500}
			return readRequestFromProto(viaWire(t, readRequestToProto(in)))
		}, ReadRequest{Config: cfg, Object: "contacts", Cursor: []byte(`{"next":3}`), BatchSize: 500}},
		{"read request negative batch size", func(t *testing.T) any {
			return readRequestFromProto(viaWire(t, readRequestToProto(ReadRequest{Object: "o", BatchSize: -1})))
		}, ReadRequest{Object: "o"}},
		{"read batch", func(t *testing.T) any {
			in := ReadBatch{
				Records: []Record{
					{ID: "1", UpdatedAt: t0, Fields: json.RawMessage(`{"a":1}`)},
					{ID: "2", Deleted: true},
				},
				Checkpoint: []byte("cp"), Diagnostics: diags, UpdatedConfig: cfg,
			}
			return readBatchFromProto(viaWire(t, readBatchToProto(in)))
		}, ReadBatch{
			Records: []Record{
				{ID: "1", UpdatedAt: t0, Fields: json.RawMessage(`{"a":1}`)},
				{ID: "2", Deleted: true},
			},
			Checkpoint: []byte("cp"), Diagnostics: diags, UpdatedConfig: cfg,
		}},
		{"read batch empty", func(t *testing.T) any {
			return readBatchFromProto(viaWire(t, readBatchToProto(ReadBatch{Records: []Record{}, Checkpoint: []byte{}})))
		}, ReadBatch{}},
		{"write request", func(t *testing.T) any {
			in := WriteRequest{Config: cfg, Object: "o", Records: []WriteRecord{
				{Ref: "r1", Fields: json.RawMessage(`{"a":1}`)},
				{Ref: "r2", ID: "x", Delete: true},
			}}
			return writeRequestFromProto(viaWire(t, writeRequestToProto(in)))
		}, WriteRequest{Config: cfg, Object: "o", Records: []WriteRecord{
			{Ref: "r1", Fields: json.RawMessage(`{"a":1}`)},
			{Ref: "r2", ID: "x", Delete: true},
		}}},
		{"write response", func(t *testing.T) any {
			in := &WriteResponse{Results: []WriteResult{
				{Ref: "r1", Status: WriteOK, Action: ActionCreated, ID: "1", Fields: json.RawMessage(`{"a":1}`)},
				{Ref: "r2", Status: WriteRetryable, RetryAfter: 1500 * time.Millisecond, Message: "429"},
				{Ref: "r3", Status: WriteRejected, Message: "invalid email"},
			}, Diagnostics: diags, UpdatedConfig: cfg}
			return writeResponseFromProto(viaWire(t, writeResponseToProto(in)))
		}, &WriteResponse{Results: []WriteResult{
			{Ref: "r1", Status: WriteOK, Action: ActionCreated, ID: "1", Fields: json.RawMessage(`{"a":1}`)},
			{Ref: "r2", Status: WriteRetryable, RetryAfter: 1500 * time.Millisecond, Message: "429"},
			{Ref: "r3", Status: WriteRejected, Message: "invalid email"},
		}, Diagnostics: diags, UpdatedConfig: cfg}},
		{"webhook request", func(t *testing.T) any {
			in := WebhookRequest{Config: cfg, Method: "POST", Path: "/hooks/x", Headers: map[string][]string{"X-Sig": {"a", "b"}}, Body: []byte("{}")}
			return webhookRequestFromProto(viaWire(t, webhookRequestToProto(in)))
		}, WebhookRequest{Config: cfg, Method: "POST", Path: "/hooks/x", Headers: map[string][]string{"X-Sig": {"a", "b"}}, Body: []byte("{}")}},
		{"webhook response", func(t *testing.T) any {
			in := &WebhookResponse{Verified: true, Changes: []ChangeNotice{
				{Object: "o", ID: "1"},
				{Object: "o", ID: "2", Deleted: true, Record: &Record{ID: "2", UpdatedAt: t0, Fields: json.RawMessage(`{}`)}},
			}, Diagnostics: diags, ResponseStatus: 202, ResponseBody: []byte("ok")}
			return webhookResponseFromProto(viaWire(t, webhookResponseToProto(in)))
		}, &WebhookResponse{Verified: true, Changes: []ChangeNotice{
			{Object: "o", ID: "1"},
			{Object: "o", ID: "2", Deleted: true, Record: &Record{ID: "2", UpdatedAt: t0, Fields: json.RawMessage(`{}`)}},
		}, Diagnostics: diags, ResponseStatus: 202, ResponseBody: []byte("ok")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertEqual(t, tt.run(t), tt.want)
		})
	}
}
