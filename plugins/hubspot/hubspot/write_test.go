package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

func write(t *testing.T, e *env, cfg json.RawMessage, object string, recs ...sdk.WriteRecord) *sdk.WriteResponse {
	t.Helper()
	resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: object, Records: recs})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(resp.Results) != len(recs) {
		t.Fatalf("%d results for %d records", len(resp.Results), len(recs))
	}
	for i, r := range resp.Results {
		if r.Ref != recs[i].Ref {
			t.Fatalf("result %d: ref %q, want %q", i, r.Ref, recs[i].Ref)
		}
	}
	return resp
}

func rec(ref, id, fields string) sdk.WriteRecord {
	return sdk.WriteRecord{Ref: ref, ID: id, Fields: json.RawMessage(fields)}
}

func TestWriteRejectsOnlyInvalidRecords(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	existing := e.srv.Seed("contacts", contacts(1, 0)...)
	resp := write(t, e, cfg, "contacts",
		rec("ok", "", `{"email":"good@example.com","firstname":"G"}`),
		rec("bad-email", "", `{"email":"not an email"}`),
		rec("bad-prop", "", `{"email":"prop@example.com","shoe_size":"44"}`),
		rec("no-email", "", `{"firstname":"Anon"}`),
		rec("update", existing[0], `{"lastname":"Updated","lastmodifieddate":"ignored"}`),
		rec("missing", "999999", `{"lastname":"X"}`),
	)
	want := map[string]sdk.WriteStatus{"ok": sdk.WriteOK, "bad-email": sdk.WriteRejected, "bad-prop": sdk.WriteRejected,
		"no-email": sdk.WriteOK, "update": sdk.WriteOK, "missing": sdk.WriteRejected}
	for _, r := range resp.Results {
		if r.Status != want[r.Ref] {
			t.Errorf("%s: %v (%s), want %v", r.Ref, r.Status, r.Message, want[r.Ref])
		}
	}
	if m := resp.Results[1].Message; !strings.Contains(m, "INVALID_EMAIL") || !strings.Contains(m, "not an email") {
		t.Errorf("rejected email message: %q", m)
	}
	if resp.Results[0].Action != sdk.ActionCreated || resp.Results[4].Action != sdk.ActionUpdated || resp.Results[4].ID != existing[0] {
		t.Errorf("actions: %+v", resp.Results)
	}
	if r, _ := e.srv.Get("contacts", existing[0]); r.Properties["lastname"] != "Updated" {
		t.Errorf("update not applied: %v", r.Properties)
	}
	if e.srv.Count("contacts") != 3 {
		t.Errorf("%d contacts, want 3", e.srv.Count("contacts"))
	}
}

func TestWriteBatchesOf100AndUpsert(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	var recs []sdk.WriteRecord
	for i := range 250 {
		recs = append(recs, rec(fmt.Sprint(i), "", fmt.Sprintf(`{"email":"w%d@example.com","firstname":"W"}`, i)))
	}
	// A repeated email in the same request goes to another call.
	recs = append(recs, rec("dup", "", `{"email":"W249@example.com","firstname":"Again"}`))
	resp := write(t, e, cfg, "contacts", recs...)
	for _, r := range resp.Results {
		if r.Status != sdk.WriteOK {
			t.Fatalf("%s: %v %s", r.Ref, r.Status, r.Message)
		}
	}
	if got := e.srv.Stats().PerPath["POST /crm/v3/objects/contacts/batch/upsert"]; got != 4 {
		t.Fatalf("%d upsert calls, want 4", got)
	}
	if resp.Results[250].ID != resp.Results[249].ID || resp.Results[250].Action != sdk.ActionUpdated {
		t.Fatalf("duplicate email: %+v vs %+v", resp.Results[250], resp.Results[249])
	}
	if e.srv.Count("contacts") != 250 {
		t.Fatalf("%d contacts", e.srv.Count("contacts"))
	}
	// Deals: create (no natural key), then delete.
	resp = write(t, e, cfg, "deals", rec("d", "", `{"dealname":"Big","amount":1200.5}`))
	if resp.Results[0].Status != sdk.WriteOK || resp.Results[0].Action != sdk.ActionCreated {
		t.Fatalf("deal: %+v", resp.Results[0])
	}
	id := resp.Results[0].ID
	if r, _ := e.srv.Get("deals", id); r.Properties["amount"] != "1200.5" {
		t.Fatalf("amount stored as %q", r.Properties["amount"])
	}
	resp = write(t, e, cfg, "deals", sdk.WriteRecord{Ref: "del", ID: id, Delete: true}, sdk.WriteRecord{Ref: "noid", Delete: true})
	if resp.Results[0].Status != sdk.WriteOK || resp.Results[0].Action != sdk.ActionDeleted || resp.Results[1].Status != sdk.WriteRejected {
		t.Fatalf("delete: %+v", resp.Results)
	}
	if e.srv.Count("deals") != 0 {
		t.Fatal("deal not archived")
	}
}

func TestRetry429And5xx(t *testing.T) {
	e := newEnv(t, fake.Options{})
	cfg := e.config("test-token")
	e.srv.Seed("contacts", contacts(3, 0)...)
	e.srv.InjectFaults(429, 429, 500, 502)
	b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
	if len(ids(b)) != 3 {
		t.Fatalf("read %d", len(ids(b)))
	}
	sl := e.clock.Sleeps()
	if len(sl) != 4 || sl[0] != time.Second || sl[1] != time.Second {
		t.Fatalf("waits %v: want Retry-After (1s) twice, then two backoffs", sl)
	}

	// 5xx that does not stop: the records are retryable, not failed.
	e.srv.InjectFaults(500, 500, 500, 500)
	resp := write(t, e, cfg, "contacts", rec("x", "", `{"email":"x@example.com"}`))
	if r := resp.Results[0]; r.Status != sdk.WriteRetryable || r.RetryAfter <= 0 {
		t.Fatalf("after persistent 500s: %+v", r)
	}
	resp = write(t, e, cfg, "contacts", rec("x", "", `{"email":"x@example.com"}`))
	if resp.Results[0].Status != sdk.WriteOK {
		t.Fatalf("after recovery: %+v", resp.Results[0])
	}

	// A create is not repeated after a 5xx (it may have been applied): one
	// create request, then a search for what it may have created; nothing
	// found, the record is retryable.
	const create = "POST /crm/v3/objects/deals/batch/create"
	before := e.srv.Stats().PerPath[create]
	e.srv.InjectFaults(502)
	resp = write(t, e, cfg, "deals", rec("d", "", `{"dealname":"D"}`))
	if r := resp.Results[0]; r.Status != sdk.WriteRetryable || e.srv.Stats().PerPath[create]-before != 1 || e.srv.Count("deals") != 0 {
		t.Fatalf("create after 502: %+v, %d create requests", r, e.srv.Stats().PerPath[create]-before)
	}
}

func TestRateBudgetAvoids429(t *testing.T) {
	e := newEnv(t, fake.Options{RateLimit: 5})
	cfg := e.config("test-token")
	// Two configs with the same token (two workflows) share one budget.
	cfg2, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": e.srv.URL() + "/"})
	for i := range 12 {
		c := cfg
		if i%2 == 1 {
			c = cfg2
		}
		resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: c})
		if err != nil || resp.Diagnostics.HasError() {
			t.Fatalf("check %d: %v %v", i, err, resp)
		}
	}
	st := e.srv.Stats()
	if st.RateLimited != 0 {
		t.Fatalf("%d requests answered 429", st.RateLimited)
	}
	var waited time.Duration
	for _, d := range e.clock.Sleeps() {
		waited += d
	}
	if waited < 20*time.Second || waited > 21*time.Second {
		t.Fatalf("waited %v for 12 requests at 5 per 10 s, want about 20 s", waited)
	}

	// A 429 caused by someone else (another process spent the window) is
	// waited out (Retry-After) and retried.
	e2 := newEnv(t, fake.Options{RateLimit: 5})
	e2.srv.InjectFaults(429)
	if resp, err := e2.conn.Check(context.Background(), sdk.CheckRequest{Config: e2.config("test-token")}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("check after 429: %v %v", err, resp)
	}
	if sl := e2.clock.Sleeps(); len(sl) != 1 || sl[0] != time.Second {
		t.Fatalf("waits %v, want the 1 s Retry-After", sl)
	}
}

func TestOAuthRefresh(t *testing.T) {
	e := newEnv(t, fake.Options{ExpiredTokens: []string{"old-token"}, ClientID: "cid", ClientSecret: "csecret", RefreshToken: "rtok"})
	oauth := func(expires time.Time) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"access_token": "old-token", "client_id": "cid", "client_secret": "csecret",
			"refresh_token": "rtok", "expires_at": expires.Format(time.RFC3339), "base_url": e.srv.URL(), "search_delay_seconds": 0})
		return b
	}
	// The token looks valid but HubSpot says it expired: refresh on 401.
	resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: oauth(e.clock.Now().Add(time.Hour))})
	if err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("check: %v %+v", err, resp)
	}
	var upd Config
	if err := json.Unmarshal(resp.UpdatedConfig, &upd); err != nil || upd.AccessToken != "fresh-access-1" || upd.RefreshToken != "rtok" || upd.ExpiresAt == "" {
		t.Fatalf("UpdatedConfig %s (%v)", resp.UpdatedConfig, err)
	}
	// Known to be expired: refreshed before the call, in Write too.
	before := e.srv.Stats().Requests
	wresp := write(t, e, oauth(e.clock.Now().Add(-time.Minute)), "contacts", rec("a", "", `{"email":"o@example.com"}`))
	if wresp.Results[0].Status != sdk.WriteOK || len(wresp.UpdatedConfig) == 0 {
		t.Fatalf("write: %+v", wresp)
	}
	if n := e.srv.Stats().Requests - before; n != 2 {
		t.Fatalf("%d requests, want 2 (refresh, upsert)", n)
	}
	// A read that finds nothing still hands the refreshed tokens back.
	batches := readAll(t, e.conn, sdk.ReadRequest{Config: oauth(e.clock.Now().Add(-time.Minute)), Object: "companies"})
	if len(batches) != 1 || len(batches[0].Records) != 0 || len(batches[0].UpdatedConfig) == 0 || len(batches[0].Checkpoint) == 0 {
		t.Fatalf("read batches %+v", batches)
	}
	// A refused refresh is a diagnostic on refresh_token, without secrets.
	bad, _ := json.Marshal(map[string]string{"client_id": "cid", "client_secret": "csecret", "refresh_token": "wrong-secret-value", "base_url": e.srv.URL()})
	resp, err = e.conn.Check(context.Background(), sdk.CheckRequest{Config: bad})
	if err != nil || !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != "refresh_token" || strings.Contains(resp.Diagnostics.Error(), "wrong-secret-value") {
		t.Fatalf("bad refresh token: %v %+v", err, resp)
	}
}

func TestCheckBadToken(t *testing.T) {
	e := newEnv(t, fake.Options{})
	resp, err := e.conn.Check(context.Background(), sdk.CheckRequest{Config: e.config("pat-na1-secret")})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != "access_token" || strings.Contains(resp.Diagnostics.Error(), "pat-na1-secret") {
		t.Fatalf("diagnostics %+v", resp.Diagnostics)
	}
}

// When HubSpot refuses a whole batch for one bad record, the batch is split
// until the bad records stand alone: only they are rejected.
func TestWriteSplitsRefusedBatch(t *testing.T) {
	e := newEnv(t, fake.Options{AtomicBatches: true})
	var recs []sdk.WriteRecord
	for i := range 40 {
		email := fmt.Sprintf("s%d@example.com", i)
		if i == 7 || i == 31 {
			email = "broken"
		}
		recs = append(recs, rec(fmt.Sprint(i), "", fmt.Sprintf(`{"email":%q}`, email)))
	}
	resp := write(t, e, e.config("test-token"), "contacts", recs...)
	for i, r := range resp.Results {
		bad := i == 7 || i == 31
		if bad && (r.Status != sdk.WriteRejected || !strings.Contains(r.Message, "broken")) || !bad && r.Status != sdk.WriteOK {
			t.Errorf("record %d: %v %s", i, r.Status, r.Message)
		}
	}
	if e.srv.Count("contacts") != 38 {
		t.Fatalf("%d contacts", e.srv.Count("contacts"))
	}
	if n := e.srv.Stats().PerPath["POST /crm/v3/objects/contacts/batch/upsert"]; n > 25 {
		t.Fatalf("%d calls for 40 records with 2 bad ones", n)
	}
}

// The daily cap is not waited out: the records are retryable at once.
func TestDailyLimitNotWaited(t *testing.T) {
	e := newEnv(t, fake.Options{})
	e.srv.InjectDailyLimit(1)
	resp := write(t, e, e.config("test-token"), "contacts", rec("a", "", `{"email":"a@example.com"}`))
	if r := resp.Results[0]; r.Status != sdk.WriteRetryable || !strings.Contains(r.Message, "daily") {
		t.Fatalf("%+v", r)
	}
	if n := len(e.clock.Sleeps()); n != 0 {
		t.Fatalf("%d waits", n)
	}
}
