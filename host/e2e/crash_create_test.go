package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sagefake "github.com/synchron-io/synchron/plugins/sage/fake"
	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// The host dies right after Sage applied an invoice it sent, before the
// answer came back: the run is taken over by another host, which knows from
// the create journal that the invoice may exist, and the Sage connector
// finds it instead of creating a second one. Every order ends with exactly
// one invoice, and its external_id names it.
func TestHostDiesAfterSageAppliedACreate(t *testing.T) {
	t.Parallel()
	clock := shopfake.NewClock(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second))
	shop := shopfake.New(shopOptions(t, shopfake.Options{Token: flagshipShopToken, Now: clock.Now}))
	shopSrv := httptest.NewServer(shop)
	t.Cleanup(shopSrv.Close)
	// Sage keeps real time: the journal's times are the host's, and the
	// connector looks for records Sage stamped since then.
	sage, err := sagefake.New(sagefake.Options{SpecDir: sageSpecDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The first invoice POST is applied, then the host that sent it is
	// killed before it reads the answer.
	var mu sync.Mutex
	var first *host
	killed := make(chan struct{})
	sageSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/sales_invoices") {
			sage.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		victim := first
		first = nil
		mu.Unlock()
		if victim == nil {
			sage.ServeHTTP(w, r)
			return
		}
		sage.ServeHTTP(httptest.NewRecorder(), r) // applied; the answer is lost
		victim.kill(t)
		close(killed)
		http.Error(w, "host gone", http.StatusBadGateway)
	}))
	t.Cleanup(sageSrv.Close)
	const biz = "biz-1"
	access, refresh, expires := sage.IssueTokens()
	var ids []int
	for i := range 3 {
		gid := shop.AddOrder(shopfake.Order{Email: fmt.Sprintf("crash%d@example.com", i), CustomerName: fmt.Sprintf("Crash %d", i),
			Currency: "GBP", Status: "PAID", Total: "15.00", LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: i + 1, Price: "15.00"}},
			UpdatedAt: clock.Now()})
		var n int
		if _, err := fmt.Sscanf(gid, "gid://shopify/Order/%d", &n); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n)
	}
	clock.Advance(time.Minute)

	dbURL := testdb.URL(t)
	env := []string{"SYNCHRON_SECRET_KEY=" + randomKey(t), "SYNCHRON_RUN_LEASE=2s", "SYNCHRON_SCHEDULER=off"}
	h1 := startHost(t, dbURL, env...)
	tok := h1.signup(t, "crash-create@example.com")
	shopConn := h1.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "shopify", "name": "Shop",
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken, "base_url": shopSrv.URL},
	})
	sageConn := h1.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sage", "name": "Accounts",
		"config": map[string]any{"client_id": "client", "client_secret": "secret", "access_token": access,
			"refresh_token": refresh, "expires_at": expires.Format(time.RFC3339), "business_id": biz,
			"base_url": sageSrv.URL, "token_url": sageSrv.URL + "/token"},
	})
	wf := h1.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name":       "Shopify orders -> Sage sales invoices",
		"source":     map[string]any{"connection_id": shopConn["id"], "object": "orders"},
		"target":     map[string]any{"connection_id": sageConn["id"], "object": "sales_invoices"},
		"direction":  "one_way",
		"mapping":    ordersToInvoicesMapping(),
		"write_back": map[string]any{"field": "external_id"}, "interval_seconds": 900,
	})
	mu.Lock()
	first = h1
	mu.Unlock()
	runID := h1.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/v1/workflows/%s/run", wf["id"]), tok, nil)["id"].(string)
	select {
	case <-killed:
	case <-time.After(time.Minute):
		t.Fatal("no invoice was sent within a minute")
	}
	if n := len(sage.List(biz, "sales_invoices")); n != 1 {
		t.Fatalf("Sage holds %d invoices when the host died, want the 1 it applied", n)
	}

	h2 := startHost(t, dbURL, env...) // takes the run over when its lease expires
	run := h2.waitRun(t, tok, runID, 2*time.Minute)
	if run["status"] != "succeeded" {
		t.Fatalf("the run taken over = %v, want succeeded", run)
	}
	invoices := sage.List(biz, "sales_invoices")
	if len(invoices) != len(ids) {
		t.Fatalf("Sage holds %d invoices for %d orders, want one each (the applied one found, not created again)", len(invoices), len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		o, _ := shop.Order(id)
		inv := o.Metafields["synchron.external_id"]
		if sage.Get(biz, "sales_invoices", inv) == nil || seen[inv] {
			t.Errorf("order %s: external_id %q is not its own invoice", o.Name, inv)
		}
		seen[inv] = true
	}
}
