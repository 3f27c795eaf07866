package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sagefake "github.com/synchron-io/synchron/plugins/sage/fake"
	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
)

// sageBiz is the Sage business of the orders -> invoices tests.
const sageBiz = "biz-1"

// ordersApps are the Shopify and Sage fakes of the orders -> invoices
// flagship, on local httptest servers.
type ordersApps struct {
	clock   *shopfake.Clock
	shop    *shopfake.Server
	shopURL string
	sage    *sagefake.Server
	sageURL string
	access  string
	refresh string
	expires time.Time
}

// startOrdersApps serves the fakes. The shop keeps a manual clock behind
// the real one (each step of a test advances it); Sage shares it, or keeps
// real time with realTimeSage. wrap (nil: none) wraps Sage's handler, for
// tests that step in between.
func startOrdersApps(t *testing.T, wrap func(http.Handler) http.Handler, realTimeSage bool) *ordersApps {
	t.Helper()
	a := &ordersApps{clock: shopfake.NewClock(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second))}
	a.shop = shopfake.New(shopOptions(t, shopfake.Options{Token: flagshipShopToken, Now: a.clock.Now}))
	shopSrv := httptest.NewServer(a.shop)
	t.Cleanup(shopSrv.Close)
	a.shopURL = shopSrv.URL
	opts := sagefake.Options{Now: a.clock.Now, SpecDir: sageSpecDir(t)}
	if realTimeSage {
		opts.Now = nil
	}
	var err error
	if a.sage, err = sagefake.New(opts); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = a.sage
	if wrap != nil {
		h = wrap(h)
	}
	sageSrv := httptest.NewServer(h)
	t.Cleanup(sageSrv.Close)
	a.sageURL = sageSrv.URL
	a.access, a.refresh, a.expires = a.sage.IssueTokens()
	return a
}

// connect creates the Shopify and Sage connections on h for token and
// returns their ids.
func (a *ordersApps) connect(t *testing.T, h *host, token string) (shopConn, sageConn string) {
	t.Helper()
	shop := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "shopify", "name": "Shop",
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken, "base_url": a.shopURL},
	})
	sage := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "sage", "name": "Accounts",
		"config": map[string]any{"client_id": "client", "client_secret": "secret", "access_token": a.access,
			"refresh_token": a.refresh, "expires_at": a.expires.Format(time.RFC3339), "business_id": sageBiz,
			"base_url": a.sageURL, "token_url": a.sageURL + "/token"},
	})
	return shop["id"].(string), sage["id"].(string)
}

// ordersWorkflowBody is the request creating an orders -> invoices workflow
// with the flagship mapping; writeBack names the order field receiving the
// invoice id ("": none).
func ordersWorkflowBody(name, shopConn, sageConn, writeBack string) map[string]any {
	body := map[string]any{
		"name":             name,
		"source":           map[string]any{"connection_id": shopConn, "object": "orders"},
		"target":           map[string]any{"connection_id": sageConn, "object": "sales_invoices"},
		"direction":        "one_way",
		"mapping":          ordersToInvoicesMapping(),
		"interval_seconds": 900,
	}
	if writeBack != "" {
		body["write_back"] = map[string]any{"field": writeBack}
	}
	return body
}

// ordersWorkflow creates an orders -> invoices workflow and returns its id.
func ordersWorkflow(t *testing.T, h *host, token, name, shopConn, sageConn, writeBack string) string {
	t.Helper()
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", token, ordersWorkflowBody(name, shopConn, sageConn, writeBack))
	return wf["id"].(string)
}

// addOrder stores o in the shop (updated now, by the shop's clock, unless
// set) and returns its numeric id.
func (a *ordersApps) addOrder(t *testing.T, o shopfake.Order) int {
	t.Helper()
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = a.clock.Now()
	}
	if o.Currency == "" {
		o.Currency, o.Status, o.Total = "GBP", "PAID", "15.00"
	}
	gid := a.shop.AddOrder(o)
	var n int
	if _, err := fmt.Sscanf(gid, "gid://shopify/Order/%d", &n); err != nil {
		t.Fatalf("order gid %q: %v", gid, err)
	}
	return n
}

// sageContact stores a customer contact with an email in Sage and returns
// its id.
func (a *ordersApps) sageContact(name, email string) string {
	return a.sage.Put(sageBiz, "contacts", map[string]any{"name": name, "email": email,
		"main_contact_person": map[string]any{"email": email}, "contact_types": []any{map[string]any{"id": "CUSTOMER"}}})
}

// mug is a one-line order's lines.
func mug(quantity int) []shopfake.LineItem {
	return []shopfake.LineItem{{Name: "Mug", Quantity: quantity, Price: "15.00"}}
}
