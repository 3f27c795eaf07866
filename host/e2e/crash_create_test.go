package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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
	// The first invoice POST is applied, then the host that sent it is
	// killed before it reads the answer. Sage keeps real time: the
	// journal's times are the host's, and the connector looks for records
	// Sage stamped since then.
	var mu sync.Mutex
	var first *host
	killed := make(chan struct{})
	apps := startOrdersApps(t, func(sage http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			victim := first
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/sales_invoices") {
				first = nil
			} else {
				victim = nil
			}
			mu.Unlock()
			if victim == nil {
				sage.ServeHTTP(w, r)
				return
			}
			sage.ServeHTTP(httptest.NewRecorder(), r) // applied; the answer is lost
			victim.kill(t)
			close(killed)
			http.Error(w, "host gone", http.StatusBadGateway)
		})
	}, true)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	var ids []int
	for i := range 3 {
		ids = append(ids, apps.addOrder(t, shopfake.Order{Email: fmt.Sprintf("crash%d@example.com", i), CustomerName: fmt.Sprintf("Crash %d", i),
			LineItems: mug(i + 1)}))
	}
	clock.Advance(time.Minute)

	dbURL := testdb.URL(t)
	env := []string{"SYNCHRON_SECRET_KEY=" + randomKey(t), "SYNCHRON_RUN_LEASE=2s", "SYNCHRON_SCHEDULER=off"}
	h1 := startHost(t, dbURL, env...)
	tok := h1.signup(t, "crash-create@example.com")
	shopConn, sageConn := apps.connect(t, h1, tok)
	wfID := ordersWorkflow(t, h1, tok, "Shopify orders -> Sage sales invoices", shopConn, sageConn, "external_id")
	mu.Lock()
	first = h1
	mu.Unlock()
	runID := h1.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/v1/workflows/%s/run", wfID), tok, nil)["id"].(string)
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
