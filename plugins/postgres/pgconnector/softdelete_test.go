package pgconnector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk"
)

// TestCheckDeletedColumn checks the validation of deleted_column: accepted
// types (timestamp, timestamptz, boolean, a domain over one), each problem
// reported as an error on deleted_column by Check and Discover, and the
// discovered object's Deletes flag.
func TestCheckDeletedColumn(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t,
		`CREATE DOMAIN flag AS boolean`,
		`CREATE TABLE items (
			id int PRIMARY KEY,
			name text,
			deleted_at timestamptz,
			removed_on timestamp,
			is_deleted boolean NOT NULL DEFAULT false,
			gone flag,
			deleted_day date,
			deleted_n integer,
			deleted_text text,
			stamped timestamptz NOT NULL DEFAULT now(),
			is_gone boolean GENERATED ALWAYS AS (deleted_at IS NOT NULL) STORED,
			updated_at timestamptz
		)`,
		`CREATE INDEX ON items (updated_at, id)`,
	)
	c := newConn(t)
	tests := []struct {
		name      string
		deleted   any    // the deleted_column value; json null for JSON null
		full      bool   // without updated_at_column
		attribute string // of the first error; "" for none
		summary   string // substring of the first error's summary
	}{
		{name: "timestamptz", deleted: "deleted_at"},
		{name: "timestamp", deleted: "removed_on"},
		{name: "boolean not null", deleted: "is_deleted"},
		{name: "domain over boolean", deleted: "gone"},
		{name: "full scan", deleted: "deleted_at", full: true},
		{name: "null is absent", deleted: json.RawMessage(`null`)},
		{name: "missing column", deleted: "deleted", attribute: "deleted_column", summary: `column "deleted" not found`},
		{name: "wrong case", deleted: "Deleted_At", attribute: "deleted_column", summary: "not found"},
		{name: "date", deleted: "deleted_day", attribute: "deleted_column", summary: "of type date, not a timestamp or a boolean"},
		{name: "integer", deleted: "deleted_n", attribute: "deleted_column", summary: "of type integer, not a timestamp or a boolean"},
		{name: "text", deleted: "deleted_text", attribute: "deleted_column", summary: "of type text"},
		{name: "not null timestamp", deleted: "stamped", attribute: "deleted_column", summary: "is NOT NULL"},
		{name: "generated", deleted: "is_gone", attribute: "deleted_column", summary: "generated column"},
		{name: "the key", deleted: "id", attribute: "deleted_column", summary: "must differ from primary_key"},
		{name: "the updated-at column", deleted: "updated_at", attribute: "deleted_column", summary: "must differ from updated_at_column"},
		{name: "not a string", deleted: 5, attribute: "deleted_column", summary: "non-empty string"},
		{name: "empty", deleted: " ", attribute: "deleted_column", summary: "non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := map[string]any{"url": url, "table": "items", "primary_key": "id", "updated_at_column": "updated_at", "deleted_column": tt.deleted}
			if tt.full {
				delete(m, "updated_at_column")
			}
			cfg := config(t, m)
			check, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			disc, err := c.Discover(context.Background(), sdk.DiscoverRequest{Config: cfg})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			for what, diags := range map[string]sdk.Diagnostics{"Check": check.Diagnostics, "Discover": disc.Diagnostics} {
				var first *sdk.Diagnostic
				for i, d := range diags {
					if d.Severity == sdk.SeverityError {
						first = &diags[i]
						break
					}
				}
				switch {
				case tt.summary == "" && first != nil:
					t.Fatalf("%s rejected a working config: %+v", what, diags)
				case tt.summary == "" && len(diags) > 0:
					t.Errorf("%s: unexpected diagnostics %+v", what, diags)
				case tt.summary != "" && first == nil:
					t.Fatalf("%s accepted a bad config: %+v", what, diags)
				case first != nil && (first.Attribute != tt.attribute || !strings.Contains(first.Summary, tt.summary)):
					t.Fatalf("%s: first error %+v, want attribute %q and a summary containing %q", what, *first, tt.attribute, tt.summary)
				}
			}
			if tt.summary != "" {
				return
			}
			if len(disc.Objects) != 1 {
				t.Fatalf("Discover: %d objects", len(disc.Objects))
			}
			o := disc.Objects[0]
			name, soft := tt.deleted.(string)
			if o.Deletes != soft || o.Incremental != !tt.full {
				t.Errorf("object: deletes %v, incremental %v; want deletes %v, incremental %v", o.Deletes, o.Incremental, soft, !tt.full)
			}
			for _, f := range o.Fields {
				if f.Name == name && (f.Required || !strings.Contains(f.Description, "soft-delete column")) {
					t.Errorf("field %+v: want not required, described as the soft-delete column", f)
				}
			}
		})
	}
}

// softTable is a table with a soft-delete column del of type typ.
func softTable(typ string) string {
	return fmt.Sprintf(`CREATE TABLE ev (id bigint PRIMARY KEY, v text, updated_at timestamptz, del %s)`, typ)
}

// softTypes are the soft-delete column types the read and write tests run
// on, with the SQL values of a deleted and a live row.
var softTypes = []struct {
	name, typ, deleted, live string
}{
	{"timestamptz", "timestamptz", "'2025-02-01 00:00:00+00'", "NULL"},
	{"timestamp", "timestamp", "'2025-02-01 00:00:00'", "NULL"},
	{"boolean", "boolean", "true", "false"},
}

// deletedIDs returns the keys of soft-deleted rows of ev, as the database
// sees them.
func deletedIDs(t testing.TB, db *sqlx.DB, typ string) map[string]bool {
	t.Helper()
	cond := "del IS NOT NULL"
	if typ == "boolean" {
		cond = "del IS TRUE"
	}
	var keys []string
	if err := db.Select(&keys, `SELECT id::text AS k FROM ev WHERE `+cond); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// TestSoftDeleteRead reads a table with soft-deleted rows (sharing
// timestamps with live ones, some with a NULL updated-at) in small batches:
// deleted rows come as Deleted records with their fields and updated-at, in
// the usual order, and resuming from every checkpoint gives exactly the rest
// with the same flags. A soft delete (and an un-delete) that bumps
// updated_at is seen by the next incremental read; one that does not is not.
// Full-scan reads report deletes too; without deleted_column nothing is
// Deleted.
func TestSoftDeleteRead(t *testing.T) {
	t.Parallel()
	for _, st := range softTypes {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			// Every fourth row deleted; a NULL flag (live) on a boolean
			// column for every fifth; every sixth row without updated_at.
			url, db := newDB(t, softTable(st.typ),
				fmt.Sprintf(`INSERT INTO ev SELECT i, 'v' || i,
					CASE WHEN i %% 6 = 0 THEN NULL ELSE timestamptz '2025-03-01 10:00:00+00' + (i %% 3) * interval '1 microsecond' END,
					CASE WHEN i %% 4 = 0 THEN %s WHEN i %% 5 = 0 THEN NULL ELSE %s END::%s
				 FROM generate_series(1, 60) AS i`, st.deleted, st.live, st.typ),
			)
			c := newConn(t)
			cfg := config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "updated_at_column": "updated_at", "deleted_column": "del"})
			deleted := deletedIDs(t, db, st.typ)
			if len(deleted) != 15 {
				t.Fatalf("%d deleted rows, want 15", len(deleted))
			}

			full := readOK(t, c, cfg, "ev", nil, 7)
			var want []string
			if err := db.Select(&want, `SELECT id::text AS k FROM ev ORDER BY COALESCE(updated_at, '-infinity'), id`); err != nil {
				t.Fatal(err)
			}
			if got := ids(full.records); !slices.Equal(got, want) {
				t.Fatalf("ids in order:\n got %v\nwant %v", got, want)
			}
			for _, r := range full.records {
				if r.Deleted != deleted[r.ID] {
					t.Errorf("record %s: Deleted %v, want %v", r.ID, r.Deleted, deleted[r.ID])
				}
				var row struct {
					ID int64  `json:"id"`
					V  string `json:"v"`
				}
				if err := json.Unmarshal(r.Fields, &row); err != nil || fmt.Sprint(row.ID) != r.ID || row.V != "v"+r.ID || !strings.Contains(string(r.Fields), `"del":`) {
					t.Errorf("record %s: fields %s (%v), want the whole row", r.ID, r.Fields, err)
				}
				id, _ := strconv.Atoi(r.ID)
				if r.UpdatedAt.IsZero() != (id%6 == 0) {
					t.Errorf("record %s: UpdatedAt %v", r.ID, r.UpdatedAt)
				}
			}
			flags := func(recs []sdk.Record) []string {
				out := make([]string, len(recs))
				for i, r := range recs {
					out[i] = fmt.Sprintf("%s:%v", r.ID, r.Deleted)
				}
				return out
			}
			for i, cp := range full.checkpoints {
				rest := readOK(t, c, cfg, "ev", cp, 7)
				if got, want := flags(rest.records), flags(full.records[full.ends[i]:]); !slices.Equal(got, want) {
					t.Fatalf("resume from checkpoint %d %s:\n got %v\nwant %v", i, cp, got, want)
				}
			}
			last := full.checkpoints[len(full.checkpoints)-1]

			// The app soft-deletes 3 and un-deletes 4, bumping updated_at:
			// the next read reports both. It soft-deletes 5 without bumping
			// updated_at: incremental reads do not see that.
			mustExec(t, db, fmt.Sprintf(`UPDATE ev SET del = %s, updated_at = now() WHERE id = 3`, st.deleted))
			mustExec(t, db, fmt.Sprintf(`UPDATE ev SET del = %s, updated_at = now() WHERE id = 4`, st.live))
			mustExec(t, db, fmt.Sprintf(`UPDATE ev SET del = %s WHERE id = 5`, st.deleted))
			changed := readOK(t, c, cfg, "ev", last, 1)
			if got := flags(changed.records); !slices.Equal(got, []string{"3:true", "4:false"}) {
				t.Fatalf("read after soft-deleting 3 and un-deleting 4: %v", got)
			}
			if again := readOK(t, c, cfg, "ev", changed.checkpoints[len(changed.checkpoints)-1], 1); len(again.records) != 0 {
				t.Fatalf("read from the newest checkpoint: %v", flags(again.records))
			}

			// Full scans report deletes too, in key order.
			scan := readOK(t, c, config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "deleted_column": "del"}), "ev", nil, 9)
			deleted = deletedIDs(t, db, st.typ)
			if len(scan.records) != 60 {
				t.Fatalf("full scan: %d records", len(scan.records))
			}
			for _, r := range scan.records {
				if r.Deleted != deleted[r.ID] {
					t.Errorf("full scan, record %s: Deleted %v, want %v", r.ID, r.Deleted, deleted[r.ID])
				}
			}
			// Without deleted_column, nothing is reported deleted.
			for _, r := range readOK(t, c, config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "updated_at_column": "updated_at"}), "ev", nil, 0).records {
				if r.Deleted {
					t.Fatalf("without deleted_column, record %s is Deleted", r.ID)
				}
			}
		})
	}
}

// TestSoftDeleteWrite checks deletes and upserts with deleted_column: a
// delete sets the column and bumps updated_at (an incremental read from an
// earlier checkpoint sees the row as deleted), deleting again or deleting a
// missing key is unchanged, an upsert un-deletes (even one carrying only the
// key), a record carrying the column sets it, and a new row is live (false
// in a NOT NULL boolean without default).
func TestSoftDeleteWrite(t *testing.T) {
	t.Parallel()
	for _, st := range append(softTypes, struct{ name, typ, deleted, live string }{"boolean not null", "boolean NOT NULL", "true", "false"}) {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			url, db := newDB(t, softTable(st.typ), `ALTER TABLE ev ALTER COLUMN v SET DEFAULT 'default v'`)
			c := newConn(t)
			cfg := config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "updated_at_column": "updated_at", "deleted_column": "del"})
			typ := strings.Fields(st.typ)[0]
			stamps := func() map[string]time.Time {
				var rows []struct {
					K string    `db:"k"`
					U time.Time `db:"u"`
				}
				if err := db.Select(&rows, `SELECT id::text AS k, updated_at AS u FROM ev`); err != nil {
					t.Fatal(err)
				}
				out := map[string]time.Time{}
				for _, r := range rows {
					out[r.K] = r.U
				}
				return out
			}
			flags := func(recs []sdk.Record) []string {
				out := make([]string, len(recs))
				for i, r := range recs {
					out[i] = fmt.Sprintf("%s:%v", r.ID, r.Deleted)
				}
				slices.Sort(out)
				return out
			}

			resp := write(t, c, cfg, "ev", rec(`{"id": 1, "v": "one"}`), rec(`{"id": 2, "v": "two"}`), rec(`{"id": 3, "v": "three"}`))
			if got := summary(resp.Results); !slices.Equal(got, []string{"created 1", "created 2", "created 3"}) {
				t.Fatalf("create: %v", got)
			}
			if d := deletedIDs(t, db, typ); len(d) != 0 {
				t.Fatalf("new rows deleted: %v", d)
			}
			cp0 := readOK(t, c, cfg, "ev", nil, 0).checkpoints[0]
			before := stamps()

			resp = write(t, c, cfg, "ev",
				sdk.WriteRecord{ID: "1", Delete: true},
				sdk.WriteRecord{Fields: json.RawMessage(`{"id": 2}`), Delete: true},
				sdk.WriteRecord{ID: "99", Delete: true},
			)
			if got := summary(resp.Results); !slices.Equal(got, []string{"deleted 1", "deleted 2", "unchanged 99"}) {
				t.Fatalf("deletes: %v", got)
			}
			for i, r := range resp.Results {
				if r.Fields != nil {
					t.Errorf("delete result %d has fields %s", i, r.Fields)
				}
			}
			if d := deletedIDs(t, db, typ); !d["1"] || !d["2"] || len(d) != 2 {
				t.Fatalf("deleted rows %v, want 1 and 2 (kept, flagged)", d)
			}
			after := stamps()
			if !after["1"].After(before["1"]) || !after["2"].After(before["2"]) || !after["3"].Equal(before["3"]) {
				t.Fatalf("updated_at %v -> %v: want 1 and 2 bumped, 3 kept", before, after)
			}
			res := readOK(t, c, cfg, "ev", cp0, 0)
			if got := flags(res.records); !slices.Equal(got, []string{"1:true", "2:true"}) {
				t.Fatalf("incremental read after the deletes: %v", got)
			}
			for _, r := range res.records {
				if !r.UpdatedAt.Equal(after[r.ID]) {
					t.Errorf("record %s: UpdatedAt %v, want %v", r.ID, r.UpdatedAt, after[r.ID])
				}
			}
			cp1 := res.checkpoints[len(res.checkpoints)-1]

			// Deleting again changes nothing, not even updated_at.
			var delBefore string
			if err := db.Get(&delBefore, `SELECT del::text FROM ev WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			resp = write(t, c, cfg, "ev", sdk.WriteRecord{ID: "1", Delete: true})
			if got := summary(resp.Results); !slices.Equal(got, []string{"unchanged 1"}) {
				t.Fatalf("second delete: %v", got)
			}
			var delAfter string
			if err := db.Get(&delAfter, `SELECT del::text FROM ev WHERE id = 1`); err != nil || delAfter != delBefore || !stamps()["1"].Equal(after["1"]) {
				t.Fatalf("second delete moved del %s -> %s (%v) or updated_at", delBefore, delAfter, err)
			}
			if res := readOK(t, c, cfg, "ev", cp1, 0); len(res.records) != 0 {
				t.Fatalf("read after a no-op delete: %v", flags(res.records))
			}

			// Upserts un-delete: with the same values, with only the key.
			resp = write(t, c, cfg, "ev", rec(`{"id": 1, "v": "one"}`), rec(`{"id": 2}`), rec(`{"id": 3, "v": "three"}`))
			if got := summary(resp.Results); !slices.Equal(got, []string{"updated 1", "updated 2", "unchanged 3"}) {
				t.Fatalf("upserts of deleted rows: %v", got)
			}
			if d := deletedIDs(t, db, typ); len(d) != 0 {
				t.Fatalf("rows still deleted after upserts: %v", d)
			}
			rows := rowsAsJSON(t, db, "ev", "id")
			for i, r := range resp.Results {
				if string(r.Fields) != rows[i] {
					t.Errorf("result %d: fields %s, want the row %s", i, r.Fields, rows[i])
				}
			}
			res = readOK(t, c, cfg, "ev", cp1, 0)
			if got := flags(res.records); !slices.Equal(got, []string{"1:false", "2:false"}) {
				t.Fatalf("incremental read after un-deleting: %v", got)
			}
			resp = write(t, c, cfg, "ev", rec(`{"id": 1, "v": "one"}`), rec(`{"id": 2}`))
			if got := summary(resp.Results); !slices.Equal(got, []string{"unchanged 1", "unchanged 2"}) {
				t.Fatalf("upserts of live rows: %v", got)
			}

			// A record carrying the column sets it; a new row is live.
			value := `"2025-04-01T00:00:00Z"`
			if typ == "boolean" {
				value = "true"
			}
			resp = write(t, c, cfg, "ev", rec(`{"id": 3, "del": `+value+`}`), rec(`{"id": 4}`))
			if got := summary(resp.Results); !slices.Equal(got, []string{"updated 3", "created 4"}) {
				t.Fatalf("explicit del and a new row: %v", got)
			}
			if d := deletedIDs(t, db, typ); !d["3"] || len(d) != 1 {
				t.Fatalf("deleted rows %v, want 3", d)
			}
			// The column's default (NULL), or false for a NOT NULL boolean
			// without one.
			live := `"del":null`
			if strings.HasSuffix(st.typ, "NOT NULL") {
				live = `"del":false`
			}
			if !strings.Contains(string(resp.Results[1].Fields), live) {
				t.Errorf("new row: fields %s, want %s", resp.Results[1].Fields, live)
			}
			if !strings.Contains(string(resp.Results[1].Fields), `"v":"default v"`) {
				t.Errorf("new row: fields %s, want the column default", resp.Results[1].Fields)
			}
		})
	}
}

// TestSoftDeleteBatchOrder checks several records of one key in a batch
// with soft deletes: they apply as if written one after the other, the row
// being kept, so upserts before a delete are written too.
func TestSoftDeleteBatchOrder(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, softTable("timestamptz"), `ALTER TABLE ev ADD COLUMN n integer`)
	c := newConn(t)
	cfg := config(t, map[string]any{"url": url, "table": "ev", "primary_key": "id", "updated_at_column": "updated_at", "deleted_column": "del"})
	write(t, c, cfg, "ev", rec(`{"id": 1, "v": "one"}`), rec(`{"id": 2, "v": "two"}`), rec(`{"id": 3, "v": "three"}`))
	write(t, c, cfg, "ev", sdk.WriteRecord{ID: "3", Delete: true})

	resp := write(t, c, cfg, "ev",
		// Key 1: upsert then delete: written, then deleted.
		rec(`{"id": 1, "n": 1}`),
		sdk.WriteRecord{ID: "1", Delete: true},
		// Key 2: delete then upsert: the upsert un-deletes; the delete is
		// superseded and shares its result.
		sdk.WriteRecord{ID: "2", Delete: true},
		rec(`{"id": 2, "v": "two again"}`),
		// Key 3 (deleted): upsert, delete, upsert: both upserts merged,
		// live.
		rec(`{"id": 3, "n": 3}`),
		sdk.WriteRecord{ID: "3", Delete: true},
		rec(`{"id": 3, "v": "trois"}`),
		// Key 5 (new): created, then deleted.
		rec(`{"id": 5, "v": "five"}`),
		sdk.WriteRecord{ID: "5", Delete: true},
		// Key 6 (absent): nothing to delete.
		sdk.WriteRecord{ID: "6", Delete: true},
	)
	want := []string{"updated 1", "deleted 1", "updated 2", "updated 2", "updated 3", "updated 3", "updated 3", "created 5", "deleted 5", "unchanged 6"}
	if got := summary(resp.Results); !slices.Equal(got, want) {
		t.Fatalf("results:%s\nwant:%s", joinLines(got), joinLines(want))
	}
	if msg := resp.Results[2].Message; !strings.Contains(msg, "superseded by a later upsert") {
		t.Errorf("superseded delete: message %q", msg)
	}
	var got []string
	if err := db.Select(&got, `SELECT concat_ws('|', id, v, n, del IS NOT NULL) FROM ev ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1|one|1|t", "2|two again|f", "3|trois|3|f", "5|five|t"}; !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}
