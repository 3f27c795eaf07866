package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// Concurrent callers never get more than max requests in any window.
func TestBudgetConcurrent(t *testing.T) {
	clk := newClock()
	b := sdk.NewLocalBudgets(clk.Now)
	limit := sdk.WindowLimit(10, 10*time.Second, rateMargin)
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				for {
					mu.Lock() // one goroutine moves the clock at a time
					g, err := b.TryTake(context.Background(), "k", limit, 1)
					if err != nil {
						mu.Unlock()
						t.Error(err)
						return
					}
					if g.Granted() {
						sent = append(sent, clk.Now())
						mu.Unlock()
						break
					}
					clk.Add(g.Wait)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(sent) != 40 {
		t.Fatalf("%d sent", len(sent))
	}
	for i := range sent {
		n := 0
		for _, s := range sent {
			if !s.Before(sent[i]) && s.Before(sent[i].Add(10*time.Second)) {
				n++
			}
		}
		if n > 10 {
			t.Fatalf("%d requests in the 10 s from %v", n, sent[i])
		}
	}
}

// HubSpot's headers set the size of the budget and count requests made by
// others with the same token.
func TestBudgetObserve(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := sdk.NewLocalBudgets(func() time.Time { return now })
	ctx := context.Background()
	take := func() time.Duration {
		t.Helper()
		g, err := b.TryTake(ctx, "k", requestLimit, 1)
		if err != nil {
			t.Fatal(err)
		}
		return g.Wait
	}
	if d := take(); d != 0 {
		t.Fatal("first request waits")
	}
	h := http.Header{}
	h.Set("X-HubSpot-RateLimit-Max", "4")
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", "2000")
	h.Set("X-HubSpot-RateLimit-Remaining", "1") // someone else spent 2
	if err := b.Observe(ctx, "k", requestLimit, observation(h)); err != nil {
		t.Fatal(err)
	}
	if d := take(); d != 0 {
		t.Fatal("the one remaining request waits")
	}
	if d := take(); d != 2*time.Second+rateMargin {
		t.Fatalf("wait %v, want the 2 s window", d)
	}
}

// Many workflows calling at once with one token, in real time, against a
// fake enforcing 10 requests per 500 ms: no request is answered 429.
func TestBudgetManyWorkflowsNo429(t *testing.T) {
	srv := fake.New(fake.Options{RateLimit: 10, RateWindow: 500 * time.Millisecond})
	t.Cleanup(srv.Close)
	conn := New("0.1.0", "")
	cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
	// Learn the limit first (until HubSpot's headers are seen the budget is
	// the 100 per 10 s default).
	if _, err := conn.Check(context.Background(), sdk.CheckRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := conn.Check(context.Background(), sdk.CheckRequest{Config: cfg})
				if err == nil && resp.Diagnostics.HasError() {
					err = errors.New(resp.Diagnostics.Error())
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.RateLimited != 0 || st.Requests != 41 {
		t.Fatalf("%d requests, %d answered 429", st.Requests, st.RateLimited)
	}
}
