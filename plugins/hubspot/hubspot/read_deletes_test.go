package hubspot

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// requests counts the requests a function sends, per path.
func requests(e *env, f func()) map[string]int {
	before := e.srv.Stats().PerPath
	f()
	out := map[string]int{}
	for k, v := range e.srv.Stats().PerPath {
		if v != before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

// The archive (deletes) cannot be filtered by time: with 2,000 archived
// contacts, listing it costs 20 requests. Reads list it at most once per
// deletes_scan_minutes (default 15): an idle read in between costs one
// search, and a delete is reported by the first read one interval after the
// last listing.
func TestReadDeletesScanInterval(t *testing.T) {
	const list, search = "GET /crm/v3/objects/contacts", "POST /crm/v3/objects/contacts/search"
	e := newEnv(t, fake.Options{})
	archived := e.srv.SeedAt("contacts", e.clock.Now(), contacts(2000, 0)...)
	e.srv.Archive("contacts", archived...)
	live := e.srv.Seed("contacts", contacts(3, 5000)...)
	e.clock.Add(time.Hour)
	cfg := e.config("test-token")
	var cp []byte
	read := func() []sdk.Record {
		t.Helper()
		var recs []sdk.Record
		for _, b := range readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cp}) {
			recs = append(recs, b.Records...)
			if b.Checkpoint != nil {
				cp = b.Checkpoint
			}
		}
		return recs
	}
	if n := requests(e, func() { read() }); n[list] != 0 {
		t.Fatalf("first read listed the archive: %v", n)
	}
	for range 3 {
		e.clock.Add(time.Minute)
		if n := requests(e, func() {
			if recs := read(); len(recs) != 0 {
				t.Fatalf("idle read returned %d records", len(recs))
			}
		}); fmt.Sprint(n) != fmt.Sprint(map[string]int{search: 1}) {
			t.Fatalf("idle read sent %v, want one search", n)
		}
	}
	e.srv.Archive("contacts", live[1])
	e.clock.Add(time.Minute)
	if recs := read(); len(recs) != 0 { // 4 minutes after the first read
		t.Fatalf("delete reported before the interval: %v", recs)
	}
	e.clock.Add(DefaultDeletesScan - 4*time.Minute)
	var recs []sdk.Record
	n := requests(e, func() { recs = read() })
	if len(recs) != 1 || !recs[0].Deleted || recs[0].ID != live[1] || n[list] != 21 {
		t.Fatalf("read at the interval: %+v, requests %v", recs, n)
	}
	e.clock.Add(time.Minute)
	if n := requests(e, func() { read() }); n[list] != 0 {
		t.Fatalf("the archive was listed again a minute later: %v", n)
	}

	// deletes_scan_minutes 0: every read lists the archive.
	cfg0, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": e.srv.URL(), "search_delay_seconds": 0, "deletes_scan_minutes": 0})
	cfg = cfg0
	e.srv.Archive("contacts", live[2])
	e.clock.Add(time.Second)
	if recs := read(); len(recs) != 1 || recs[0].ID != live[2] {
		t.Fatalf("with deletes_scan_minutes 0: %+v", recs)
	}
	if _, d := ParseConfig(json.RawMessage(`{"access_token":"x","deletes_scan_minutes":-1}`)); !d.HasError() || d[0].Attribute != "deletes_scan_minutes" {
		t.Fatalf("negative interval accepted: %v", d)
	}
}
