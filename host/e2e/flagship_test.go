package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	hubfake "github.com/synchron-io/synchron/plugins/hubspot/fake"
	sagefake "github.com/synchron-io/synchron/plugins/sage/fake"
	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk/testdb"
)

const (
	flagshipShopToken = "shpat_flagship"
	flagshipHubToken  = "pat-flagship"
	flagshipAPI       = "2025-01"
)

// flagshipApps are the Shopify and HubSpot fakes of the flagship workflow,
// served on local httptest servers and sharing one manual clock that stays
// behind the real one (the connectors never hold back a record as "too
// recent", and each step of a test advances it explicitly).
type flagshipApps struct {
	clock   *shopfake.Clock
	shop    *shopfake.Server
	shopURL string
	hub     *hubfake.Server
	hubURL  string
}

func startFlagshipApps(t *testing.T) *flagshipApps {
	t.Helper()
	a := &flagshipApps{clock: shopfake.NewClock(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second))}
	a.shop = shopfake.New(shopfake.Options{Token: flagshipShopToken, Now: a.clock.Now})
	shopSrv := httptest.NewServer(a.shop)
	t.Cleanup(shopSrv.Close)
	a.shopURL = shopSrv.URL
	a.hub = hubfake.NewHandler(hubfake.Options{Tokens: []string{flagshipHubToken}, Now: a.clock.Now})
	hubSrv := httptest.NewServer(a.hub.Handler)
	t.Cleanup(hubSrv.Close)
	a.hubURL = hubSrv.URL
	return a
}

// post sends a JSON body to one of the fakes' HTTP APIs and decodes the answer.
func flagshipPost(t *testing.T, url string, header http.Header, body any) map[string]any {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s = %d: %s", url, resp.StatusCode, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("POST %s: answer is not JSON: %v\n%s", url, err, raw)
	}
	return m
}

// editShopifyCustomer runs the customerUpdate mutation as a merchant would
// through the Admin API.
func (a *flagshipApps) editShopifyCustomer(t *testing.T, id int, input map[string]any) {
	t.Helper()
	input["id"] = fmt.Sprintf("gid://shopify/Customer/%d", id)
	m := flagshipPost(t, a.shopURL+"/admin/api/"+flagshipAPI+"/graphql.json",
		http.Header{"X-Shopify-Access-Token": {flagshipShopToken}},
		map[string]any{
			"query":     `mutation($input: CustomerInput!) { customerUpdate(input: $input) { customer { id } userErrors { field message } } }`,
			"variables": map[string]any{"input": input},
		})
	data, _ := m["data"].(map[string]any)
	upd, _ := data["customerUpdate"].(map[string]any)
	if errs, _ := upd["userErrors"].([]any); upd == nil || len(errs) != 0 {
		t.Fatalf("customerUpdate: %v", m)
	}
}

// editHubSpotContact updates a contact through the CRM batch API.
func (a *flagshipApps) editHubSpotContact(t *testing.T, id string, props map[string]string) {
	t.Helper()
	flagshipPost(t, a.hubURL+"/crm/v3/objects/contacts/batch/update",
		http.Header{"Authorization": {"Bearer " + flagshipHubToken}},
		map[string]any{"inputs": []any{map[string]any{"id": id, "properties": props}}})
}

// shopByEmail indexes the stored customers by lower-case email; it fails on
// a duplicate.
func (a *flagshipApps) shopByEmail(t *testing.T) map[string]shopfake.Customer {
	t.Helper()
	out := map[string]shopfake.Customer{}
	for _, c := range a.shop.Customers() {
		k := strings.ToLower(c.Email)
		if _, dup := out[k]; dup {
			t.Fatalf("Shopify holds two customers with email %s", k)
		}
		out[k] = c
	}
	return out
}

// hubByEmail indexes the live contacts by lower-case email, seeded or
// created by the connector (the fake has no listing, so it walks the id
// range); it fails on a duplicate.
func (a *flagshipApps) hubByEmail(t *testing.T) map[string]hubfake.Record {
	t.Helper()
	out := map[string]hubfake.Record{}
	// The fake numbers contacts from 1001 upwards.
	for n, seen := 1001, 0; seen < a.hub.Count("contacts"); n++ {
		if n > 1001+10000 {
			t.Fatalf("could not find all %d contacts", a.hub.Count("contacts"))
		}
		r, ok := a.hub.Get("contacts", fmt.Sprint(n))
		if !ok || r.Archived {
			continue
		}
		seen++
		k := strings.ToLower(r.Properties["email"])
		if _, dup := out[k]; dup {
			t.Fatalf("HubSpot holds two contacts with email %s", k)
		}
		out[k] = r
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// flagshipWorkflow creates the two connections and the flagship two-way
// workflow through the API and returns the workflow id.
func flagshipWorkflow(t *testing.T, h *host, token string, a *flagshipApps) string {
	t.Helper()
	shopConn := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "shopify", "name": "Shop",
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken,
			"api_version": flagshipAPI, "base_url": a.shopURL},
	})
	hubConn := h.must(t, http.StatusCreated, "POST", "/v1/connections", token, map[string]any{
		"app": "hubspot", "name": "CRM",
		"config": map[string]any{"access_token": flagshipHubToken, "base_url": a.hubURL, "search_delay_seconds": 0},
	})
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", token, map[string]any{
		"name":      "Shopify customers <-> HubSpot contacts",
		"source":    map[string]any{"connection_id": shopConn["id"], "object": "customers"},
		"target":    map[string]any{"connection_id": hubConn["id"], "object": "contacts"},
		"direction": "two_way",
		"mapping": []map[string]any{
			{"source": "email", "target": "email", "transform": "trim,lower"},
			{"source": "first_name", "target": "firstname"},
			{"source": "last_name", "target": "lastname"},
			{"source": "phone", "target": "phone"},
		},
		"match":            map[string]any{"source": "email", "target": "email"},
		"conflict":         "newest_wins",
		"interval_seconds": 900,
	})
	id, _ := wf["id"].(string)
	if id == "" {
		t.Fatalf("workflow has no id: %v", wf)
	}
	return id
}

func TestFlagshipShopifyCustomersHubSpotContactsTwoWay(t *testing.T) {
	t.Parallel()
	a := startFlagshipApps(t)
	// Two customers on both sides (emails differing in case), two only in
	// Shopify, two only in HubSpot.
	alice := a.shop.AddCustomer(shopfake.Customer{Email: "Alice@Example.com", FirstName: "Alice", LastName: "Archer", Phone: "+14155550101"})
	a.shop.AddCustomer(shopfake.Customer{Email: "bob@example.com", FirstName: "Bob", LastName: "Baker", Phone: "+14155550102"})
	a.shop.AddCustomer(shopfake.Customer{Email: "carol@example.com", FirstName: "Carol", LastName: "Cooper", Phone: "+14155550103"})
	a.shop.AddCustomer(shopfake.Customer{Email: "dave@example.com", FirstName: "Dave", LastName: "Dyer"})
	a.hub.Seed("contacts",
		map[string]string{"email": "alice@example.com", "firstname": "Alice", "lastname": "Archer"},
		map[string]string{"email": "BOB@example.com", "firstname": "Bob", "lastname": "Baker", "phone": "+14155550102"},
		map[string]string{"email": "erin@example.com", "firstname": "Erin", "lastname": "Evans", "phone": "+14155550105"},
		map[string]string{"email": "frank@example.com", "firstname": "Frank", "lastname": "Fisher"},
	)
	a.clock.Advance(time.Minute)

	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	tok := h.signup(t, "flagship@example.com")
	wfID := flagshipWorkflow(t, h, tok, a)

	run := h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["matched"] != 2 || c["created"] != 4 || c["failed"] != 0 {
		t.Fatalf("historical sync = %v, want 2 matched and 4 created", run)
	}
	want := []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com", "frank@example.com"}
	shop, hub := a.shopByEmail(t), a.hubByEmail(t)
	if got := keys(shop); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Shopify customers after the first run: %v, want %v", got, want)
	}
	if got := keys(hub); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("HubSpot contacts after the first run: %v, want %v", got, want)
	}
	if r := hub["alice@example.com"].Properties; r["phone"] != "+14155550101" {
		t.Fatalf("matched contact did not get the customer's phone: %v", r)
	}
	if r := hub["carol@example.com"].Properties; r["firstname"] != "Carol" || r["lastname"] != "Cooper" || r["phone"] != "+14155550103" {
		t.Fatalf("contact created from a Shopify customer: %v", r)
	}
	if c := shop["erin@example.com"]; c.FirstName != "Erin" || c.LastName != "Evans" || c.Phone != "+14155550105" {
		t.Fatalf("customer created from a HubSpot contact: %+v", c)
	}

	a.clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("idle run used %d transactions: echoes must be free (counts %v)", c["transactions"], c)
	}

	// One edit on each side reaches the other side, once.
	a.clock.Advance(time.Minute)
	var aliceID int
	if _, err := fmt.Sscanf(alice, "gid://shopify/Customer/%d", &aliceID); err != nil {
		t.Fatalf("customer gid %q: %v", alice, err)
	}
	a.editShopifyCustomer(t, aliceID, map[string]any{"firstName": "Alicia"})
	frankID := hub["frank@example.com"].ID
	a.editHubSpotContact(t, frankID, map[string]string{"lastname": "Fischer"})
	a.clock.Advance(time.Minute)
	const hubUpdate = "POST /crm/v3/objects/contacts/batch/update"
	hubUpdates := a.hub.Stats().PerPath[hubUpdate]
	run = h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["updated"] != 2 || c["created"] != 0 || c["failed"] != 0 || c["transactions"] != 2 {
		t.Fatalf("run after one edit on each side = %v, want 2 updated in 2 transactions", run)
	}
	if n := a.hub.Stats().PerPath[hubUpdate] - hubUpdates; n != 1 {
		t.Fatalf("the run sent %d contact updates to HubSpot, want 1", n)
	}
	shop, hub = a.shopByEmail(t), a.hubByEmail(t)
	if got := hub["alice@example.com"].Properties["firstname"]; got != "Alicia" {
		t.Fatalf("Shopify edit did not reach HubSpot: firstname %q", got)
	}
	if got := shop["frank@example.com"].LastName; got != "Fischer" {
		t.Fatalf("HubSpot edit did not reach Shopify: last name %q", got)
	}
	if got := shop["alice@example.com"].FirstName; got != "Alicia" {
		t.Fatalf("the Shopify edit was overwritten: first name %q", got)
	}
	if got := hub["frank@example.com"].Properties["lastname"]; got != "Fischer" {
		t.Fatalf("the HubSpot edit was overwritten: lastname %q", got)
	}

	a.clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("run after the edits used %d transactions: changes bounced back (counts %v)", c["transactions"], c)
	}
	shop2, hub2 := a.shopByEmail(t), a.hubByEmail(t)
	for _, e := range want {
		if x, y := shop2[e].UpdatedAt, shop[e].UpdatedAt; !x.Equal(y) {
			t.Errorf("customer %s was written again by the idle run (%v -> %v)", e, y, x)
		}
		if x, y := hub2[e].UpdatedAt, hub[e].UpdatedAt; !x.Equal(y) {
			t.Errorf("contact %s was written again by the idle run (%v -> %v)", e, y, x)
		}
	}
}

// A matched pair where the winning side (here the source, on a tie) lacks a
// field the other side holds: the empty value does not overwrite the
// contact's phone, and the first run copies the phone to Shopify, so the
// next run, with nothing changed by anyone, moves nothing.
func TestFlagshipMatchedFieldOnlyOnLosingSide(t *testing.T) {
	t.Parallel()
	a := startFlagshipApps(t)
	a.shop.AddCustomer(shopfake.Customer{Email: "bob@example.com", FirstName: "Bob", LastName: "Baker"})
	a.hub.Seed("contacts", map[string]string{"email": "BOB@example.com", "firstname": "Bob", "lastname": "Baker", "phone": "+14155550102"})
	a.clock.Advance(time.Minute)
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "flagship-loser@example.com")
	wfID := flagshipWorkflow(t, h, tok, a)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["matched"] != 1 || c["created"] != 0 {
		t.Fatalf("historical sync = %v, want 1 matched", c)
	}
	if got := a.shopByEmail(t)["bob@example.com"].Phone; got != "+14155550102" {
		t.Errorf("after the first run Shopify's Bob has phone %q, want the contact's +14155550102", got)
	}
	a.clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 {
		t.Fatalf("idle run used %d transactions (counts %v), want 0", c["transactions"], c)
	}
}

// Shopify orders -> Sage sales invoices, one way, with the order's invoice
// id written back to the order. What the engine cannot do yet, so this test
// works around it (see the report in the commit message):
//   - Rules map whole top-level fields: an order's line_items (name,
//     quantity, price) cannot be reshaped into invoice_lines (description,
//     unit_price, quantity, ledger_account_id); mapped as they are, Sage
//     rejects every invoice ("description can't be blank
//     (invoice_lines[0].description)..."). Here every invoice gets one
//     constant line.
//   - No rule looks up (or creates) the Sage contact of the order's email:
//     contact_id is a constant, one "Shopify web sales" contact.
func TestFlagshipShopifyOrdersToSageInvoicesOneWay(t *testing.T) {
	t.Parallel()
	clock := shopfake.NewClock(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second))
	shop := shopfake.New(shopfake.Options{Token: flagshipShopToken, Now: clock.Now})
	shopSrv := httptest.NewServer(shop)
	t.Cleanup(shopSrv.Close)
	sage, err := sagefake.New(sagefake.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sageSrv := httptest.NewServer(sage)
	t.Cleanup(sageSrv.Close)
	const biz = "biz-1"
	access, refresh, expires := sage.IssueTokens()
	webSales := sage.Put(biz, "contacts", map[string]any{"name": "Shopify web sales", "reference": "SHOPIFY",
		"contact_types": []any{map[string]any{"id": "CUSTOMER"}}})
	day := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	var orderIDs []int
	for i := range 3 {
		gid := shop.AddOrder(shopfake.Order{Email: fmt.Sprintf("buyer%d@example.com", i), Currency: "GBP", Status: "PAID",
			Total: "30.00", LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: 2, Price: "15.00"}},
			CreatedAt: day.AddDate(0, 0, i), UpdatedAt: clock.Now()})
		var n int
		if _, err := fmt.Sscanf(gid, "gid://shopify/Order/%d", &n); err != nil {
			t.Fatalf("order gid %q: %v", gid, err)
		}
		orderIDs = append(orderIDs, n)
	}
	clock.Advance(time.Minute)

	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	tok := h.signup(t, "flagship-orders@example.com")
	shopConn := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "shopify", "name": "Shop",
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken, "base_url": shopSrv.URL},
	})
	sageConn := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sage", "name": "Accounts",
		"config": map[string]any{"client_id": "client", "client_secret": "secret", "access_token": access,
			"refresh_token": refresh, "expires_at": expires.Format(time.RFC3339), "business_id": biz,
			"base_url": sageSrv.URL, "token_url": sageSrv.URL + "/token"},
	})
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name":      "Shopify orders -> Sage sales invoices",
		"source":    map[string]any{"connection_id": shopConn["id"], "object": "orders"},
		"target":    map[string]any{"connection_id": sageConn["id"], "object": "sales_invoices"},
		"direction": "one_way",
		"mapping": []map[string]any{
			{"source": "name", "target": "reference"},
			{"source": "created_at", "target": "date", "transform": "format_date", "format": "YYYY-MM-DD"},
			{"source": "currency", "target": "currency_id"},
			{"target": "contact_id", "value": webSales},
			{"target": "invoice_lines", "value": []any{map[string]any{"description": "Shopify order", "ledger_account_id": "la-sales", "unit_price": 30, "quantity": 1}}},
		},
		"write_back":       map[string]any{"field": "note"},
		"interval_seconds": 900,
	})
	wfID, _ := wf["id"].(string)

	run := h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["created"] != 3 || c["failed"] != 0 {
		t.Fatalf("first run = %v, want 3 invoices created", run)
	}
	invoices := map[string]bool{}
	for i, id := range orderIDs {
		o, ok := shop.Order(id)
		if !ok {
			t.Fatalf("order %d is gone", id)
		}
		inv := sage.Get(biz, "sales_invoices", o.Note)
		if inv == nil {
			t.Fatalf("order %s: write-back note %q is not a Sage invoice id", o.Name, o.Note)
		}
		invoices[o.Note] = true
		if got, want := fmt.Sprint(inv["reference"]), o.Name; got != want {
			t.Errorf("invoice %s: reference %q, want the order name %q", o.Note, got, want)
		}
		if got, want := fmt.Sprint(inv["date"]), day.AddDate(0, 0, i).Format("2006-01-02"); got != want {
			t.Errorf("invoice %s: date %q, want %q", o.Note, got, want)
		}
		if c, _ := inv["contact"].(map[string]any); c == nil || c["id"] != webSales {
			t.Errorf("invoice %s: contact %v, want %s", o.Note, inv["contact"], webSales)
		}
	}
	if len(invoices) != 3 {
		t.Fatalf("orders point at %d distinct invoices, want 3", len(invoices))
	}

	clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 || c["created"] != 0 {
		t.Fatalf("idle run = %v, want 0 transactions (the write-back must not echo)", c)
	}
	shop.AddOrder(shopfake.Order{Email: "late@example.com", Currency: "GBP", Status: "PAID", Total: "30.00", CreatedAt: day})
	clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["created"] != 1 || c["failed"] != 0 {
		t.Fatalf("run after a new order = %v, want 1 invoice created", c)
	}
}
