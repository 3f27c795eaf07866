package shopify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
)

// writeMayExist writes customers, each marked MayExistSince since (zero:
// unmarked).
func writeMayExist(t *testing.T, e *env, since time.Time, fields ...string) *sdk.WriteResponse {
	t.Helper()
	req := sdk.WriteRequest{Config: e.config, Object: "customers"}
	for i, f := range fields {
		req.Records = append(req.Records, sdk.WriteRecord{Ref: string(rune('a' + i)), Fields: json.RawMessage(f), MayExistSince: since})
	}
	resp, err := e.conn.Write(context.Background(), req)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return resp
}

func countQueries(e *env, part string) int {
	n := 0
	for _, q := range e.shop.Queries() {
		if strings.Contains(q, part) {
			n++
		}
	}
	return n
}

// A create without email the host marks MayExistSince (its earlier attempt
// was sent, then the host died before recording the answer) finds the
// customer that attempt made and answers it, created, instead of making a
// second one.
func TestMayExistSinceFindsLostCreate(t *testing.T) {
	for _, tc := range []struct{ name, fields string }{
		{"by phone", `{"phone":"+15550001","first_name":"Pat"}`},
		{"by fields", `{"first_name":"Ann","last_name":"Lee","tags":["b","a"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			since := e.clock.Now()
			e.clock.Advance(2 * time.Second)
			lost := writeMayExist(t, e, time.Time{}, tc.fields).Results[0]
			if lost.Status != sdk.WriteOK {
				t.Fatalf("lost attempt: %+v", lost)
			}
			e.clock.Advance(3 * time.Minute) // the host restarts
			creates := countQueries(e, "customerCreate")
			r := writeMayExist(t, e, since, tc.fields).Results[0]
			if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID != lost.ID || len(r.Fields) == 0 {
				t.Fatalf("result %+v, want created %s with its fields", r, lost.ID)
			}
			if n := len(e.shop.Customers()); n != 1 {
				t.Fatalf("%d customers, want 1", n)
			}
			if n := countQueries(e, "customerCreate") - creates; n != 0 {
				t.Fatalf("%d creates sent, want 0", n)
			}
		})
	}
}

// Without MayExistSince the same create makes a new customer (two people
// may share a name), without looking first; with an email, MayExistSince
// needs no look either (the create upserts by email).
func TestMayExistSinceUnsetCreatesAgain(t *testing.T) {
	e := newEnv(t, envOpts{})
	fields := `{"first_name":"Ann","last_name":"Lee"}`
	first := writeMayExist(t, e, time.Time{}, fields).Results[0]
	e.clock.Advance(time.Minute)
	r := writeMayExist(t, e, time.Time{}, fields).Results[0]
	if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID == "" || r.ID == first.ID {
		t.Fatalf("result %+v, want a new customer (not %s)", r, first.ID)
	}
	if n := len(e.shop.Customers()); n != 2 {
		t.Fatalf("%d customers, want 2", n)
	}
	withEmail := `{"email":"ann@example.com","first_name":"Ann"}`
	since := e.clock.Now()
	a := writeMayExist(t, e, time.Time{}, withEmail).Results[0]
	b := writeMayExist(t, e, since, withEmail).Results[0]
	if a.Status != sdk.WriteOK || b.Status != sdk.WriteOK || a.ID != b.ID || len(e.shop.Customers()) != 3 {
		t.Fatalf("with email: %+v then %+v, %d customers", a, b, len(e.shop.Customers()))
	}
	if n := countQueries(e, "query Recover"); n != 0 {
		t.Fatalf("%d looks, want 0", n)
	}
}

// MayExistSince set and nothing like it created since (an identical
// customer created long before does not count): created, once.
func TestMayExistSinceNothingFoundCreates(t *testing.T) {
	e := newEnv(t, envOpts{})
	old := e.shop.AddCustomer(fake.Customer{FirstName: "Ann", LastName: "Lee"})
	e.clock.Advance(time.Hour)
	since := e.clock.Now()
	e.clock.Advance(time.Minute)
	r := writeMayExist(t, e, since, `{"first_name":"Ann","last_name":"Lee"}`).Results[0]
	if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID == "" || r.ID == old {
		t.Fatalf("result %+v", r)
	}
	if n := len(e.shop.Customers()); n != 2 {
		t.Fatalf("%d customers, want 2 (the old one and the new one)", n)
	}
	if n := countQueries(e, "query Recover"); n != 1 {
		t.Fatalf("%d looks, want 1", n)
	}
}

// Two customers like it created since: which one the lost attempt made
// cannot be told; rejected, naming both, and nothing created.
func TestMayExistSinceAmbiguousRejected(t *testing.T) {
	e := newEnv(t, envOpts{})
	since := e.clock.Now()
	e.clock.Advance(time.Second)
	a := e.shop.AddCustomer(fake.Customer{FirstName: "Ann", LastName: "Lee"})
	b := e.shop.AddCustomer(fake.Customer{FirstName: "Ann", LastName: "Lee"})
	e.clock.Advance(time.Minute)
	r := writeMayExist(t, e, since, `{"first_name":"Ann","last_name":"Lee"}`).Results[0]
	if r.Status != sdk.WriteRejected || !strings.Contains(r.Message, a) || !strings.Contains(r.Message, b) {
		t.Fatalf("result %+v, want rejected naming %s and %s", r, a, b)
	}
	if n := len(e.shop.Customers()); n != 2 {
		t.Fatalf("%d customers, want 2", n)
	}
}

// The look pages through every customer updated since (here the lost one
// is the 31st most recently updated), and a failed look answers the record
// retryable without sending it.
func TestMayExistSincePagesAndFailedLook(t *testing.T) {
	e := newEnv(t, envOpts{})
	since := e.clock.Now()
	e.clock.Advance(time.Second)
	fields := `{"first_name":"Ann","last_name":"Lee"}`
	lost := writeMayExist(t, e, time.Time{}, fields).Results[0]
	e.clock.Advance(time.Second)
	e.seedCustomers(30, func(i int) time.Time { return e.clock.Now().Add(time.Duration(i+1) * time.Second) })
	e.clock.Advance(time.Hour)
	r := writeMayExist(t, e, since, fields).Results[0]
	if r.Status != sdk.WriteOK || r.ID != lost.ID || len(e.shop.Customers()) != 31 {
		t.Fatalf("result %+v (want %s), %d customers", r, lost.ID, len(e.shop.Customers()))
	}
	if n := countQueries(e, "query Recover"); n != 2 {
		t.Fatalf("%d pages looked at, want 2", n)
	}
	for range maxFailures {
		e.shop.Inject(fake.Fault{Status: 503})
	}
	r = writeMayExist(t, e, since, `{"first_name":"Bo"}`).Results[0]
	if r.Status != sdk.WriteRetryable || len(e.shop.Customers()) != 31 {
		t.Fatalf("look failing: %+v, %d customers", r, len(e.shop.Customers()))
	}
}
