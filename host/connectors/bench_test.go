package connectors

import (
	"context"
	"encoding/hex"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// bareManager is a Manager without catalog or database: enough to launch
// processes with startProcess.
func bareManager(tb testing.TB) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return &Manager{opts: defaultOptions(), logger: hclog.NewNullLogger(), ctx: ctx, cancel: cancel}
}

// sampleArgs are the launch arguments of a sample binary.
func sampleArgs(tb testing.TB, path string) launchArgs {
	tb.Helper()
	sum, err := fileSHA256(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := hex.DecodeString(sum)
	if err != nil {
		tb.Fatal(err)
	}
	return launchArgs{name: "sample", version: "0.1.0", path: path, sum: raw}
}

// BenchmarkColdStart measures one connector process start as Acquire does
// it: checksum verification, fork/exec, go-plugin handshake with AutoMTLS,
// gRPC dial and the first Spec call. The process is killed outside the
// timer. Besides ns/op (the mean) it reports the median, p90 and min in ms:
//
//	go test -run '^$' -bench ColdStart -benchtime 20x ./host/connectors/
func BenchmarkColdStart(b *testing.B) {
	m := bareManager(b)
	args := sampleArgs(b, sampleBins["0.1.0"])
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p, spec, err := m.startProcess(args)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("start: %v", err)
		}
		if spec.Name != "sample" {
			b.Fatalf("spec %+v", spec)
		}
		took = append(took, d)
		p.client.Kill()
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "median-ms")
	b.ReportMetric(ms(took[(len(took)*9)/10]), "p90-ms")
	b.ReportMetric(ms(took[0]), "min-ms")
}
