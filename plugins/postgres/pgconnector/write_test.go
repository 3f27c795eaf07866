package pgconnector_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

const peopleTable = `CREATE TABLE people (
	id bigint PRIMARY KEY,
	name text NOT NULL,
	email text UNIQUE,
	age integer CHECK (age >= 0),
	tags text[],
	meta jsonb,
	doc json,
	updated_at timestamptz
)`

func peopleConfig(t *testing.T, url string) json.RawMessage {
	return config(t, map[string]any{"url": url, "table": "people", "primary_key": "id", "updated_at_column": "updated_at"})
}

// TestWriteActions checks created, updated and unchanged, that writing the
// same batch twice changes nothing, and that updated_at is set on insert and
// on a real change only.
func TestWriteActions(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable)
	c := newConn(t)
	cfg := peopleConfig(t, url)
	batch := func() []sdk.WriteRecord {
		return []sdk.WriteRecord{
			rec(`{"id": 1, "name": "Ann", "tags": ["a", "b"], "meta": {"k": [1, 2]}, "doc": {"b": 1,  "a": 2}}`),
			rec(`{"id": 2, "name": "Bob", "age": 40}`),
			rec(`{"id": "3", "name": "Cy", "email": null}`),
		}
	}
	resp := write(t, c, cfg, "people", batch()...)
	if got, want := summary(resp.Results), []string{"created 1", "created 2", "created 3"}; !slices.Equal(got, want) {
		t.Fatalf("first write: %v, want %v", got, want)
	}
	stamps := func() map[string]time.Time {
		out := map[string]time.Time{}
		rows, err := db.Query(`SELECT id::text, updated_at FROM people`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var u *time.Time
			if err := rows.Scan(&id, &u); err != nil {
				t.Fatal(err)
			}
			if u == nil {
				t.Fatalf("row %s: updated_at not set", id)
			}
			out[id] = *u
		}
		return out
	}
	before := stamps()

	resp = write(t, c, cfg, "people", batch()...)
	if got, want := summary(resp.Results), []string{"unchanged 1", "unchanged 2", "unchanged 3"}; !slices.Equal(got, want) {
		t.Fatalf("same batch again: %v, want %v", got, want)
	}
	b := batch()
	b[1] = rec(`{"id": 2, "name": "Bob", "age": 41}`)
	resp = write(t, c, cfg, "people", b...)
	if got, want := summary(resp.Results), []string{"unchanged 1", "updated 2", "unchanged 3"}; !slices.Equal(got, want) {
		t.Fatalf("one change: %v, want %v", got, want)
	}
	after := stamps()
	if !after["1"].Equal(before["1"]) || !after["3"].Equal(before["3"]) {
		t.Errorf("updated_at of unchanged rows moved: %v -> %v", before, after)
	}
	if !after["2"].After(before["2"]) {
		t.Errorf("updated_at of the updated row did not move: %v -> %v", before["2"], after["2"])
	}
	// A record carrying updated_at sets it as given.
	resp = write(t, c, cfg, "people", rec(`{"id": 1, "name": "Ann", "updated_at": "2020-02-02T00:00:00Z"}`))
	if got := summary(resp.Results); !slices.Equal(got, []string{"updated 1"}) {
		t.Fatalf("explicit updated_at: %v", got)
	}
	if u := stamps()["1"]; !u.Equal(time.Date(2020, 2, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("explicit updated_at stored as %v", u)
	}
	rows := rowsAsJSON(t, db, "people", "id")
	if !strings.Contains(rows[0], `"tags":["a","b"],"meta":{"k": [1, 2]},"doc":{"b": 1,  "a": 2}`) {
		t.Errorf("row 1 = %s: arrays, jsonb and json not stored as given", rows[0])
	}
}

// TestWriteRejectsOnlyBadRecords writes batches with one bad record each:
// only that record is rejected, with PostgreSQL's (or the connector's)
// message, and the others are written.
func TestWriteRejectsOnlyBadRecords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bad  sdk.WriteRecord
		want string // in the rejection message
	}{
		{"text into integer", rec(`{"id": 3, "name": "x", "age": "old"}`), `invalid input syntax for type integer: "old"`},
		{"fraction into integer", rec(`{"id": 3, "name": "x", "age": 1.5}`), "invalid input syntax for type integer"},
		{"not null", rec(`{"id": 3, "age": 5}`), `null value in column "name"`},
		{"explicit null into not null", rec(`{"id": 3, "name": null}`), `null value in column "name"`},
		{"check constraint", rec(`{"id": 3, "name": "x", "age": -1}`), `violates check constraint "people_age_check"`},
		{"unique violation", rec(`{"id": 3, "name": "x", "email": "a@example.com"}`), "duplicate key value violates unique constraint"},
		{"invalid json value", rec(`{"id": 3, "name": "x", "tags": "not an array"}`), "malformed array literal"},
		{"unknown column", rec(`{"id": 3, "name": "x", "colour": "red", "size": 2}`), `unknown column "colour", "size"`},
		{"key not an integer", rec(`{"id": "three", "name": "x"}`), `invalid key "three"`},
		{"key null", rec(`{"id": null, "name": "x"}`), `key field "id": is null`},
		{"key an object", rec(`{"id": {"v": 3}, "name": "x"}`), "not an object"},
		{"no key", rec(`{"name": "x"}`), `no key: set the record's ID or its field "id"`},
		{"id and field disagree", sdk.WriteRecord{ID: "4", Fields: json.RawMessage(`{"id": 3, "name": "x"}`)}, "disagree"},
		{"fields not an object", rec(`["id", 3]`), "must be a JSON object"},
		{"fields missing", sdk.WriteRecord{ID: "3"}, "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, db := newDB(t, peopleTable)
			c := newConn(t)
			cfg := peopleConfig(t, url)
			batch := []sdk.WriteRecord{
				rec(`{"id": 1, "name": "One", "email": "a@example.com"}`),
				rec(`{"id": 2, "name": "Two"}`),
				tt.bad,
				rec(`{"id": 4, "name": "Four"}`),
				rec(`{"id": 5, "name": "Five"}`),
			}
			resp := write(t, c, cfg, "people", batch...)
			for i, r := range resp.Results {
				if i == 2 {
					if r.Status != sdk.WriteRejected || !strings.Contains(r.Message, tt.want) {
						t.Errorf("bad record: %v %q, want rejected with a message containing %q", r.Status, r.Message, tt.want)
					}
					continue
				}
				if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated {
					t.Errorf("record %d: %v %v %q, want created", i, r.Status, r.Action, r.Message)
				}
			}
			var got []string
			if err := db.Select(&got, `SELECT id::text AS k FROM people ORDER BY people.id`); err != nil {
				t.Fatal(err)
			}
			if want := []string{"1", "2", "4", "5"}; !slices.Equal(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
		})
	}
}

// TestWriteManyBadRecords checks the bisection on a larger batch: every
// tenth record is bad, the others are all written.
func TestWriteManyBadRecords(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable)
	c := newConn(t)
	var batch []sdk.WriteRecord
	for i := range 500 {
		age := "1"
		if i%10 == 7 {
			age = `"bad"`
		}
		batch = append(batch, rec(`{"id": `+itoa(i)+`, "name": "n", "age": `+age+`}`))
	}
	resp := write(t, c, peopleConfig(t, url), "people", batch...)
	for i, r := range resp.Results {
		wantOK := i%10 != 7
		if (r.Status == sdk.WriteOK) != wantOK || (wantOK && r.ID != itoa(i)) {
			t.Fatalf("record %d: %v %v id %q %q", i, r.Status, r.Action, r.ID, r.Message)
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM people`); err != nil || n != 450 {
		t.Fatalf("%d rows (%v), want 450", n, err)
	}
}

// TestWritePartialColumns checks that a record writes only the columns it
// carries: the others keep their values (and records with different column
// sets in one batch do not null each other's columns).
func TestWritePartialColumns(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable)
	c := newConn(t)
	cfg := peopleConfig(t, url)
	write(t, c, cfg, "people",
		rec(`{"id": 1, "name": "Ann", "email": "ann@example.com", "age": 30}`),
		rec(`{"id": 2, "name": "Bob", "email": "bob@example.com", "age": 40}`),
	)
	resp := write(t, c, cfg, "people",
		rec(`{"id": 1, "age": 31}`),
		rec(`{"id": 2, "email": "robert@example.com"}`),
		sdk.WriteRecord{ID: "3", Fields: json.RawMessage(`{"name": "Cy"}`)},
	)
	if got, want := summary(resp.Results), []string{"updated 1", "updated 2", "created 3"}; !slices.Equal(got, want) {
		t.Fatalf("partial writes: %v, want %v", got, want)
	}
	var got []string
	if err := db.Select(&got, `SELECT concat_ws('|', id, name, email, age) FROM people ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1|Ann|ann@example.com|31", "2|Bob|robert@example.com|40", "3|Cy"}; !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}

// TestWriteDeletesAndDuplicates checks deletes (by ID or key field, present
// or absent) and several records of one key in a batch, which apply as if
// written one after the other.
func TestWriteDeletesAndDuplicates(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable)
	c := newConn(t)
	cfg := peopleConfig(t, url)
	write(t, c, cfg, "people",
		rec(`{"id": 1, "name": "One"}`), rec(`{"id": 2, "name": "Two"}`), rec(`{"id": 3, "name": "Three"}`), rec(`{"id": 4, "name": "Four"}`))

	resp := write(t, c, cfg, "people",
		sdk.WriteRecord{ID: "1", Delete: true},
		sdk.WriteRecord{Fields: json.RawMessage(`{"id": 2}`), Delete: true},
		sdk.WriteRecord{ID: "99", Delete: true},
		// Key 3: two partial upserts merge, the later field winning.
		rec(`{"id": 3, "name": "Trois", "age": 3}`),
		rec(`{"id": 3, "email": "three@example.com", "age": 33}`),
		// Key 4: upsert then delete: deleted.
		rec(`{"id": 4, "name": "Vier"}`),
		sdk.WriteRecord{ID: "4", Delete: true},
		// Key 5: delete (absent) then upsert: created.
		sdk.WriteRecord{ID: "5", Delete: true},
		rec(`{"id": 5, "name": "Five"}`),
		// Key 6: the same record twice.
		rec(`{"id": 6, "name": "Six"}`),
		rec(`{"id": "006", "name": "Six"}`),
	)
	want := []string{"deleted 1", "deleted 2", "unchanged 99", "updated 3", "updated 3", "deleted 4", "deleted 4", "unchanged 5", "created 5", "created 6", "created 6"}
	if got := summary(resp.Results); !slices.Equal(got, want) {
		t.Fatalf("results:%s\nwant:%s", joinLines(got), joinLines(want))
	}
	var got []string
	if err := db.Select(&got, `SELECT concat_ws('|', id, name, email, age) FROM people ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"3|Trois|three@example.com|33", "5|Five", "6|Six"}; !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}

// TestWriteRetryable checks that an unreachable database makes every record
// retryable, with a delay, and without the password in the messages.
func TestWriteRetryable(t *testing.T) {
	t.Parallel()
	c := newConn(t)
	cfg := config(t, map[string]any{"url": "postgres://postgres:" + secret + "@127.0.0.1:1/db?sslmode=disable", "table": "people", "primary_key": "id"})
	resp := write(t, c, cfg, "people", rec(`{"id": 1, "name": "x"}`), sdk.WriteRecord{ID: "2", Delete: true})
	for i, r := range resp.Results {
		if r.Status != sdk.WriteRetryable || r.RetryAfter <= 0 || r.Message == "" || strings.Contains(r.Message, "Pa55") {
			t.Errorf("result %d: %v after %v %q, want retryable with a delay and a redacted message", i, r.Status, r.RetryAfter, r.Message)
		}
	}
}

// TestWriteTableProblems checks that records are rejected with a
// diagnostic when the config does not fit the table.
func TestWriteTableProblems(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t, peopleTable)
	c := newConn(t)
	for name, cfg := range map[string]json.RawMessage{
		"missing table":  config(t, map[string]any{"url": url, "table": "nobody", "primary_key": "id"}),
		"key not unique": config(t, map[string]any{"url": url, "table": "people", "primary_key": "name"}),
		"unknown key":    config(t, map[string]any{"url": url, "table": "people", "primary_key": "id", "x": 1}),
	} {
		table := "people"
		if name == "missing table" {
			table = "nobody"
		}
		resp := write(t, c, cfg, table, rec(`{"id": 1, "name": "x"}`))
		if !resp.Diagnostics.HasError() || resp.Results[0].Status != sdk.WriteRejected {
			t.Errorf("%s: %+v, want a rejected record and an error diagnostic", name, resp)
		}
	}
	resp := write(t, c, peopleConfig(t, url), "other", rec(`{"id": 1, "name": "x"}`))
	if resp.Results[0].Status != sdk.WriteRejected || !strings.Contains(resp.Results[0].Message, `unknown object "other"`) {
		t.Errorf("unknown object: %+v", resp.Results[0])
	}
}

// TestWriteNamesAndTypes writes to a table whose names need quoting, with a
// uuid key given by ID in upper case, identity and generated columns, and
// reads the rows back.
func TestWriteNamesAndTypes(t *testing.T) {
	t.Parallel()
	url, db := newDB(t,
		`CREATE SCHEMA "Sales.EU"`,
		`CREATE TABLE "Sales.EU"."Order ""Lines""" (
			"Line Id" uuid PRIMARY KEY,
			"select" text,
			qty integer NOT NULL DEFAULT 1,
			price numeric(10,2),
			seq bigint GENERATED ALWAYS AS IDENTITY,
			total numeric GENERATED ALWAYS AS (qty * price) STORED,
			"Changed" timestamp
		)`,
	)
	c := newConn(t)
	table := `"Sales.EU"."Order ""Lines"""`
	cfg := config(t, map[string]any{"url": url, "table": table, "primary_key": "Line Id", "updated_at_column": "Changed"})
	if resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %+v %v", resp, err)
	}
	const id = "0E3C1D52-8B6F-4A55-9F7A-3E1A2B4C5D6E"
	resp := write(t, c, cfg, table,
		sdk.WriteRecord{ID: id, Fields: json.RawMessage(`{"select": "a", "price": 2.5, "qty": 4}`)},
		rec(`{"Line Id": "{11111111-2222-3333-4444-555555555555}", "price": "1.10", "seq": 77, "total": 1000}`),
	)
	want := []string{"created " + strings.ToLower(id), "created 11111111-2222-3333-4444-555555555555"}
	if got := summary(resp.Results); !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	// Again: the generated column is ignored, 1.1 is 1.10 in a numeric(10,2)
	// and 2.50 is 2.5, so nothing changes; then a real change.
	resp = write(t, c, cfg, table,
		sdk.WriteRecord{ID: id, Fields: json.RawMessage(`{"select": "a", "price": 2.50, "qty": 4, "total": 5}`)},
		rec(`{"Line Id": "11111111-2222-3333-4444-555555555555", "price": 1.1}`),
	)
	want = []string{"unchanged " + strings.ToLower(id), "unchanged 11111111-2222-3333-4444-555555555555"}
	if got := summary(resp.Results); !slices.Equal(got, want) {
		t.Fatalf("second write: results %v, want %v", got, want)
	}
	resp = write(t, c, cfg, table, sdk.WriteRecord{ID: strings.ToLower(id), Fields: json.RawMessage(`{"select": "b"}`)})
	if got := summary(resp.Results); !slices.Equal(got, []string{"updated " + strings.ToLower(id)}) {
		t.Fatalf("third write: results %v", got)
	}
	res := readOK(t, c, cfg, table, nil, 1)
	if len(res.records) != 2 {
		t.Fatalf("read %d records", len(res.records))
	}
	// Read in (Changed, key) order: the row updated last comes last.
	if res.records[1].ID != strings.ToLower(id) {
		t.Fatalf("read ids %v, want %s last", ids(res.records), strings.ToLower(id))
	}
	var row map[string]any
	if err := json.Unmarshal(res.records[1].Fields, &row); err != nil {
		t.Fatal(err)
	}
	if row["select"] != "b" || row["total"] != 10.0 || row["qty"] != 4.0 {
		t.Fatalf("row read back: %s", res.records[1].Fields)
	}
	var seq []int
	if err := db.Select(&seq, `SELECT seq FROM "Sales.EU"."Order ""Lines""" ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seq, 77) {
		t.Fatalf("identity ALWAYS column: %v, want the written 77 kept on insert", seq)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestConcurrentWrites runs writers with overlapping keys and a reader at
// the same time on one connector: nothing fails (a retryable result is
// retried), and every key ends up written once.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable)
	c := newConn(t)
	cfg := peopleConfig(t, url)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for b := range 10 {
				var batch []sdk.WriteRecord
				for i := range 200 {
					id := (w*100 + b*37 + i*7) % 1500 // overlaps other writers
					batch = append(batch, sdk.WriteRecord{Ref: itoa(i), Fields: json.RawMessage(`{"id": ` + itoa(id) + `, "name": "w` + itoa(w) + `", "age": ` + itoa(b) + `}`)})
				}
				for attempt := 0; ; attempt++ {
					resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "people", Records: batch})
					if err != nil {
						t.Error(err)
						return
					}
					retry := false
					for _, r := range resp.Results {
						switch {
						case r.Status == sdk.WriteRetryable && attempt < 5:
							retry = true
						case r.Status != sdk.WriteOK:
							t.Errorf("writer %d batch %d: %v %q", w, b, r.Status, r.Message)
							return
						}
					}
					if !retry {
						break
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			res := read(t, c, cfg, "people", nil, 100)
			if res.diags.HasError() {
				t.Errorf("read: %s", res.diags.Error())
			}
		}
	})
	wg.Wait()
	want := map[int]bool{}
	for w := range 4 {
		for b := range 10 {
			for i := range 200 {
				want[(w*100+b*37+i*7)%1500] = true
			}
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM people`); err != nil || n != len(want) {
		t.Fatalf("%d rows (%v), want %d", n, err, len(want))
	}
}

// TestWriteDeleteRejected checks that a delete refused by a foreign key is
// rejected alone.
func TestWriteDeleteRejected(t *testing.T) {
	t.Parallel()
	url, db := newDB(t, peopleTable,
		`CREATE TABLE orders (id int PRIMARY KEY, person bigint REFERENCES people (id))`,
		`INSERT INTO people (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')`,
		`INSERT INTO orders VALUES (10, 2)`,
	)
	c := newConn(t)
	resp := write(t, c, peopleConfig(t, url), "people",
		sdk.WriteRecord{ID: "1", Delete: true},
		sdk.WriteRecord{ID: "2", Delete: true},
		sdk.WriteRecord{ID: "3", Delete: true},
		rec(`{"id": 4, "name": "d"}`),
	)
	got := summary(resp.Results)
	if got[0] != "deleted 1" || got[2] != "deleted 3" || got[3] != "created 4" || !strings.Contains(got[1], `rejected: update or delete on table "people" violates foreign key constraint`) {
		t.Fatalf("results:%s", joinLines(got))
	}
	var left []string
	if err := db.Select(&left, `SELECT id::text AS k FROM people ORDER BY people.id`); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []string{"2", "4"}) {
		t.Fatalf("rows %v, want [2 4]", left)
	}
}

// TestWriteReturnsFields checks that OK results of upserts carry the row as
// stored, exactly as a read renders it: column defaults, values normalised
// by a trigger and by the column type, generated columns. Unchanged rows
// carry it too; deletes and rejected records do not.
func TestWriteReturnsFields(t *testing.T) {
	t.Parallel()
	url, db := newDB(t,
		`CREATE TABLE prices (
			id int PRIMARY KEY,
			sku text NOT NULL,
			price numeric(10,2),
			currency text NOT NULL DEFAULT 'EUR',
			created timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00',
			tags jsonb,
			total numeric GENERATED ALWAYS AS (price * 2) STORED,
			updated_at timestamptz
		)`,
		`CREATE FUNCTION norm() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.sku := upper(trim(NEW.sku)); RETURN NEW; END $$`,
		`CREATE TRIGGER prices_norm BEFORE INSERT OR UPDATE ON prices FOR EACH ROW EXECUTE FUNCTION norm()`,
	)
	c := newConn(t)
	cfg := config(t, map[string]any{"url": url, "table": "prices", "primary_key": "id", "updated_at_column": "updated_at"})
	stored := func() map[string]string {
		var rows []struct {
			K string `db:"k"`
			J string `db:"j"`
		}
		if err := db.Select(&rows, `SELECT id::text AS k, row_to_json(p.*)::text AS j FROM prices AS p`); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.K] = r.J
		}
		return out
	}
	check := func(what string, resp *sdk.WriteResponse, want []string) {
		t.Helper()
		if got := summary(resp.Results); !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
		rows := stored()
		for i, r := range resp.Results {
			switch {
			case r.Status != sdk.WriteOK || r.Action == sdk.ActionDeleted:
				if r.Fields != nil {
					t.Errorf("%s: result %d (%s) has fields %s", what, i, want[i], r.Fields)
				}
			case string(r.Fields) != rows[r.ID]:
				t.Errorf("%s: result %d (%s): fields\n%s\nwant the row as stored\n%s", what, i, want[i], r.Fields, rows[r.ID])
			}
		}
	}

	batch := []sdk.WriteRecord{
		rec(`{"id": 1, "sku": " ab-1 ", "price": "1.5", "tags": {"b": 1,  "a": [2]}}`),
		rec(`{"id": 2, "sku": "cd-2", "price": 2, "currency": "USD"}`),
		rec(`{"id": 3, "sku": "ef-3", "price": "x"}`),
	}
	resp := write(t, c, cfg, "prices", batch...)
	check("first write", resp, []string{"created 1", "created 2", `rejected: invalid input syntax for type numeric: "x"`})
	f := string(resp.Results[0].Fields)
	for _, part := range []string{`"sku":"AB-1"`, `"price":1.50`, `"currency":"EUR"`, `"created":"2024-01-01T00:00:00+00:00"`, `"tags":{"a": [2], "b": 1}`, `"total":3.00`} {
		if !strings.Contains(f, part) {
			t.Errorf("row 1: fields %s, want %s (default, trigger, type normalisation)", f, part)
		}
	}
	// The same records again: unchanged (the trigger normalises the
	// proposed row too), still with the row as stored.
	resp = write(t, c, cfg, "prices", batch[:2]...)
	check("same batch again", resp, []string{"unchanged 1", "unchanged 2"})
	// Mixed: an update, an unchanged row, a new row, a delete, and two
	// records of one key sharing a result.
	resp = write(t, c, cfg, "prices",
		rec(`{"id": 1, "price": 4}`),
		rec(`{"id": 2, "sku": "CD-2"}`),
		rec(`{"id": 4, "sku": "gh"}`),
		rec(`{"id": 4, "price": 0.5}`),
		sdk.WriteRecord{ID: "3", Delete: true},
	)
	check("mixed batch", resp, []string{"updated 1", "unchanged 2", "created 4", "created 4", "unchanged 3"})
	// Fields are what a read returns.
	for _, r := range readOK(t, c, cfg, "prices", nil, 0).records {
		if rows := stored(); string(r.Fields) != rows[r.ID] {
			t.Errorf("read %s: %s, want %s", r.ID, r.Fields, rows[r.ID])
		}
	}
	if resp.Results[0].Fields == nil || string(resp.Results[2].Fields) != string(resp.Results[3].Fields) {
		t.Errorf("records of one key: fields %s and %s", resp.Results[2].Fields, resp.Results[3].Fields)
	}
}
