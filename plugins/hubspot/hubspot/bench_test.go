package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// BenchmarkWrite20000Contacts writes 20,000 contacts (200 batch calls) from 4
// concurrent workflows sharing one token, against a fake enforcing HubSpot's
// 100 requests per 10 s, in real time. fraction_of_limit is the request rate
// over the windows used (elapsed + one window, since a burst of a full window
// is allowed at once) divided by the limit: 1.0 means every window's budget
// was used; rate_limited counts 429 answers (want 0).
func BenchmarkWrite20000Contacts(b *testing.B) {
	const (
		total   = 20000
		workers = 4
		perReq  = 500
		limit   = 100
		window  = 10 * time.Second
	)
	srv := fake.New(fake.Options{RateLimit: limit, RateWindow: window, SpecDir: fake.FindSpecDir()})
	b.Cleanup(srv.Close)
	conn := New("0.1.0", "")
	cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
	b.ResetTimer()
	for range b.N {
		before := srv.Stats()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				per := total / workers
				for off := 0; off < per; off += perReq {
					recs := make([]sdk.WriteRecord, perReq)
					for i := range recs {
						n := w*per + off + i
						recs[i] = sdk.WriteRecord{Ref: fmt.Sprint(n), Fields: json.RawMessage(fmt.Sprintf(`{"email":"bench%d@example.com","firstname":"B"}`, n))}
					}
					resp, err := conn.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "contacts", Records: recs})
					if err != nil {
						errs <- err
						return
					}
					for _, r := range resp.Results {
						if r.Status != sdk.WriteOK {
							errs <- fmt.Errorf("record %s: %v %s", r.Ref, r.Status, r.Message)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		after := srv.Stats()
		reqs := after.Requests - before.Requests
		achieved := float64(reqs) / (elapsed + window).Seconds()
		b.ReportMetric(float64(reqs), "requests")
		b.ReportMetric(float64(after.RateLimited-before.RateLimited), "rate_limited")
		b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
		b.ReportMetric(achieved/(float64(limit)/window.Seconds()), "fraction_of_limit")
	}
	if srv.Count("contacts") != total {
		b.Fatalf("%d contacts stored, want %d", srv.Count("contacts"), total)
	}
}
