package shopify

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
)

// A customerCreate without email (no natural key) that Shopify applied but
// whose answer was lost (5xx) is not sent again: the connector finds the
// customer it created (by phone, else by the fields sent) and answers it.
func TestKeylessCreateWithLostAnswerIsNotDuplicated(t *testing.T) {
	for _, tc := range []struct{ name, fields string }{
		{"by phone", `{"phone":"+15550001","first_name":"Pat"}`},
		{"by fields", `{"first_name":"Ann","last_name":"Lee","tags":["b","a"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			e.seedCustomers(1, func(int) time.Time { return t0 }) // an older customer
			e.shop.Inject(fake.Fault{Status: 502, AfterApply: true})
			resp := writeCustomers(t, e, tc.fields)
			r := resp.Results[0]
			cs := e.shop.Customers()
			if len(cs) != 2 {
				t.Fatalf("%d customers after a lost answer, want 2 (the create not repeated)", len(cs))
			}
			if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID != fmtGID(cs[1].ID) {
				t.Fatalf("result %v %v %s (%s), want OK created %s", r.Status, r.Action, r.ID, r.Message, fmtGID(cs[1].ID))
			}
		})
	}
	t.Run("in a batch", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		// A first answer tells the bucket's size: then records are batched.
		if _, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config}); err != nil {
			t.Fatal(err)
		}
		before := len(e.shop.Queries())
		// The email lookup answers; the mutation is applied, its answer lost.
		e.shop.Inject(fake.Fault{}, fake.Fault{Status: 503, AfterApply: true})
		resp := writeCustomers(t, e, `{"email":"a@example.com"}`, `{"phone":"+15550009"}`)
		if n := len(e.shop.Customers()); n != 2 {
			t.Fatalf("%d customers, want 2", n)
		}
		if q := e.shop.Queries()[before+1]; !strings.Contains(q, "m0: customerCreate") || !strings.Contains(q, "m1: customerCreate") {
			t.Fatalf("not one batch: %s", q)
		}
		for _, r := range resp.Results {
			if r.Status != sdk.WriteOK || r.ID == "" {
				t.Fatalf("result %+v, want OK", r)
			}
		}
	})
	t.Run("not applied", func(t *testing.T) {
		// A 5xx that Shopify did not apply: nothing to find, the record is
		// retryable (the host writes it later), not blindly re-sent.
		e := newEnv(t, envOpts{})
		e.shop.Inject(fake.Fault{Status: 503})
		resp := writeCustomers(t, e, `{"phone":"+15550001"}`)
		if r := resp.Results[0]; r.Status != sdk.WriteRetryable {
			t.Fatalf("result %v (%s), want retryable", r.Status, r.Message)
		}
		if n := len(e.shop.Customers()); n != 0 {
			t.Fatalf("%d customers, want 0", n)
		}
		if resp := writeCustomers(t, e, `{"phone":"+15550001"}`); resp.Results[0].Status != sdk.WriteOK || len(e.shop.Customers()) != 1 {
			t.Fatalf("the host's later retry: %+v", resp.Results[0])
		}
	})
	t.Run("updates are retried", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		ids := e.seedCustomers(1, func(int) time.Time { return t0 })
		e.shop.Inject(fake.Fault{Status: 503, AfterApply: true})
		writeOK(t, e, "customers", ids[0], `{"note":"n"}`)
	})
}

func fmtGID(id int) string { return "gid://shopify/Customer/" + strconv.Itoa(id) }
