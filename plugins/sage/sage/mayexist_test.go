package sage

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// writeOnce writes one record (one attempt) and returns its result.
func writeOnce(t *testing.T, c *Connector, cfg json.RawMessage, object string, r sdk.WriteRecord) sdk.WriteResult {
	t.Helper()
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: object, Records: []sdk.WriteRecord{r}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Results[0]
}

// A create the host marks MayExistSince (its earlier attempt was sent, then
// the host died before recording the answer) finds the invoice that attempt
// made and answers it, created, instead of making a second one.
func TestMayExistSinceFindsLostCreate(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	since := e.clock.Now()
	e.clock.Add(2 * time.Second)
	lost := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv)})
	if lost.Status != sdk.WriteOK {
		t.Fatalf("lost attempt: %+v", lost)
	}
	e.clock.Add(3 * time.Minute) // the host restarts
	res := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv), MayExistSince: since})
	if res.Status != sdk.WriteOK || res.Action != sdk.ActionCreated || res.ID != lost.ID || len(res.Fields) == 0 {
		t.Fatalf("result %+v, want created %s with its fields", res, lost.ID)
	}
	if n := len(e.fake.List(biz, "sales_invoices")); n != 1 {
		t.Fatalf("%d invoices, want 1", n)
	}
	if n := e.fake.Requests("POST /sales_invoices"); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
	// A contact without reference: matched on name and email.
	ct := `{"name":"Bea","email":"bea@example.com","contact_type_ids":["CUSTOMER"]}`
	since = e.clock.Now()
	lost = writeOnce(t, c, e.config(nil), "contacts", sdk.WriteRecord{Ref: "c", Fields: json.RawMessage(ct)})
	e.clock.Add(time.Minute)
	res = writeOnce(t, c, e.config(nil), "contacts", sdk.WriteRecord{Ref: "c", Fields: json.RawMessage(ct), MayExistSince: since})
	if res.Status != sdk.WriteOK || res.Action != sdk.ActionCreated || res.ID != lost.ID {
		t.Fatalf("contact: %+v, want created %s", res, lost.ID)
	}
	if n := len(e.fake.List(biz, "contacts")); n != 2 { // Acme and Bea
		t.Fatalf("%d contacts, want 2", n)
	}
}

// Without MayExistSince the same create makes a new invoice (two orders
// may well be alike), and does not look first.
func TestMayExistSinceUnsetCreatesAgain(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	first := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv)})
	e.clock.Add(time.Minute)
	gets := e.fake.Requests("GET /sales_invoices")
	res := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv)})
	if res.Status != sdk.WriteOK || res.Action != sdk.ActionCreated || res.ID == "" || res.ID == first.ID {
		t.Fatalf("result %+v, want a new invoice (not %s)", res, first.ID)
	}
	if n := len(e.fake.List(biz, "sales_invoices")); n != 2 {
		t.Fatalf("%d invoices, want 2", n)
	}
	if n := e.fake.Requests("GET /sales_invoices") - gets; n != 0 {
		t.Fatalf("%d lookups for a create without MayExistSince, want 0", n)
	}
}

// MayExistSince set and nothing like it made since (an identical invoice
// made long before does not count): created, once.
func TestMayExistSinceNothingFoundCreates(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	old := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "o", Fields: json.RawMessage(inv)})
	e.clock.Add(time.Hour)
	since := e.clock.Now()
	e.clock.Add(time.Minute)
	res := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv), MayExistSince: since})
	if res.Status != sdk.WriteOK || res.Action != sdk.ActionCreated || res.ID == "" || res.ID == old.ID {
		t.Fatalf("result %+v", res)
	}
	if n := len(e.fake.List(biz, "sales_invoices")); n != 2 {
		t.Fatalf("%d invoices, want 2 (the old one and the new one)", n)
	}
	if n := e.fake.Requests("POST /sales_invoices"); n != 2 {
		t.Fatalf("%d POSTs, want 2", n)
	}
}

// Two invoices like it made since: which one the lost attempt made cannot
// be told; rejected, naming both, and nothing created.
func TestMayExistSinceAmbiguousRejected(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	inv := invoiceFields(t, e, c)
	since := e.clock.Now()
	e.clock.Add(time.Second)
	a := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "a", Fields: json.RawMessage(inv)})
	b := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "b", Fields: json.RawMessage(inv)})
	e.clock.Add(time.Minute)
	res := writeOnce(t, c, e.config(nil), "sales_invoices", sdk.WriteRecord{Ref: "r", Fields: json.RawMessage(inv), MayExistSince: since})
	if res.Status != sdk.WriteRejected || !strings.Contains(res.Message, a.ID) || !strings.Contains(res.Message, b.ID) {
		t.Fatalf("result %+v, want rejected naming %s and %s", res, a.ID, b.ID)
	}
	if n := len(e.fake.List(biz, "sales_invoices")); n != 2 {
		t.Fatalf("%d invoices, want 2", n)
	}
}
