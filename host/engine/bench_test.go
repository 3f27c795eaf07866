package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/plugins/postgres/pgconnector"
	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// launchPlugin starts a built connector (bin/plugins/<name>/<version>/...)
// as a real subprocess, the way the host does.
func launchPlugin(b *testing.B, name string) sdk.Connector {
	b.Helper()
	dir := os.Getenv("SYNCHRON_BIN_DIR")
	if dir == "" {
		root, err := testdb.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		dir = filepath.Join(root, "bin")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "plugins", name, "*", "synchron-connector-"+name))
	if len(matches) == 0 {
		b.Skipf("no built %s connector under %s/plugins: run make build", name, dir)
	}
	pc := plugin.NewClient(sdk.NewClientConfig(exec.Command(matches[len(matches)-1]), hclog.NewNullLogger()))
	b.Cleanup(pc.Kill)
	c, err := sdk.DispenseClient(pc)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkOneWay100k moves 100,000 sample contacts into a PostgreSQL table,
// once with both connectors as subprocesses over gRPC and once called
// in-process, to measure what the process boundary costs. Commit is a no-op:
// the host's own bookkeeping is measured by the end-to-end benchmark.
func BenchmarkOneWay100k(b *testing.B) {
	const total = 100000
	url := testdb.URL(b)
	db := sqlx.MustOpen("postgres", url)
	defer db.Close()
	ctx := context.Background()
	table := "bench_contacts"
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (email text PRIMARY KEY, first_name text, last_name text,
		phone text, company text, source_id text, updated_at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	rules := []mapping.Rule{
		{Source: "email", Target: "email"}, {Source: "first_name", Target: "first_name"},
		{Source: "last_name", Target: "last_name"}, {Source: "phone", Target: "phone"},
		{Source: "company", Target: "company"}, {Source: "id", Target: "source_id"},
	}
	mapper, err := mapping.NewMapper(rules)
	if err != nil {
		b.Fatal(err)
	}
	targetCfg, _ := json.Marshal(map[string]any{"url": url, "table": table, "primary_key": "email", "updated_at_column": "updated_at"})

	for _, mode := range []string{"plugin", "inprocess"} {
		b.Run(mode, func(b *testing.B) {
			var src, dst sdk.Connector
			if mode == "plugin" {
				src, dst = launchPlugin(b, "sample"), launchPlugin(b, "postgres")
			} else {
				src, dst = sample.New("0.0.0", ""), pgconnector.New("0.0.0", "")
			}
			defer dst.Stop(ctx) //nolint:errcheck
			for b.Loop() {
				b.StopTimer()
				if _, err := db.ExecContext(ctx, `TRUNCATE `+table); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				counts, err := engine.Sync(ctx, engine.Job{
					Source: src, SourceConfig: json.RawMessage(fmt.Sprintf(`{"count": %d}`, total)), SourceObject: "contacts",
					Target: dst, TargetConfig: targetCfg, TargetObject: table,
					Mapper: mapper, BatchSize: 1000,
					Commit: func(context.Context, engine.Progress) error { return nil },
				})
				if err != nil {
					b.Fatal(err)
				}
				if counts.Created != total {
					b.Fatalf("created %d, want %d", counts.Created, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
