package sage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/plugins/sage/fake"
	"github.com/synchron-io/synchron/sdk"
)

// writeLikeHost writes one record as the host's writeWithRetry does: again
// while the answer is retryable, up to attempts times. It returns the
// results of each attempt.
func writeLikeHost(t *testing.T, c *Connector, cfg json.RawMessage, object, fields string, attempts int) []sdk.WriteResult {
	t.Helper()
	var out []sdk.WriteResult
	for range attempts {
		resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: object,
			Records: []sdk.WriteRecord{{Ref: "r", Fields: json.RawMessage(fields)}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Results[0])
		if resp.Results[0].Status != sdk.WriteRetryable {
			break
		}
	}
	return out
}

func invoiceFields(t *testing.T, e *env, c *Connector) string {
	t.Helper()
	w, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "c", Fields: json.RawMessage(`{"name":"Acme","reference":"ACME","contact_type_ids":["CUSTOMER"]}`)}}})
	if err != nil || w.Results[0].Status != sdk.WriteOK {
		t.Fatalf("contact: %v %+v", err, w)
	}
	return fmt.Sprintf(`{"contact_id":%q,"date":"2026-03-01","reference":"#1001","invoice_lines":[{"description":"Widget","ledger_account_id":"la-sales","quantity":1,"unit_price":10},{"description":"Ship","ledger_account_id":"la-services","unit_price":4.5}]}`, w.Results[0].ID)
}

// A POST /sales_invoices that Sage applied but answered 502, or whose
// connection broke after it was sent, is not sent again: the connector
// finds the invoice it made and answers created with its id.
func TestCreateUnknownOutcomeNotDuplicated(t *testing.T) {
	for name, f := range map[string]fake.Fault{
		"502 after apply":          {Status: 502, Applied: true},
		"504 after apply":          {Status: 504, Applied: true},
		"connection dropped after": {Drop: true, Applied: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, specDir() != "")
			c := e.conn()
			inv := invoiceFields(t, e, c)
			f.Match = "POST /sales_invoices"
			e.fake.InjectFaults(f)
			res := writeLikeHost(t, c, e.config(nil), "sales_invoices", inv, 3)
			all := e.fake.List(biz, "sales_invoices")
			if len(all) != 1 {
				t.Fatalf("Sage holds %d invoices for one order (results %+v), want 1", len(all), res)
			}
			last := res[len(res)-1]
			if len(res) != 1 || last.Status != sdk.WriteOK || last.Action != sdk.ActionCreated || last.ID != all[0]["id"] || len(last.Fields) == 0 {
				t.Fatalf("results %+v, want one created %s", res, all[0]["id"])
			}
			if n := e.fake.Requests("POST /sales_invoices"); n != 1 {
				t.Fatalf("%d POSTs, want 1", n)
			}
		})
	}
}

// A 5xx that Sage did not apply: nothing is found, the create is retryable
// and the next attempt makes it (once).
func TestCreate5xxNotAppliedIsRetried(t *testing.T) {
	for name, f := range map[string]fake.Fault{
		"502":     {Status: 502, RetryAfter: 9},
		"dropped": {Drop: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, false)
			c := e.conn()
			inv := invoiceFields(t, e, c)
			f.Match = "POST /sales_invoices"
			e.fake.InjectFaults(f)
			res := writeLikeHost(t, c, e.config(nil), "sales_invoices", inv, 3)
			if len(res) != 2 || res[0].Status != sdk.WriteRetryable || res[0].RetryAfter <= 0 || res[1].Status != sdk.WriteOK || res[1].Action != sdk.ActionCreated {
				t.Fatalf("results %+v", res)
			}
			if name == "502" && res[0].RetryAfter != 9e9 {
				t.Errorf("RetryAfter %v, want Sage's 9s", res[0].RetryAfter)
			}
			if n := len(e.fake.List(biz, "sales_invoices")); n != 1 {
				t.Fatalf("%d invoices, want 1", n)
			}
		})
	}
}

// When looking for the record fails too, the create is retryable but not
// sent again in that call; the next attempt looks first and finds it.
func TestCreateCheckFailsNotResent(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	e.fake.InjectFaults(fake.Fault{Status: 502, Applied: true, Match: "POST /sales_invoices"})
	e.fake.InjectFaults(faults502("GET /sales_invoices")...) // the look fails
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: e.config(nil), Object: "sales_invoices",
		Records: []sdk.WriteRecord{{Ref: "a", Fields: json.RawMessage(inv)}, {Ref: "b", Fields: json.RawMessage(inv)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Status != sdk.WriteRetryable || r.RetryAfter <= 0 {
			t.Fatalf("results %+v", resp.Results)
		}
	}
	if m := resp.Results[0].Message; !strings.Contains(m, "not sent again") {
		t.Errorf("message %q", m)
	}
	if n := e.fake.Requests("POST /sales_invoices"); n != 1 {
		t.Fatalf("%d POSTs in the call, want 1", n)
	}
	res := writeLikeHost(t, c, e.config(nil), "sales_invoices", inv, 3)
	all := e.fake.List(biz, "sales_invoices")
	if len(res) != 1 || res[0].Status != sdk.WriteOK || res[0].Action != sdk.ActionCreated || len(all) != 1 || res[0].ID != all[0]["id"] {
		t.Fatalf("next attempt: %+v, %d invoices", res, len(all))
	}
	if n := e.fake.Requests("POST /sales_invoices"); n != 1 {
		t.Fatalf("%d POSTs, want 1: the next attempt must look before sending", n)
	}
	// Settled: a later identical invoice (another order) is created anew.
	res = writeLikeHost(t, c, e.config(nil), "sales_invoices", inv, 1)
	if res[0].Status != sdk.WriteOK || res[0].ID == all[0]["id"] || len(e.fake.List(biz, "sales_invoices")) != 2 {
		t.Fatalf("a later identical invoice: %+v", res)
	}
}

// Contacts without a reference are matched on name and email; with one, on
// the reference; products on item_code.
func TestCreateUnknownOutcomeContactsProducts(t *testing.T) {
	for _, tc := range []struct{ object, fields, other string }{
		{"contacts", `{"name":"Bea","email":"bea@example.com","contact_type_ids":["CUSTOMER"]}`,
			`{"name":"Bea","email":"other@example.com","contact_type_ids":["CUSTOMER"]}`},
		{"contacts", `{"name":"Cal","reference":"CAL","contact_type_ids":["VENDOR"]}`,
			`{"name":"Cal","reference":"CAL2","contact_type_ids":["VENDOR"]}`},
		{"products", `{"item_code":"P1","description":"Pen","sales_ledger_account_id":"la-sales","purchase_ledger_account_id":"la-purchases"}`,
			`{"item_code":"P2","description":"Pen","sales_ledger_account_id":"la-sales","purchase_ledger_account_id":"la-purchases"}`},
	} {
		e := newEnv(t, false)
		c := e.conn()
		// A similar record made just before does not count as the one made.
		if res := writeLikeHost(t, c, e.config(nil), tc.object, tc.other, 1); res[0].Status != sdk.WriteOK {
			t.Fatalf("%s: %+v", tc.object, res)
		}
		e.fake.InjectFaults(fake.Fault{Status: 500, Applied: true, Match: "POST /" + tc.object})
		res := writeLikeHost(t, c, e.config(nil), tc.object, tc.fields, 3)
		if n := len(e.fake.List(biz, tc.object)); n != 2 || len(res) != 1 || res[0].Status != sdk.WriteOK || res[0].Action != sdk.ActionCreated {
			t.Fatalf("%s %s: %d records, results %+v", tc.object, tc.fields, n, res)
		}
	}
}

// Two records like the one sent, made since: which one the create made
// cannot be told; the record is rejected with a message, not created again.
func TestCreateUnknownOutcomeAmbiguous(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	var in map[string]any
	_ = json.Unmarshal([]byte(inv), &in)
	e.fake.Put(biz, "sales_invoices", map[string]any{"contact": map[string]any{"id": in["contact_id"]}, "date": "2026-03-01",
		"reference": "#1001", "invoice_lines": []any{
			map[string]any{"description": "Widget", "quantity": 1.0, "unit_price": 10.0},
			map[string]any{"description": "Ship", "quantity": 1.0, "unit_price": 4.5}}})
	e.fake.InjectFaults(fake.Fault{Status: 502, Applied: true, Match: "POST /sales_invoices"})
	res := writeLikeHost(t, c, e.config(nil), "sales_invoices", inv, 3)
	if len(res) != 1 || res[0].Status != sdk.WriteRejected || !strings.Contains(res[0].Message, "check them in Sage") {
		t.Fatalf("results %+v", res)
	}
	if n := len(e.fake.List(biz, "sales_invoices")); n != 2 {
		t.Fatalf("%d invoices", n)
	}
}
