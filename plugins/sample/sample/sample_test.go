package sample_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

func newConn() *sample.Connector { return sample.New("0.1.0\n", "# Sample") }

// TestConformance runs the SDK's conformance kit on both objects. Not
// parallel: the kit's leak check sees the whole process.
func TestConformance(t *testing.T) {
	for _, object := range []string{sample.ObjectContacts, sample.ObjectOrders} {
		t.Run(object, func(t *testing.T) {
			conformance.Run(t, conformance.Suite{
				New:    func(*testing.T) sdk.Connector { return newConn() },
				Config: json.RawMessage(`{"count": 25, "seed": 7}`),
				BadConfigs: map[string]json.RawMessage{
					"count zero":      json.RawMessage(`{"count": 0}`),
					"count too large": json.RawMessage(`{"count": 10000001}`),
					"count missing":   json.RawMessage(`{"seed": 3}`),
					"unknown key":     json.RawMessage(`{"count": 5, "colour": "red"}`),
					"not an object":   json.RawMessage(`[1, 2]`),
				},
				Object:     object,
				MinRecords: 25,
			})
		})
	}
}

// readAll reads every record of object with config cfg, in process.
func readAll(t testing.TB, c sdk.Connector, cfg, object string, cursor []byte, batchSize int) []sdk.Record {
	t.Helper()
	var recs []sdk.Record
	err := c.Read(context.Background(), sdk.ReadRequest{Config: json.RawMessage(cfg), Object: object, Cursor: cursor, BatchSize: batchSize},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			if b.Diagnostics.HasError() {
				return fmt.Errorf("diagnostics: %s", b.Diagnostics.Error())
			}
			recs = append(recs, b.Records...)
			return nil
		}))
	if err != nil {
		t.Fatalf("Read(%s, %s): %v", cfg, object, err)
	}
	return recs
}

type contact struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	Phone     string    `json:"phone"`
	Company   string    `json:"company"`
	UpdatedAt time.Time `json:"updated_at"`
}

type order struct {
	ID            string    `json:"id"`
	CustomerEmail string    `json:"customer_email"`
	Total         float64   `json:"total"`
	Currency      string    `json:"currency"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// decodeStrict decodes JSON refusing unknown fields.
func decodeStrict(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func TestRecords(t *testing.T) {
	t.Parallel()
	c := newConn()
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	cfg := `{"count": 200, "seed": 42, "updated_at": "2025-06-01T00:00:00Z"}`

	contacts := readAll(t, c, cfg, sample.ObjectContacts, nil, 64)
	if len(contacts) != 200 {
		t.Fatalf("got %d contacts, want 200", len(contacts))
	}
	emails := map[string]bool{}
	for i, r := range contacts {
		var x contact
		decodeStrict(t, r.Fields, &x)
		wantID := fmt.Sprintf("c_%08d", i+1)
		wantTime := base.Add(time.Duration(i) * time.Second)
		if r.ID != wantID || x.ID != wantID {
			t.Fatalf("contact %d: record id %q, field id %q, want %q", i, r.ID, x.ID, wantID)
		}
		if !r.UpdatedAt.Equal(wantTime) || !x.UpdatedAt.Equal(wantTime) {
			t.Fatalf("contact %d: updated_at %v / %v, want %v", i, r.UpdatedAt, x.UpdatedAt, wantTime)
		}
		wantEmail := fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(x.FirstName), strings.ToLower(x.LastName), i+1)
		if x.Email != wantEmail || emails[x.Email] {
			t.Fatalf("contact %d: email %q, want unique %q", i, x.Email, wantEmail)
		}
		emails[x.Email] = true
		if len(x.Phone) != len("+1-555-000-0000") || x.Company == "" {
			t.Fatalf("contact %d: %+v", i, x)
		}
	}

	orders := readAll(t, c, cfg, sample.ObjectOrders, nil, 0)
	if len(orders) != 200 {
		t.Fatalf("got %d orders, want 200", len(orders))
	}
	for i, r := range orders {
		var x order
		decodeStrict(t, r.Fields, &x)
		if want := fmt.Sprintf("o_%08d", i+1); r.ID != want || x.ID != want {
			t.Fatalf("order %d: ids %q / %q, want %q", i, r.ID, x.ID, want)
		}
		if !emails[x.CustomerEmail] {
			t.Fatalf("order %d: customer_email %q is not a contact's email", i, x.CustomerEmail)
		}
		if x.Total < 5 || x.Total >= 2005 || x.Currency == "" || x.Status == "" {
			t.Fatalf("order %d: %+v", i, x)
		}
		if !r.UpdatedAt.Equal(x.UpdatedAt) || x.CreatedAt.After(x.UpdatedAt) || x.UpdatedAt.Sub(x.CreatedAt) > 30*24*time.Hour {
			t.Fatalf("order %d: created %v, updated %v / %v", i, x.CreatedAt, x.UpdatedAt, r.UpdatedAt)
		}
	}
}

func fieldsOf(recs []sdk.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Fields)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	for _, object := range []string{sample.ObjectContacts, sample.ObjectOrders} {
		t.Run(object, func(t *testing.T) {
			t.Parallel()
			a := fieldsOf(readAll(t, newConn(), `{"count": 500, "seed": 9}`, object, nil, 0))
			b := fieldsOf(readAll(t, newConn(), `{"count": 500, "seed": 9}`, object, nil, 7))
			if !reflect.DeepEqual(a, b) {
				t.Fatal("the same seed gave different records (batch size must not matter)")
			}
			// Record i does not depend on where the read starts.
			tail := fieldsOf(readAll(t, newConn(), `{"count": 500, "seed": 9}`, object, []byte(`{"next": 321}`), 0))
			if !reflect.DeepEqual(tail, a[321:]) {
				t.Fatal("resuming at 321 gave other records than a full read")
			}
			// Contacts do not depend on count either (orders pick a customer
			// among count contacts, so they do).
			if object == sample.ObjectContacts {
				more := fieldsOf(readAll(t, newConn(), `{"count": 600, "seed": 9}`, object, nil, 0))
				if !reflect.DeepEqual(more[:500], a) {
					t.Fatal("raising count changed existing contacts")
				}
			}
			other := fieldsOf(readAll(t, newConn(), `{"count": 500, "seed": 10}`, object, nil, 0))
			same := 0
			for i := range a {
				if a[i] == other[i] {
					same++
				}
			}
			if same > 0 {
				t.Fatalf("seeds 9 and 10 gave %d identical records out of %d", same, len(a))
			}
			def := fieldsOf(readAll(t, newConn(), `{"count": 500}`, object, nil, 0))
			one := fieldsOf(readAll(t, newConn(), `{"count": 500, "seed": 1}`, object, nil, 0))
			if !reflect.DeepEqual(def, one) {
				t.Fatal("the default seed is not 1")
			}
		})
	}
}

func TestReadEdges(t *testing.T) {
	t.Parallel()
	c := newConn()
	var batches []sdk.ReadBatch
	sink := sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error { batches = append(batches, b); return nil })
	ctx := context.Background()

	if err := c.Read(ctx, sdk.ReadRequest{Config: json.RawMessage(`{"count": 10}`), Object: "contacts", BatchSize: 4}, sink); err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, b := range batches {
		cps = append(cps, string(b.Checkpoint))
	}
	if want := []string{`{"next":4}`, `{"next":8}`, `{"next":10}`}; !reflect.DeepEqual(cps, want) {
		t.Fatalf("checkpoints %q, want %q", cps, want)
	}

	batches = nil
	if err := c.Read(ctx, sdk.ReadRequest{Config: json.RawMessage(`{"count": 10}`), Object: "contacts", Cursor: []byte(`{"next":10}`)}, sink); err != nil || len(batches) != 0 {
		t.Fatalf("read at the end: %d batches, %v", len(batches), err)
	}

	for _, tt := range []struct {
		name string
		req  sdk.ReadRequest
		want string
	}{
		{"unknown object", sdk.ReadRequest{Config: json.RawMessage(`{"count": 10}`), Object: "invoices"}, `unknown object "invoices"`},
		{"bad cursor", sdk.ReadRequest{Config: json.RawMessage(`{"count": 10}`), Object: "contacts", Cursor: []byte(`{"next":-1}`)}, "invalid cursor"},
		{"garbage cursor", sdk.ReadRequest{Config: json.RawMessage(`{"count": 10}`), Object: "contacts", Cursor: []byte(`xyz`)}, "invalid cursor"},
		{"bad config", sdk.ReadRequest{Config: json.RawMessage(`{"count": 0}`), Object: "contacts"}, "count is out of range"},
	} {
		batches = nil
		if err := c.Read(ctx, tt.req, sink); err != nil {
			t.Fatalf("%s: Read returned %v, want diagnostics", tt.name, err)
		}
		if len(batches) != 1 || len(batches[0].Records) != 0 || !strings.Contains(batches[0].Diagnostics.Error(), tt.want) {
			t.Fatalf("%s: batches %+v, want one with diagnostic %q", tt.name, batches, tt.want)
		}
	}

	// A sink error stops the read and comes back wrapped.
	stop := errors.New("full")
	err := c.Read(ctx, sdk.ReadRequest{Config: json.RawMessage(`{"count": 100}`), Object: "orders", BatchSize: 10},
		sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error { return stop }))
	if err == nil || !strings.HasPrefix(err.Error(), "sample: read: ") || !errors.Is(err, stop) {
		t.Fatalf("Read with a failing sink = %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		config    string
		attribute string // of the expected error diagnostic; "-" for none
		summary   string
	}{
		{"minimal", `{"count": 1}`, "-", ""},
		{"maximal", `{"count": 10000000, "seed": -5, "updated_at": "2020-02-29T12:00:00.5+02:00"}`, "-", ""},
		{"empty", ``, "", "config is required"},
		{"invalid json", `{"count": `, "", "config is not valid JSON"},
		{"array", `[]`, "", "config must be a JSON object"},
		{"null", `null`, "", "config must be a JSON object"},
		{"missing count", `{}`, "count", "count is required"},
		{"zero", `{"count": 0}`, "count", "count is out of range"},
		{"negative", `{"count": -3}`, "count", "count is out of range"},
		{"too large", `{"count": 10000001}`, "count", "count is out of range"},
		{"fraction", `{"count": 1.5}`, "count", "count must be an integer"},
		{"exponent", `{"count": 1e3}`, "count", "count must be an integer"},
		{"string count", `{"count": "10"}`, "count", "count must be an integer"},
		{"huge", `{"count": 99999999999999999999}`, "count", "count must be an integer"},
		{"string seed", `{"count": 1, "seed": "x"}`, "seed", "seed must be an integer"},
		{"bad time", `{"count": 1, "updated_at": "yesterday"}`, "updated_at", "updated_at is not an RFC 3339 time"},
		{"time not string", `{"count": 1, "updated_at": 5}`, "updated_at", "updated_at must be a string"},
		{"unknown key", `{"count": 1, "colour": "red"}`, "colour", "unknown config key"},
	}
	c := newConn()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: json.RawMessage(tt.config)})
			if err != nil {
				t.Fatalf("Check returned an error: %v", err)
			}
			if tt.attribute == "-" {
				if len(resp.Diagnostics) != 0 {
					t.Fatalf("diagnostics %+v, want none", resp.Diagnostics)
				}
				return
			}
			for _, d := range resp.Diagnostics {
				if d.Severity == sdk.SeverityError && d.Attribute == tt.attribute && d.Summary == tt.summary {
					return
				}
			}
			t.Fatalf("diagnostics %+v, want error %q on attribute %q", resp.Diagnostics, tt.summary, tt.attribute)
		})
	}
}

func TestParseConfigValues(t *testing.T) {
	t.Parallel()
	cfg, d := sample.ParseConfig(json.RawMessage(`{"count": 3, "seed": 8, "updated_at": "2020-01-01T01:00:00+01:00"}`))
	if d.HasError() || cfg.Count != 3 || cfg.Seed != 8 || !cfg.Base.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("ParseConfig = %+v, %v", cfg, d)
	}
}

func TestSourceOnly(t *testing.T) {
	t.Parallel()
	c := newConn()
	ctx := context.Background()
	spec, err := c.Spec(ctx)
	if err != nil || spec.Version != "0.1.0" || spec.Capabilities.Write || !spec.Capabilities.Read {
		t.Fatalf("Spec = %+v, %v", spec, err)
	}
	wr, err := c.Write(ctx, sdk.WriteRequest{Object: "contacts", Records: []sdk.WriteRecord{{Ref: "a"}, {Ref: "b"}}})
	if err != nil || len(wr.Results) != 2 || wr.Results[1].Ref != "b" || wr.Results[1].Status != sdk.WriteRejected {
		t.Fatalf("Write = %+v, %v", wr, err)
	}
	wh, err := c.HandleWebhook(ctx, sdk.WebhookRequest{Method: "POST"})
	if err != nil || wh.Verified || wh.Diagnostics.Error() != "sample does not accept webhooks" {
		t.Fatalf("HandleWebhook = %+v, %v", wh, err)
	}
	disc, err := c.Discover(ctx, sdk.DiscoverRequest{Config: json.RawMessage(`{"count": 1}`)})
	if err != nil || len(disc.Objects) != 2 {
		t.Fatalf("Discover = %+v, %v", disc, err)
	}
}

// benchmarkRead reads 100,000 contacts per iteration through c.
func benchmarkRead(b *testing.B, c sdk.Connector) {
	const n = 100_000
	ctx := context.Background()
	req := sdk.ReadRequest{Config: json.RawMessage(`{"count": 100000}`), Object: sample.ObjectContacts}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got := 0
		err := c.Read(ctx, req, sdk.ReadSinkFunc(func(_ context.Context, batch sdk.ReadBatch) error {
			got += len(batch.Records)
			return nil
		}))
		if err != nil || got != n {
			b.Fatalf("read %d records, %v", got, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRead100k reads in process, without gRPC.
func BenchmarkRead100k(b *testing.B) { benchmarkRead(b, newConn()) }

// BenchmarkRead100kGRPC reads over a real gRPC connection, as the host does.
func BenchmarkRead100kGRPC(b *testing.B) {
	c, cleanup, err := sdk.ServeTestConn(context.Background(), newConn())
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	benchmarkRead(b, c)
}
