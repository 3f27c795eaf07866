package fake

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// specDir returns ../shared/specs/sage relative to the repository root, or
// skips the test.
func specDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "shared", "specs", "sage"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sage-accounting-v3.1-openapi.json")); err != nil {
		t.Skipf("Sage spec not found at %s (../shared/specs/sage from the repository root): spec validation not tested", dir)
	}
	return dir
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func do(t *testing.T, h http.Handler, method, path, tok, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestSpecValidation(t *testing.T) {
	s, err := New(Options{SpecDir: specDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.IssueTokens()
	code, body := do(t, s, "POST", "/contacts", a, `{"contact":{"name":"A","contact_type_ids":"CUSTOMER"}}`)
	if code != 422 || !strings.Contains(body, `"$source":"contact_type_ids"`) {
		t.Fatalf("wrong type: %d %s", code, body)
	}
	code, body = do(t, s, "POST", "/contacts", a, `{"name":"A","contact_type_ids":["CUSTOMER"]}`)
	if code != 422 || !strings.Contains(body, "contact") {
		t.Fatalf("unwrapped: %d %s", code, body)
	}
	code, body = do(t, s, "POST", "/sales_invoices", a, `{"sales_invoice":{"contact_id":"x","date":"2026-01-01","invoice_lines":[{"description":"d","ledger_account_id":"la-sales","unit_price":"10"}]}}`)
	if code != 422 || !strings.Contains(body, "unit_price") {
		t.Fatalf("string price: %d %s", code, body)
	}
	code, body = do(t, s, "POST", "/contacts", a, `{"contact":{"name":"A","contact_type_ids":["CUSTOMER"],"credit_days":3}}`)
	if code != 201 {
		t.Fatalf("valid: %d %s", code, body)
	}
}

func TestRequiredAndRotation(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	a, r, _ := s.IssueTokens()
	code, body := do(t, s, "POST", "/contacts", a, `{"contact":{"contact_type_ids":["CUSTOMER"]}}`)
	if code != 422 || !strings.Contains(body, `"$source":"name"`) || !strings.Contains(body, `"$severity":"error"`) {
		t.Fatalf("missing name: %d %s", code, body)
	}
	c.t = c.t.Add(AccessTokenTTL)
	if code, _ := do(t, s, "GET", "/contacts", a, ""); code != 401 {
		t.Fatalf("expired token: %d", code)
	}
	refresh := func(rt string) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"client"}, "client_secret": {"secret"}}
		req := httptest.NewRequest("POST", "/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	code, m := refresh(r)
	if code != 200 || m["refresh_token"] == r {
		t.Fatalf("refresh: %d %v", code, m)
	}
	if code, m := refresh(r); code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", code, m)
	}
	if code, _ := do(t, s, "GET", "/contacts", m["access_token"].(string), ""); code != 200 {
		t.Fatalf("new token: %d", code)
	}
}

func TestPagingAndBusiness(t *testing.T) {
	s, err := New(Options{Businesses: []string{"b1", "b2"}})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.IssueTokens()
	for range 5 {
		s.Put("b1", "contacts", map[string]any{"name": "x"})
	}
	if code, _ := do(t, s, "GET", "/contacts", a, ""); code != 403 {
		t.Fatalf("no X-Business with two businesses: %d", code)
	}
	get := func(path, biz string) (int, map[string]any) {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+a)
		r.Header.Set("X-Business", biz)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	if code, _ := get("/contacts", "nope"); code != 404 {
		t.Fatalf("unknown business: %d", code)
	}
	path, n := "/contacts?items_per_page=2", 0
	for pages := 0; ; pages++ {
		code, m := get(path, "b1")
		if code != 200 || pages > 5 {
			t.Fatalf("page %d: %d %v", pages, code, m)
		}
		for _, it := range m["$items"].([]any) {
			if len(it.(map[string]any)) != 2 {
				t.Fatalf("list without attributes=all returned %v", it)
			}
			n++
		}
		next, ok := m["$next"].(string)
		if !ok {
			break
		}
		path = next
	}
	if n != 5 {
		t.Fatalf("paged %d records, want 5", n)
	}
	if code, _ := get("/contacts?items_per_page=201", "b1"); code != 400 {
		t.Fatalf("items_per_page 201: %d", code)
	}
}

func TestSinceFilters(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.IssueTokens()
	first := s.Put("biz-1", "contacts", map[string]any{"name": "a"})
	c.t = c.t.Add(time.Second)
	second := s.Put("biz-1", "contacts", map[string]any{"name": "b"})
	s.Delete("biz-1", "contacts", first)
	list := func(q string) []string {
		t.Helper()
		code, body := do(t, s, "GET", "/contacts?"+q, a, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		var env struct {
			Items []map[string]any `json:"$items"`
		}
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range env.Items {
			ids = append(ids, it["id"].(string))
		}
		return ids
	}
	at := url.QueryEscape(c.t.Format(time.RFC3339))
	if got := list("updated_or_created_since=" + at); len(got) != 1 || got[0] != second {
		t.Fatalf("updated_or_created_since is inclusive: got %v", got)
	}
	if got := list("deleted_since=" + at); len(got) != 0 {
		t.Fatalf("deleted_since is exclusive: got %v", got)
	}
	before := url.QueryEscape(c.t.Add(-time.Second).Format(time.RFC3339))
	if got := list("deleted_since=" + before); len(got) != 1 || got[0] != first {
		t.Fatalf("deleted_since: got %v", got)
	}
}

// Lists are sorted by updated_at only when asked (sort=updated_at); other
// lists come by name, deleted records by id; answers carry the server's
// Date.
func TestListOrder(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	s, err := New(Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.IssueTokens()
	zed := s.Put("biz-1", "contacts", map[string]any{"name": "Zed"})
	clk.t = clk.t.Add(time.Second)
	amy := s.Put("biz-1", "contacts", map[string]any{"name": "amy"})
	inv1 := s.Put("biz-1", "sales_invoices", map[string]any{"displayed_as": "Z"})
	clk.t = clk.t.Add(time.Second)
	inv2 := s.Put("biz-1", "sales_invoices", map[string]any{"displayed_as": "A"})
	order := func(path string) string {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+a)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if d := w.Header().Get("Date"); d != clk.t.Format(http.TimeFormat) {
			t.Errorf("Date %q", d)
		}
		var env struct {
			Items []struct{ ID string } `json:"$items"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &env)
		var ids []string
		for _, it := range env.Items {
			ids = append(ids, it.ID)
		}
		return strings.Join(ids, ",")
	}
	if got := order("/contacts"); got != amy+","+zed {
		t.Errorf("contacts %s, want by name", got)
	}
	if got := order("/sales_invoices"); got != inv2+","+inv1 {
		t.Errorf("invoices without sort %s, want by displayed_as", got)
	}
	if got := order("/sales_invoices?sort=updated_at:asc"); got != inv1+","+inv2 {
		t.Errorf("invoices sorted %s, want by updated_at", got)
	}
	s.Delete("biz-1", "contacts", amy)
	clk.t = clk.t.Add(time.Second)
	s.Delete("biz-1", "contacts", zed)
	if got := order("/contacts?deleted_since=2000-01-01T00:00:00Z"); got != zed+","+amy {
		t.Errorf("deleted %s, want by id", got)
	}
}

// Faults can target one kind of request, and be applied before failing.
func TestFaultMatchApplied(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.IssueTokens()
	s.InjectFaults(Fault{Status: 502, Applied: true, Match: "POST /contacts"})
	if code, _ := do(t, s, "GET", "/contacts", a, ""); code != 200 {
		t.Fatalf("GET meets a POST's fault: %d", code)
	}
	if code, _ := do(t, s, "POST", "/contacts", a, `{"contact":{"name":"A","contact_type_ids":["CUSTOMER"]}}`); code != 502 {
		t.Fatalf("POST: %d, want 502", code)
	}
	if n := len(s.List("biz-1", "contacts")); n != 1 {
		t.Fatalf("%d contacts after an applied fault, want 1", n)
	}
}
