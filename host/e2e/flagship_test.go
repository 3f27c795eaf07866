package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/vektah/gqlparser/v2/ast"

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

// shopOptions makes the Shopify fake validate every query against the
// Admin schema of the flagship API version, when ../shared/specs is there
// (as the real API would refuse an invalid query).
func shopOptions(t *testing.T, o shopfake.Options) shopfake.Options {
	t.Helper()
	dir := shopfake.SpecDir()
	if dir == "" {
		t.Log("../shared/specs/shopify is absent: the Shopify fake does not validate queries")
		return o
	}
	schema, err := shopfake.LoadSchema(dir, flagshipAPI)
	if err != nil {
		t.Fatalf("load the Shopify schema %s: %v", flagshipAPI, err)
	}
	o.Schemas = map[string]*ast.Schema{flagshipAPI: schema}
	return o
}

// sageSpecDir is ../shared/specs/sage when present: the Sage fake then
// checks request bodies against the spec ("" otherwise).
func sageSpecDir(t *testing.T) string {
	root, err := testdb.RepoRoot()
	if err != nil {
		return ""
	}
	dir := filepath.Join(root, "..", "shared", "specs", "sage")
	if _, err := os.Stat(dir); err != nil {
		t.Log("../shared/specs/sage is absent: the Sage fake does not check bodies against the spec")
		return ""
	}
	return dir
}

func startFlagshipApps(t *testing.T) *flagshipApps {
	t.Helper()
	a := &flagshipApps{clock: shopfake.NewClock(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second))}
	a.shop = shopfake.New(shopOptions(t, shopfake.Options{Token: flagshipShopToken, Now: a.clock.Now}))
	shopSrv := httptest.NewServer(a.shop)
	t.Cleanup(shopSrv.Close)
	a.shopURL = shopSrv.URL
	a.hub = hubfake.NewHandler(hubfake.Options{Tokens: []string{flagshipHubToken}, Now: a.clock.Now, SpecDir: hubfake.FindSpecDir()})
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

// ordersToInvoicesMapping is the flagship orders -> invoices mapping: each
// line item becomes an invoice line (the price a number), and the order's
// email becomes the Sage contact's id, creating the contact when missing.
func ordersToInvoicesMapping() []map[string]any {
	return []map[string]any{
		{"source": "name", "target": "reference"},
		{"source": "created_at", "target": "date", "transform": "format_date", "format": "YYYY-MM-DD"},
		{"source": "currency", "target": "currency_id"},
		{"source": "email", "target": "contact_id", "transform": "trim", "lookup": map[string]any{
			"object": "contacts", "field": "email", "create": []map[string]any{
				{"source": "email", "target": "email", "transform": "trim,lower"},
				{"source": "customer_name", "target": "name", "default": "Shopify customer"},
				{"target": "contact_type_ids", "value": []string{"CUSTOMER"}},
			}}},
		{"source": "line_items", "target": "invoice_lines", "items": []map[string]any{
			{"source": "name", "target": "description"},
			{"source": "quantity", "target": "quantity"},
			{"source": "price", "target": "unit_price", "transform": "number"},
			{"target": "ledger_account_id", "value": "la-sales"},
		}},
	}
}

// Shopify orders -> Sage sales invoices, one way: every line item becomes
// an invoice line, the invoice's contact is the Sage contact with the
// order's email (created first when missing, once per email), the invoice
// id is written back to the order's external_id metafield (the merchant's
// note stays), and no invoice is ever created twice.
func TestFlagshipShopifyOrdersToSageInvoicesOneWay(t *testing.T) {
	t.Parallel()
	apps := startOrdersApps(t, nil, false)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	ann := apps.sageContact("Ann Existing", "ann@example.com")
	apps.sageContact("Dup One", "dup@example.com")
	apps.sageContact("Dup Two", "DUP@example.com")

	day := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	var many []shopfake.LineItem
	for i := range 12 { // more lines than the first page of an order's lines
		many = append(many, shopfake.LineItem{Name: fmt.Sprintf("Card %02d", i), Quantity: 1, Price: fmt.Sprintf("%d.25", i+1)})
	}
	type order struct {
		email, customer, note string
		lines                 []shopfake.LineItem
	}
	orders := []order{
		{email: " Ann@Example.com", customer: "Ann Lee", note: "Leave at the door",
			lines: []shopfake.LineItem{{Name: "Mug", Quantity: 2, Price: "15.00"}, {Name: "Tea", Quantity: 1, Price: "4.50"}}},
		{email: "bob@example.com", customer: "Bob Baker", lines: []shopfake.LineItem{{Name: "Pot", Quantity: 1, Price: "30.00"}}},
		{email: "BOB@example.com", customer: "Bob Baker", lines: []shopfake.LineItem{{Name: "Lid", Quantity: 3, Price: "2.00"}}},
		{email: "carol@example.com", lines: many},
		{email: "dup@example.com", customer: "Dup", lines: []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}},
	}
	var ids []int
	for i, o := range orders {
		gid := shop.AddOrder(shopfake.Order{Email: o.email, CustomerName: o.customer, Note: o.note, Currency: "GBP", Status: "PAID",
			Total: "1.00", LineItems: o.lines, CreatedAt: day.AddDate(0, 0, i), UpdatedAt: clock.Now()})
		var n int
		if _, err := fmt.Sscanf(gid, "gid://shopify/Order/%d", &n); err != nil {
			t.Fatalf("order gid %q: %v", gid, err)
		}
		ids = append(ids, n)
	}
	clock.Advance(time.Minute)

	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off") // runs only when the test asks
	tok := h.signup(t, "flagship-orders@example.com")
	shopConn, sageConn := apps.connect(t, h, tok)
	body := ordersWorkflowBody("Shopify orders -> Sage sales invoices", shopConn, sageConn, "external_id")
	// A lookup in an object the target does not have is refused, saying why.
	bad := ordersToInvoicesMapping()
	bad[3]["lookup"] = map[string]any{"object": "customers", "field": "email"}
	badBody := maps.Clone(body)
	badBody["mapping"] = bad
	if r := h.do(t, "POST", "/v1/workflows", tok, badBody); r.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(r.Body), `lookup.object \"customers\" is not an object`) {
		t.Fatalf("workflow with a lookup in a missing object: %d %s", r.Status, r.Body)
	}
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, body)
	wfID, _ := wf["id"].(string)

	// The preview counts the contacts the lookups would create (bob and
	// carol; ann exists; dup is ambiguous) and creates nothing.
	preview := h.must(t, http.StatusOK, "POST", "/v1/workflows/"+wfID+"/preview", tok, nil)
	if preview["lookup_creates"] != 2.0 {
		t.Errorf("preview lookup_creates = %v, want 2 (bob and carol): %v", preview["lookup_creates"], preview)
	}
	if n := len(sage.List(biz, "contacts")); n != 3 {
		t.Fatalf("the preview changed Sage: %d contacts, want the 3 seeded", n)
	}
	clock.Advance(time.Minute) // the fake shop's cost bucket refills on its own clock

	run := h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["created"] != 6 || c["transactions"] != 6 || c["failed"] != 1 {
		t.Fatalf("first run = %v, want 4 invoices and 2 contacts (bob, carol) created, 6 transactions, the ambiguous email failed", run)
	}
	recs := h.must(t, http.StatusOK, "GET", fmt.Sprintf("/v1/runs/%s/records", run["id"]), tok, nil)
	if items, _ := recs["items"].([]any); len(items) != 1 || !strings.Contains(fmt.Sprint(items[0]), `2 contacts records have email "dup@example.com"`) {
		t.Errorf("failed records = %v, want the dup@example.com order, naming both contacts", recs["items"])
	}

	contactOf := map[string]string{}
	for _, c := range sage.List(biz, "contacts") {
		email := strings.ToLower(fmt.Sprint(c["email"]))
		if _, dup := contactOf[email]; dup && email != "dup@example.com" {
			t.Errorf("two Sage contacts with email %s", email)
		}
		contactOf[email] = fmt.Sprint(c["id"])
		if email == "bob@example.com" && c["name"] != "Bob Baker" {
			t.Errorf("created contact for bob: name %v, want the order's customer name", c["name"])
		}
		if email == "carol@example.com" && c["name"] != "Shopify customer" {
			t.Errorf("created contact for carol: name %v, want the default", c["name"])
		}
	}
	if len(contactOf) != 4 || contactOf["ann@example.com"] != ann {
		t.Fatalf("Sage contacts by email = %v, want ann reused (%s) and bob and carol created once", contactOf, ann)
	}
	invoices := map[string]bool{}
	for i, id := range ids {
		o, ok := shop.Order(id)
		if !ok {
			t.Fatalf("order %d is gone", id)
		}
		if o.Note != orders[i].note {
			t.Errorf("order %s: note %q, want the merchant's %q untouched", o.Name, o.Note, orders[i].note)
		}
		invID := o.Metafields["synchron.external_id"]
		if i == 4 {
			if invID != "" {
				t.Errorf("the ambiguous order got invoice %s", invID)
			}
			continue
		}
		inv := sage.Get(biz, "sales_invoices", invID)
		if inv == nil {
			t.Fatalf("order %s: external_id %q is not a Sage invoice id", o.Name, invID)
		}
		invoices[invID] = true
		if got := fmt.Sprint(inv["reference"]); got != o.Name {
			t.Errorf("invoice %s: reference %q, want the order name %q", invID, got, o.Name)
		}
		if got, want := fmt.Sprint(inv["date"]), day.AddDate(0, 0, i).Format("2006-01-02"); got != want {
			t.Errorf("invoice %s: date %q, want %q", invID, got, want)
		}
		wantContact := contactOf[strings.ToLower(strings.TrimSpace(orders[i].email))]
		if c, _ := inv["contact"].(map[string]any); c == nil || c["id"] != wantContact {
			t.Errorf("invoice %s: contact %v, want %s", invID, inv["contact"], wantContact)
		}
		lines, _ := inv["invoice_lines"].([]any)
		if len(lines) != len(orders[i].lines) {
			t.Fatalf("invoice %s has %d lines, want the order's %d", invID, len(lines), len(orders[i].lines))
		}
		for k, l := range lines {
			line, _ := l.(map[string]any)
			want := orders[i].lines[k]
			if line["description"] != want.Name || fmt.Sprint(line["quantity"]) != fmt.Sprint(want.Quantity) ||
				fmt.Sprintf("%.2f", line["unit_price"]) != want.Price {
				t.Errorf("invoice %s line %d = %v, want %+v", invID, k, line, want)
			}
		}
	}
	if len(invoices) != 4 {
		t.Fatalf("orders point at %d distinct invoices, want 4", len(invoices))
	}

	clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["transactions"] != 0 || c["created"] != 0 {
		t.Fatalf("idle run = %v, want 0 transactions (the write-back must not echo)", c)
	}
	// A contact added in Sage meanwhile is found, not created again; an
	// order of a known new contact reuses it.
	erin := apps.sageContact("Erin Early", "erin@example.com")
	shop.AddOrder(shopfake.Order{Email: "erin@example.com", CustomerName: "Erin", Currency: "GBP", Status: "PAID", Total: "1.00", CreatedAt: day,
		LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}})
	shop.AddOrder(shopfake.Order{Email: "bob@example.com", Currency: "GBP", Status: "PAID", Total: "1.00", CreatedAt: day,
		LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}})
	before := len(sage.List(biz, "contacts"))
	clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["created"] != 2 || c["failed"] != 0 {
		t.Fatalf("run after two new orders = %v, want 2 invoices created", c)
	}
	if after := len(sage.List(biz, "contacts")); after != before {
		t.Errorf("Sage has %d contacts after the run, want %d (erin found, bob reused)", after, before)
	}
	byContact := map[string]int{}
	for _, inv := range sage.List(biz, "sales_invoices") {
		if c, _ := inv["contact"].(map[string]any); c != nil {
			byContact[fmt.Sprint(c["id"])]++
		}
	}
	if byContact[erin] != 1 || byContact[contactOf["bob@example.com"]] != 3 {
		t.Errorf("invoices by contact = %v, want 1 for erin (%s) and 3 for bob", byContact, erin)
	}
}

// The same mapping without a write-back (the one-way fast path): a contact
// Sage refuses to create fails only the orders with that email, saying why,
// and the others get their invoices.
func TestFlagshipOrdersLookupCreateRejected(t *testing.T) {
	t.Parallel()
	apps := startOrdersApps(t, nil, false)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	line := []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}
	for _, email := range []string{"good@example.com", "not-an-email", "also-good@example.com"} {
		shop.AddOrder(shopfake.Order{Email: email, Currency: "GBP", Status: "PAID", Total: "15.00", LineItems: line, UpdatedAt: clock.Now()})
	}
	clock.Advance(time.Minute)
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "flagship-orders-rejected@example.com")
	shopConn, sageConn := apps.connect(t, h, tok)
	run := h.runWorkflow(t, tok, ordersWorkflow(t, h, tok, "Orders -> invoices, no write-back", shopConn, sageConn, ""))
	if c := counts(t, run); c["created"] != 4 || c["failed"] != 1 {
		t.Fatalf("run = %v, want 2 contacts and 2 invoices created (every record created in Sage counts), 1 failure", run)
	}
	recs := h.must(t, http.StatusOK, "GET", fmt.Sprintf("/v1/runs/%s/records", run["id"]), tok, nil)
	items, _ := recs["items"].([]any)
	if len(items) != 1 || !strings.Contains(fmt.Sprint(items[0]), `creating the contacts record for email "not-an-email" failed`) ||
		!strings.Contains(fmt.Sprint(items[0]), "email is invalid") {
		t.Fatalf("failed records = %v, want the not-an-email order with Sage's reason", items)
	}
	if n := len(sage.List(biz, "contacts")); n != 2 {
		t.Errorf("Sage has %d contacts, want the 2 valid ones", n)
	}
	if n := len(sage.List(biz, "sales_invoices")); n != 2 {
		t.Errorf("Sage has %d invoices, want 2", n)
	}
}

// holdContactCreation counts the listings of Sage contacts (a read's second
// request, for deletions, aside) and holds a contact creation until the
// second listing arrives, or 1.5 s pass.
func holdContactCreation(r *http.Request, mu *sync.Mutex, lists *int, second chan struct{}) {
	if !strings.HasSuffix(r.URL.Path, "/contacts") {
		return
	}
	switch r.Method {
	case http.MethodGet:
		if r.URL.Query().Has("deleted_since") {
			return // the same read's second request
		}
		mu.Lock()
		if *lists++; *lists == 2 {
			close(second)
		}
		mu.Unlock()
	case http.MethodPost:
		select {
		case <-second:
		case <-time.After(1500 * time.Millisecond):
		}
	}
}

// Two workflows on two hosts, reading orders of the same new customer into
// one Sage business at the same time, create her Sage contact once: the
// lookups of one connection create under a lock shared by every host.
func TestFlagshipLookupCreatesOnceAcrossHosts(t *testing.T) {
	t.Parallel()
	// A creation of a contact is held until a second listing of contacts
	// arrives (or 1.5 s pass): without the lock the other host's lookup
	// lists the contacts while the first creation is in flight, misses it
	// and creates a second contact; with it, that listing waits for the
	// creation to end.
	var mu sync.Mutex
	lists := 0
	second := make(chan struct{})
	apps := startOrdersApps(t, func(sage http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			holdContactCreation(r, &mu, &lists, second)
			sage.ServeHTTP(w, r)
		})
	}, false)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	line := mug(1)
	for range 3 {
		shop.AddOrder(shopfake.Order{Email: "new@example.com", CustomerName: "New Buyer", Currency: "GBP", Status: "PAID", Total: "15.00", LineItems: line, UpdatedAt: clock.Now()})
	}
	clock.Advance(time.Minute)
	url := testdb.URL(t)
	key := "SYNCHRON_SECRET_KEY=" + randomKey(t) // both hosts open the same connections
	// One worker each: while the first run waits in its contact creation,
	// the second can only be taken by the other host.
	hosts := []*host{startHost(t, url, key, "SYNCHRON_SCHEDULER=off", "SYNCHRON_WORKERS=1"),
		startHost(t, url, key, "SYNCHRON_SCHEDULER=off", "SYNCHRON_WORKERS=1")}
	tok := hosts[0].signup(t, "flagship-two-hosts@example.com")
	shopConn, sageConn := apps.connect(t, hosts[0], tok)
	var wfs []string
	for i, h := range hosts {
		wfs = append(wfs, ordersWorkflow(t, h, tok, fmt.Sprintf("Orders -> invoices %d", i), shopConn, sageConn, ""))
	}
	mu.Lock()
	lists = 0 // count the listings of the runs only
	mu.Unlock()
	var runs []string
	for i, h := range hosts {
		run := h.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/v1/workflows/%s/run", wfs[i]), tok, nil)
		runs = append(runs, run["id"].(string))
	}
	created := 0
	for i, id := range runs {
		c := counts(t, hosts[i].waitRun(t, tok, id, time.Minute))
		if c["failed"] != 0 {
			t.Fatalf("run %d = %v, want no failure", i, c)
		}
		created += c["created"]
	}
	if created != 7 {
		t.Errorf("the two runs created %d records, want 6 invoices and 1 contact (created counts every record created in Sage)", created)
	}
	contacts := sage.List(biz, "contacts")
	if len(contacts) != 1 {
		t.Fatalf("Sage has %d contacts, want exactly 1 for new@example.com: %v", len(contacts), contacts)
	}
	for _, inv := range sage.List(biz, "sales_invoices") {
		if c, _ := inv["contact"].(map[string]any); c == nil || c["id"] != contacts[0]["id"] {
			t.Errorf("invoice %v: contact %v, want %v", inv["id"], inv["contact"], contacts[0]["id"])
		}
	}
}

// Without a write-back, Shopify orders -> Sage invoices still keeps links
// (sales invoices have no upsert key): an edited order updates its invoice
// instead of creating a second one.
func TestFlagshipEditedOrderUpdatesItsInvoice(t *testing.T) {
	t.Parallel()
	apps := startOrdersApps(t, nil, false)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	gid := shop.AddOrder(shopfake.Order{Email: "edit@example.com", CustomerName: "Eddie", Currency: "GBP", Status: "PAID", Total: "15.00",
		LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}, UpdatedAt: clock.Now()})
	var orderID int
	if _, err := fmt.Sscanf(gid, "gid://shopify/Order/%d", &orderID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "flagship-order-edit@example.com")
	shopConn, sageConn := apps.connect(t, h, tok)
	wfID := ordersWorkflow(t, h, tok, "Orders -> invoices, no write-back", shopConn, sageConn, "")
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["created"] != 2 || c["failed"] != 0 {
		t.Fatalf("first run = %v, want the contact and the invoice created", c)
	}
	clock.Advance(time.Minute)
	if !shop.EditOrder(orderID, func(o *shopfake.Order) { o.LineItems[0].Quantity = 3 }) {
		t.Fatal("order gone")
	}
	clock.Advance(time.Minute)
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["updated"] != 1 || c["created"] != 0 || c["failed"] != 0 {
		t.Fatalf("run after the edit = %v, want the invoice updated", c)
	}
	invoices := sage.List(biz, "sales_invoices")
	if len(invoices) != 1 {
		t.Fatalf("Sage holds %d invoices for one order, want 1", len(invoices))
	}
	lines, _ := invoices[0]["invoice_lines"].([]any)
	if len(lines) != 1 || fmt.Sprint(lines[0].(map[string]any)["quantity"]) != "3" {
		t.Errorf("invoice lines after the edit = %v, want quantity 3", lines)
	}
}

// The contact lookups follow Sage: a contact whose email changed there no
// longer receives the invoices of its old email (a new contact is created
// for it), and an order whose contact Sage kept failing to create (5xx) is
// queued for an automatic retry rather than left for a user to retry.
func TestFlagshipLookupsFollowSageAndRetryTransientFailures(t *testing.T) {
	t.Parallel()
	apps := startOrdersApps(t, nil, false)
	clock, shop, sage := apps.clock, apps.shop, apps.sage
	const biz = sageBiz
	bob := apps.sageContact("Bob", "bob@example.com")
	order := func(email string) {
		shop.AddOrder(shopfake.Order{Email: email, CustomerName: "Buyer", Currency: "GBP", Status: "PAID", Total: "15.00",
			LineItems: []shopfake.LineItem{{Name: "Mug", Quantity: 1, Price: "15.00"}}, UpdatedAt: clock.Now()})
		clock.Advance(time.Minute)
	}
	order("bob@example.com")
	dbURL := testdb.URL(t)
	h := startHost(t, dbURL, "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "flagship-lookups-follow@example.com")
	shopConn, sageConn := apps.connect(t, h, tok)
	wfID := ordersWorkflow(t, h, tok, "Orders -> invoices", shopConn, sageConn, "external_id")
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["created"] != 1 || c["failed"] != 0 {
		t.Fatalf("first run = %v", c)
	}
	// Bob's email changes in Sage; a new order from bob@example.com must
	// not go to that contact any more.
	sage.Update(biz, "contacts", bob, map[string]any{"email": "robert@example.com", "main_contact_person": map[string]any{"email": "robert@example.com"}})
	clock.Advance(time.Minute)
	order("bob@example.com")
	if c := counts(t, h.runWorkflow(t, tok, wfID)); c["created"] != 2 || c["failed"] != 0 {
		t.Fatalf("run after the email change = %v, want a new contact and its invoice", c)
	}
	byEmail := map[string]int{}
	for _, c := range sage.List(biz, "contacts") {
		byEmail[fmt.Sprint(c["email"])]++
	}
	if byEmail["bob@example.com"] != 1 || byEmail["robert@example.com"] != 1 {
		t.Fatalf("contacts by email = %v, want a new bob@example.com beside robert@example.com", byEmail)
	}

	// Sage keeps answering 503 to contact creations: the order fails as
	// retryable, queued for the next runs.
	var faults []sagefake.Fault
	for range 12 {
		faults = append(faults, sagefake.Fault{Status: http.StatusServiceUnavailable, Match: "POST /contacts"})
	}
	sage.InjectFaults(faults...)
	order("carol@example.com")
	run := h.runWorkflow(t, tok, wfID)
	if c := counts(t, run); c["failed"] != 1 {
		t.Fatalf("run while Sage fails = %v, want carol's order failed", c)
	}
	db := sqlx.MustOpen("postgres", dbURL)
	defer db.Close()
	var kind string
	if err := db.Get(&kind, `SELECT kind FROM retry_queue WHERE workflow_id = $1`, wfID); err != nil {
		t.Fatal(err)
	}
	if kind != "retryable" {
		t.Fatalf("carol's order is queued %q, want retryable (retried by later runs)", kind)
	}
}
