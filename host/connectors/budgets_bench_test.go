package connectors

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	hubfake "github.com/synchron-io/synchron/plugins/hubspot/fake"
)

// BenchmarkSharedBudgetWrite20000 writes 20,000 contacts (200 batch
// requests of 100) through real HubSpot connector processes launched by
// Managers (hosts) on one database, against a fake enforcing HubSpot's 100
// requests per 10 s, in real time: one host with 4 workers, then two hosts
// with 2 workers each, all through the database's shared budget.
// fraction_of_limit is the request rate over the windows used (elapsed +
// one window, since a full window's burst is allowed at once) divided by
// the limit; rate_limited counts 429 answers (want 0). The control
// (two_hosts_own_budgets) gives each process its own budget.
func BenchmarkSharedBudgetWrite20000(b *testing.B) {
	dir := b.TempDir()
	buildConnector(b, dir, "hubspot")
	for _, c := range []struct {
		name           string
		hosts, workers int
		opts           []Option
	}{
		{"one_host", 1, 4, nil},
		{"two_hosts", 2, 2, nil},
		{"two_hosts_own_budgets", 2, 2, []Option{WithBudgets(nil)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			const (
				total  = 20000
				size   = 100
				limit  = 100
				window = 10 * time.Second
			)
			hosts := startHosts(b, dir, "hubspot", c.hosts, c.opts...)
			for range b.N {
				srv := hubfake.New(hubfake.Options{RateLimit: limit, RateWindow: window})
				cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
				batches := total / size / c.hosts / c.workers
				start := time.Now()
				retryable := writeFromHosts(b, hosts, cfg, "contacts", c.workers, batches, size, func(h, w, n, i int) string {
					return fmt.Sprintf(`{"email":"bench-%d-%d-%d-%d@example.com","firstname":"B"}`, h, w, n, i)
				})
				elapsed := time.Since(start)
				st := srv.Stats()
				if got := srv.Count("contacts"); got != total || retryable != 0 {
					b.Fatalf("%d contacts stored (want %d), %d retryable", got, total, retryable)
				}
				srv.Close()
				achieved := float64(st.Requests) / (elapsed + window).Seconds()
				b.ReportMetric(float64(st.Requests), "requests")
				b.ReportMetric(float64(st.RateLimited), "rate_limited")
				b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
				b.ReportMetric(achieved/(float64(limit)/window.Seconds()), "fraction_of_limit")
			}
		})
	}
}
