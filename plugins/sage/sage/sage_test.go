package sage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/sage/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

const biz = "biz-1"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

type env struct {
	t      *testing.T
	clock  *clock
	fake   *fake.Server
	url    string
	cfg    config
	mu     sync.Mutex
	sleeps []time.Duration
}

// specDir is ../shared/specs/sage from the repository root, or "".
func specDir() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "shared", "specs", "sage"))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "sage-accounting-v3.1-openapi.json")); err != nil {
		return ""
	}
	return dir
}

func newEnv(t *testing.T, withSpec bool, mods ...func(*fake.Options)) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}}
	opts := fake.Options{Now: e.clock.Now, Businesses: []string{biz, "biz-2"}}
	for _, m := range mods {
		m(&opts)
	}
	if withSpec {
		if opts.SpecDir = specDir(); opts.SpecDir == "" {
			t.Skip("Sage spec not found at ../shared/specs/sage (from the repository root): spec validation not tested")
		}
	}
	f, err := fake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.fake = f
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	a, r, exp := f.IssueTokens()
	e.cfg = config{ClientID: "client", ClientSecret: "secret", AccessToken: a, RefreshToken: r, ExpiresAt: exp,
		BusinessID: biz, BaseURL: srv.URL, TokenURL: srv.URL + "/token"}
	return e
}

func (e *env) config(mod func(*config)) json.RawMessage {
	c := e.cfg
	if mod != nil {
		mod(&c)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

func (e *env) conn() *Connector {
	return New("0.1.0", "docs", Options{
		HTTPClient:        &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Now:               e.clock.Now,
		RequestsPerMinute: 1 << 20, Burst: 1 << 20,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.sleeps = append(e.sleeps, d)
			// The wait passes on the fake clock: a budget asked again
			// after it grants.
			e.clock.Add(d)
			return ctx.Err()
		},
	})
}

func (e *env) seedContacts(n int, prefix string) []string {
	var ids []string
	for i := range n {
		ids = append(ids, e.fake.Put(biz, "contacts", map[string]any{"name": fmt.Sprintf("%s %d", prefix, i),
			"reference": fmt.Sprintf("%s-%d", prefix, i), "contact_types": []any{map[string]any{"id": "CUSTOMER"}}}))
	}
	return ids
}

type readResult struct {
	batches []sdk.ReadBatch
	recs    []sdk.Record
	cursor  []byte
	updated json.RawMessage
}

func read(t *testing.T, c *Connector, cfg json.RawMessage, object string, cursor []byte, bs int, each func(i int)) readResult {
	t.Helper()
	var rr readResult
	err := c.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: object, Cursor: cursor, BatchSize: bs},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			if b.Diagnostics.HasError() {
				t.Fatalf("read diagnostics: %s", b.Diagnostics.Error())
			}
			if bs > 0 && len(b.Records) > bs {
				t.Errorf("batch of %d records, batch size %d", len(b.Records), bs)
			}
			rr.batches = append(rr.batches, b)
			rr.recs = append(rr.recs, b.Records...)
			if b.Checkpoint != nil {
				rr.cursor = b.Checkpoint
			}
			if b.UpdatedConfig != nil {
				rr.updated = b.UpdatedConfig
			}
			if each != nil {
				each(len(rr.batches))
			}
			return nil
		}))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return rr
}

func ids(recs []sdk.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// The kit runs on sales invoices: their lists are sorted by updated_at, so
// every batch carries a checkpoint, as the kit's read checks require. Lists
// of contacts and products come in Sage's own order: their batches carry no
// checkpoint until the listing is read (TestUnsortedCheckpointAtEnd), which
// the kit's rule ("only a final empty batch may omit it") does not allow.
// The kit's write check needs a natural key, which invoices lack: writes are
// covered by TestUpsertByNaturalKey and the tests below.
func TestConformance(t *testing.T) {
	e := newEnv(t, specDir() != "")
	contact := e.seedContacts(1, "conf")[0]
	conformance.Run(t, conformance.Suite{
		New:    func(*testing.T) sdk.Connector { return e.conn() },
		Config: e.config(nil),
		BadConfigs: map[string]json.RawMessage{
			"bad tokens":       e.config(func(c *config) { c.AccessToken, c.RefreshToken = "bad", "bad" }),
			"unknown business": e.config(func(c *config) { c.BusinessID = "nope" }),
			"missing business": e.config(func(c *config) { c.BusinessID = "" }),
			"unknown key":      json.RawMessage(`{"client_id":"a","client_secret":"b","access_token":"c","refresh_token":"d","business_id":"e","x":1}`),
		},
		Object: "sales_invoices",
		Seed: func(_ *testing.T, n int) {
			for i := range n {
				e.fake.Put(biz, "sales_invoices", map[string]any{"contact": map[string]any{"id": contact},
					"date": "2026-03-01", "reference": fmt.Sprintf("SEED-%d", i),
					"invoice_lines": []any{map[string]any{"description": "Seed", "quantity": 1.0, "unit_price": 5.0}}})
			}
		},
	})
}

// Contacts are listed unsorted: their batches leave the checkpoint where it
// is until the listing is read, which the kit accepts; their writes upsert
// by reference.
func TestConformanceContacts(t *testing.T) {
	e := newEnv(t, specDir() != "")
	conformance.Run(t, conformance.Suite{
		New:    func(*testing.T) sdk.Connector { return e.conn() },
		Config: e.config(nil),
		BadConfigs: map[string]json.RawMessage{
			"bad tokens": e.config(func(c *config) { c.AccessToken, c.RefreshToken = "bad", "bad" }),
		},
		Object: "contacts",
		Seed:   func(_ *testing.T, n int) { e.seedContacts(n, "seed") },
		NewRecord: func(i int) json.RawMessage {
			return json.RawMessage(fmt.Sprintf(`{"name":"Conf %d","reference":"CONF-%d","contact_type_ids":["CUSTOMER"],"email":"c%d@example.com","credit_days":30}`, i, i, i))
		},
	})
}

func TestUpsertByNaturalKey(t *testing.T) {
	e := newEnv(t, specDir() != "")
	c := e.conn()
	var recs []sdk.WriteRecord
	for i := range 3 {
		recs = append(recs, sdk.WriteRecord{Ref: fmt.Sprint(i), Fields: json.RawMessage(fmt.Sprintf(
			`{"name":"Up %d","reference":"UP-%d","contact_type_ids":["CUSTOMER"],"email":"u%d@example.com","credit_days":30}`, i, i, i))})
	}
	var first []string
	for round, want := range []sdk.WriteAction{sdk.ActionCreated, sdk.ActionUpdated} {
		resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range resp.Results {
			if r.Status != sdk.WriteOK || r.Action != want || r.ID == "" || (round == 1 && r.ID != first[i]) {
				t.Fatalf("round %d result %d: %+v", round, i, r)
			}
			if round == 0 {
				first = append(first, r.ID)
			}
		}
	}
	if n := len(e.fake.List(biz, "contacts")); n != 3 {
		t.Fatalf("%d contacts after writing 3 twice", n)
	}
}

func TestCheckDiagnostics(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	for _, tc := range []struct {
		name, attr string
		mod        func(*config)
	}{
		{"bad tokens", "access_token", func(c *config) { c.AccessToken, c.RefreshToken = "bad", "bad" }},
		{"unknown business", "business_id", func(c *config) { c.BusinessID = "nope" }},
		{"missing business", "business_id", func(c *config) { c.BusinessID = "" }},
	} {
		resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: e.config(tc.mod)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != tc.attr {
			t.Errorf("%s: diagnostics %+v, want an error on %s", tc.name, resp.Diagnostics, tc.attr)
		}
		if strings.Contains(resp.Diagnostics.Error(), e.cfg.ClientSecret) {
			t.Errorf("%s: diagnostics leak the client secret", tc.name)
		}
	}
}

func TestTokenExpiryMidReadRotates(t *testing.T) {
	e := newEnv(t, false)
	e.seedContacts(6, "c")
	c := e.conn()
	orig := e.config(nil)
	rr := read(t, c, orig, "contacts", nil, 2, func(i int) {
		if i == 1 {
			e.clock.Add(6 * time.Minute) // the access token expires mid-read
		}
	})
	if len(rr.recs) != 6 {
		t.Fatalf("read %d records, want 6", len(rr.recs))
	}
	if e.fake.Refreshes() != 1 {
		t.Fatalf("%d refreshes, want 1", e.fake.Refreshes())
	}
	var upd config
	if rr.updated == nil || json.Unmarshal(rr.updated, &upd) != nil {
		t.Fatalf("no UpdatedConfig after the refresh")
	}
	if upd.RefreshToken == e.cfg.RefreshToken || upd.AccessToken == e.cfg.AccessToken || upd.BusinessID != biz || upd.ClientSecret != "secret" {
		t.Fatalf("UpdatedConfig does not carry the rotated tokens and the rest of the config")
	}
	if !upd.ExpiresAt.Equal(e.clock.Now().Add(fake.AccessTokenTTL)) {
		t.Errorf("expires_at %v, want %v", upd.ExpiresAt, e.clock.Now().Add(fake.AccessTokenTTL))
	}
	if e.fake.RefreshTokenValid(e.cfg.RefreshToken) {
		t.Fatal("the old refresh token is still valid in the fake")
	}
	if !e.fake.RefreshTokenValid(upd.RefreshToken) {
		t.Fatal("the new refresh token is not valid")
	}
	// The first UpdatedConfig came with the first batch read after the refresh.
	for i, b := range rr.batches {
		if b.UpdatedConfig != nil {
			if i != 1 {
				t.Errorf("UpdatedConfig first in batch %d, want 1 (the batch whose request refreshed)", i)
			}
			break
		}
	}

	// A call still carrying the old config (the host had not saved yet) must
	// not send the consumed refresh token again: it uses the new tokens and
	// hands them over too.
	e.clock.Add(6 * time.Minute)
	rr2 := read(t, c, orig, "contacts", nil, 0, nil)
	if len(rr2.recs) != 6 || rr2.updated == nil {
		t.Fatalf("stale-config read: %d records, updated config %v", len(rr2.recs), rr2.updated != nil)
	}
	if e.fake.Refreshes() != 2 {
		t.Fatalf("%d refreshes after the second expiry, want 2", e.fake.Refreshes())
	}

	// A new process (no memory) with the consumed refresh token fails: it
	// proves the fake enforces rotation.
	resp, err := e.conn().Check(context.Background(), sdk.CheckRequest{Config: orig})
	if err != nil || !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != "access_token" {
		t.Fatalf("reused refresh token: err %v, diagnostics %+v", err, resp)
	}
}

func TestConcurrentRefreshOnce(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	cfg := e.config(nil)
	e.clock.Add(10 * time.Minute)
	var wg sync.WaitGroup
	resps := make([]*sdk.CheckResponse, 8)
	for i := range resps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg})
			if err != nil {
				t.Error(err)
				return
			}
			resps[i] = resp
		}()
	}
	wg.Wait()
	if e.fake.Refreshes() != 1 {
		t.Fatalf("%d refreshes for 8 concurrent calls, want 1", e.fake.Refreshes())
	}
	for i, r := range resps {
		if r == nil || r.Diagnostics.HasError() || r.UpdatedConfig == nil {
			t.Fatalf("call %d: %+v", i, r)
		}
	}
}

func TestPaging(t *testing.T) {
	e := newEnv(t, false)
	e.seedContacts(401, "p")
	c := e.conn()
	for _, tc := range []struct{ bs, wantReqs int }{
		{0, 5},   // default 100 per page: 5 pages
		{200, 3}, // max page
		{500, 3}, // clamped to 200
		{401, 3},
		{1, 401},
	} {
		before := e.fake.Requests("GET /contacts")
		rr := read(t, c, e.config(nil), "contacts", nil, tc.bs, nil)
		seen := map[string]bool{}
		for _, id := range ids(rr.recs) {
			if seen[id] {
				t.Errorf("batch size %d: %s read twice", tc.bs, id)
			}
			seen[id] = true
		}
		if len(seen) != 401 {
			t.Errorf("batch size %d: %d records, want 401", tc.bs, len(seen))
		}
		// +3: the id listing of a multi-page read (200 per page); +1: the
		// deletions query.
		if got := e.fake.Requests("GET /contacts") - before; got != tc.wantReqs+3+1 {
			t.Errorf("batch size %d: %d requests, want %d", tc.bs, got, tc.wantReqs+3+1)
		}
	}
}

func TestIncrementalBoundary(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	first := e.seedContacts(3, "a") // all at T
	rr := read(t, c, e.config(nil), "contacts", nil, 2, nil)
	if len(rr.recs) != 3 {
		t.Fatalf("first read: %v", ids(rr.recs))
	}
	// Two more records in the same second as the cursor, one a second later,
	// and an update of an old record.
	sameSecond := e.seedContacts(2, "b")
	e.clock.Add(time.Second)
	later := e.seedContacts(1, "c")
	e.clock.Add(time.Second)
	e.cfg.ExpiresAt = e.clock.Now().Add(time.Minute)
	_, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts",
		Records: []sdk.WriteRecord{{Ref: "u", ID: first[0], Fields: json.RawMessage(`{"notes":"changed"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	rr2 := read(t, c, e.config(nil), "contacts", rr.cursor, 2, nil)
	want := append(append(sameSecond, later...), first[0])
	got := ids(rr2.recs)
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("incremental read: %v, want %v", got, want)
	}
	rr3 := read(t, c, e.config(nil), "contacts", rr2.cursor, 2, nil)
	if len(rr3.recs) != 0 {
		t.Fatalf("read from the final cursor repeated %v", ids(rr3.recs))
	}
}

func TestDeletes(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	cs := e.seedContacts(4, "d")
	e.fake.Delete(biz, "contacts", cs[3]) // long before the first read: not reported
	e.clock.Add(10 * time.Minute)         // the access token expires: the connector refreshes
	extra := e.seedContacts(1, "e")
	rr := read(t, c, e.config(nil), "contacts", nil, 0, func(int) {
		// Deleted while the first read runs (after its live pages): reported.
		e.fake.Delete(biz, "contacts", extra[0])
	})
	if got := ids(rr.recs); len(got) != 5 || got[4] != extra[0] || !rr.recs[4].Deleted {
		t.Fatalf("first read: %v", got)
	}
	for _, r := range rr.recs[:4] {
		if r.Deleted {
			t.Fatalf("first read reported %s deleted", r.ID)
		}
	}
	e.clock.Add(time.Second)
	e.fake.Delete(biz, "contacts", cs[0])
	rr2 := read(t, c, e.config(nil), "contacts", rr.cursor, 0, nil)
	if len(rr2.recs) != 1 || !rr2.recs[0].Deleted || rr2.recs[0].ID != cs[0] {
		t.Fatalf("after a delete: %+v", rr2.recs)
	}
	// Another delete in the same second as the last one reported.
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts",
		Records: []sdk.WriteRecord{{Ref: "x", ID: cs[1], Delete: true}}})
	if err != nil || resp.Results[0].Status != sdk.WriteOK || resp.Results[0].Action != sdk.ActionDeleted {
		t.Fatalf("delete: %v %+v", err, resp)
	}
	rr3 := read(t, c, e.config(nil), "contacts", rr2.cursor, 0, nil)
	if len(rr3.recs) != 1 || !rr3.recs[0].Deleted || rr3.recs[0].ID != cs[1] {
		t.Fatalf("same-second delete: %+v", rr3.recs)
	}
	rr4 := read(t, c, e.config(nil), "contacts", rr3.cursor, 0, nil)
	if len(rr4.recs) != 0 {
		t.Fatalf("repeated: %+v", rr4.recs)
	}
}

func TestSalesInvoiceRoundTrip(t *testing.T) {
	e := newEnv(t, specDir() != "")
	c := e.conn()
	cfg := e.config(nil)
	w, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "c", Fields: json.RawMessage(`{"name":"Acme","reference":"ACME","contact_type_ids":["CUSTOMER"]}`)}}})
	if err != nil || w.Results[0].Status != sdk.WriteOK {
		t.Fatalf("contact: %v %+v", err, w)
	}
	contactID := w.Results[0].ID
	inv := fmt.Sprintf(`{"contact_id":%q,"date":"2026-03-01","reference":"PO-7","invoice_lines":[
		{"description":"Widget","ledger_account_id":"la-sales","quantity":2,"unit_price":100,"tax_rate_id":"GB_STANDARD"},
		{"description":"Fee","ledger_account_id":"la-services","quantity":1,"unit_price":10.5,"tax_rate_id":"GB_ZERO","net_amount":999}]}`, contactID)
	w, err = c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "sales_invoices",
		Records: []sdk.WriteRecord{{Ref: "i", Fields: json.RawMessage(inv)}}})
	if err != nil || w.Results[0].Status != sdk.WriteOK || w.Results[0].Action != sdk.ActionCreated {
		t.Fatalf("invoice: %v %+v", err, w)
	}
	rr := read(t, c, cfg, "sales_invoices", nil, 0, nil)
	if len(rr.recs) != 1 || rr.recs[0].ID != w.Results[0].ID {
		t.Fatalf("read back: %+v", rr.recs)
	}
	var got struct {
		ContactID    string  `json:"contact_id"`
		ContactName  string  `json:"contact_name"`
		TotalAmount  float64 `json:"total_amount"`
		TaxAmount    float64 `json:"tax_amount"`
		InvoiceLines []struct {
			LedgerAccountID string  `json:"ledger_account_id"`
			TaxRateID       string  `json:"tax_rate_id"`
			NetAmount       float64 `json:"net_amount"`
		} `json:"invoice_lines"`
	}
	if err := json.Unmarshal(rr.recs[0].Fields, &got); err != nil {
		t.Fatal(err)
	}
	if got.ContactID != contactID || got.ContactName != "Acme" || got.TaxAmount != 40 || got.TotalAmount != 250.5 ||
		len(got.InvoiceLines) != 2 || got.InvoiceLines[0].LedgerAccountID != "la-sales" ||
		got.InvoiceLines[0].TaxRateID != "GB_STANDARD" || got.InvoiceLines[1].NetAmount != 10.5 {
		t.Fatalf("invoice read back: %s", rr.recs[0].Fields)
	}
}

func TestValidationRejectsOnlyThatRecord(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "ok1", Fields: json.RawMessage(`{"name":"One","reference":"V1","contact_type_ids":["CUSTOMER"]}`)},
		{Ref: "bad", Fields: json.RawMessage(`{"reference":"V2","contact_type_ids":["CUSTOMER"]}`)},
		{Ref: "bad-email", Fields: json.RawMessage(`{"name":"E","reference":"V4","contact_type_ids":["CUSTOMER"],"email":"nope"}`)},
		{Ref: "unknown", Fields: json.RawMessage(`{"name":"U","colour":"red"}`)},
		{Ref: "ok2", Fields: json.RawMessage(`{"name":"Two","reference":"V3","contact_type_ids":["VENDOR"]}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.WriteStatus{sdk.WriteOK, sdk.WriteRejected, sdk.WriteRejected, sdk.WriteRejected, sdk.WriteOK}
	for i, r := range resp.Results {
		if r.Status != want[i] {
			t.Errorf("result %d (%s): %v %q, want %v", i, r.Ref, r.Status, r.Message, want[i])
		}
	}
	if m := resp.Results[1].Message; !strings.Contains(m, "name") || !strings.Contains(m, "blank") {
		t.Errorf("rejection message %q lacks Sage's $message and $source", m)
	}
	if m := resp.Results[2].Message; !strings.Contains(m, "(email)") {
		t.Errorf("rejection message %q lacks the $source", m)
	}
}

func TestSpecRejectsWrongTypes(t *testing.T) {
	e := newEnv(t, true)
	c := e.conn()
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "products", Records: []sdk.WriteRecord{
		{Ref: "ok", Fields: json.RawMessage(`{"item_code":"P1","description":"Pen","sales_ledger_account_id":"la-sales","purchase_ledger_account_id":"la-purchases","cost_price":1.5}`)},
		{Ref: "bad", Fields: json.RawMessage(`{"item_code":"P2","description":"Ink","sales_ledger_account_id":"la-sales","purchase_ledger_account_id":"la-purchases","cost_price":"cheap"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != sdk.WriteOK || resp.Results[1].Status != sdk.WriteRejected || !strings.Contains(resp.Results[1].Message, "cost_price") {
		t.Fatalf("results: %+v", resp.Results)
	}
}

func TestThrottlingAndServerErrors(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	e.seedContacts(3, "t")
	e.fake.InjectFaults(fake.Fault{Status: 503}, fake.Fault{Status: 429, RetryAfter: 7})
	rr := read(t, c, e.config(nil), "contacts", nil, 0, nil)
	if len(rr.recs) != 3 {
		t.Fatalf("read through faults: %d records", len(rr.recs))
	}
	e.mu.Lock()
	sleeps := append([]time.Duration(nil), e.sleeps...)
	e.mu.Unlock()
	if len(sleeps) != 2 || sleeps[0] != time.Second || sleeps[1] != 7*time.Second {
		t.Fatalf("read retry waits %v, want [1s 7s]", sleeps)
	}

	e.fake.InjectFaults(fake.Fault{Status: 429, RetryAfter: 30})
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "a", ID: "contact-000001", Fields: json.RawMessage(`{"notes":"x"}`)},
		{Ref: "b", ID: "contact-000002", Fields: json.RawMessage(`{"notes":"y"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Status != sdk.WriteRetryable || r.RetryAfter != 30*time.Second {
			t.Fatalf("429: %+v", resp.Results)
		}
	}
	e.fake.InjectFaults(fake.Fault{Status: 500})
	resp, err = c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "a", ID: "contact-000001", Fields: json.RawMessage(`{"notes":"x"}`)},
	}})
	if err != nil || resp.Results[0].Status != sdk.WriteRetryable {
		t.Fatalf("500: %v %+v", err, resp)
	}
	// Retries exhausted: the read fails with an sdk.Retryable error (the host
	// resumes the run later).
	e.fake.InjectFaults(fake.Fault{Status: 502}, fake.Fault{Status: 502}, fake.Fault{Status: 502}, fake.Fault{Status: 502}, fake.Fault{Status: 502})
	err = c.Read(context.Background(), sdk.ReadRequest{Config: e.config(nil), Object: "contacts"},
		sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error { return nil }))
	if _, ok := sdk.IsRetryable(err); !ok || !strings.Contains(err.Error(), "502") {
		t.Fatalf("read after exhausted retries: %v, want a retryable error", err)
	}
}

func TestBudgetShared(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New("0.1.0", "", Options{RequestsPerMinute: 60, Burst: 2, Now: func() time.Time { return now }}) // 1 per second, burst 2
	take := func() time.Duration {
		t.Helper()
		g, err := c.local.TryTake(context.Background(), requestBudget("x"), c.requestLimit(), 1)
		if err != nil {
			t.Fatal(err)
		}
		return g.Wait
	}
	for i := range 2 {
		if d := take(); d != 0 {
			t.Fatalf("burst request %d waits %v", i, d)
		}
	}
	if d := take(); d != time.Second {
		t.Fatalf("third request waits %v, want 1s", d)
	}
	now = now.Add(10 * time.Second)
	if d := take(); d != 0 {
		t.Fatalf("after refill waits %v", d)
	}
	// One budget per business, shared by the calls of the process.
	c = New("0.1.0", "", Options{})
	k1 := c.newCall(config{ClientID: "a", BusinessID: "x"})
	k2 := c.newCall(config{ClientID: "b", BusinessID: "x"})
	k3 := c.newCall(config{ClientID: "a", BusinessID: "y"})
	if k1.budget != k2.budget || k1.budget == k3.budget {
		t.Fatal("budgets are not per business")
	}
}

func TestAbsoluteNextLinks(t *testing.T) {
	e := newEnv(t, false, func(o *fake.Options) { o.AbsoluteNext = true })
	e.seedContacts(7, "n")
	rr := read(t, e.conn(), e.config(nil), "contacts", nil, 3, nil)
	if len(rr.recs) != 7 {
		t.Fatalf("read %d records following absolute $next links, want 7", len(rr.recs))
	}
	k := e.conn().newCall(e.cfg)
	if _, err := k.resolve("https://evil.example/contacts?page=2"); err == nil {
		t.Fatal("a $next link to another host was followed")
	}
}

func TestWriteHandsBackRotatedTokens(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	e.clock.Add(fake.AccessTokenTTL)
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "a", Fields: json.RawMessage(`{"name":"A","reference":"W1","contact_type_ids":["CUSTOMER"]}`)}}})
	if err != nil || resp.Results[0].Status != sdk.WriteOK {
		t.Fatalf("write: %v %+v", err, resp)
	}
	var upd config
	if resp.UpdatedConfig == nil || json.Unmarshal(resp.UpdatedConfig, &upd) != nil || upd.RefreshToken == e.cfg.RefreshToken || !e.fake.RefreshTokenValid(upd.RefreshToken) {
		t.Fatalf("write after expiry: no usable rotated tokens in UpdatedConfig")
	}
	// With the saved config, a fresh process (no memory) keeps working.
	e.clock.Add(fake.AccessTokenTTL)
	check, err := e.conn().Check(context.Background(), sdk.CheckRequest{Config: resp.UpdatedConfig})
	if err != nil || check.Diagnostics.HasError() || check.UpdatedConfig == nil {
		t.Fatalf("check with the saved config: %v %+v", err, check)
	}
}

func TestBudgetAcrossCalls(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	c.opts.RequestsPerMinute, c.opts.Burst = 60, 2
	other := e.config(func(cfg *config) { cfg.ClientID = "other-app" }) // same business, another connection
	for _, cfg := range []json.RawMessage{e.config(nil), other, e.config(nil)} {
		if _, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Two requests in the burst, the third waits a second on the fake clock.
	if len(e.sleeps) != 1 || e.sleeps[0] != time.Second {
		t.Fatalf("budget waits %v, want [1s]", e.sleeps)
	}
}

func TestChangeDuringPagingLosesNothing(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	cs := e.seedContacts(6, "s")
	e.clock.Add(time.Second)
	rr := read(t, c, e.config(nil), "contacts", nil, 2, func(i int) {
		if i == 1 {
			// cs[1] (read on page 1) is renamed and moves to the end (the
			// fake lists contacts by name): cs[2] shifts onto page 1,
			// which offset paging does not read again.
			e.fake.Update(biz, "contacts", cs[1], map[string]any{"name": "zz", "displayed_as": "zz"})
		}
	})
	got := map[string]int{}
	for _, id := range ids(rr.recs) {
		got[id]++
	}
	for _, id := range cs {
		if got[id] == 0 {
			t.Errorf("%s lost by a change during paging (read %v)", id, ids(rr.recs))
		}
	}
	// The final checkpoint is past the change: nothing is read again.
	rr2 := read(t, c, e.config(nil), "contacts", rr.cursor, 2, nil)
	if len(rr2.recs) != 0 {
		t.Fatalf("read again: %v", ids(rr2.recs))
	}
}

// A 429's Retry-After holds the business's budget: every call to the
// business (on every host, when the budgets are the host's) waits it out.
func TestRetryAfterHoldsTheBudget(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	e.seedContacts(1, "r")
	e.fake.InjectFaults(fake.Fault{Status: 429, RetryAfter: 7})
	at := e.clock.Now()
	if rr := read(t, c, e.config(nil), "contacts", nil, 0, nil); len(rr.recs) != 1 {
		t.Fatalf("read through a 429: %d records", len(rr.recs))
	}
	st, ok := c.local.State(requestBudget(e.cfg.BusinessID))
	if !ok || st.BlockedUntil.Before(at.Add(7*time.Second)) {
		t.Fatalf("budget after a 429 with Retry-After 7: %+v", st)
	}
}
