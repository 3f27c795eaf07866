package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// HubSpot search takes one sort and documents no order among records
// sharing the sorted timestamp. A proxy returns each search page reversed
// (ties by id descending): every contact is still read once.
func TestReadSearchTiesReversedByProxy(t *testing.T) {
	e := newEnv(t, fake.Options{})
	e.srv.SeedAt("contacts", e.clock.Now(), contacts(5, 0)...)
	e.clock.Add(time.Minute)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(r.Method, e.srv.URL()+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if r.URL.Path == "/crm/v3/objects/contacts/search" && resp.StatusCode == http.StatusOK {
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			res, _ := m["results"].([]any)
			for i, j := 0, len(res)-1; i < j; i, j = i+1, j-1 {
				res[i], res[j] = res[j], res[i]
			}
			raw, _ = json.Marshal(m)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(raw)
	}))
	defer proxy.Close()
	cfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": proxy.URL, "search_delay_seconds": 0})
	var got []string
	for _, b := range readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", BatchSize: 2}) {
		for _, r := range b.Records {
			if !r.Deleted {
				got = append(got, r.ID)
			}
		}
	}
	if len(got) != 5 {
		t.Fatalf("read %d of 5 contacts sharing one lastmodifieddate: %v", len(got), got)
	}
}

// Whatever order the fake returns ties in (by id descending, or shuffled at
// each query), groups sharing a timestamp, smaller and larger than a page,
// are read exactly once, in one read or resumed from every checkpoint; an
// idle read afterwards costs one search.
func TestReadTiesInAnyOrder(t *testing.T) {
	for _, order := range []fake.TieOrder{fake.TiesReversed, fake.TiesShuffled} {
		for _, batch := range []int{2, 7, 200} {
			t.Run(fmt.Sprintf("order%d_batch%d", order, batch), func(t *testing.T) {
				e := newEnv(t, fake.Options{TieOrder: order})
				want := seedSharedTimestamps(e, 5, 1, 30, 450, 3)
				cfg := e.config("test-token")
				req := sdk.ReadRequest{Config: cfg, Object: "contacts", BatchSize: batch}
				batches := readAll(t, e.conn, req)
				checkExactlyOnce(t, want, ids(batches))
				cursor := batches[len(batches)-1].Checkpoint
				if len(cursor) > 40<<10 {
					t.Fatalf("checkpoint of %d bytes", len(cursor))
				}

				before := e.srv.Stats().PerPath["POST /crm/v3/objects/contacts/search"]
				e.clock.Add(time.Minute)
				if b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor}); len(ids(b)) != 0 {
					t.Fatalf("idle read returned %v", ids(b))
				}
				if n := e.srv.Stats().PerPath["POST /crm/v3/objects/contacts/search"] - before; n != 1 {
					t.Fatalf("idle read sent %d searches, want 1", n)
				}

				// Interrupted after every 3rd batch, resumed from its checkpoint.
				var got []string
				var cp []byte
				stop := errors.New("stop")
				for round := 0; ; round++ {
					n := 0
					req.Cursor = cp
					err := e.conn.Read(context.Background(), req, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
						for _, r := range b.Records {
							got = append(got, r.ID)
						}
						cp = b.Checkpoint
						if n++; n == 3 {
							return stop
						}
						return nil
					}))
					if err == nil {
						break
					}
					if !errors.Is(err, stop) || round > 1000 {
						t.Fatalf("round %d: %v", round, err)
					}
				}
				checkExactlyOnce(t, want, got)
			})
		}
	}
}

// A record emitted at the boundary timestamp and edited again within the
// same millisecond is read again; the others of that millisecond are not.
func TestReadSameMillisecondEditReread(t *testing.T) {
	e := newEnv(t, fake.Options{TieOrder: fake.TiesShuffled})
	all := e.srv.Seed("contacts", contacts(4, 0)...)
	cfg := e.config("test-token")
	batches := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
	checkExactlyOnce(t, all, ids(batches))
	cursor := batches[len(batches)-1].Checkpoint
	resp := write(t, e, cfg, "contacts", rec("a", all[2], `{"firstname":"Again"}`)) // same clock: same lastmodifieddate
	if resp.Results[0].Status != sdk.WriteOK {
		t.Fatalf("%+v", resp.Results[0])
	}
	got := ids(readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor}))
	if fmt.Sprint(got) != fmt.Sprint([]string{all[2]}) {
		t.Fatalf("read %v, want only %s", got, all[2])
	}
}

// A version 1 checkpoint (last timestamp and id) is still accepted: the
// records of its millisecond are read again, none is lost.
func TestReadVersion1Checkpoint(t *testing.T) {
	e := newEnv(t, fake.Options{TieOrder: fake.TiesReversed})
	all := seedSharedTimestamps(e, 3, 2)
	ts := e.clock.Now().Add(-2 * time.Millisecond).UnixMilli()
	v1, _ := json.Marshal(map[string]any{"v": 1, "ts": ts, "id": all[2], "arch_ts": ts})
	got := ids(readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts", Cursor: v1}))
	checkExactlyOnce(t, all, got)
}

// A checkpoint stored in another JSON form (PostgreSQL jsonb reorders keys)
// does not make an idle read hand over an empty batch.
func TestReadIdleWithReencodedCheckpoint(t *testing.T) {
	e := newEnv(t, fake.Options{TieOrder: fake.TiesShuffled})
	seedSharedTimestamps(e, 3, 4)
	cfg := e.config("test-token")
	b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", BatchSize: 2})
	var m map[string]any
	if err := json.Unmarshal(b[len(b)-1].Checkpoint, &m); err != nil {
		t.Fatal(err)
	}
	cp, _ := json.MarshalIndent(m, "", " ")
	e.clock.Add(time.Minute)
	if b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cp}); len(b) != 0 {
		t.Fatalf("idle read handed over %d batches", len(b))
	}
}
