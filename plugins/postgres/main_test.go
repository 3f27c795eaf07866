package main

// The test binary re-executes itself as the plugin (TestMain runs main when
// SYNCHRON_POSTGRES_TEST_PLUGIN is set), so the real process path is tested:
// handshake, embedded VERSION and docs, gRPC, Stop on Kill.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
	"github.com/synchron-io/synchron/sdk/testdb"
)

const pluginEnv = "SYNCHRON_POSTGRES_TEST_PLUGIN"

func TestMain(m *testing.M) {
	conformance.ServeIfPlugin(pluginEnv, main)
	os.Exit(m.Run())
}

// launch starts the plugin process and returns its client, killed when the
// test ends.
func launch(t testing.TB) *sdk.Client {
	t.Helper()
	c := conformance.LaunchSelf(t, pluginEnv)
	return c
}

func TestPluginProcess(t *testing.T) {
	t.Parallel()
	c := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	if spec.Name != "postgres" || spec.Version != "0.2.0" || !strings.Contains(spec.Docs, "# PostgreSQL table") {
		t.Fatalf("spec: name %q, version %q, docs %.40q", spec.Name, spec.Version, spec.Docs)
	}

	_, cfg := kvTable(t)
	check, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || check.Diagnostics.HasError() {
		t.Fatalf("Check: %+v, %v", check, err)
	}
	recs := make([]sdk.WriteRecord, 2000)
	for i := range recs {
		recs[i] = sdk.WriteRecord{Ref: fmt.Sprint(i), Fields: json.RawMessage(fmt.Sprintf(`{"k": %d, "v": "value %d"}`, i, i))}
	}
	resp, err := c.Write(ctx, sdk.WriteRequest{Config: cfg, Object: "kv", Records: recs})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i, r := range resp.Results {
		if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID != fmt.Sprint(i) {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	n := 0
	var last []byte
	err = c.Read(ctx, sdk.ReadRequest{Config: cfg, Object: "kv", BatchSize: 500}, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		n += len(b.Records)
		last = b.Checkpoint
		return nil
	}))
	if err != nil || n != len(recs) || len(last) == 0 {
		t.Fatalf("Read: %d records, checkpoint %s, %v", n, last, err)
	}
}

// kvTable creates the table kv in a new database and returns the database's
// URL and a config for the table.
func kvTable(t testing.TB) (string, json.RawMessage) {
	t.Helper()
	url := testdb.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE kv (k int PRIMARY KEY, v text, at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	return url, json.RawMessage(fmt.Sprintf(`{"url": %q, "table": "kv", "primary_key": "k", "updated_at_column": "at"}`, url))
}

// BenchmarkPluginWrite writes batches of 1000 new records through a real
// plugin process (gRPC over the go-plugin connection), as the host does.
func BenchmarkPluginWrite(b *testing.B) {
	c := launch(b)
	_, cfg := kvTable(b)
	const n = 1000
	i := 0
	for b.Loop() {
		b.StopTimer()
		recs := make([]sdk.WriteRecord, n)
		for j := range recs {
			k := i*n + j
			recs[j] = sdk.WriteRecord{Ref: fmt.Sprint(j), Fields: json.RawMessage(fmt.Sprintf(`{"k": %d, "v": "some value for record number %d"}`, k, k))}
		}
		i++
		b.StartTimer()
		resp, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "kv", Records: recs})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.Results {
			if r.Status != sdk.WriteOK {
				b.Fatalf("%+v", r)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
}
