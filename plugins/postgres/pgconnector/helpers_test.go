package pgconnector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/plugins/postgres/pgconnector"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// newConn returns a connector stopped when the test ends.
func newConn(t testing.TB) *pgconnector.Connector {
	t.Helper()
	c := pgconnector.New("0.1.0\n", "# PostgreSQL")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

// newDB creates an empty database, runs the setup statements in it and
// returns its URL and a handle.
func newDB(t testing.TB, setup ...string) (string, *sqlx.DB) {
	t.Helper()
	url := testdb.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range setup {
		mustExec(t, db, q)
	}
	return url, db
}

// newDBHandle opens another handle on an existing database.
func newDBHandle(t testing.TB, url string) (string, *sqlx.DB) {
	t.Helper()
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return url, db
}

func mustExec(t testing.TB, db *sqlx.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// config builds a config JSON.
func config(t testing.TB, fields map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readResult is one Read's output.
type readResult struct {
	records     []sdk.Record
	checkpoints [][]byte // checkpoint after each batch, in order
	ends        []int    // number of records read when each checkpoint was emitted
	diags       sdk.Diagnostics
}

func read(t testing.TB, c sdk.Connector, cfg json.RawMessage, object string, cursor []byte, batchSize int) readResult {
	t.Helper()
	var res readResult
	err := c.Read(context.Background(), sdk.ReadRequest{Config: cfg, Object: object, Cursor: cursor, BatchSize: batchSize},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			res.diags = append(res.diags, b.Diagnostics...)
			if batchSize > 0 && len(b.Records) > batchSize {
				t.Errorf("batch of %d records, more than the batch size %d", len(b.Records), batchSize)
			}
			res.records = append(res.records, b.Records...)
			if len(b.Records) > 0 && len(b.Checkpoint) == 0 {
				t.Errorf("batch of %d records without a checkpoint", len(b.Records))
			}
			if len(b.Checkpoint) > 0 {
				res.checkpoints = append(res.checkpoints, b.Checkpoint)
				res.ends = append(res.ends, len(res.records))
			}
			return nil
		}))
	if err != nil {
		t.Fatalf("Read(%s): %v", object, err)
	}
	return res
}

// readOK reads and fails the test on error diagnostics.
func readOK(t testing.TB, c sdk.Connector, cfg json.RawMessage, object string, cursor []byte, batchSize int) readResult {
	t.Helper()
	res := read(t, c, cfg, object, cursor, batchSize)
	if res.diags.HasError() {
		t.Fatalf("Read(%s) diagnostics: %s", object, res.diags.Error())
	}
	return res
}

func ids(recs []sdk.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// write writes records and fails the test on an error or a wrong number of
// results.
func write(t testing.TB, c sdk.Connector, cfg json.RawMessage, object string, recs ...sdk.WriteRecord) *sdk.WriteResponse {
	t.Helper()
	for i := range recs {
		if recs[i].Ref == "" {
			recs[i].Ref = fmt.Sprintf("ref-%d", i)
		}
	}
	resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: object, Records: recs})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(resp.Results) != len(recs) {
		t.Fatalf("Write: %d results for %d records", len(resp.Results), len(recs))
	}
	for i, r := range resp.Results {
		if r.Ref != recs[i].Ref {
			t.Fatalf("result %d: ref %q, want %q", i, r.Ref, recs[i].Ref)
		}
	}
	return resp
}

func rec(fields string) sdk.WriteRecord { return sdk.WriteRecord{Fields: json.RawMessage(fields)} }

// summary renders results as "status/action" or "rejected: message" lines.
func summary(results []sdk.WriteResult) []string {
	out := make([]string, len(results))
	for i, r := range results {
		switch r.Status {
		case sdk.WriteOK:
			out[i] = r.Action.String() + " " + r.ID
		default:
			out[i] = r.Status.String() + ": " + r.Message
		}
	}
	return out
}

// rowsAsJSON returns the table's rows as JSON text ordered by the key.
func rowsAsJSON(t testing.TB, db *sqlx.DB, table, orderBy string) []string {
	t.Helper()
	var out []string
	if err := db.Select(&out, fmt.Sprintf("SELECT row_to_json(x.*)::text FROM %s AS x ORDER BY %s", table, orderBy)); err != nil {
		t.Fatalf("select %s: %v", table, err)
	}
	return out
}

func joinLines(lines []string) string { return "\n\t" + strings.Join(lines, "\n\t") }
