package pgconnector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

const contactsTable = `CREATE TABLE contacts (
	id text PRIMARY KEY,
	email text NOT NULL,
	first_name text,
	last_name text,
	phone text,
	company text,
	score integer,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// contactBatch returns n contact records starting at id start, shaped like
// the sample connector's contacts; version changes every value but the key.
func contactBatch(start, n, version int, withUpdatedAt bool) []sdk.WriteRecord {
	recs := make([]sdk.WriteRecord, n)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		id := start + i
		u := ""
		if withUpdatedAt {
			u = fmt.Sprintf(`,"updated_at":%q`, base.Add(time.Duration(id)*time.Second+time.Duration(version)*time.Hour).Format(time.RFC3339))
		}
		recs[i] = sdk.WriteRecord{
			Ref: fmt.Sprint(i),
			Fields: json.RawMessage(fmt.Sprintf(`{"id":"c_%08d","email":"first.last.%d@example.com","first_name":"First%d","last_name":"Last%d","phone":"+1-555-%03d-%04d","company":"Company %d v%d","score":%d%s}`,
				id, id, id, id, id%1000, id%10000, id%97, version, id%1000+version, u)),
		}
	}
	return recs
}

// BenchmarkWrite upserts batches of 1000 contacts: new rows (insert), the
// same rows with every value changed (update), and the same rows again
// (unchanged); then with deleted_column set, updates (whose upsert also
// un-deletes) and soft deletes of 1000 live rows. records/s counts records
// written by Write in process.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"insert", "update", "unchanged", "insert_auto_updated_at", "update_deleted_column", "soft_delete"} {
		b.Run(mode, func(b *testing.B) {
			soft := mode == "update_deleted_column" || mode == "soft_delete"
			setup := []string{contactsTable}
			if soft {
				setup = append(setup, `ALTER TABLE contacts ADD COLUMN deleted_at timestamptz`)
			}
			url, _ := newDB(b, setup...)
			c := newConn(b)
			m := map[string]any{"url": url, "table": "contacts", "primary_key": "id", "updated_at_column": "updated_at"}
			if soft {
				m["deleted_column"] = "deleted_at"
			}
			cfg := config(b, m)
			const n = 1000
			withUpdatedAt := mode != "insert_auto_updated_at"
			want := sdk.ActionCreated
			switch mode {
			case "update", "update_deleted_column":
				want = sdk.ActionUpdated
			case "unchanged":
				want = sdk.ActionUnchanged
			case "soft_delete":
				want = sdk.ActionDeleted
			}
			if mode != "insert" && mode != "insert_auto_updated_at" {
				write(b, c, cfg, "contacts", contactBatch(0, n, 0, withUpdatedAt)...)
			}
			batches := make([][]sdk.WriteRecord, 0, 64)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				start, version := 0, i+1
				if mode == "insert" || mode == "insert_auto_updated_at" {
					start = (i + 1) * n
				}
				if mode == "unchanged" {
					version = 0
				}
				batch := contactBatch(start, n, version, withUpdatedAt)
				if mode == "soft_delete" {
					// Un-delete the rows (untimed), then delete them.
					write(b, c, cfg, "contacts", batch...)
					for j := range batch {
						batch[j] = sdk.WriteRecord{Ref: batch[j].Ref, ID: fmt.Sprintf("c_%08d", j), Delete: true}
					}
				}
				batches = append(batches[:0], batch)
				b.StartTimer()
				resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "contacts", Records: batch})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range resp.Results {
					if r.Status != sdk.WriteOK || r.Action != want {
						b.Fatalf("%v %v %q, want ok %v", r.Status, r.Action, r.Message, want)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRead reads a 100,000-row table in batches of 1000, incrementally
// (on updated_at, with many ties) and as a full scan.
func BenchmarkRead(b *testing.B) {
	const rows = 100_000
	url, _ := newDB(b, contactsTable,
		`CREATE INDEX ON contacts (updated_at, id)`,
		fmt.Sprintf(`INSERT INTO contacts SELECT 'c_' || lpad(i::text, 8, '0'), 'first.last.' || i || '@example.com', 'First' || i, 'Last' || i,
			'+1-555-' || lpad((i %% 1000)::text, 3, '0') || '-' || lpad((i %% 10000)::text, 4, '0'), 'Company ' || i %% 97, i %% 1000,
			timestamptz '2025-01-01' + (i / 10) * interval '1 second'
		FROM generate_series(1, %d) AS i`, rows),
		`ANALYZE contacts`,
	)
	for _, mode := range []string{"incremental", "full_scan"} {
		b.Run(mode, func(b *testing.B) {
			c := newConn(b)
			m := map[string]any{"url": url, "table": "contacts", "primary_key": "id"}
			if mode == "incremental" {
				m["updated_at_column"] = "updated_at"
			}
			cfg := config(b, m)
			for b.Loop() {
				n := 0
				err := c.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: "contacts", BatchSize: 1000},
					sdk.ReadSinkFunc(func(_ context.Context, batch sdk.ReadBatch) error {
						if batch.Diagnostics.HasError() {
							return fmt.Errorf("diagnostics: %s", batch.Diagnostics.Error())
						}
						n += len(batch.Records)
						return nil
					}))
				if err != nil {
					b.Fatal(err)
				}
				if n != rows {
					b.Fatalf("read %d records, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
