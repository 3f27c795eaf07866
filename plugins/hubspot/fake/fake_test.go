package fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newServer(t *testing.T, opts Options) (*Server, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 100000
	}
	s := New(opts)
	t.Cleanup(s.Close)
	return s, c
}

func do(t *testing.T, s *Server, method, path, token string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

func TestAuth(t *testing.T) {
	s, _ := newServer(t, Options{ExpiredTokens: []string{"old"}})
	st, _, body := do(t, s, "GET", "/crm/v3/objects/contacts", "nope", nil)
	if st != 401 || body["category"] != "INVALID_AUTHENTICATION" {
		t.Fatalf("bad token: %d %v", st, body)
	}
	st, _, body = do(t, s, "GET", "/crm/v3/objects/contacts", "old", nil)
	if st != 401 || body["category"] != "EXPIRED_AUTHENTICATION" {
		t.Fatalf("expired token: %d %v", st, body)
	}
	st, _, _ = do(t, s, "GET", "/crm/v3/objects/0-3", "test-token", nil)
	if st != 200 {
		t.Fatalf("deals as 0-3: %d", st)
	}
}

func TestRateLimit(t *testing.T) {
	s, c := newServer(t, Options{RateLimit: 3})
	for i := range 3 {
		st, h, _ := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil)
		if st != 200 || h.Get("X-HubSpot-RateLimit-Remaining") != fmt.Sprint(2-i) || h.Get("X-HubSpot-RateLimit-Max") != "3" {
			t.Fatalf("request %d: %d remaining %q", i, st, h.Get("X-HubSpot-RateLimit-Remaining"))
		}
	}
	st, h, body := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil)
	if st != 429 || h.Get("Retry-After") != "10" || body["errorType"] != "RATE_LIMIT" || h.Get("X-HubSpot-RateLimit-Interval-Milliseconds") != "10000" {
		t.Fatalf("4th request: %d %v %v", st, h, body)
	}
	c.Add(10 * time.Second)
	if st, _, _ := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil); st != 200 {
		t.Fatalf("after the window: %d", st)
	}
}

func TestFaults(t *testing.T) {
	s, _ := newServer(t, Options{})
	s.InjectFaults(500, 429)
	if st, _, _ := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil); st != 500 {
		t.Fatalf("first: %d", st)
	}
	if st, h, _ := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil); st != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("second: %d", st)
	}
	if st, _, _ := do(t, s, "GET", "/crm/v3/objects/contacts", "test-token", nil); st != 200 {
		t.Fatalf("third: %d", st)
	}
}

func TestListPagingAndArchived(t *testing.T) {
	s, _ := newServer(t, Options{})
	var props []map[string]string
	for i := range 25 {
		props = append(props, map[string]string{"email": fmt.Sprintf("u%d@x.com", i)})
	}
	ids := s.Seed("contacts", props...)
	s.Archive("contacts", ids[0], ids[1])
	seen := 0
	after := ""
	for pages := 0; ; pages++ {
		_, _, body := do(t, s, "GET", "/crm/v3/objects/contacts?limit=10&properties=email&after="+after, "test-token", nil)
		seen += len(body["results"].([]any))
		p, ok := body["paging"].(map[string]any)
		if !ok {
			break
		}
		after = p["next"].(map[string]any)["after"].(string)
	}
	if seen != 23 {
		t.Fatalf("live records listed: %d, want 23", seen)
	}
	_, _, body := do(t, s, "GET", "/crm/v3/objects/contacts?archived=true", "test-token", nil)
	if n := len(body["results"].([]any)); n != 2 {
		t.Fatalf("archived listed: %d", n)
	}
	_, _, body = do(t, s, "POST", "/crm/v3/objects/contacts/search", "test-token", map[string]any{"filterGroups": []any{}, "sorts": []string{"lastmodifieddate"}, "properties": []string{"email"}, "limit": 100})
	if n := len(body["results"].([]any)); n != 23 {
		t.Fatalf("search returned %d, want 23 (no archived)", n)
	}
}

func TestSearchWindowAndFilters(t *testing.T) {
	s, c := newServer(t, Options{})
	props := make([]map[string]string, 10100)
	for i := range props {
		props[i] = map[string]string{}
	}
	s.Seed("companies", props...)
	c.Add(time.Second)
	s.Seed("companies", map[string]string{"name": "late"})
	req := map[string]any{"filterGroups": []any{}, "sorts": []string{"hs_lastmodifieddate"}, "properties": []string{"name"}, "limit": 200, "after": "9800"}
	if st, _, _ := do(t, s, "POST", "/crm/v3/objects/companies/search", "test-token", req); st != 200 {
		t.Fatalf("page ending at 10,000: %d", st)
	}
	req["after"] = "10000"
	if st, _, body := do(t, s, "POST", "/crm/v3/objects/companies/search", "test-token", req); st != 400 || !strings.Contains(body["message"].(string), "10000") {
		t.Fatalf("past the window: %d %v", st, body)
	}
	delete(req, "after")
	req["filterGroups"] = []any{map[string]any{"filters": []any{map[string]any{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": fmt.Sprint(c.Now().Add(-time.Second / 2).UnixMilli())}}}}
	_, _, body := do(t, s, "POST", "/crm/v3/objects/companies/search", "test-token", req)
	if res := body["results"].([]any); len(res) != 1 || res[0].(map[string]any)["properties"].(map[string]any)["name"] != "late" {
		t.Fatalf("GT filter: %v", body)
	}
	req["limit"] = 201
	if st, _, _ := do(t, s, "POST", "/crm/v3/objects/companies/search", "test-token", req); st != 400 {
		t.Fatalf("limit 201: %d", st)
	}
}

func TestBatch(t *testing.T) {
	s, c := newServer(t, Options{SpecDir: FindSpecDir()})
	in := map[string]any{"inputs": []any{
		map[string]any{"properties": map[string]string{"email": "a@x.com"}, "associations": []any{}, "objectWriteTraceId": "0"},
		map[string]any{"properties": map[string]string{"email": "not-an-email"}, "associations": []any{}, "objectWriteTraceId": "1"},
	}}
	st, _, body := do(t, s, "POST", "/crm/v3/objects/contacts/batch/create", "test-token", in)
	if st != 207 || len(body["results"].([]any)) != 1 || len(body["errors"].([]any)) != 1 {
		t.Fatalf("create with one invalid email: %d %v", st, body)
	}
	e := body["errors"].([]any)[0].(map[string]any)
	if e["category"] != "VALIDATION_ERROR" || !strings.Contains(e["message"].(string), "not-an-email") {
		t.Fatalf("error: %v", e)
	}
	id := body["results"].([]any)[0].(map[string]any)["id"].(string)
	c.Add(time.Minute)
	up := map[string]any{"inputs": []any{map[string]any{"id": "a@x.com", "idProperty": "email", "properties": map[string]string{"firstname": "A"}}}}
	st, _, body = do(t, s, "POST", "/crm/v3/objects/contacts/batch/upsert", "test-token", up)
	if st != 200 || body["results"].([]any)[0].(map[string]any)["id"] != id || body["results"].([]any)[0].(map[string]any)["new"] != false {
		t.Fatalf("upsert existing: %d %v", st, body)
	}
	r, _ := s.Get("contacts", id)
	if !r.UpdatedAt.Equal(c.Now()) || r.Properties["firstname"] != "A" {
		t.Fatalf("after upsert: %+v", r)
	}
	many := make([]any, 101)
	for i := range many {
		many[i] = map[string]any{"id": "1"}
	}
	if st, _, _ := do(t, s, "POST", "/crm/v3/objects/contacts/batch/archive", "test-token", map[string]any{"inputs": many}); st != 400 {
		t.Fatalf("101 inputs: %d", st)
	}
	if st, _, _ := do(t, s, "POST", "/crm/v3/objects/contacts/batch/archive", "test-token", map[string]any{"inputs": []any{map[string]any{"id": id}}}); st != 204 {
		t.Fatalf("archive: %d", st)
	}
	if s.Count("contacts") != 0 {
		t.Fatal("archived record still live")
	}
}

func TestSpecValidation(t *testing.T) {
	dir := FindSpecDir()
	if dir == "" {
		t.Skip("no ../shared/specs/hubspot next to the repository: spec validation not tested")
	}
	s, _ := newServer(t, Options{SpecDir: dir})
	if !s.Validating() {
		t.Fatal("not validating")
	}
	// Batch create inputs without "associations" (required by the spec).
	st, _, body := do(t, s, "POST", "/crm/v3/objects/contacts/batch/create", "test-token", map[string]any{"inputs": []any{map[string]any{"properties": map[string]string{"email": "a@x.com"}}}})
	if st != 400 {
		t.Fatalf("create without associations: %d %v", st, body)
	}
	// properties values must be strings.
	st, _, _ = do(t, s, "POST", "/crm/v3/objects/0-3/batch/update", "test-token", map[string]any{"inputs": []any{map[string]any{"id": "1", "properties": map[string]any{"amount": 12}}}})
	if st != 400 {
		t.Fatalf("number property value: %d", st)
	}
	// A search without after is accepted (spec quirk), one missing sorts is not.
	if st, _, b := do(t, s, "POST", "/crm/v3/objects/deals/search", "test-token", map[string]any{"filterGroups": []any{}, "sorts": []string{"hs_lastmodifieddate"}, "properties": []string{}, "limit": 10}); st != 200 {
		t.Fatalf("search without after: %d %v", st, b)
	}
	if st, _, _ := do(t, s, "POST", "/crm/v3/objects/deals/search", "test-token", map[string]any{"filterGroups": []any{}, "properties": []string{}, "limit": 10}); st != 400 {
		t.Fatalf("search without sorts: %d", st)
	}
}

func TestOAuthToken(t *testing.T) {
	s, _ := newServer(t, Options{ClientID: "cid", ClientSecret: "sec", RefreshToken: "rt"})
	resp, err := http.PostForm(s.URL()+"/oauth/v1/token", map[string][]string{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"sec"}, "refresh_token": {"rt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token: %d %+v", resp.StatusCode, tok)
	}
	if st, _, _ := do(t, s, "GET", "/crm/v3/objects/contacts", tok.AccessToken, nil); st != 200 {
		t.Fatalf("new token refused: %d", st)
	}
}

// The fake's answers match the spec's response schemas.
func TestResponsesMatchSpec(t *testing.T) {
	dir := FindSpecDir()
	if dir == "" {
		t.Skip("no ../shared/specs/hubspot next to the repository: responses not checked against the spec")
	}
	s, _ := newServer(t, Options{SpecDir: dir})
	s.Seed("contacts", map[string]string{"email": "a@x.com"}, map[string]string{"email": "b@x.com"})
	raw := func(method, path, token string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, s.URL()+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	check := func(what, schema string, status, want int, body []byte) {
		t.Helper()
		if status != want {
			t.Fatalf("%s: status %d, want %d: %s", what, status, want, body)
		}
		if err := s.ValidateResponse("contacts", schema, body); err != nil {
			t.Errorf("%s: %v\n%s", what, err, body)
		}
	}
	st, b := raw("GET", "/crm/v3/objects/contacts?limit=1&properties=email,phone", "test-token", nil)
	check("list", "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging", st, 200, b)
	st, b = raw("POST", "/crm/v3/objects/contacts/search", "test-token", map[string]any{"filterGroups": []any{}, "sorts": []string{"lastmodifieddate"}, "properties": []string{"email"}, "limit": 1})
	check("search", "CollectionResponseWithTotalSimplePublicObject", st, 200, b)
	st, b = raw("POST", "/crm/v3/objects/contacts/batch/create", "test-token", map[string]any{"inputs": []any{
		map[string]any{"properties": map[string]string{"email": "c@x.com"}, "associations": []any{}},
		map[string]any{"properties": map[string]string{"email": "bad"}, "associations": []any{}},
	}})
	check("create 207", "BatchResponseSimplePublicObjectWithErrors", st, 207, b)
	st, b = raw("POST", "/crm/v3/objects/contacts/batch/upsert", "test-token", map[string]any{"inputs": []any{
		map[string]any{"id": "a@x.com", "idProperty": "email", "properties": map[string]string{"firstname": "A"}},
	}})
	check("upsert", "BatchResponseSimplePublicUpsertObject", st, 200, b)
	st, b = raw("GET", "/crm/v3/objects/contacts", "wrong", nil)
	check("401", "Error", st, 401, b)
	// The check itself can fail.
	if err := s.ValidateResponse("contacts", "CollectionResponseWithTotalSimplePublicObject", []byte(`{"results":[{"id":1}]}`)); err == nil {
		t.Error("a search answer without total and with a numeric id passed")
	}
}
