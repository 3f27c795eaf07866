package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string, header http.Header, body string) map[string]any {
	t.Helper()
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d: %s", method, url, resp.StatusCode, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %v\n%s", method, url, err, raw)
	}
	return m
}

// counts asks each fake through its HTTP API how many records it serves.
func counts(t *testing.T, d *Demo) (customers, contacts, sageProducts int) {
	t.Helper()
	m := get(t, d.ShopifyURL+"/admin/api/2025-01/graphql.json", http.Header{"X-Shopify-Access-Token": {ShopifyToken}},
		`{"query":"{ customers(first: 100) { nodes { id email } } }"}`)
	data, _ := m["data"].(map[string]any)
	cs, _ := data["customers"].(map[string]any)
	nodes, _ := cs["nodes"].([]any)
	m = get(t, d.HubSpotURL+"/crm/v3/objects/contacts?limit=100", http.Header{"Authorization": {"Bearer " + HubSpotToken}}, "")
	results, _ := m["results"].([]any)
	m = get(t, d.SageURL+"/products?items_per_page=100", http.Header{"Authorization": {"Bearer " + d.SageAccess}, "X-Business": {SageBusiness}}, "")
	total, _ := m["$total"].(float64)
	return len(nodes), len(results), int(total)
}

func TestDemoServesSeededFakesAndSeedIsIdempotent(t *testing.T) {
	d, err := Start(Addrs{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	d.Seed()
	c1, h1, p1 := counts(t, d)
	if c1 != nShopify || h1 != nShared+nHubOnly || p1 != len(productNames()) {
		t.Fatalf("seeded %d customers, %d contacts, %d Sage products; want %d, %d, %d",
			c1, h1, p1, nShopify, nShared+nHubOnly, len(productNames()))
	}
	d.Seed()
	if c2, h2, p2 := counts(t, d); c2 != c1 || h2 != h1 || p2 != p1 {
		t.Fatalf("seeding again changed the stores: %d/%d/%d -> %d/%d/%d", c1, h1, p1, c2, h2, p2)
	}
}

func TestDemoRefusesNonLoopbackAddresses(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if _, err := Start(Addrs{"127.0.0.1:0", a, "127.0.0.1:0"}); err == nil {
			t.Errorf("Start with HubSpot on %q succeeded, want a refusal", a)
		}
	}
}

func TestDemoRunPrintsURLsAndStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, pw); pw.Close() }()
	env := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() && sc.Text() != "ready" {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain
	for _, k := range []string{"SHOPIFY_URL", "HUBSPOT_URL", "SAGE_URL"} {
		if !strings.HasPrefix(env[k], "http://127.0.0.1:") {
			t.Errorf("%s = %q, want a loopback URL", k, env[k])
		}
	}
	m := get(t, env["HUBSPOT_URL"]+"/crm/v3/objects/contacts?limit=1", http.Header{"Authorization": {"Bearer " + env["HUBSPOT_TOKEN"]}}, "")
	if r, _ := m["results"].([]any); len(r) != 1 {
		t.Errorf("HubSpot fake answered %v", m)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
}
