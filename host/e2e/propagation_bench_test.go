//go:build bench

package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// TestBenchWebhookPropagation measures the whole way of a change: a
// customer edited in Shopify (the fake), Shopify's signed customers/update
// webhook to the host, the run it triggers through both real connector
// processes, until the HubSpot contact (the fake) carries the new value.
// SYNCHRON_BENCH_HOOKS (100) edits, one after the other; p50/p99 reported.
// Run with `go test -tags bench -run TestBenchWebhookPropagation -v ./host/e2e/`.
func TestBenchWebhookPropagation(t *testing.T) {
	edits := envInt(t, "SYNCHRON_BENCH_HOOKS", 100)
	// Edits are paced (SYNCHRON_BENCH_PACE_MS, default 500 ms apart): each
	// run searches HubSpot once, and HubSpot allows 5 searches/s per
	// account, so back-to-back edits (pace 1) measure that limit instead.
	pace := time.Duration(envInt(t, "SYNCHRON_BENCH_PACE_MS", 500)) * time.Millisecond
	const secret = "propagation-client-secret"
	a := startFlagshipApps(t)
	for i := 0; i < 20; i++ {
		a.shop.AddCustomer(shopfake.Customer{Email: fmt.Sprintf("p%d@example.com", i), FirstName: "P", LastName: fmt.Sprint(i)})
	}
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off", "SYNCHRON_LOG_LEVEL=warn")
	tok := h.signup(t, "propagation@example.com")
	wfID := flagshipWorkflow(t, h, tok, a)
	// The shop connection also needs the app's client secret to verify hooks.
	wf := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID, tok, nil)
	src, _ := wf["source"].(map[string]any)
	connID, _ := src["connection_id"].(string)
	h.must(t, http.StatusOK, "PATCH", "/v1/connections/"+connID, tok, map[string]any{
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken,
			"api_version": flagshipAPI, "base_url": a.shopURL, "client_secret": secret},
	})
	if run := h.runWorkflow(t, tok, wfID); counts(t, run)["created"] != 20 {
		t.Fatalf("historical sync = %v, want 20 contacts created", run)
	}
	ids := map[string]int{}
	for _, c := range a.shop.Customers() {
		ids[c.Email] = c.ID
	}

	var lat []time.Duration
	client := &http.Client{Timeout: 30 * time.Second}
	var last time.Time
	for i := 0; i < edits; i++ {
		if wait := pace - time.Since(last); wait > 0 {
			time.Sleep(wait) // load shaping: the pace of edits, not synchronisation
		}
		last = time.Now()
		email := fmt.Sprintf("p%d@example.com", i%20)
		name := fmt.Sprintf("Edit%d", i)
		// Each edit is newer than the last read, and the fake shop refills its
		// query-cost bucket with its own clock: give it the time a real shop has
		// between two edits.
		a.clock.Advance(10 * time.Second)
		a.editShopifyCustomer(t, ids[email], map[string]any{"firstName": name})
		body := []byte(fmt.Sprintf(`{"id": %d, "admin_graphql_api_id": "gid://shopify/Customer/%d", "email": %q, "first_name": %q}`,
			ids[email], ids[email], email, name))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.baseURL+"/v1/hooks/"+connID, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Shopify-Topic", "customers/update")
		req.Header.Set("X-Shopify-Webhook-Id", fmt.Sprintf("prop-%d", i))
		sent := time.Now()
		resp, err := client.Do(req)
		cancel()
		if err != nil {
			t.Fatalf("hook %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("hook %d answered %d", i, resp.StatusCode)
		}
		deadline := sent.Add(30 * time.Second)
		for a.hubByEmail(t)[email].Properties["firstname"] != name {
			if time.Now().After(deadline) {
				t.Fatalf("edit %d did not reach HubSpot within 30s", i)
			}
			time.Sleep(2 * time.Millisecond) // polling the fake's state, the thing measured
		}
		lat = append(lat, time.Since(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	slow := 0
	for _, d := range lat {
		if d > time.Second {
			slow++
		}
	}
	t.Logf("BENCH webhook_propagation shopify->hubspot edits=%d pace=%v p50=%v p90=%v p99=%v max=%v over_1s=%d", edits, pace, p(0.5), p(0.9), p(0.99), p(1), slow)
}
