package shopify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

// env is a fake shop and a connector sharing a manual clock.
type env struct {
	clock  *fake.Clock
	shop   *fake.Server
	srv    *httptest.Server
	conn   *Connector
	config json.RawMessage
	// validated says every query is validated against the Admin schema.
	validated bool
}

type envOpts struct {
	max, rate float64
	version   string
}

// newEnv starts a fake shop; when ../shared/specs/shopify exists every query
// is validated against the schema of the config's API version.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.version == "" {
		o.version = DefaultAPIVersion
	}
	e := &env{clock: fake.NewClock(t0)}
	opts := fake.Options{Token: "shpat_test", MaximumAvailable: o.max, RestoreRate: o.rate, Now: e.clock.Now}
	if dir := fake.SpecDir(); dir != "" {
		schema, err := fake.LoadSchema(dir, o.version)
		if err != nil {
			t.Fatalf("load schema %s: %v", o.version, err)
		}
		opts.Schemas = map[string]*ast.Schema{o.version: schema}
		e.validated = true
	}
	e.shop = fake.New(opts)
	e.srv = httptest.NewServer(e.shop)
	t.Cleanup(e.srv.Close)
	e.conn = New("0.1.0", "docs", Options{Now: e.clock.Now, Sleep: e.clock.Sleep, HTTPClient: e.srv.Client()})
	t.Cleanup(func() { _ = e.conn.Stop(context.Background()) })
	e.config = e.cfg(nil)
	return e
}

// cfg is the working config with some keys replaced.
func (e *env) cfg(over map[string]any) json.RawMessage {
	c := map[string]any{"shop": "acme.myshopify.com", "access_token": "shpat_test", "base_url": e.srv.URL, "client_secret": "whsec"}
	if e.validated {
		c["api_version"] = DefaultAPIVersion
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	raw, _ := json.Marshal(c)
	return raw
}

func (e *env) seedCustomers(n int, at func(i int) time.Time) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = e.shop.AddCustomer(fake.Customer{Email: fmt.Sprintf("seed%03d@example.com", i), FirstName: "Seed", Tags: []string{"vip"}, UpdatedAt: at(i)})
	}
	return ids
}

func readAll(t *testing.T, e *env, object string, batch int, cursor []byte, stopAfter int) ([]string, [][]byte) {
	t.Helper()
	var ids []string
	var cps [][]byte
	errStop := fmt.Errorf("stop")
	err := e.conn.Read(context.Background(), sdk.ReadRequest{Config: e.config, Object: object, BatchSize: batch, Cursor: cursor},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			if b.Diagnostics.HasError() {
				t.Fatalf("read diagnostics: %s", b.Diagnostics.Error())
			}
			for _, r := range b.Records {
				ids = append(ids, r.ID)
			}
			cps = append(cps, b.Checkpoint)
			if stopAfter > 0 && len(cps) == stopAfter {
				return errStop
			}
			return nil
		}))
	if err != nil && err != errStop {
		t.Fatalf("Read: %v", err)
	}
	return ids, cps
}

func TestConformanceCustomers(t *testing.T) {
	e := newEnv(t, envOpts{})
	conformance.Run(t, conformance.Suite{
		New:    func(*testing.T) sdk.Connector { return e.conn },
		Config: e.config,
		BadConfigs: map[string]json.RawMessage{
			"wrong token":   e.cfg(map[string]any{"access_token": "shpat_wrong"}),
			"bad shop":      e.cfg(map[string]any{"shop": "acme.example.com"}),
			"no token":      e.cfg(map[string]any{"access_token": nil}),
			"unknown key":   e.cfg(map[string]any{"apikey": "x"}),
			"bad version":   e.cfg(map[string]any{"api_version": "2025-02"}),
			"wrong version": e.cfg(map[string]any{"api_version": "2019-04"}),
		},
		Object: "customers",
		Seed: func(_ *testing.T, n int) {
			e.seedCustomers(n, func(i int) time.Time { return t0.Add(-time.Duration(i/4) * time.Minute) })
		},
		NewRecord: func(i int) json.RawMessage {
			return json.RawMessage(fmt.Sprintf(`{"email":"conf%d@example.com","first_name":"Conf","last_name":"%d","tags":["synced"]}`, i, i))
		},
	})
	if n := e.shop.Throttled(); n != 0 {
		t.Errorf("the shop throttled %d queries: the connector must wait for its bucket", n)
	}
}

func TestConformanceOrdersAndProducts(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, object := range []string{"orders", "products"} {
		t.Run(object, func(t *testing.T) {
			conformance.Run(t, conformance.Suite{
				New:    func(*testing.T) sdk.Connector { return e.conn },
				Config: e.config,
				Object: object,
				Seed: func(_ *testing.T, n int) {
					for i := range n {
						at := t0.Add(time.Duration(i/3) * time.Second)
						if object == "orders" {
							e.shop.AddOrder(fake.Order{Email: "o@example.com", Currency: "EUR", Total: "12.50", Status: "PAID", UpdatedAt: at,
								LineItems: []fake.LineItem{{Name: "Mug", Quantity: 2, Price: "6.25"}}})
						} else {
							e.shop.AddProduct(fake.Product{Title: "P", Handle: fmt.Sprintf("p-%d", i), Status: "ACTIVE", UpdatedAt: at})
						}
					}
				},
			})
		})
	}
}

// TestSchemaVersions reads and writes through both supported versions with
// validation on: a field or argument a version lacks fails here.
func TestSchemaVersions(t *testing.T) {
	if fake.SpecDir() == "" {
		t.Skip("schema validation not tested: no Shopify schemas (../shared/specs/shopify, relative to the repo root, is missing or SYNCHRON_SHOPIFY_SPECS=none)")
	}
	for _, v := range []string{"2024-10", "2025-01"} {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t, envOpts{version: v})
			e.config = e.cfg(map[string]any{"api_version": v})
			e.seedCustomers(2, func(int) time.Time { return t0 })
			oid := e.shop.AddOrder(fake.Order{Currency: "USD", Total: "1.00", LineItems: []fake.LineItem{{Name: "x", Quantity: 1, Price: "1.00"}}})
			e.shop.AddProduct(fake.Product{Title: "p", Handle: "p", Status: "ACTIVE"})
			for _, o := range []string{"customers", "orders", "products"} {
				if ids, _ := readAll(t, e, o, 0, nil, 0); len(ids) == 0 {
					t.Errorf("%s: nothing read", o)
				}
			}
			resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "customers", Records: []sdk.WriteRecord{{Ref: "a", Fields: json.RawMessage(`{"email":"seed000@example.com","note":"n"}`)}, {Ref: "b", Fields: json.RawMessage(`{"email":"new@example.com"}`)}}})
			if err != nil {
				t.Fatal(err)
			}
			resp2, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "orders", Records: []sdk.WriteRecord{{Ref: "o", ID: oid, Fields: json.RawMessage(`{"note":"hello"}`)}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range append(resp.Results, resp2.Results...) {
				if r.Status != sdk.WriteOK {
					t.Errorf("write %s: %v %s", r.Ref, r.Status, r.Message)
				}
			}
			check, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config})
			if err != nil || check.Diagnostics.HasError() {
				t.Errorf("Check: %v %v", err, check)
			}
		})
	}
}

func TestInvalidQueryFails(t *testing.T) {
	e := newEnv(t, envOpts{})
	if !e.validated {
		t.Skip("schema validation not tested: no Shopify schemas (../shared/specs/shopify, relative to the repo root, is missing or SYNCHRON_SHOPIFY_SPECS=none)")
	}
	err := e.conn.call(context.Background(), Config{Shop: "acme.myshopify.com", AccessToken: "shpat_test", APIVersion: DefaultAPIVersion, BaseURL: e.srv.URL},
		`{ customers(first: 1) { nodes { id emailAddressTypo } } }`, nil, 3, nil)
	if err == nil || !strings.Contains(err.Error(), "emailAddressTypo") {
		t.Fatalf("a query the schema refuses: got %v, want a GraphQL validation error", err)
	}
}

func TestReadPaging(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		ids, cps := readAll(t, e, "customers", 5, nil, 0)
		if len(ids) != 0 || len(cps) != 0 {
			t.Fatalf("empty shop: %d records in %d batches", len(ids), len(cps))
		}
	})
	t.Run("exactly one page", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.seedCustomers(5, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
		ids, cps := readAll(t, e, "customers", 5, nil, 0)
		if len(ids) != 5 || len(cps) != 1 {
			t.Fatalf("5 records, batch 5: got %d records in %d batches", len(ids), len(cps))
		}
		// Resuming from the end reads nothing.
		more, _ := readAll(t, e, "customers", 5, cps[0], 0)
		if len(more) != 0 {
			t.Fatalf("resume from the last checkpoint read %d records again", len(more))
		}
	})
	t.Run("equal updated_at across pages", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		// 11 records: 7 at one second, then 4 at the next.
		want := e.seedCustomers(11, func(i int) time.Time {
			if i < 7 {
				return t0
			}
			return t0.Add(time.Second)
		})
		full, _ := readAll(t, e, "customers", 3, nil, 0)
		if len(full) != 11 {
			t.Fatalf("full read: %d records, want 11", len(full))
		}
		// Stop after every checkpoint in turn and resume: no loss, no repeat.
		for stop := 1; stop <= 3; stop++ {
			head, cps := readAll(t, e, "customers", 3, nil, stop)
			tail, _ := readAll(t, e, "customers", 3, cps[len(cps)-1], 0)
			got := map[string]int{}
			for _, id := range append(head, tail...) {
				got[id]++
			}
			for _, id := range want {
				if got[id] != 1 {
					t.Errorf("stop after %d batches: record %s read %d times", stop, id, got[id])
				}
			}
		}
		// A record changed after the checkpoint is read again.
		_, cps := readAll(t, e, "customers", 3, nil, 0)
		e.clock.Advance(time.Minute)
		resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "customers", Records: []sdk.WriteRecord{{Ref: "x", ID: want[0], Fields: json.RawMessage(`{"note":"changed"}`)}}})
		if err != nil || resp.Results[0].Status != sdk.WriteOK {
			t.Fatalf("update: %v %+v", err, resp)
		}
		again, _ := readAll(t, e, "customers", 3, cps[len(cps)-1], 0)
		if len(again) != 1 || again[0] != want[0] {
			t.Fatalf("after an update: read %v, want [%s]", again, want[0])
		}
	})
}

func writeCustomers(t *testing.T, e *env, fields ...string) *sdk.WriteResponse {
	t.Helper()
	req := sdk.WriteRequest{Config: e.config, Object: "customers"}
	for i, f := range fields {
		req.Records = append(req.Records, sdk.WriteRecord{Ref: fmt.Sprint(i), Fields: json.RawMessage(f)})
	}
	resp, err := e.conn.Write(context.Background(), req)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(resp.Results) != len(fields) {
		t.Fatalf("%d results for %d records", len(resp.Results), len(fields))
	}
	return resp
}

func TestSustainedWritesWaitForTheBucket(t *testing.T) {
	// A small bucket: 60 writes of 13 points need ~7 refills.
	e := newEnv(t, envOpts{max: 100, rate: 10})
	var fields []string
	for i := range 60 {
		fields = append(fields, fmt.Sprintf(`{"email":"w%d@example.com"}`, i))
	}
	resp := writeCustomers(t, e, fields...)
	for _, r := range resp.Results {
		if r.Status != sdk.WriteOK {
			t.Fatalf("record %s: %v %s", r.Ref, r.Status, r.Message)
		}
	}
	if n := e.shop.Throttled(); n != 0 {
		t.Fatalf("the shop answered THROTTLED %d times: the connector must wait for restore instead", n)
	}
	if e.clock.Slept() < 50*time.Second {
		t.Fatalf("waited %v in all for 780 points at 10/s from 100: the budget was not respected", e.clock.Slept())
	}
	if len(e.shop.Customers()) != 60 {
		t.Fatalf("%d customers stored, want 60", len(e.shop.Customers()))
	}
}

func TestReadWithinSmallBucket(t *testing.T) {
	// A bucket of 100 points cannot afford a page of 100 customers (102
	// points) once the connector knows its size: pages shrink instead.
	e := newEnv(t, envOpts{max: 100, rate: 10})
	e.seedCustomers(120, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
	if resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %v %+v", err, resp)
	}
	ids, _ := readAll(t, e, "customers", 100, nil, 0)
	if len(ids) != 120 {
		t.Fatalf("read %d customers, want 120", len(ids))
	}
	if n := e.shop.Throttled(); n != 0 {
		t.Fatalf("throttled %d times", n)
	}
	// A fresh connector learns the size from its first (throttled) answer
	// and shrinks the next pages.
	e.conn = New("0.1.0", "", Options{Now: e.clock.Now, Sleep: e.clock.Sleep, HTTPClient: e.srv.Client()})
	if ids, _ := readAll(t, e, "customers", 100, nil, 0); len(ids) != 120 {
		t.Fatalf("fresh connector read %d customers, want 120", len(ids))
	}
}

// TestReadCostEstimates reads every object through a bucket barely larger
// than a page: a cost estimate below what the shop charges would be throttled.
func TestReadCostEstimates(t *testing.T) {
	e := newEnv(t, envOpts{max: 200, rate: 5})
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Second)
		e.shop.AddOrder(fake.Order{Currency: "EUR", Total: "1.00", UpdatedAt: at, LineItems: []fake.LineItem{{Name: "a", Quantity: 1, Price: "1.00"}}})
		e.shop.AddProduct(fake.Product{Title: "p", Handle: fmt.Sprint(i), Status: "ACTIVE", UpdatedAt: at})
		e.shop.AddCustomer(fake.Customer{Email: fmt.Sprintf("c%d@example.com", i), UpdatedAt: at})
	}
	if resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %v %+v", err, resp)
	}
	for _, o := range []string{"orders", "products", "customers"} {
		if ids, _ := readAll(t, e, o, 5, nil, 0); len(ids) != 20 {
			t.Fatalf("%s: read %d, want 20", o, len(ids))
		}
	}
	if n := e.shop.Throttled(); n != 0 {
		t.Fatalf("throttled %d times: a read cost estimate is below the shop's", n)
	}
}

func TestSharedBudgetAcrossCalls(t *testing.T) {
	e := newEnv(t, envOpts{max: 100, rate: 10})
	done := make(chan *sdk.WriteResponse, 3)
	for w := range 3 {
		go func() {
			req := sdk.WriteRequest{Config: e.config, Object: "customers"}
			for i := range 10 {
				req.Records = append(req.Records, sdk.WriteRecord{Ref: fmt.Sprint(i), Fields: json.RawMessage(fmt.Sprintf(`{"email":"s%d-%d@example.com"}`, w, i))})
			}
			resp, _ := e.conn.Write(context.Background(), req)
			done <- resp
		}()
	}
	for range 3 {
		resp := <-done
		if resp == nil {
			t.Fatal("Write failed")
		}
		for _, r := range resp.Results {
			if r.Status != sdk.WriteOK {
				t.Errorf("record %s: %v %s", r.Ref, r.Status, r.Message)
			}
		}
	}
	if n := e.shop.Throttled(); n != 0 {
		t.Fatalf("concurrent writes to one shop were throttled %d times: the budget must be shared", n)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fake.Fault
	}{{"throttled", fake.Fault{Throttle: true}}, {"503", fake.Fault{Status: 503}}, {"500", fake.Fault{Status: 500}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			e.shop.Inject(tc.fault)
			resp := writeCustomers(t, e, `{"email":"r@example.com"}`)
			if r := resp.Results[0]; r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated {
				t.Fatalf("after one %s answer: %v %v %s", tc.name, r.Status, r.Action, r.Message)
			}
			if n := len(e.shop.Queries()); n != 3 {
				t.Fatalf("%d queries, want 3 (lookup refused, lookup retried, create)", n)
			}
		})
	}
	t.Run("lost answer of a create", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		// The lookup answers; the create is applied but its answer lost.
		e.shop.Inject(fake.Fault{}, fake.Fault{Status: 502, AfterApply: true})
		resp := writeCustomers(t, e, `{"email":"lost@example.com","first_name":"L"}`)
		if r := resp.Results[0]; r.Status != sdk.WriteOK || r.ID == "" {
			t.Fatalf("after a lost answer: %v %s", r.Status, r.Message)
		}
		if n := len(e.shop.Customers()); n != 1 {
			t.Fatalf("%d customers, want 1", n)
		}
	})
	t.Run("throttled without end", func(t *testing.T) {
		// THROTTLED and 429 are waited out however many come.
		e := newEnv(t, envOpts{})
		for range 4 * maxFailures {
			e.shop.Inject(fake.Fault{Throttle: true}, fake.Fault{Status: 429})
		}
		resp := writeCustomers(t, e, `{"email":"r@example.com"}`)
		if r := resp.Results[0]; r.Status != sdk.WriteOK {
			t.Fatalf("after %d throttled answers: %v (%s), want OK", 8*maxFailures, r.Status, r.Message)
		}
	})
	t.Run("5xx exhausted", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		for range maxFailures {
			e.shop.Inject(fake.Fault{Status: 503})
		}
		resp := writeCustomers(t, e, `{"email":"r@example.com"}`)
		if r := resp.Results[0]; r.Status != sdk.WriteRetryable || r.RetryAfter <= 0 {
			t.Fatalf("after %d 503s: %v retry after %v (%s), want retryable with RetryAfter", maxFailures, r.Status, r.RetryAfter, r.Message)
		}
	})
}

func TestUserErrorsRejectOnlyThatRecord(t *testing.T) {
	e := newEnv(t, envOpts{})
	ids := e.seedCustomers(2, func(int) time.Time { return t0 })
	resp := writeCustomers(t, e, `{"email":"ok1@example.com"}`, `{"email":"not-an-email"}`, `{"email":"ok2@example.com"}`)
	for i, want := range []sdk.WriteStatus{sdk.WriteOK, sdk.WriteRejected, sdk.WriteOK} {
		if resp.Results[i].Status != want {
			t.Errorf("record %d: %v (%s), want %v", i, resp.Results[i].Status, resp.Results[i].Message, want)
		}
	}
	if !strings.Contains(resp.Results[1].Message, "Email is invalid") {
		t.Errorf("rejection message %q does not carry Shopify's userError", resp.Results[1].Message)
	}
	// Taking another customer's email is a duplicate.
	dup, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "customers", Records: []sdk.WriteRecord{{Ref: "d", ID: ids[0], Fields: json.RawMessage(`{"email":"seed001@example.com"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := dup.Results[0]; r.Status != sdk.WriteRejected || !strings.Contains(r.Message, "already been taken") {
		t.Fatalf("duplicate email: %v %q", r.Status, r.Message)
	}
}

func TestBatchedWrites(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seedCustomers(3, func(int) time.Time { return t0 })
	if resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %v %+v", err, resp)
	}
	before := len(e.shop.Queries())
	var fields []string
	for i := range 20 {
		switch i {
		case 4:
			fields = append(fields, `{"email":"broken"}`)
		case 9:
			fields = append(fields, `{"email":"seed001@example.com","first_name":"Updated"}`)
		case 12:
			fields = append(fields, `{"email":"x@example.com","nickname":"unknown field"}`)
		default:
			fields = append(fields, fmt.Sprintf(`{"email":"b%d@example.com"}`, i))
		}
	}
	resp := writeCustomers(t, e, fields...)
	for i, r := range resp.Results {
		want, action := sdk.WriteOK, sdk.ActionCreated
		switch i {
		case 4, 12:
			want = sdk.WriteRejected
		case 9:
			action = sdk.ActionUpdated
		}
		if r.Status != want || (want == sdk.WriteOK && r.Action != action) || r.Ref != fmt.Sprint(i) {
			t.Errorf("record %d: %v %v %s, want %v %v", i, r.Status, r.Action, r.Message, want, action)
		}
	}
	if n := len(e.shop.Queries()) - before; n != 2 {
		t.Errorf("20 customers took %d requests, want 2 (one lookup, one mutation)", n)
	}
	if n := len(e.shop.Customers()); n != 3+17 {
		t.Errorf("%d customers stored, want 20", n)
	}
}

func TestOrderNote(t *testing.T) {
	e := newEnv(t, envOpts{})
	oid := e.shop.AddOrder(fake.Order{Currency: "EUR", Total: "3.00"})
	resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "orders", Records: []sdk.WriteRecord{
		{Ref: "a", ID: oid, Fields: json.RawMessage(`{"note":"synced from CRM","tags":["crm"]}`)},
		{Ref: "b", Fields: json.RawMessage(`{"note":"x"}`)},
		{Ref: "c", ID: "gid://shopify/Order/999999", Fields: json.RawMessage(`{"note":"x"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Status != sdk.WriteOK || r.ID != oid {
		t.Fatalf("note: %v %s", r.Status, r.Message)
	}
	if resp.Results[1].Status != sdk.WriteRejected || resp.Results[2].Status != sdk.WriteRejected {
		t.Fatalf("no id / unknown order: %+v", resp.Results[1:])
	}
	var n int
	fmt.Sscanf(oid, "gid://shopify/Order/%d", &n)
	if o, _ := e.shop.Order(n); o.Note != "synced from CRM" || len(o.Tags) != 1 {
		t.Fatalf("stored order: note %q tags %v", o.Note, o.Tags)
	}
}

func TestCheckAttributes(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		name string
		over map[string]any
		attr string
	}{
		{"bad token", map[string]any{"access_token": "shpat_wrong"}, "access_token"},
		{"bad shop domain", map[string]any{"shop": "acme.example.com"}, "shop"},
		{"unknown version", map[string]any{"api_version": "2019-04"}, "shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.cfg(tc.over)})
			if err != nil {
				t.Fatal(err)
			}
			if !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != tc.attr {
				t.Fatalf("diagnostics %+v, want an error on %s", resp.Diagnostics, tc.attr)
			}
			if strings.Contains(resp.Diagnostics.Error(), "shpat_") {
				t.Fatalf("a diagnostic carries the token: %s", resp.Diagnostics.Error())
			}
		})
	}
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	e := newEnv(t, envOpts{})
	body := []byte(`{"id":7,"admin_graphql_api_id":"gid://shopify/Customer/7","email":"w@example.com","first_name":"W","tags":"a, b","updated_at":"2025-01-15T12:00:00-05:00"}`)
	hook := func(sig, id string, body []byte) *sdk.WebhookResponse {
		t.Helper()
		resp, err := e.conn.HandleWebhook(context.Background(), sdk.WebhookRequest{Config: e.config, Method: "POST", Body: body, Headers: map[string][]string{
			"X-Shopify-Hmac-Sha256": {sig}, "X-Shopify-Topic": {"customers/update"}, "X-Shopify-Webhook-Id": {id}, "X-Shopify-Shop-Domain": {"acme.myshopify.com"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := hook(sign("whsec", body), "d1", body)
	if !resp.Verified || len(resp.Changes) != 1 {
		t.Fatalf("valid delivery: %+v", resp)
	}
	ch := resp.Changes[0]
	if ch.Object != "customers" || ch.ID != "gid://shopify/Customer/7" || ch.Record == nil || !ch.Record.UpdatedAt.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("change %+v", ch)
	}
	var f map[string]any
	_ = json.Unmarshal(ch.Record.Fields, &f)
	if f["email"] != "w@example.com" || len(f["tags"].([]any)) != 2 {
		t.Fatalf("record fields %v", f)
	}
	if resp.DeliveryID != "d1" {
		t.Fatalf("delivery id %q, want d1 handed to the host (which dedups)", resp.DeliveryID)
	}
	if bad := hook(sign("other", body), "d2", body); bad.Verified || len(bad.Changes) != 0 {
		t.Fatalf("wrong secret: %+v, want unverified", bad)
	}
	tampered := []byte(strings.Replace(string(body), "W", "X", 1))
	if bad := hook(sign("whsec", body), "d3", tampered); bad.Verified {
		t.Fatal("tampered body verified")
	}
	if bad := hook("not base64!", "d4", body); bad.Verified {
		t.Fatal("garbage signature verified")
	}
	// The failed deliveries did not take their ids: a valid d2 passes.
	if ok := hook(sign("whsec", body), "d2", body); len(ok.Changes) != 1 {
		t.Fatalf("valid d2 after an invalid d2: %+v", ok)
	}
}

func TestWebhookTopics(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		topic, body, object, id string
		deleted, record         bool
	}{
		{"orders/updated", `{"id":5,"admin_graphql_api_id":"gid://shopify/Order/5","name":"#1005","total_price":"9.90","currency":"EUR","financial_status":"paid","line_items":[{"title":"Mug","quantity":1,"price":"9.90"}],"updated_at":"2025-01-15T12:00:00Z"}`, "orders", "gid://shopify/Order/5", false, true},
		{"products/delete", `{"id":9}`, "products", "gid://shopify/Product/9", true, false},
		{"customers/delete", `{"id":3}`, "customers", "gid://shopify/Customer/3", true, false},
		{"app/uninstalled", `{"id":1}`, "", "", false, false},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			resp, err := e.conn.HandleWebhook(context.Background(), sdk.WebhookRequest{Config: e.config, Body: []byte(tc.body), Headers: map[string][]string{
				"x-shopify-hmac-sha256": {sign("whsec", []byte(tc.body))}, "x-shopify-topic": {tc.topic}, "x-shopify-webhook-id": {tc.topic},
			}})
			if err != nil || !resp.Verified {
				t.Fatalf("%v %+v", err, resp)
			}
			if tc.object == "" {
				if len(resp.Changes) != 0 {
					t.Fatalf("ignored topic gave changes %+v", resp.Changes)
				}
				return
			}
			if len(resp.Changes) != 1 {
				t.Fatalf("changes %+v", resp.Changes)
			}
			ch := resp.Changes[0]
			if ch.Object != tc.object || ch.ID != tc.id || ch.Deleted != tc.deleted || (ch.Record != nil) != tc.record {
				t.Fatalf("change %+v", ch)
			}
			if ch.Record != nil {
				var f map[string]any
				_ = json.Unmarshal(ch.Record.Fields, &f)
				o, _ := specOf(t, e).Object(tc.object)
				for k := range f {
					if _, ok := o.Field(k); !ok {
						t.Errorf("webhook record field %q is not declared", k)
					}
				}
			}
		})
	}
}

func specOf(t *testing.T, e *env) *sdk.Spec {
	t.Helper()
	s, err := e.conn.Spec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadFailsAfterRetries(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seedCustomers(3, func(int) time.Time { return t0 })
	for range maxFailures {
		e.shop.Inject(fake.Fault{Status: 502})
	}
	var diags sdk.Diagnostics
	err := e.conn.Read(context.Background(), sdk.ReadRequest{Config: e.config, Object: "customers"}, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		diags = append(diags, b.Diagnostics...)
		return nil
	}))
	if err == nil || !strings.Contains(err.Error(), "502") || strings.Contains(err.Error(), "shpat_") {
		t.Fatalf("Read after %d 502s: %v, want an error naming the status and not the token", maxFailures, err)
	}
	if after, ok := sdk.IsRetryable(err); !ok || after <= 0 || len(diags) > 0 {
		t.Fatalf("Read after %d 502s: %v (retryable %v after %v, diagnostics %v), want sdk.Retryable with a wait and no diagnostic", maxFailures, err, ok, after, diags)
	}
	// One 502 is retried.
	e.shop.Inject(fake.Fault{Status: 502})
	if ids, _ := readAll(t, e, "customers", 0, nil, 0); len(ids) != 3 {
		t.Fatalf("read %d after one 502, want 3", len(ids))
	}
}

// An order's external_id lives in a metafield: writing it leaves the
// merchant's note alone, and reads return it with every line of the order
// (past the first page of lines) and the customer's name.
func TestOrderExternalIDAndAllLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	var lines []fake.LineItem
	for i := range 23 {
		lines = append(lines, fake.LineItem{Name: fmt.Sprintf("Item %02d", i), Quantity: i + 1, Price: fmt.Sprintf("%d.50", i)})
	}
	oid := e.shop.AddOrder(fake.Order{Currency: "EUR", Total: "99.00", Note: "Gift wrap, please", CustomerName: "Ann Lee", LineItems: lines})
	e.shop.AddOrder(fake.Order{Currency: "EUR", Total: "1.00", LineItems: lines[:1]})
	resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: "orders", Records: []sdk.WriteRecord{
		{Ref: "a", ID: oid, Fields: json.RawMessage(`{"external_id":"inv-42"}`)},
		{Ref: "b", ID: oid, Fields: json.RawMessage(`{"external_id":""}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Status != sdk.WriteOK {
		t.Fatalf("write external_id: %v %s", r.Status, r.Message)
	}
	if r := resp.Results[1]; r.Status != sdk.WriteRejected || !strings.Contains(r.Message, "cannot be emptied") {
		t.Fatalf("emptying external_id = %v %q, want rejected", r.Status, r.Message)
	}
	var n int
	fmt.Sscanf(oid, "gid://shopify/Order/%d", &n)
	if o, _ := e.shop.Order(n); o.Note != "Gift wrap, please" || o.Metafields["synchron.external_id"] != "inv-42" {
		t.Fatalf("stored order: note %q metafields %v, want the note untouched and the metafield set", o.Note, o.Metafields)
	}
	var got []map[string]any
	err = e.conn.Read(context.Background(), sdk.ReadRequest{Config: e.config, Object: "orders"}, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		for _, r := range b.Records {
			var m map[string]any
			if err := json.Unmarshal(r.Fields, &m); err != nil {
				return err
			}
			got = append(got, m)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	var order map[string]any
	for _, m := range got {
		if m["id"] == oid {
			order = m
		}
	}
	if order == nil {
		t.Fatalf("order %s not read (read %d orders)", oid, len(got))
	}
	if order["external_id"] != "inv-42" || order["customer_name"] != "Ann Lee" || order["note"] != "Gift wrap, please" {
		t.Errorf("order read = external_id %v customer_name %v note %v", order["external_id"], order["customer_name"], order["note"])
	}
	items, _ := order["line_items"].([]any)
	if len(items) != len(lines) {
		t.Fatalf("read %d lines, want all %d", len(items), len(lines))
	}
	for i, it := range items {
		l := it.(map[string]any)
		if l["name"] != lines[i].Name || l["price"] != lines[i].Price || l["quantity"] != float64(lines[i].Quantity) {
			t.Errorf("line %d = %v, want %+v", i, l, lines[i])
		}
	}
	if _, leaked := order["\x00more_lines"]; leaked {
		t.Error("the internal more-lines marker leaked into the record")
	}
}
