package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// seedSharedTimestamps stores n contacts over few timestamps: groups of the
// given sizes, one timestamp each.
func seedSharedTimestamps(e *env, sizes ...int) []string {
	var ids []string
	from := 0
	for _, n := range sizes {
		ids = append(ids, e.srv.Seed("contacts", contacts(n, from)...)...)
		from += n
		e.clock.Add(time.Millisecond)
	}
	return ids
}

func checkExactlyOnce(t *testing.T, want []string, got []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	lost, repeated := 0, 0
	for _, id := range want {
		switch c := count[id]; {
		case c == 0:
			lost++
		case c > 1:
			repeated++
		}
	}
	if lost != 0 || repeated != 0 || len(got) != len(want) {
		t.Fatalf("read %d records for %d: %d lost, %d repeated", len(got), len(want), lost, repeated)
	}
}

func ids(batches []sdk.ReadBatch) []string {
	var out []string
	for _, b := range batches {
		for _, r := range b.Records {
			out = append(out, r.ID)
		}
	}
	return out
}

// More than 10,000 records sharing a few timestamps (one of them shared by
// 10,100 records, more than one search query can page through): a full read
// and a read interrupted and resumed at several checkpoints each return
// every record exactly once, and no search request is refused.
func TestReadPastSearchWindow(t *testing.T) {
	for _, tc := range []struct {
		sizes []int
		order fake.TieOrder
	}{{[]int{4000, 4000, 2500}, fake.TiesByID}, {[]int{10100, 400}, fake.TiesByID}, {[]int{10100, 400}, fake.TiesShuffled}} {
		sizes := tc.sizes
		t.Run(fmt.Sprint(sizes, "_ties", tc.order), func(t *testing.T) {
			e := newEnv(t, fake.Options{TieOrder: tc.order})
			want := seedSharedTimestamps(e, sizes...)
			req := sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts", BatchSize: 200}
			batches := readAll(t, e.conn, req)
			checkExactlyOnce(t, want, ids(batches))
			for _, b := range batches {
				if len(b.Records) > 200 {
					t.Fatalf("batch of %d records", len(b.Records))
				}
			}
			st := e.srv.Stats()
			if st.PerPath["POST /crm/v3/objects/contacts/search"] < len(want)/200 {
				t.Fatalf("only %d searches", st.PerPath["POST /crm/v3/objects/contacts/search"])
			}

			// Interrupt after every 13th batch and resume from its checkpoint.
			var got []string
			var cursor []byte
			stop := errors.New("stop")
			for round := 0; ; round++ {
				n := 0
				req.Cursor = cursor
				err := e.conn.Read(context.Background(), req, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
					for _, r := range b.Records {
						if !r.Deleted {
							got = append(got, r.ID)
						}
					}
					cursor = b.Checkpoint
					n++
					if n == 13 {
						return stop
					}
					return nil
				}))
				if err == nil {
					break
				}
				if !errors.Is(err, stop) {
					t.Fatalf("round %d: %v", round, err)
				}
				if round > 100 {
					t.Fatal("no progress")
				}
			}
			checkExactlyOnce(t, want, got)
		})
	}
}

func TestReadIncrementalAndDeletes(t *testing.T) {
	e := newEnv(t, fake.Options{})
	all := seedSharedTimestamps(e, 30, 30)
	cfg := e.config("test-token")
	batches := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", BatchSize: 7})
	checkExactlyOnce(t, all, ids(batches))
	cursor := batches[len(batches)-1].Checkpoint

	// Nothing changed: nothing read, not even an empty batch.
	if b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor}); len(b) != 0 {
		t.Fatalf("unchanged source: %d batches", len(b))
	}

	e.clock.Add(DefaultDeletesScan) // the archive is listed once per 15 minutes
	resp, err := e.conn.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "contacts", Records: []sdk.WriteRecord{
		{Ref: "a", ID: all[3], Fields: json.RawMessage(`{"firstname":"Changed"}`)},
		{Ref: "b", ID: all[40], Fields: json.RawMessage(`{"lastname":"Changed"}`)},
		{Ref: "c", ID: all[5], Delete: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Status != sdk.WriteOK {
			t.Fatalf("write %s: %v %s", r.Ref, r.Status, r.Message)
		}
	}
	batches = readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor})
	var changed, deleted []string
	for _, b := range batches {
		for _, r := range b.Records {
			if r.Deleted {
				deleted = append(deleted, r.ID)
			} else {
				changed = append(changed, r.ID)
				var f map[string]any
				_ = json.Unmarshal(r.Fields, &f)
				if f["id"] != r.ID || f["email"] == nil {
					t.Fatalf("fields %s", r.Fields)
				}
			}
		}
	}
	if fmt.Sprint(changed) != fmt.Sprint([]string{all[3], all[40]}) || fmt.Sprint(deleted) != fmt.Sprint([]string{all[5]}) {
		t.Fatalf("changed %v deleted %v", changed, deleted)
	}
	cursor = batches[len(batches)-1].Checkpoint
	if b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor}); len(ids(b)) != 0 {
		t.Fatalf("second incremental read returned %v, want nothing", ids(b))
	}
}

func TestReadPagingEdges(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		e := newEnv(t, fake.Options{})
		if b := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "companies"}); len(ids(b)) != 0 {
			t.Fatalf("read %d", len(ids(b)))
		}
	})
	t.Run("exactly_one_page", func(t *testing.T) {
		e := newEnv(t, fake.Options{})
		want := seedSharedTimestamps(e, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
		b := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts", BatchSize: 10})
		checkExactlyOnce(t, want, ids(b))
		if len(b) != 1 {
			t.Fatalf("%d batches", len(b))
		}
	})
	t.Run("batch_size_capped", func(t *testing.T) {
		e := newEnv(t, fake.Options{})
		want := seedSharedTimestamps(e, 450)
		b := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts", BatchSize: 1000})
		checkExactlyOnce(t, want, ids(b))
		if len(b) != 3 || len(b[0].Records) != MaxSearchLimit {
			t.Fatalf("%d batches, first of %d", len(b), len(b[0].Records))
		}
	})
	t.Run("many_archived", func(t *testing.T) {
		e := newEnv(t, fake.Options{})
		all := seedSharedTimestamps(e, 260)
		cfg := e.config("test-token")
		b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
		cursor := b[len(b)-1].Checkpoint
		e.clock.Add(time.Minute)
		e.srv.Archive("contacts", all[:130]...)
		e.clock.Add(DefaultDeletesScan)
		e.clock.Add(time.Millisecond)
		e.srv.Archive("contacts", all[130:250]...)
		var got []string
		var cp []byte
		stop := errors.New("stop")
		// Stop after the first delete batch, then resume.
		err := e.conn.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor, BatchSize: 100},
			sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
				for _, r := range b.Records {
					if !r.Deleted {
						t.Errorf("live record %s", r.ID)
					}
					got = append(got, r.ID)
				}
				cp = b.Checkpoint
				return stop
			}))
		if !errors.Is(err, stop) {
			t.Fatal(err)
		}
		got = append(got, ids(readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cp, BatchSize: 100}))...)
		checkExactlyOnce(t, all[:250], got)
	})
	t.Run("deals_and_companies", func(t *testing.T) {
		e := newEnv(t, fake.Options{})
		d := e.srv.Seed("deals", map[string]string{"dealname": "Big", "amount": "1200.5"})
		c := e.srv.Seed("companies", map[string]string{"name": "Acme", "numberofemployees": "42"})
		bd := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "deals"})
		bc := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "companies"})
		if len(ids(bd)) != 1 || ids(bd)[0] != d[0] || len(ids(bc)) != 1 || ids(bc)[0] != c[0] {
			t.Fatalf("deals %v companies %v", ids(bd), ids(bc))
		}
		var deal, company map[string]any
		_ = json.Unmarshal(bd[0].Records[0].Fields, &deal)
		_ = json.Unmarshal(bc[0].Records[0].Fields, &company)
		if deal["amount"] != 1200.5 || company["numberofemployees"] != float64(42) {
			t.Fatalf("typed fields: deal %v company %v", deal, company)
		}
	})
}

// HubSpot's search index lags behind writes, not always in timestamp order.
// With search_delay_seconds, a read leaves the latest changes to the next
// read, and a record indexed late is not passed by the cursor.
func TestReadSearchIndexDelay(t *testing.T) {
	for _, tc := range []struct {
		delay    int
		wantLost bool
	}{{0, true}, {5, false}} {
		t.Run(fmt.Sprint("delay_", tc.delay), func(t *testing.T) {
			var slow string
			e := newEnv(t, fake.Options{IndexDelay: func(_, id string) time.Duration {
				if id == slow {
					return 4 * time.Second
				}
				return 0
			}})
			cfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": e.srv.URL(), "search_delay_seconds": tc.delay})
			slow = fmt.Sprint(1001) // the fake's first id
			a := e.srv.Seed("contacts", contacts(1, 0)...)[0]
			if a != slow {
				t.Fatalf("first id %s, want %s", a, slow)
			}
			e.clock.Add(time.Second)
			b := e.srv.Seed("contacts", contacts(1, 1)...)[0]
			e.clock.Add(time.Second) // a is not searchable yet, b is
			var got []string
			batches := readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
			got = append(got, ids(batches)...)
			cursor := batches[len(batches)-1].Checkpoint
			e.clock.Add(10 * time.Second)
			got = append(got, ids(readAll(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts", Cursor: cursor}))...)
			count := map[string]int{}
			for _, id := range got {
				count[id]++
			}
			lost := count[a] == 0
			if lost != tc.wantLost || count[b] != 1 || count[a] > 1 {
				t.Fatalf("read %v (a=%s b=%s): lost a = %v, want %v", got, a, b, lost, tc.wantLost)
			}
		})
	}
}
