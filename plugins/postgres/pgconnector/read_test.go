package pgconnector_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestIncrementalRead reads a table where most rows share one timestamp,
// some are 1 µs apart and some have no timestamp, in small batches: every
// row comes exactly once, in (updated_at, id) order with NULLs first, and
// resuming from any checkpoint yields exactly the rest of the read. Then a
// few rows are updated and a read from the last checkpoint returns exactly
// those. Both timestamp types are covered.
func TestIncrementalRead(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"timestamptz", "timestamp"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			url, db := newDB(t,
				fmt.Sprintf(`CREATE TABLE ev (id bigint PRIMARY KEY, v text, updated_at %[1]s)`, typ),
				// 150 rows on one timestamp, 30 on two timestamps 1 µs apart
				// just before it, 20 without a timestamp.
				fmt.Sprintf(`INSERT INTO ev SELECT i, 'v' || i, CASE
					WHEN mod(i, 10) = 0 THEN NULL
					WHEN mod(i, 7) = 0 THEN '2025-03-01 10:00:00.000001'
					WHEN mod(i, 11) = 0 THEN '2025-03-01 10:00:00.000002'
					ELSE '2025-03-01 10:00:00.000003' END::%[1]s
				 FROM generate_series(1, 200) AS i`, typ),
			)
			c := newConn(t)
			cfg := config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "updated_at_column": "updated_at"})

			full := readOK(t, c, cfg, "ev", nil, 7)
			var want []string
			if err := db.Select(&want, `SELECT id::text AS k FROM ev ORDER BY COALESCE(updated_at, '-infinity'), ev.id`); err != nil {
				t.Fatal(err)
			}
			if got := ids(full.records); !reflect.DeepEqual(got, want) {
				t.Fatalf("full read, ids in order:\n got %v\nwant %v", got, want)
			}
			if len(full.checkpoints) != (200+6)/7 {
				t.Errorf("%d checkpoints for 200 records in batches of 7", len(full.checkpoints))
			}
			for _, r := range full.records {
				var row struct {
					ID        int64   `json:"id"`
					V         string  `json:"v"`
					UpdatedAt *string `json:"updated_at"`
				}
				if err := json.Unmarshal(r.Fields, &row); err != nil {
					t.Fatalf("record %s: fields %s: %v", r.ID, r.Fields, err)
				}
				if strconv.FormatInt(row.ID, 10) != r.ID || row.V != "v"+r.ID {
					t.Fatalf("record %s: fields %s", r.ID, r.Fields)
				}
				if (row.UpdatedAt == nil) != r.UpdatedAt.IsZero() {
					t.Fatalf("record %s: UpdatedAt %v but updated_at %v", r.ID, r.UpdatedAt, row.UpdatedAt)
				}
				if row.UpdatedAt != nil && r.UpdatedAt.Nanosecond()/1000 == 0 {
					t.Fatalf("record %s: UpdatedAt %v lost the microseconds", r.ID, r.UpdatedAt)
				}
			}

			// Resume from every checkpoint: exactly the rest, in order.
			for i, cp := range full.checkpoints {
				rest := readOK(t, c, cfg, "ev", cp, 7)
				if got, want := ids(rest.records), ids(full.records[full.ends[i]:]); !slices.Equal(got, want) {
					t.Fatalf("resume from checkpoint %d %s:\n got %v\nwant %v", i, cp, got, want)
				}
			}
			last := full.checkpoints[len(full.checkpoints)-1]
			if again := readOK(t, c, cfg, "ev", last, 7); len(again.records) != 0 {
				t.Fatalf("read from the last checkpoint with no change returned %v", ids(again.records))
			}

			// Update a few rows, including one that had no timestamp and one
			// on the shared timestamp: a read from the last checkpoint
			// returns exactly them, and its checkpoint is past them.
			mustExec(t, db, `UPDATE ev SET v = 'changed', updated_at = now() WHERE id IN (10, 14, 55, 199)`)
			changed := readOK(t, c, cfg, "ev", last, 2)
			got := ids(changed.records)
			slices.Sort(got)
			if want := []string{"10", "14", "199", "55"}; !slices.Equal(got, want) {
				t.Fatalf("read after updating 10, 14, 55, 199 returned %v", got)
			}
			for _, r := range changed.records {
				if !strings.Contains(string(r.Fields), `"v":"changed"`) {
					t.Errorf("record %s: fields %s, want the new value", r.ID, r.Fields)
				}
			}
			if again := readOK(t, c, cfg, "ev", changed.checkpoints[len(changed.checkpoints)-1], 2); len(again.records) != 0 {
				t.Fatalf("read from the newest checkpoint returned %v", ids(again.records))
			}
		})
	}
}

// TestKeysOrderInTheirOwnType checks that keys compare in the key column's
// type across pages (2 < 9 < 10 < 100, not as text), with and without an
// updated-at column, and for text keys in the column's collation order.
func TestKeysOrderInTheirOwnType(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t,
		`CREATE TABLE nums (id integer PRIMARY KEY, updated_at timestamptz)`,
		`INSERT INTO nums VALUES (100, '2025-01-01'), (2, '2025-01-01'), (10, '2025-01-01'), (1000, '2025-01-01'), (9, '2025-01-01'), (-5, '2025-01-01')`,
		`CREATE TABLE uuids (id uuid PRIMARY KEY, updated_at timestamptz)`,
		`INSERT INTO uuids SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(i * 4099), 12, '0'))::uuid, '2025-01-01' FROM generate_series(1, 9) AS i`,
	)
	c := newConn(t)
	tests := []struct {
		name, table, updatedAt string
		want                   []string
	}{
		{"integer incremental", "nums", "updated_at", []string{"-5", "2", "9", "10", "100", "1000"}},
		{"integer full scan", "nums", "", []string{"-5", "2", "9", "10", "100", "1000"}},
		{"uuid incremental", "uuids", "updated_at", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := map[string]any{"url": url, "table": tt.table, "primary_key": "id"}
			if tt.updatedAt != "" {
				m["updated_at_column"] = tt.updatedAt
			}
			cfg := config(t, m)
			want := tt.want
			if want == nil {
				for i := 1; i <= 9; i++ {
					want = append(want, fmt.Sprintf("00000000-0000-0000-0000-%012x", i*4099))
				}
			}
			for _, bs := range []int{1, 2, 4} {
				res := readOK(t, c, cfg, tt.table, nil, bs)
				if got := ids(res.records); !slices.Equal(got, want) {
					t.Fatalf("batch size %d: ids %v, want %v", bs, got, want)
				}
				for i, cp := range res.checkpoints {
					rest := readOK(t, c, cfg, tt.table, cp, bs)
					if got := ids(rest.records); !slices.Equal(got, want[res.ends[i]:]) {
						t.Fatalf("batch size %d, resume from %s: ids %v, want %v", bs, cp, got, want[res.ends[i]:])
					}
				}
			}
		})
	}
}

// TestReadLag checks that read_lag_seconds holds back recent rows only.
func TestReadLag(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t,
		`CREATE TABLE r (id int PRIMARY KEY, updated_at timestamptz)`,
		`INSERT INTO r VALUES (1, now() - interval '2 hours'), (2, now()), (3, NULL), (4, now() - interval '59 minutes')`,
	)
	c := newConn(t)
	for lag, want := range map[int][]string{0: {"3", "1", "4", "2"}, 3600: {"3", "1"}} {
		cfg := config(t, map[string]any{"url": url, "table": "r", "primary_key": "id", "updated_at_column": "updated_at", "read_lag_seconds": lag})
		if got := ids(readOK(t, c, cfg, "r", nil, 0).records); !slices.Equal(got, want) {
			t.Errorf("read_lag_seconds %d: ids %v, want %v", lag, got, want)
		}
	}
	// Rows with a timestamp in the future wait until their time comes:
	// reading them now would move the cursor past rows changed meanwhile.
	cfg := config(t, map[string]any{"url": url, "table": "r", "primary_key": "id", "updated_at_column": "updated_at"})
	mustExecURL(t, url, `UPDATE r SET updated_at = now() + interval '1 day' WHERE id = 1`)
	if got := ids(readOK(t, c, cfg, "r", nil, 0).records); !slices.Equal(got, []string{"3", "4", "2"}) {
		t.Errorf("with row 1 in the future: ids %v, want [3 4 2]", got)
	}
}

// TestReadRejects checks the diagnostics of reads that cannot run.
func TestReadRejects(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t, `CREATE TABLE r (id int PRIMARY KEY, updated_at timestamptz)`, `INSERT INTO r VALUES (1, now() - interval '1 hour')`)
	c := newConn(t)
	inc := config(t, map[string]any{"url": url, "table": "r", "primary_key": "id", "updated_at_column": "updated_at"})
	full := config(t, map[string]any{"url": url, "table": "r", "primary_key": "id"})
	tests := []struct {
		name   string
		config json.RawMessage
		object string
		cursor string
		want   string
	}{
		{"unknown object", inc, "other", "", `unknown object "other"`},
		{"bad config", json.RawMessage(`{"url": "postgres://x"}`), "r", "", "required"},
		{"cursor not json", inc, "r", `{"u":`, "invalid cursor"},
		{"cursor with unknown field", inc, "r", `{"u": "2025-01-01", "k": "1", "x": 1}`, "invalid cursor"},
		{"full cursor for incremental config", inc, "r", `{"k": "1"}`, "invalid cursor"},
		{"incremental cursor for full config", full, "r", `{"u": "2025-01-01", "k": "1"}`, "invalid cursor"},
		{"cursor timestamp invalid", inc, "r", `{"u": "yesterday-ish", "k": "1"}`, "invalid cursor"},
		{"cursor key invalid", inc, "r", `{"u": "2025-01-01 00:00:00+00", "k": "one"}`, "invalid cursor"},
		{"cursor key invalid full scan", full, "r", `{"k": "one"}`, "invalid cursor"},
		{"missing table", config(t, map[string]any{"url": url, "table": "nope", "primary_key": "id"}), "nope", "", "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cur []byte
			if tt.cursor != "" {
				cur = []byte(tt.cursor)
			}
			res := read(t, c, tt.config, tt.object, cur, 0)
			if !res.diags.HasError() || !strings.Contains(res.diags.Error(), tt.want) || len(res.records) != 0 {
				t.Fatalf("diagnostics %q and %d records, want an error containing %q and no records", res.diags.Error(), len(res.records), tt.want)
			}
		})
	}
	// A valid cursor still works.
	if got := ids(readOK(t, c, inc, "r", []byte(`{"u": "2000-01-01 00:00:00+00", "k": "0"}`), 0).records); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("read from an old cursor: %v", got)
	}
}

func mustExecURL(t *testing.T, url, q string) {
	t.Helper()
	_, db := newDBHandle(t, url)
	mustExec(t, db, q)
}
