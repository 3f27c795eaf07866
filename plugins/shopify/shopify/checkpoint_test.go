package shopify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
)

func writeOK(t *testing.T, e *env, object, id, fields string) {
	t.Helper()
	resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: e.config, Object: object,
		Records: []sdk.WriteRecord{{Ref: "a", ID: id, Fields: json.RawMessage(fields)}}})
	if err != nil || resp.Results[0].Status != sdk.WriteOK {
		t.Fatalf("write %s %s: %v %+v", object, id, err, resp)
	}
}

// Shopify's updated_at has one-second precision: a lower-id record edited
// later within the checkpoint's second must be read by the next read
// (audit: it was skipped for good).
func TestSameSecondEditOfLowerIDIsRead(t *testing.T) {
	e := newEnv(t, envOpts{})
	ids := e.seedCustomers(2, func(int) time.Time { return e.clock.Now() })
	got, cps := readAll(t, e, "customers", 0, nil, 0)
	if len(got) != 2 || len(cps) == 0 {
		t.Fatalf("first read: %v", got)
	}
	writeOK(t, e, "customers", ids[0], `{"first_name":"Edited"}`) // same second
	again, cps2 := readAll(t, e, "customers", 0, cps[len(cps)-1], 0)
	if !slices.Equal(again, []string{ids[0]}) {
		t.Fatalf("after an edit of %s within the checkpoint's second: read %v, want it alone", ids[0], again)
	}
	// Edited again within the same second: read again; unchanged: not.
	writeOK(t, e, "customers", ids[0], `{"first_name":"Edited twice"}`)
	third, cps3 := readAll(t, e, "customers", 0, cps2[len(cps2)-1], 0)
	if !slices.Equal(third, []string{ids[0]}) {
		t.Fatalf("second edit within the second: read %v, want [%s]", third, ids[0])
	}
	if rest, _ := readAll(t, e, "customers", 0, cps3[len(cps3)-1], 0); len(rest) != 0 {
		t.Fatalf("nothing changed: read %v again", rest)
	}
}

// Orders and products read the same way.
func TestSameSecondEditOrdersAndProducts(t *testing.T) {
	e := newEnv(t, envOpts{})
	o1 := e.shop.AddOrder(fake.Order{Currency: "USD", Total: "1.00"})
	e.shop.AddOrder(fake.Order{Currency: "USD", Total: "2.00"})
	_, cps := readAll(t, e, "orders", 0, nil, 0)
	writeOK(t, e, "orders", o1, `{"note":"same second"}`)
	if got, _ := readAll(t, e, "orders", 0, cps[len(cps)-1], 0); !slices.Equal(got, []string{o1}) {
		t.Fatalf("orders: read %v, want [%s]", got, o1)
	}
	e.shop.AddProduct(fake.Product{Title: "a", Status: "ACTIVE"})
	_, cps = readAll(t, e, "products", 0, nil, 0)
	p0 := e.shop.AddProduct(fake.Product{ID: 1, Title: "lower id, same second", Status: "ACTIVE"})
	if got, _ := readAll(t, e, "products", 0, cps[len(cps)-1], 0); !slices.Equal(got, []string{p0}) {
		t.Fatalf("products: read %v, want [%s]", got, p0)
	}
}

// Checkpoints written by earlier versions ({updated_at, id}) stay readable:
// their second is read again rather than skipped up to the id.
func TestOldCheckpointReadsItsSecondAgain(t *testing.T) {
	e := newEnv(t, envOpts{})
	ids := e.seedCustomers(3, func(i int) time.Time { return t0.Add(time.Duration(i/2) * time.Second) })
	old := fmt.Sprintf(`{"updated_at":%q,"id":%q}`, t0.Format(time.RFC3339), ids[1])
	got, cps := readAll(t, e, "customers", 0, []byte(old), 0)
	if !slices.Equal(got, ids) {
		t.Fatalf("from an old checkpoint: read %v, want %v", got, ids)
	}
	var cp map[string]any
	if err := json.Unmarshal(cps[len(cps)-1], &cp); err != nil {
		t.Fatal(err)
	}
	if _, ok := cp["id"]; ok {
		t.Fatalf("new checkpoint %s carries id: an older connector would skip by it", cps[len(cps)-1])
	}
}

// A bulk change of more records in one second than a checkpoint remembers:
// the overflow is read again, nothing is lost, the checkpoint stays bounded.
func TestBoundarySetIsBounded(t *testing.T) {
	e := newEnv(t, envOpts{})
	n := maxBoundary + 7
	ids := e.seedCustomers(n, func(int) time.Time { return t0 })
	got, cps := readAll(t, e, "customers", 250, nil, 0)
	if len(got) != n {
		t.Fatalf("read %d, want %d", len(got), n)
	}
	last := cps[len(cps)-1]
	if len(last) > 60*maxBoundary {
		t.Fatalf("checkpoint of %d bytes", len(last))
	}
	again, cps2 := readAll(t, e, "customers", 250, last, 0)
	if len(again) != 7 {
		t.Fatalf("resume: read %d again, want the 7 the checkpoint could not hold", len(again))
	}
	// An edit of any of them within the second is read.
	writeOK(t, e, "customers", ids[3], `{"note":"bulk"}`)
	got, _ = readAll(t, e, "customers", 250, cps2[len(cps2)-1], 0)
	if !slices.Contains(got, ids[3]) {
		t.Fatalf("edit of %s not read: %d records", ids[3], len(got))
	}
}
