package sage

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/sage/fake"
	"github.com/synchron-io/synchron/sdk"
)

// readTo reads until the end or an error: the records, the last checkpoint
// emitted (or nil), the last UpdatedConfig and the read's error. Each batch
// is passed to each (may be nil) after it is recorded.
func readTo(t *testing.T, c *Connector, cfg json.RawMessage, object string, cursor []byte, bs int, each func(b sdk.ReadBatch)) (recs []sdk.Record, cp []byte, upd json.RawMessage, err error) {
	t.Helper()
	cp = cursor
	err = c.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: object, Cursor: cursor, BatchSize: bs},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			if b.Diagnostics.HasError() {
				t.Errorf("diagnostics: %s", b.Diagnostics.Error())
			}
			recs = append(recs, b.Records...)
			if b.Checkpoint != nil {
				cp = b.Checkpoint // what a host commits
			}
			if b.UpdatedConfig != nil {
				upd = b.UpdatedConfig
			}
			if each != nil {
				each(b)
			}
			return nil
		}))
	return recs, cp, upd, err
}

func has(recs []sdk.Record, id string) bool {
	for _, r := range recs {
		if r.ID == id {
			return true
		}
	}
	return false
}

// faults502 exhausts the read retries of the next matching requests.
func faults502(match string) []fake.Fault {
	var f []fake.Fault
	for range DefaultMaxRetries + 1 {
		f = append(f, fake.Fault{Status: 502, Match: match})
	}
	return f
}

// Contacts are listed in Sage's order (the fake: by name), not by
// updated_at: a checkpoint after page 1 would be newer than an older record
// on page 2. Batches carry no checkpoint until the listing is read, so a
// read that fails on page 2 is resumed from the old checkpoint and reads
// that record.
func TestUnsortedCheckpointAtEnd(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	older := e.fake.Put(biz, "contacts", map[string]any{"name": "Zed", "reference": "Z"})
	e.clock.Add(time.Minute)
	newer := e.fake.Put(biz, "contacts", map[string]any{"name": "Amy", "reference": "A"})
	e.clock.Add(time.Minute)

	injected := false
	recs, cp, _, err := readTo(t, c, e.config(nil), "contacts", nil, 1, func(b sdk.ReadBatch) {
		if b.Checkpoint != nil {
			t.Errorf("a batch of contacts carries a checkpoint before the listing is read: %s", b.Checkpoint)
		}
		if !injected {
			injected = true
			e.fake.InjectFaults(faults502("GET /contacts")...) // page 2 fails
		}
	})
	if _, ok := sdk.IsRetryable(err); !ok || len(recs) != 1 || recs[0].ID != newer {
		t.Fatalf("first read: %v, err %v (want the newer record, then a retryable error)", ids(recs), err)
	}
	if cp != nil {
		t.Fatalf("checkpoint %s committed after page 1", cp)
	}
	recs, cp, _, err = readTo(t, c, e.config(nil), "contacts", cp, 1, nil)
	if err != nil || !has(recs, older) || !has(recs, newer) {
		t.Fatalf("resumed read: %v, err %v; want %s and %s", ids(recs), err, older, newer)
	}
	// The checkpoint of the whole listing comes once, at its end.
	var cur cursor
	if err := json.Unmarshal(cp, &cur); err != nil || stamp(cur.Since) != e.fake.Get(biz, "contacts", newer)["updated_at"] || !cur.DelDone {
		t.Fatalf("final checkpoint %s", cp)
	}
	if recs, _, _, _ = readTo(t, c, e.config(nil), "contacts", cp, 1, nil); len(recs) != 0 {
		t.Fatalf("read again from the final checkpoint: %v", ids(recs))
	}
}

// Sales invoices are listed sorted by updated_at: their batches keep
// carrying checkpoints, and a failed read resumes after the pages read.
func TestSortedCheckpointPerBatch(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	contact := e.seedContacts(1, "s")[0]
	var inv []string
	for i := range 3 {
		inv = append(inv, e.fake.Put(biz, "sales_invoices", map[string]any{"contact": map[string]any{"id": contact},
			"date": "2026-03-01", "reference": "R" + string(rune('a'+i))}))
		e.clock.Add(time.Second)
	}
	n := 0
	recs, cp, _, err := readTo(t, c, e.config(nil), "sales_invoices", nil, 1, func(b sdk.ReadBatch) {
		if len(b.Records) > 0 && b.Checkpoint == nil {
			t.Errorf("a batch of invoices without a checkpoint")
		}
		if n++; n == 2 {
			e.fake.InjectFaults(faults502("GET /sales_invoices")...)
		}
	})
	if _, ok := sdk.IsRetryable(err); !ok || len(recs) != 2 {
		t.Fatalf("first read: %v, err %v", ids(recs), err)
	}
	recs, _, _, err = readTo(t, c, e.config(nil), "sales_invoices", cp, 1, nil)
	if err != nil || len(recs) != 1 || recs[0].ID != inv[2] {
		t.Fatalf("resumed read: %v, err %v; want only %s", ids(recs), err, inv[2])
	}
}

// A record edited again within the checkpoint's second keeps its
// updated_at: it is read again (the checkpoint keeps a fingerprint of each
// boundary record, not only its id); an unchanged one is not.
func TestSecondEditWithinCheckpointSecond(t *testing.T) {
	for _, object := range []string{"contacts", "sales_invoices"} {
		t.Run(object, func(t *testing.T) {
			e := newEnv(t, false)
			c := e.conn()
			contact := e.seedContacts(1, "b")[0]
			id := contact
			if object == "sales_invoices" {
				id = e.fake.Put(biz, "sales_invoices", map[string]any{"contact": map[string]any{"id": contact}, "date": "2026-03-01"})
			}
			recs, cp, _, err := readTo(t, c, e.config(nil), object, nil, 0, nil)
			if err != nil || !has(recs, id) {
				t.Fatalf("first read: %v %v", ids(recs), err)
			}
			e.fake.Update(biz, object, id, map[string]any{"notes": "second edit"}) // same second
			recs, cp, _, err = readTo(t, c, e.config(nil), object, cp, 0, nil)
			if err != nil || len(recs) != 1 || recs[0].ID != id || !strings.Contains(string(recs[0].Fields), "second edit") {
				t.Fatalf("a second edit within the checkpoint's second: %v %v", ids(recs), err)
			}
			if recs, _, _, err = readTo(t, c, e.config(nil), object, cp, 0, nil); err != nil || len(recs) != 0 {
				t.Fatalf("unchanged boundary record read again: %v %v", ids(recs), err)
			}
		})
	}
}

// A checkpoint of an earlier version (boundary ids without fingerprints)
// reads its boundary records once more rather than skipping changes.
func TestLegacyCheckpointIDs(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	id := e.seedContacts(1, "l")[0]
	old := []byte(`{"since":"` + stamp(e.clock.Now()) + `","ids":["` + id + `"],"del_done":true}`)
	recs, cp, _, err := readTo(t, c, e.config(nil), "contacts", old, 0, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("legacy checkpoint: %v %v", ids(recs), err)
	}
	if recs, _, _, _ = readTo(t, c, e.config(nil), "contacts", cp, 0, nil); len(recs) != 0 {
		t.Fatalf("read again: %v", ids(recs))
	}
}

// In name order a record edited on a page already read stays there: the
// catch-up listing compares updated_at and fetches it, and the checkpoint
// goes no further than the listing's start (Sage's Date).
func TestUnsortedEditOnReadPage(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	cs := e.seedContacts(4, "u") // u 0..u 3, in this order
	e.clock.Add(time.Second)
	n := 0
	recs, cp, _, err := readTo(t, c, e.config(nil), "contacts", nil, 2, func(sdk.ReadBatch) {
		if n++; n == 1 { // page 1 (u 0, u 1) read
			e.clock.Add(time.Second)
			e.fake.Update(biz, "contacts", cs[0], map[string]any{"notes": "edited on a read page"})
			e.clock.Add(time.Second)
			e.fake.Update(biz, "contacts", cs[3], map[string]any{"notes": "edited on an unread page"})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	edited := func(recs []sdk.Record) bool {
		for _, r := range recs {
			if r.ID == cs[0] && strings.Contains(string(r.Fields), "edited on a read page") {
				return true
			}
		}
		return false
	}
	if !edited(recs) {
		t.Fatalf("the edit of %s on a page already read was not read: %v", cs[0], ids(recs))
	}
	var cur cursor
	_ = json.Unmarshal(cp, &cur)
	if start := e.clock.Now().Add(-2 * time.Second); cur.Since.After(start) {
		t.Fatalf("checkpoint %v after the listing's start %v", cur.Since, start)
	}
}

// Deletions are listed in no known order (the fake: by id): the deletion
// part of the checkpoint moves only once the deletion listing is read.
func TestDeletionCheckpointAtEnd(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	cs := e.seedContacts(3, "x")
	_, cp, _, err := readTo(t, c, e.config(nil), "contacts", nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Second)
	e.fake.Delete(biz, "contacts", cs[2]) // earlier deletion, listed second
	e.clock.Add(time.Second)
	e.fake.Delete(biz, "contacts", cs[0]) // later deletion, listed first
	injected := false
	recs, cp2, _, err := readTo(t, c, e.config(nil), "contacts", cp, 1, func(b sdk.ReadBatch) {
		if len(b.Records) > 0 && b.Records[0].Deleted && !injected {
			injected = true
			e.fake.InjectFaults(faults502("GET /contacts")...)
		}
	})
	if _, ok := sdk.IsRetryable(err); !ok || len(recs) != 1 || recs[0].ID != cs[0] {
		t.Fatalf("read failing after the first deletion: %v %v", ids(recs), err)
	}
	recs, cp2, _, err = readTo(t, c, e.config(nil), "contacts", cp2, 1, nil)
	if err != nil || !has(recs, cs[2]) {
		t.Fatalf("resumed read lost the deletion of %s: %v %v", cs[2], ids(recs), err)
	}
	if recs, _, _, _ = readTo(t, c, e.config(nil), "contacts", cp2, 1, nil); len(recs) != 0 {
		t.Fatalf("read again: %v", ids(recs))
	}
}

// A 429 is waited out however long it lasts (no retry count), honouring
// Retry-After with each wait capped.
func TestThrottlingWaitsWithoutLimit(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	e.seedContacts(2, "w")
	var f []fake.Fault
	for range 3 * DefaultMaxRetries {
		f = append(f, fake.Fault{Status: 429, RetryAfter: 3600})
	}
	f = append(f, fake.Fault{Status: 429}) // no Retry-After: backoff
	e.fake.InjectFaults(f...)
	recs, _, _, err := readTo(t, c, e.config(nil), "contacts", nil, 0, nil)
	if err != nil || len(recs) != 2 {
		t.Fatalf("read through %d 429s: %v %v", len(f), ids(recs), err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sleeps) < len(f) {
		t.Fatalf("waits %v", e.sleeps)
	}
	for _, d := range e.sleeps {
		if d > maxRetryWait {
			t.Fatalf("a wait of %v, more than %v", d, maxRetryWait)
		}
	}
}

// 5xx answers and network errors are retried a bounded number of times;
// then the read fails with an sdk.Retryable error (no diagnostics), after
// handing over tokens it rotated.
func TestServerErrorsEndRetryable(t *testing.T) {
	e := newEnv(t, false)
	c := e.conn()
	e.seedContacts(2, "v")
	e.clock.Add(10 * time.Minute) // the read refreshes the access token first
	e.fake.InjectFaults(fake.Fault{Status: 503, RetryAfter: 20}, fake.Fault{Drop: true}, fake.Fault{Status: 500},
		fake.Fault{Status: 502}, fake.Fault{Drop: true})
	_, _, upd, err := readTo(t, c, e.config(nil), "contacts", nil, 0, nil)
	after, ok := sdk.IsRetryable(err)
	if !ok || after <= 0 {
		t.Fatalf("read after exhausted retries: %v (retryable %v after %v)", err, ok, after)
	}
	var re *sdk.RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("not an sdk.RetryableError: %v", err)
	}
	var cfg config
	if upd == nil || json.Unmarshal(upd, &cfg) != nil || !e.fake.RefreshTokenValid(cfg.RefreshToken) {
		t.Fatal("the rotated tokens were not handed over before the read failed")
	}
	e.mu.Lock()
	if len(e.sleeps) != DefaultMaxRetries || e.sleeps[0] != 20*time.Second {
		t.Errorf("waits %v", e.sleeps)
	}
	e.mu.Unlock()
	// A network error, then success: retried within the read.
	e.fake.InjectFaults(fake.Fault{Drop: true})
	if recs, _, _, err := readTo(t, c, upd, "contacts", nil, 0, nil); err != nil || len(recs) != 2 {
		t.Fatalf("read through a dropped connection: %v %v", ids(recs), err)
	}
}
