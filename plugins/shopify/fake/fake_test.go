package fake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
)

func post(t *testing.T, h http.Handler, version, token, query string, vars map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/admin/api/"+version+"/graphql.json", bytes.NewReader(body))
	if token != "" {
		req.Header.Set("X-Shopify-Access-Token", token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestToken(t *testing.T) {
	s := New(Options{})
	if code, _ := post(t, s, "2025-01", "wrong", `{ shop { name } }`, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d, want 401", code)
	}
	if code, _ := post(t, s, "2025-01", "", `{ shop { name } }`, nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", code)
	}
}

func TestValidation(t *testing.T) {
	dir := SpecDir()
	if dir == "" {
		t.Skip("schema validation not tested: no Shopify schemas (../shared/specs/shopify, relative to the repo root, is missing or SYNCHRON_SHOPIFY_SPECS=none)")
	}
	schema, err := LoadSchema(dir, "2025-01")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Schemas: map[string]*ast.Schema{"2025-01": schema}})
	_, out := post(t, s, "2025-01", "test-token", `{ customers(first: 2, sortKey: UPDATED_AT) { nodes { id email updatedAt } pageInfo { hasNextPage endCursor } } }`, nil)
	if out["errors"] != nil {
		t.Fatalf("valid query refused: %v", out["errors"])
	}
	_, out = post(t, s, "2025-01", "test-token", `{ customers(first: 2) { nodes { id emailAddressX } } }`, nil)
	if out["errors"] == nil || !strings.Contains(toJSON(out["errors"]), "emailAddressX") {
		t.Fatalf("invalid field accepted: %v", out)
	}
	_, out = post(t, s, "2025-01", "test-token", `{ customers(first: 2, sortKey: NOPE) { nodes { id } } }`, nil)
	if out["errors"] == nil {
		t.Fatalf("invalid enum accepted: %v", out)
	}
	_, out = post(t, s, "2025-01", "test-token", `mutation($i: CustomerInput!) { customerCreate(input: $i) { customer { id } } }`, map[string]any{"i": map[string]any{"first_name": "x"}})
	if !strings.Contains(toJSON(out["errors"]), "first_name") {
		t.Fatalf("unknown input field accepted: %v", out)
	}
	if code, _ := post(t, s, "1999-01", "test-token", `{ shop { name } }`, nil); code != http.StatusNotFound {
		t.Fatalf("unknown version: status %d, want 404", code)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestThrottleAndRestore(t *testing.T) {
	c := NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Options{Now: c.Now, MaximumAvailable: 100, RestoreRate: 10})
	q := `mutation($i: CustomerInput!) { customerCreate(input: $i) { customer { id } userErrors { field message } } }`
	for i := range 10 {
		_, out := post(t, s, "2025-01", "test-token", q, map[string]any{"i": map[string]any{"email": "a" + string(rune('a'+i)) + "@x.io"}})
		if out["errors"] != nil {
			t.Fatalf("mutation %d: %v", i, out["errors"])
		}
	}
	_, out := post(t, s, "2025-01", "test-token", q, map[string]any{"i": map[string]any{"email": "z@x.io"}})
	if !strings.Contains(toJSON(out["errors"]), "THROTTLED") {
		t.Fatalf("empty bucket: want THROTTLED, got %v", out)
	}
	st := out["extensions"].(map[string]any)["cost"].(map[string]any)["throttleStatus"].(map[string]any)
	if st["currentlyAvailable"].(float64) != 0 || st["restoreRate"].(float64) != 10 {
		t.Fatalf("throttleStatus %v", st)
	}
	c.Advance(time.Second)
	_, out = post(t, s, "2025-01", "test-token", q, map[string]any{"i": map[string]any{"email": "z@x.io"}})
	if out["errors"] != nil {
		t.Fatalf("after restore: %v", out["errors"])
	}
	_, out = post(t, s, "2025-01", "test-token", q, map[string]any{"i": map[string]any{"email": "z@x.io"}})
	if !strings.Contains(toJSON(out), "Email has already been taken") && !strings.Contains(toJSON(out), "THROTTLED") {
		t.Fatalf("duplicate: %v", out)
	}
	if s.Throttled() < 1 {
		t.Fatal("throttled count not kept")
	}
}

func TestPaging(t *testing.T) {
	s := New(Options{MaximumAvailable: 1e6, RestoreRate: 1e6})
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		s.AddCustomer(Customer{Email: "p" + string(rune('a'+i)) + "@x.io", UpdatedAt: at.Add(time.Duration(i/2) * time.Second)})
	}
	q := `query($after: String, $q: String) { customers(first: 2, after: $after, query: $q, sortKey: UPDATED_AT) { nodes { id updatedAt } pageInfo { hasNextPage endCursor } } }`
	var after any
	n := 0
	for {
		_, out := post(t, s, "2025-01", "test-token", q, map[string]any{"after": after, "q": "updated_at:>='2025-01-01T00:00:01Z'"})
		conn := out["data"].(map[string]any)["customers"].(map[string]any)
		n += len(conn["nodes"].([]any))
		pi := conn["pageInfo"].(map[string]any)
		if !pi["hasNextPage"].(bool) {
			break
		}
		after = pi["endCursor"]
	}
	if n != 3 {
		t.Fatalf("read %d customers updated at or after 00:00:01, want 3", n)
	}
}

func TestFaults(t *testing.T) {
	s := New(Options{})
	s.Inject(Fault{Status: 503}, Fault{Throttle: true})
	if code, _ := post(t, s, "2019-04", "test-token", `{ shop { name } }`, nil); code != 404 {
		t.Fatalf("unserved version: got %d, want 404", code)
	}
	if code, _ := post(t, s, "2025-01", "test-token", `{ shop { name } }`, nil); code != 503 {
		t.Fatalf("injected 503: got %d", code)
	}
	if _, out := post(t, s, "2025-01", "test-token", `{ shop { name } }`, nil); !strings.Contains(toJSON(out), "THROTTLED") {
		t.Fatalf("injected throttle: %v", out)
	}
	if _, out := post(t, s, "2025-01", "test-token", `{ shop { name } }`, nil); out["data"] == nil {
		t.Fatalf("after faults: %v", out)
	}
}

func TestMaxCost(t *testing.T) {
	s := New(Options{MaximumAvailable: 2000})
	_, out := post(t, s, "2025-01", "test-token", `{ customers(first: 250) { nodes { id } a: nodes { id } } orders(first: 250) { nodes { id lineItems(first: 5) { nodes { id } } } } }`, nil)
	if !strings.Contains(toJSON(out), "MAX_COST_EXCEEDED") {
		t.Fatalf("a query over 1000 points: %v", out)
	}
}

// Customers are searched by phone (with updated_at), and a mutation faulted
// AfterApply takes effect although its answer is a 5xx.
func TestPhoneQueryAndLostAnswer(t *testing.T) {
	s := New(Options{})
	s.AddCustomer(Customer{Phone: "+15550001", FirstName: "A"})
	s.AddCustomer(Customer{Phone: "+15550002", FirstName: "B"})
	_, out := post(t, s, "2025-01", "test-token", `{ customers(first: 5, query: "phone:'+15550002' updated_at:>='2000-01-01T00:00:00Z'") { nodes { firstName } } }`, nil)
	if got := toJSON(out["data"]); !strings.Contains(got, `"B"`) || strings.Contains(got, `"A"`) {
		t.Fatalf("phone query: %s", got)
	}
	s.Inject(Fault{Status: 502, AfterApply: true})
	code, _ := post(t, s, "2025-01", "test-token", `mutation($i: CustomerInput!) { customerCreate(input: $i) { customer { id } } }`, map[string]any{"i": map[string]any{"phone": "+15550003"}})
	if code != 502 || len(s.Customers()) != 3 {
		t.Fatalf("AfterApply: status %d, %d customers; want 502 and the customer created", code, len(s.Customers()))
	}
}
