// Package fake is an in-memory Sage Business Cloud Accounting v3.1 server for
// tests: contacts, products and sales invoices (create, read, update,
// delete), seeded ledger accounts and tax rates, the $-envelope with $next
// paging, updated_or_created_since and deleted_since, attributes=all,
// X-Business, OAuth2 refresh with rotating refresh tokens, and injectable
// faults.
//
// Choices where the spec is silent:
//   - Deleted records are listed by the collection endpoint itself when
//     deleted_since is given (as the spec's parameter says: "limit the
//     response to Contacts deleted since"): the answer lists only deleted
//     records, each {"id","displayed_as","deleted_at"}, deleted_at > since.
//   - Lists are ordered by updated_at, then id, only when asked for
//     sort=updated_at[:asc] (which only sales_invoices accept, as in the
//     spec). Otherwise they come in another stable order, as the real API's
//     default order need not be updated_at: live records by displayed_as
//     (case-insensitive), then id; deleted records by id. attributes=all
//     returns whole records, attributes=a,b adds those fields to id and
//     displayed_as.
//   - Answers carry a Date header from the server's clock (Options.Now).
//   - search matches name, reference, item_code, description, displayed_as
//     (case-insensitive substring).
//   - The token endpoint is POST /token on the same server (the real one is
//     https://oauth.accounting.sage.com/token, a different host).
//   - Without X-Business the only business is used; with several businesses
//     the header is required (403), and an unknown id answers 404. (The real
//     API falls back to the lead business; the fake is stricter so that a
//     connector always selects the business explicitly.)
//   - Timestamps have second precision, as Sage's do.
package fake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AccessTokenTTL is the life of an access token.
const AccessTokenTTL = 5 * time.Minute

// MaxItemsPerPage is the largest items_per_page.
const MaxItemsPerPage = 200

// DefaultItemsPerPage is items_per_page when absent.
const DefaultItemsPerPage = 20

// Options configures a Server.
type Options struct {
	// Now is the server's clock (default time.Now).
	Now func() time.Time
	// Businesses are the business ids (default one: "biz-1").
	Businesses []string
	// ClientID and ClientSecret of the OAuth app (defaults "client", "secret").
	ClientID, ClientSecret string
	// SpecDir, when set, holds sage-accounting-v3.1-openapi.json: request
	// bodies of POST/PUT contacts, products and sales_invoices are validated
	// against it.
	SpecDir string
	// AbsoluteNext makes $next and $back absolute URLs (http://host/path)
	// instead of paths.
	AbsoluteNext bool
}

// Fault is an injected failure for the next matching request.
type Fault struct {
	Status     int
	RetryAfter int // seconds; 0: no header
	// Match, when set ("POST /sales_invoices"), limits the fault to the
	// requests of that method and collection; other requests pass.
	Match string
	// Applied: the request is applied first, then its answer is replaced by
	// the fault (a gateway error after the app did the work).
	Applied bool
	// Drop: the connection is closed without an answer (a network error;
	// with Applied, after the request was applied). Status is ignored.
	Drop bool
}

type business struct {
	objs    map[string]map[string]map[string]any // collection -> id -> record
	deleted map[string]map[string]time.Time      // collection -> id -> deleted at
	names   map[string]map[string]string         // collection -> id -> displayed_as of deleted
	seq     int
}

// Server is the fake. It is an http.Handler.
type Server struct {
	opts  Options
	spec  specBodies
	mu    sync.Mutex
	biz   map[string]*business
	order []string
	// access tokens -> expiry; refresh tokens -> valid
	access  map[string]time.Time
	refresh map[string]bool
	faults  []Fault
	// Requests counts requests by "METHOD /path".
	requests map[string]int
	// Refreshes counts successful token refreshes.
	refreshes int
}

// New returns a server. With SpecDir set it fails if the spec cannot be read.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Businesses) == 0 {
		opts.Businesses = []string{"biz-1"}
	}
	if opts.ClientID == "" {
		opts.ClientID = "client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "secret"
	}
	s := &Server{opts: opts, biz: map[string]*business{}, access: map[string]time.Time{},
		refresh: map[string]bool{}, requests: map[string]int{}}
	if opts.SpecDir != "" {
		sp, err := LoadSpec(opts.SpecDir)
		if err != nil {
			return nil, err
		}
		s.spec = sp
	}
	for _, id := range opts.Businesses {
		b := &business{objs: map[string]map[string]map[string]any{}, deleted: map[string]map[string]time.Time{},
			names: map[string]map[string]string{}}
		for _, c := range []string{"contacts", "products", "sales_invoices", "ledger_accounts", "tax_rates"} {
			b.objs[c] = map[string]map[string]any{}
			b.deleted[c] = map[string]time.Time{}
			b.names[c] = map[string]string{}
		}
		now := s.stamp()
		for _, la := range []struct{ id, name, code string }{
			{"la-sales", "Sales Type A", "4000"}, {"la-purchases", "Cost of sales", "5000"}, {"la-services", "Services", "4010"},
		} {
			b.objs["ledger_accounts"][la.id] = map[string]any{"id": la.id, "displayed_as": la.name + " (" + la.code + ")",
				"name": la.name, "nominal_code": la.code, "created_at": now, "updated_at": now}
		}
		for _, tr := range []struct {
			id, name string
			pct      float64
		}{{"GB_STANDARD", "Standard 20.00%", 20}, {"GB_ZERO", "Zero 0.00%", 0}, {"GB_LOWER", "Lower 5.00%", 5}} {
			b.objs["tax_rates"][tr.id] = map[string]any{"id": tr.id, "displayed_as": tr.name, "name": tr.name,
				"percentage": tr.pct, "created_at": now, "updated_at": now}
		}
		s.biz[id] = b
		s.order = append(s.order, id)
	}
	return s, nil
}

func (s *Server) stamp() string { return s.opts.Now().UTC().Truncate(time.Second).Format(time.RFC3339) }

func token() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// IssueTokens returns a fresh access token (expiring AccessTokenTTL from now)
// and refresh token, as the authorization-code grant would.
func (s *Server) IssueTokens() (access, refresh string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked()
}

func (s *Server) issueLocked() (string, string, time.Time) {
	a, r := token(), token()
	exp := s.opts.Now().Add(AccessTokenTTL)
	s.access[a] = exp
	s.refresh[r] = true
	return a, r, exp
}

// RefreshTokenValid reports whether r can still be used.
func (s *Server) RefreshTokenValid(r string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh[r]
}

// Refreshes returns the number of successful refreshes.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Requests returns how many requests "METHOD /collection" received.
func (s *Server) Requests(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[key]
}

// InjectFaults makes the next len(f) API requests (not token requests) fail.
func (s *Server) InjectFaults(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Put stores a record directly (for seeding): fields are stored as given
// with id, displayed_as, created_at and updated_at set. It returns the id.
func (s *Server) Put(biz, coll string, fields map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.biz[biz]
	b.seq++
	id := fmt.Sprintf("%s-%06d", strings.TrimSuffix(coll, "s"), b.seq)
	rec := map[string]any{}
	for k, v := range fields {
		rec[k] = v
	}
	now := s.stamp()
	rec["id"], rec["created_at"], rec["updated_at"] = id, now, now
	if _, ok := rec["displayed_as"]; !ok {
		rec["displayed_as"] = displayed(coll, rec)
	}
	b.objs[coll][id] = rec
	return id
}

// Update changes a stored record directly, as if edited in Sage: fields
// are set and updated_at becomes now.
func (s *Server) Update(biz, coll, id string, fields map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.biz[biz].objs[coll][id]
	if rec == nil {
		return
	}
	for k, v := range fields {
		rec[k] = v
	}
	rec["updated_at"] = s.stamp()
}

// Delete removes a record directly, as if deleted in Sage.
func (s *Server) Delete(biz, coll, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(s.biz[biz], coll, id)
}

func (s *Server) deleteLocked(b *business, coll, id string) bool {
	rec, ok := b.objs[coll][id]
	if !ok {
		return false
	}
	delete(b.objs[coll], id)
	b.deleted[coll][id] = s.opts.Now().UTC().Truncate(time.Second)
	b.names[coll][id], _ = rec["displayed_as"].(string)
	return true
}

// Get returns a copy of a stored record, or nil.
func (s *Server) Get(biz, coll, id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.biz[biz].objs[coll][id]
	if rec == nil {
		return nil
	}
	var out map[string]any
	raw, _ := json.Marshal(rec)
	_ = json.Unmarshal(raw, &out)
	return out
}

// List returns copies of the stored records of a collection, by id.
func (s *Server) List(biz, coll string) []map[string]any {
	s.mu.Lock()
	ids := make([]string, 0, len(s.biz[biz].objs[coll]))
	for id := range s.biz[biz].objs[coll] {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		if rec := s.Get(biz, coll, id); rec != nil {
			out = append(out, rec)
		}
	}
	return out
}

func displayed(coll string, rec map[string]any) string {
	for _, k := range []string{"name", "description", "invoice_number"} {
		if v, ok := rec[k].(string); ok && v != "" {
			return v
		}
	}
	return coll
}

type sageError struct {
	Severity string `json:"$severity"`
	DataCode string `json:"$dataCode"`
	Message  string `json:"$message"`
	Source   string `json:"$source"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, code, msg, source string) {
	writeJSON(w, status, []sageError{{"error", code, msg, source}})
}

var collections = map[string]bool{"contacts": true, "products": true, "sales_invoices": true,
	"ledger_accounts": true, "tax_rates": true}
var writable = map[string]bool{"contacts": true, "products": true, "sales_invoices": true}
var wrapper = map[string]string{"contacts": "contact", "products": "product", "sales_invoices": "sales_invoice"}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" && r.Method == http.MethodPost {
		s.serveToken(w, r)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Date", s.opts.Now().UTC().Format(http.TimeFormat))
	key := r.Method + " /" + parts[0]
	s.requests[key]++
	for i, f := range s.faults {
		if f.Match != "" && f.Match != key {
			continue
		}
		s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		if f.Applied {
			s.serve(discard{}, r, parts)
		}
		if f.Drop {
			panic(http.ErrAbortHandler) // the server closes the connection
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		fail(w, f.Status, "InjectedFault", http.StatusText(f.Status), "")
		return
	}
	s.serve(w, r, parts)
}

// discard is a ResponseWriter that drops the answer.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// serve answers an API request (s.mu held).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, parts []string) {
	auth := r.Header.Get("Authorization")
	exp, ok := s.access[strings.TrimPrefix(auth, "Bearer ")]
	if !strings.HasPrefix(auth, "Bearer ") || !ok || !s.opts.Now().Before(exp) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		fail(w, http.StatusUnauthorized, "AuthenticationFailed", "the access token is missing, invalid or expired", "")
		return
	}
	var b *business
	if id := r.Header.Get("X-Business"); id != "" {
		if b = s.biz[id]; b == nil {
			fail(w, http.StatusNotFound, "BusinessNotFound", "no business with the X-Business id", "X-Business")
			return
		}
	} else if len(s.order) == 1 {
		b = s.biz[s.order[0]]
	} else {
		fail(w, http.StatusForbidden, "BusinessRequired", "X-Business header required: the user has several businesses", "X-Business")
		return
	}
	coll := parts[0]
	if !collections[coll] || len(parts) > 2 {
		fail(w, http.StatusNotFound, "RecordNotFound", "no such endpoint", "")
		return
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		s.list(w, r, b, coll)
	case len(parts) == 2 && r.Method == http.MethodGet:
		rec := b.objs[coll][parts[1]]
		if rec == nil {
			fail(w, http.StatusNotFound, "RecordNotFound", "record not found", "")
			return
		}
		writeJSON(w, http.StatusOK, rec)
	case writable[coll] && len(parts) == 1 && r.Method == http.MethodPost:
		s.save(w, r, b, coll, "")
	case writable[coll] && len(parts) == 2 && r.Method == http.MethodPut:
		s.save(w, r, b, coll, parts[1])
	case writable[coll] && len(parts) == 2 && r.Method == http.MethodDelete:
		if !s.deleteLocked(b, coll, parts[1]) {
			fail(w, http.StatusNotFound, "RecordNotFound", "record not found", "")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed", "")
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.PostForm.Get("client_id") != s.opts.ClientID || r.PostForm.Get("client_secret") != s.opts.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	old := r.PostForm.Get("refresh_token")
	if !s.refresh[old] {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "refresh token invalid, expired or already used"})
		return
	}
	delete(s.refresh, old) // rotation: the old refresh token dies at once
	s.refreshes++
	a, rt, _ := s.issueLocked()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": a, "refresh_token": rt, "token_type": "bearer",
		"expires_in": int(AccessTokenTTL / time.Second), "refresh_token_expires_in": 2678400, "scope": "full_access"})
}

func parseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04-07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date-time %q", v)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, b *business, coll string) {
	q := r.URL.Query()
	page, per := 1, DefaultItemsPerPage
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fail(w, http.StatusBadRequest, "InvalidParameter", "page must be a positive integer", "page")
			return
		}
		page = n
	}
	if v := q.Get("items_per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxItemsPerPage {
			fail(w, http.StatusBadRequest, "InvalidParameter", "items_per_page must be between 1 and 200", "items_per_page")
			return
		}
		per = n
	}
	type row struct {
		at  time.Time
		id  string
		rec map[string]any
	}
	if v := q.Get("sort"); v != "" && coll == "sales_invoices" && v != "updated_at" && v != "updated_at:asc" {
		fail(w, http.StatusBadRequest, "InvalidParameter", "the fake sorts only by updated_at ascending", "sort")
		return
	}
	var rows []row
	if v := q.Get("deleted_since"); v != "" {
		since, err := parseTime(v)
		if err != nil {
			fail(w, http.StatusBadRequest, "InvalidParameter", err.Error(), "deleted_since")
			return
		}
		for id, at := range b.deleted[coll] {
			if at.After(since) { // exclusive
				rows = append(rows, row{at, id, map[string]any{"id": id, "displayed_as": b.names[coll][id],
					"deleted_at": at.Format(time.RFC3339)}})
			}
		}
	} else {
		var since time.Time
		if v := q.Get("updated_or_created_since"); v != "" {
			t, err := parseTime(v)
			if err != nil {
				fail(w, http.StatusBadRequest, "InvalidParameter", err.Error(), "updated_or_created_since")
				return
			}
			since = t
		}
		search := strings.ToLower(q.Get("search"))
		for id, rec := range b.objs[coll] {
			at, _ := time.Parse(time.RFC3339, rec["updated_at"].(string))
			if at.Before(since) { // inclusive
				continue
			}
			if search != "" && !matches(rec, search) {
				continue
			}
			if attrs := q.Get("attributes"); attrs != "all" {
				short := map[string]any{"id": id, "displayed_as": rec["displayed_as"]}
				for _, a := range strings.Split(attrs, ",") {
					if v, ok := rec[strings.TrimSpace(a)]; ok {
						short[strings.TrimSpace(a)] = v
					}
				}
				rec = short
			}
			rows = append(rows, row{at, id, rec})
		}
	}
	switch {
	case q.Get("sort") != "":
		sort.Slice(rows, func(i, j int) bool {
			if !rows[i].at.Equal(rows[j].at) {
				return rows[i].at.Before(rows[j].at)
			}
			return rows[i].id < rows[j].id
		})
	case q.Get("deleted_since") != "":
		sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	default:
		name := func(r row) string { return strings.ToLower(fmt.Sprint(b.objs[coll][r.id]["displayed_as"])) }
		sort.Slice(rows, func(i, j int) bool {
			if ni, nj := name(rows[i]), name(rows[j]); ni != nj {
				return ni < nj
			}
			return rows[i].id < rows[j].id
		})
	}
	items := []any{}
	for i := (page - 1) * per; i < len(rows) && i < page*per; i++ {
		items = append(items, rows[i].rec)
	}
	link := func(p int) any {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("page", strconv.Itoa(p))
		q2.Set("items_per_page", strconv.Itoa(per))
		u := "/" + coll + "?" + q2.Encode()
		if s.opts.AbsoluteNext {
			u = "http://" + r.Host + u
		}
		return u
	}
	env := map[string]any{"$total": len(rows), "$page": page, "$itemsPerPage": per, "$items": items,
		"$next": nil, "$back": nil}
	if page*per < len(rows) {
		env["$next"] = link(page + 1)
	}
	if page > 1 {
		env["$back"] = link(page - 1)
	}
	writeJSON(w, http.StatusOK, env)
}

func matches(rec map[string]any, search string) bool {
	for _, k := range []string{"name", "reference", "item_code", "description", "displayed_as"} {
		if v, ok := rec[k].(string); ok && strings.Contains(strings.ToLower(v), search) {
			return true
		}
	}
	return false
}

// required are the required properties of POST bodies, as the spec marks
// them (checked even without the spec).
var required = map[string][]string{
	"contacts":       {"name", "contact_type_ids"},
	"products":       {"description", "sales_ledger_account_id", "purchase_ledger_account_id"},
	"sales_invoices": {"contact_id", "date", "invoice_lines"},
}

func (s *Server) save(w http.ResponseWriter, r *http.Request, b *business, coll, id string) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		fail(w, http.StatusBadRequest, "InvalidJSON", "the body is not a JSON object", "")
		return
	}
	var probs []problem
	if s.spec != nil {
		m := "post "
		if id != "" {
			m = "put "
		}
		check(s.spec[m+coll], body, "", &probs)
	}
	in, ok := body[wrapper[coll]].(map[string]any)
	if !ok {
		probs = append(probs, problem{wrapper[coll], "the body must be wrapped in " + wrapper[coll]})
	}
	if id == "" && ok {
		for _, k := range required[coll] {
			if v, has := in[k]; !has || v == nil || v == "" {
				probs = append(probs, problem{wrapper[coll] + "." + k, k + " can't be blank"})
			}
		}
	}
	var old map[string]any
	if id != "" {
		if old = b.objs[coll][id]; old == nil {
			fail(w, http.StatusNotFound, "RecordNotFound", "record not found", "")
			return
		}
	}
	if len(probs) == 0 {
		probs = s.semantic(b, coll, in, old)
	}
	if len(probs) > 0 {
		seen := map[string]bool{}
		var errs []sageError
		for _, p := range probs {
			src := strings.TrimPrefix(p.source, wrapper[coll]+".")
			if seen[src] {
				continue
			}
			seen[src] = true
			errs = append(errs, sageError{"error", "RecordInvalid", p.message, src})
		}
		writeJSON(w, http.StatusUnprocessableEntity, errs)
		return
	}
	rec := map[string]any{}
	for k, v := range old {
		rec[k] = v
	}
	now := s.stamp()
	if id == "" {
		b.seq++
		id = fmt.Sprintf("%s-%06d", strings.TrimSuffix(coll, "s"), b.seq)
		rec["id"], rec["created_at"] = id, now
	}
	s.apply(b, coll, rec, in)
	rec["updated_at"] = now
	rec["displayed_as"] = displayed(coll, rec)
	b.objs[coll][id] = rec
	status := http.StatusCreated
	if old != nil {
		status = http.StatusOK
	}
	writeJSON(w, status, rec)
}

// semantic checks references (contact, ledger accounts, tax rates) and unique keys.
func (s *Server) semantic(b *business, coll string, in, old map[string]any) []problem {
	var probs []problem
	ref := func(field, target string) {
		if v, ok := in[field].(string); ok && v != "" && b.objs[target][v] == nil {
			probs = append(probs, problem{field, fmt.Sprintf("%s %q does not exist", field, v)})
		}
	}
	unique := func(field string) {
		v, ok := in[field].(string)
		if !ok || v == "" {
			return
		}
		for oid, rec := range b.objs[coll] {
			if rec[field] == v && (old == nil || old["id"] != oid) {
				probs = append(probs, problem{field, fmt.Sprintf("%s has already been taken", field)})
				return
			}
		}
	}
	switch coll {
	case "contacts":
		unique("reference")
		if p, ok := in["main_contact_person"].(map[string]any); ok {
			if e, ok := p["email"].(string); ok && e != "" && !strings.Contains(e, "@") {
				probs = append(probs, problem{"email", "email is invalid"})
			}
		}
		if ids, ok := in["contact_type_ids"].([]any); ok {
			for _, x := range ids {
				if x != "CUSTOMER" && x != "VENDOR" {
					probs = append(probs, problem{"contact_type_ids", fmt.Sprintf("contact type %v does not exist", x)})
				}
			}
		}
	case "products":
		unique("item_code")
		ref("sales_ledger_account_id", "ledger_accounts")
		ref("purchase_ledger_account_id", "ledger_accounts")
	case "sales_invoices":
		ref("contact_id", "contacts")
		lines, _ := in["invoice_lines"].([]any)
		if lines != nil && len(lines) == 0 {
			probs = append(probs, problem{"invoice_lines", "an invoice needs at least one line"})
		}
		for i, x := range lines {
			l, _ := x.(map[string]any)
			for _, k := range []string{"description", "ledger_account_id", "unit_price"} {
				if v, ok := l[k]; !ok || v == nil || v == "" {
					probs = append(probs, problem{fmt.Sprintf("invoice_lines[%d].%s", i, k), k + " can't be blank"})
				}
			}
			if v, ok := l["ledger_account_id"].(string); ok && b.objs["ledger_accounts"][v] == nil {
				probs = append(probs, problem{fmt.Sprintf("invoice_lines[%d].ledger_account_id", i), "ledger account does not exist"})
			}
			if v, ok := l["tax_rate_id"].(string); ok && v != "" && b.objs["tax_rates"][v] == nil {
				probs = append(probs, problem{fmt.Sprintf("invoice_lines[%d].tax_rate_id", i), "tax rate does not exist"})
			}
		}
	}
	return probs
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// apply copies the writable fields of in onto rec, in the shape GET answers.
func (s *Server) apply(b *business, coll string, rec, in map[string]any) {
	link := func(target, id string) map[string]any {
		t := b.objs[target][id]
		if t == nil {
			return nil
		}
		return map[string]any{"id": id, "displayed_as": t["displayed_as"], "$path": "/" + target + "/" + id}
	}
	for k, v := range in {
		switch {
		case k == "contact_type_ids":
			var types []any
			for _, x := range v.([]any) {
				types = append(types, map[string]any{"id": x, "displayed_as": x})
			}
			rec["contact_types"] = types
		case k == "invoice_lines":
			continue
		case strings.HasSuffix(k, "_id") && k != "source_guid":
			target := map[string]string{"contact_id": "contacts", "sales_ledger_account_id": "ledger_accounts",
				"purchase_ledger_account_id": "ledger_accounts", "currency_id": "currencies"}[k]
			name := strings.TrimSuffix(k, "_id")
			if target == "" || target == "currencies" {
				rec[name] = map[string]any{"id": v, "displayed_as": v}
			} else if s, ok := v.(string); ok {
				rec[name] = link(target, s)
			}
		default:
			rec[k] = v
		}
	}
	if coll == "contacts" {
		if p, ok := rec["main_contact_person"].(map[string]any); ok {
			rec["email"] = p["email"]
		}
	}
	if coll != "sales_invoices" {
		return
	}
	if c, ok := rec["contact"].(map[string]any); ok {
		rec["contact_name"] = c["displayed_as"]
	}
	if lines, ok := in["invoice_lines"].([]any); ok {
		var net, tax float64
		var out []any
		for i, x := range lines {
			l := x.(map[string]any)
			qty, ok := l["quantity"].(float64)
			if !ok {
				qty = 1
			}
			price, _ := l["unit_price"].(float64)
			pct := 0.0
			line := map[string]any{"id": fmt.Sprintf("%v-line-%d", rec["id"], i+1), "description": l["description"],
				"quantity": qty, "unit_price": price}
			line["ledger_account"] = link("ledger_accounts", l["ledger_account_id"].(string))
			if tr, ok := l["tax_rate_id"].(string); ok && tr != "" {
				line["tax_rate"] = link("tax_rates", tr)
				pct, _ = b.objs["tax_rates"][tr]["percentage"].(float64)
			}
			if p, ok := l["product_id"].(string); ok && p != "" {
				line["product"] = link("products", p)
			}
			ln := round2(qty * price)
			lt := round2(ln * pct / 100)
			line["net_amount"], line["tax_amount"], line["total_amount"] = ln, lt, round2(ln+lt)
			net += ln
			tax += lt
			out = append(out, line)
		}
		rec["invoice_lines"] = out
		rec["net_amount"], rec["tax_amount"], rec["total_amount"] = round2(net), round2(tax), round2(net+tax)
	}
	if _, ok := rec["invoice_number"]; !ok {
		rec["invoice_number"] = fmt.Sprintf("SI-%d", b.seq)
	}
	if _, ok := rec["status"]; !ok {
		rec["status"] = map[string]any{"id": "UNPAID", "displayed_as": "Unpaid"}
	}
}
