package hubspot

import (
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

const searchDeals = "POST /crm/v3/objects/deals/search"

func mayExistRec(ref, fields string, since time.Time) sdk.WriteRecord {
	r := rec(ref, "", fields)
	r.MayExistSince = since
	return r
}

// A create the host marks MayExistSince (its earlier attempt was sent, then
// the host died before recording the answer) finds the record that attempt
// made and answers it, created, instead of making a second one.
func TestMayExistSinceFindsLostCreate(t *testing.T) {
	for _, tc := range []struct{ object, fields string }{
		{"deals", `{"dealname":"Big","amount":1200.5}`},
		{"contacts", `{"firstname":"Anon","lastname":"Ymous"}`}, // no email: no upsert
		{"companies", `{"name":"Acme","domain":"acme.example"}`},
	} {
		t.Run(tc.object, func(t *testing.T) {
			e := newEnv(t, fake.Options{})
			cfg := e.config("test-token")
			since := e.clock.Now()
			e.clock.Add(2 * time.Second)
			lost := write(t, e, cfg, tc.object, rec("a", "", tc.fields)).Results[0]
			if lost.Status != sdk.WriteOK || lost.ID == "" {
				t.Fatalf("lost attempt: %+v", lost)
			}
			e.clock.Add(3 * time.Minute) // the host restarts
			r := write(t, e, cfg, tc.object, mayExistRec("a", tc.fields, since)).Results[0]
			if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID != lost.ID || len(r.Fields) == 0 {
				t.Fatalf("result %+v, want created %s with its fields", r, lost.ID)
			}
			if n := e.srv.Count(tc.object); n != 1 {
				t.Fatalf("%d %s, want 1", n, tc.object)
			}
		})
	}
}

// Without MayExistSince the same create makes a new record (two deals may
// well be alike), and no search is made: only marked records are looked
// for, and the others of a batch are still created in one call.
func TestMayExistSinceUnsetCreatesAgain(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	deal := `{"dealname":"Big","amount":1200.5}`
	first := write(t, e, cfg, "deals", rec("a", "", deal)).Results[0]
	e.clock.Add(time.Minute)
	r := write(t, e, cfg, "deals", rec("a", "", deal)).Results[0]
	if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID == "" || r.ID == first.ID {
		t.Fatalf("result %+v, want a new deal (not %s)", r, first.ID)
	}
	if n := e.srv.Count("deals"); n != 2 {
		t.Fatalf("%d deals, want 2", n)
	}
	if n := e.srv.Stats().PerPath[searchDeals]; n != 0 {
		t.Fatalf("%d searches for creates without MayExistSince, want 0", n)
	}
	// A batch with one marked record: one search, one batch create.
	before := e.srv.Stats().PerPath
	resp := write(t, e, cfg, "deals", rec("x", "", `{"dealname":"X"}`), mayExistRec("y", `{"dealname":"Y"}`, e.clock.Now()), rec("z", "", `{"dealname":"Z"}`))
	for _, r := range resp.Results {
		if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated {
			t.Fatalf("%+v", resp.Results)
		}
	}
	after := e.srv.Stats().PerPath
	if s, c := after[searchDeals]-before[searchDeals], after["POST /crm/v3/objects/deals/batch/create"]-before["POST /crm/v3/objects/deals/batch/create"]; s != 1 || c != 1 {
		t.Fatalf("%d searches and %d batch creates, want 1 and 1", s, c)
	}
}

// MayExistSince set and nothing like it created since (an identical deal
// created long before does not count): created, once.
func TestMayExistSinceNothingFoundCreates(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	old := e.srv.Seed("deals", map[string]string{"dealname": "Big", "amount": "1200.5"})[0]
	e.clock.Add(time.Hour)
	since := e.clock.Now()
	e.clock.Add(time.Minute)
	r := write(t, e, cfg, "deals", mayExistRec("a", `{"dealname":"Big","amount":1200.5}`, since)).Results[0]
	if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID == "" || r.ID == old {
		t.Fatalf("result %+v", r)
	}
	if n := e.srv.Count("deals"); n != 2 {
		t.Fatalf("%d deals, want 2 (the old one and the new one)", n)
	}
}

// Two records like it created since: which one the lost attempt made
// cannot be told; rejected, naming both, and nothing created.
func TestMayExistSinceAmbiguousRejected(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	since := e.clock.Now()
	e.clock.Add(time.Second)
	ids := e.srv.Seed("deals", map[string]string{"dealname": "Big", "amount": "1200.5"}, map[string]string{"dealname": "Big", "amount": "1200.5"})
	e.clock.Add(time.Minute)
	r := write(t, e, cfg, "deals", mayExistRec("a", `{"dealname":"Big","amount":1200.5}`, since)).Results[0]
	if r.Status != sdk.WriteRejected || !strings.Contains(r.Message, ids[0]) || !strings.Contains(r.Message, ids[1]) {
		t.Fatalf("result %+v, want rejected naming %v", r, ids)
	}
	if n := e.srv.Count("deals"); n != 2 {
		t.Fatalf("%d deals, want 2", n)
	}
	// A failed search: retryable, not sent.
	e.srv.InjectFaultsFor(searchDeals, 500, 500, 500, 500, 500)
	r = write(t, e, cfg, "deals", mayExistRec("b", `{"dealname":"Other"}`, since)).Results[0]
	if r.Status != sdk.WriteRetryable || e.srv.Count("deals") != 2 {
		t.Fatalf("search failing: %+v, %d deals", r, e.srv.Count("deals"))
	}
}
