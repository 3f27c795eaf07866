#!/usr/bin/env bash
# bench.sh: reproduce the figures of docs/BENCHMARKS.md. Expects `make build`
# to have run (make bench does it). Output goes to stdout and .data/bench/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out="$root/.data/bench"
mkdir -p "$out"
export DATABASE_URL="${DATABASE_URL:-$(scripts/pg.sh)}"
export SYNCHRON_BIN_DIR="$root/bin"

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version)"

echo "== connector cold start (launch + handshake + Spec), median of 20"
go test -run '^$' -bench 'BenchmarkColdStart' -benchtime 20x ./host/connectors/ | tee "$out/coldstart.txt"

echo "== one-way 100k sample -> postgres: plugins vs in-process (engine.Sync, no host bookkeeping)"
go test -run '^$' -bench 'BenchmarkOneWay100k' -benchtime 3x -timeout 30m ./host/engine/ | tee "$out/oneway.txt"

echo "== one-way through the real host binary: 100k three times, then 1M (records/s and host peak RSS)"
: >"$out/host.txt"
for n in 100000 100000 100000 1000000; do
  SYNCHRON_BENCH_RECORDS=$n go test -tags bench -count=1 -run 'TestBenchOneWay' -v -timeout 30m ./host/e2e/ \
    | grep -E 'BENCH|FAIL' | tee -a "$out/host.txt"
done

echo "== shared rate-limit budgets: 20,000 HubSpot contacts at 100 requests/10 s from one host, two hosts, two hosts without sharing"
go test -run '^$' -bench 'BenchmarkSharedBudgetWrite20000' -benchtime 1x -timeout 20m ./host/connectors/ | tee "$out/budgets.txt"
go test -run '^$' -bench 'Write20000' -benchtime 1x ./plugins/hubspot/hubspot/ | tee -a "$out/budgets.txt"

echo "== component benchmarks"
go test -run '^$' -bench . ./host/mapping/ ./plugins/sample/... ./plugins/postgres/... | grep -E '^Benchmark|ok' | tee "$out/components.txt"

echo "== scheduler: 10,000 workflows on a 60s interval, one host, 3 minutes, workers 8/16/32 (runs/s, lag p50/p99, every workflow each minute)"
: >"$out/scheduler.txt"
for w in 8 16 32; do
  SYNCHRON_BENCH_WORKERS=$w go test -tags bench -count=1 -run 'TestBenchScheduler' -v -timeout 30m ./host/e2e/ \
    | grep -E 'BENCH|minute|FAIL' | tee -a "$out/scheduler.txt"
done

echo "== two-way steady state: 100,000 linked records, 1% changed on each side (time and transactions of one run)"
SYNCHRON_BENCH_RECORDS=100000 go test -tags bench -count=1 -run 'TestBenchTwoWay' -v -timeout 40m ./host/e2e/ \
  | grep -E 'BENCH|FAIL' | tee "$out/twoway.txt"

echo "== webhooks: 200 signed Shopify hooks through the host (latency to run queued and started, p50/p99)"
go test -tags bench -count=1 -run 'TestBenchWebhook$' -v -timeout 20m ./host/e2e/ | grep -E 'BENCH|FAIL' | tee "$out/webhooks.txt"

echo "== webhook propagation Shopify -> HubSpot end to end (p50/p90/p99)"
go test -tags bench -count=1 -run 'TestBenchWebhookPropagation' -v -timeout 20m ./host/e2e/ | grep -E 'BENCH|FAIL' | tee "$out/propagation.txt"
