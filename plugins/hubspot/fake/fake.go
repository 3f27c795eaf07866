// Package fake is an in-memory HubSpot CRM v3 server for tests: contacts,
// companies and deals (also /crm/v3/objects/0-3), list, search (with the
// 10,000-result window), batch create/read/update/upsert/archive, Bearer
// auth with HubSpot's error bodies, the OAuth2 token endpoint, a per-token
// rate limit with HubSpot's headers, injectable faults and a configurable
// clock. When given the published spec directory it validates the bodies of
// batch and search requests against the spec's request schemas.
package fake

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultRateLimit  = 100
	DefaultRateWindow = 10 * time.Second
	// SearchWindow is the number of results a search query can page through.
	SearchWindow = 10000
	// MaxBatch is the most inputs one batch call takes.
	MaxBatch = 100
	// MaxSearchLimit is the largest search page.
	MaxSearchLimit = 200
)

// Options configure a Server. The zero value works: token "test-token",
// 100 requests per 10 s, real clock, no spec validation.
type Options struct {
	// Tokens are the valid access tokens (default ["test-token"]).
	Tokens []string
	// ExpiredTokens answer 401 like an expired OAuth access token.
	ExpiredTokens []string
	// ClientID, ClientSecret and RefreshToken are what the OAuth token
	// endpoint accepts; each refresh issues a new valid access token.
	ClientID, ClientSecret, RefreshToken string
	// RateLimit is the number of requests per token in RateWindow (default 100).
	RateLimit int
	// RateWindow is the rate-limit window (default 10 s).
	RateWindow time.Duration
	// Now is the clock for lastmodifieddate and the rate-limit windows
	// (default time.Now).
	Now func() time.Time
	// IndexDelay, when set, is how long after a write a record becomes
	// visible to search (HubSpot indexes fresh writes within a few seconds,
	// not always in write order). nil: at once.
	IndexDelay func(object, id string) time.Duration
	// AtomicBatches makes create, update and upsert answer 400 for the whole
	// batch when one input has invalid properties (as the real API does for
	// some validation errors) instead of 207 with per-record errors.
	AtomicBatches bool
	// TieOrder is the order of search results sharing the sorted
	// timestamp: HubSpot takes one sort and documents no order among ties.
	// Default TiesByID.
	TieOrder TieOrder
	// SpecDir, when set, is the directory holding the HubSpot spec files
	// (crm-contacts-v3.json...): request bodies of batch and search calls are
	// validated against them.
	SpecDir string
}

// TieOrder is how search orders records sharing a last-modified time.
type TieOrder int

const (
	// TiesByID returns ties by id ascending.
	TiesByID TieOrder = iota
	// TiesReversed returns ties by id descending.
	TiesReversed
	// TiesShuffled returns ties in a new random order at each query.
	TiesShuffled
)

// Record is a stored CRM object.
type Record struct {
	ID         string
	Properties map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// IndexedAt is when the last write becomes visible to search.
	IndexedAt  time.Time
	Archived   bool
	ArchivedAt time.Time
}

type store struct {
	recs   map[string]*Record
	nextID int64
	// byEmail indexes records by lower-case email (upsert by email).
	byEmail map[string]*Record
}

func (st *store) index(r *Record) {
	if e := r.Properties["email"]; e != "" {
		st.byEmail[strings.ToLower(e)] = r
	}
}

type window struct {
	start time.Time
	count int
}

// Stats counts what the server answered.
type Stats struct {
	Requests    int
	RateLimited int
	Faults      int
	PerPath     map[string]int
}

// Server is the fake HubSpot. Handler serves the API; New also starts an
// httptest server on it.
type Server struct {
	// Handler serves the fake API (usable without the httptest server).
	Handler http.Handler

	opts      Options
	ts        *httptest.Server
	validator *validator

	mu      sync.Mutex
	tokens  map[string]bool
	expired map[string]bool
	objects map[string]*store
	windows map[string]*window
	faults  []fault
	stats   Stats
	tokenN  int
}

// Objects the fake knows, and their writable properties.
var objectProps = map[string][]string{
	"contacts":  {"email", "firstname", "lastname", "phone", "company", "website", "jobtitle", "lifecyclestage", "city", "country"},
	"companies": {"name", "domain", "industry", "phone", "city", "country", "numberofemployees", "annualrevenue"},
	"deals":     {"dealname", "amount", "closedate", "pipeline", "dealstage", "hubspot_owner_id"},
}

// LastModifiedProperty is the last-modified property of an object type.
func LastModifiedProperty(object string) string {
	if object == "contacts" {
		return "lastmodifieddate"
	}
	return "hs_lastmodifieddate"
}

// New starts a fake server. Close it when done.
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.ts = httptest.NewServer(s.Handler)
	return s
}

// NewHandler returns a Server without starting an httptest server (URL and
// Close are then no-ops); serve s.Handler yourself.
func NewHandler(opts Options) *Server {
	if len(opts.Tokens) == 0 {
		opts.Tokens = []string{"test-token"}
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = DefaultRateWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:    opts,
		tokens:  map[string]bool{},
		expired: map[string]bool{},
		objects: map[string]*store{},
		windows: map[string]*window{},
		stats:   Stats{PerPath: map[string]int{}},
	}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	for _, t := range opts.ExpiredTokens {
		s.expired[t] = true
	}
	for o := range objectProps {
		s.objects[o] = &store{recs: map[string]*Record{}, nextID: 1000, byEmail: map[string]*Record{}}
	}
	if opts.SpecDir != "" {
		v, err := loadValidator(opts.SpecDir)
		if err != nil {
			panic(fmt.Sprintf("fake: load specs from %s: %v", opts.SpecDir, err))
		}
		s.validator = v
	}
	s.Handler = http.HandlerFunc(s.serve)
	return s
}

// Validating reports whether request bodies are checked against the spec.
func (s *Server) Validating() bool { return s.validator != nil }

// URL is the base URL of the running server.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close stops the server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// FindSpecDir returns the HubSpot spec directory next to the repository
// (repoRoot/../shared/specs/hubspot), looking for the repository root (the
// directory with go.mod) from the working directory up; "" if absent.
func FindSpecDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			spec := filepath.Join(dir, "..", "shared", "specs", "hubspot")
			if _, err := os.Stat(filepath.Join(spec, "crm-contacts-v3.json")); err == nil {
				return spec
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// fault is an injected answer.
type fault struct {
	status int
	// daily: a 429 of the daily cap (policy DAILY, no Retry-After).
	daily bool
	// retryAfter is the Retry-After of a 429 (0: none).
	retryAfter time.Duration
	// applied: the request is served, then its answer replaced by status.
	applied bool
	// route, when set, is the only request the fault applies to
	// ("GET /crm/v3/objects/contacts").
	route string
}

// InjectFaultsFor is InjectFaults for the next requests of one route only
// ("GET /crm/v3/objects/contacts"): other requests are served.
func (s *Server) InjectFaultsFor(route string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		s.faults = append(s.faults, fault{status: st, retryAfter: time.Second, route: route})
	}
}

// InjectFaults makes the next requests answer the given statuses, one each
// (500, 502, 429...), before auth and rate limiting.
func (s *Server) InjectFaults(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		s.faults = append(s.faults, fault{status: st, retryAfter: time.Second})
	}
}

// InjectDailyLimit makes the next n requests answer 429 for HubSpot's daily
// cap (policy DAILY, no Retry-After).
func (s *Server) InjectDailyLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: http.StatusTooManyRequests, daily: true})
	}
}

// InjectRateLimited makes the next n requests answer 429 for the rolling
// window with the given Retry-After (0: no Retry-After header).
func (s *Server) InjectRateLimited(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: http.StatusTooManyRequests, retryAfter: retryAfter})
	}
}

// InjectAppliedFaults makes the next requests be served (a batch create
// creates its records) and then answered with the given statuses instead of
// their answer: HubSpot failing after it applied a write.
func (s *Server) InjectAppliedFaults(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		s.faults = append(s.faults, fault{status: st, applied: true})
	}
}

// AddToken makes token valid.
func (s *Server) AddToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = true
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.stats
	c.PerPath = map[string]int{}
	for k, v := range s.stats.PerPath {
		c.PerPath[k] = v
	}
	return c
}

// Seed stores records with the given properties, all modified at the
// server's current time, and returns their ids.
func (s *Server) Seed(object string, props ...map[string]string) []string {
	return s.SeedAt(object, s.opts.Now(), props...)
}

// SeedAt stores records modified at ts and returns their ids.
func (s *Server) SeedAt(object string, ts time.Time, props ...map[string]string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.objects[object]
	ids := make([]string, 0, len(props))
	for _, p := range props {
		r := s.create(object, st, p, ts)
		ids = append(ids, r.ID)
	}
	return ids
}

// Get returns a copy of a stored record.
func (s *Server) Get(object, id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.objects[object].recs[id]
	if !ok {
		return Record{}, false
	}
	c := *r
	c.Properties = map[string]string{}
	for k, v := range r.Properties {
		c.Properties[k] = v
	}
	return c, true
}

// Count returns the number of live (not archived) records of object.
func (s *Server) Count(object string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.objects[object].recs {
		if !r.Archived {
			n++
		}
	}
	return n
}

// Archive archives records at the server's current time.
func (s *Server) Archive(object string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, id := range ids {
		if r, ok := s.objects[object].recs[id]; ok && !r.Archived {
			r.Archived, r.ArchivedAt = true, now
		}
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) create(object string, st *store, props map[string]string, now time.Time) *Record {
	st.nextID++
	id := strconv.FormatInt(st.nextID, 10)
	r := &Record{ID: id, Properties: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	for k, v := range props {
		r.Properties[k] = v
	}
	r.Properties["hs_object_id"] = id
	r.Properties["createdate"] = fmtTime(now)
	r.Properties[LastModifiedProperty(object)] = fmtTime(now)
	s.indexAt(object, r, now)
	st.recs[id] = r
	st.index(r)
	return r
}

func (s *Server) indexAt(object string, r *Record, now time.Time) {
	r.IndexedAt = now
	if s.opts.IndexDelay != nil {
		r.IndexedAt = now.Add(s.opts.IndexDelay(object, r.ID))
	}
}

func (s *Server) update(object string, st *store, r *Record, props map[string]string, now time.Time) {
	for k, v := range props {
		r.Properties[k] = v
	}
	st.index(r)
	r.UpdatedAt = now
	s.indexAt(object, r, now)
	r.Properties[LastModifiedProperty(object)] = fmtTime(now)
}

func correlationID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// hubErr is HubSpot's error body.
type hubErr struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId"`
	Category      string              `json:"category"`
	SubCategory   string              `json:"subCategory,omitempty"`
	Context       map[string][]string `json:"context,omitempty"`
	ErrorType     string              `json:"errorType,omitempty"`
	PolicyName    string              `json:"policyName,omitempty"`
}

// standardError is a per-record error of a batch answer (the spec's
// StandardError).
type standardError struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
	Errors   []any               `json:"errors"`
	Links    map[string]string   `json:"links"`
}

func writeErr(w http.ResponseWriter, status int, category, msg string) {
	writeJSON(w, status, hubErr{Status: "error", Message: msg, CorrelationID: correlationID(), Category: category})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.stats.PerPath[r.Method+" "+r.URL.Path]++
	fi := slices.IndexFunc(s.faults, func(f fault) bool { return f.route == "" || f.route == r.Method+" "+r.URL.Path })
	if fi >= 0 {
		f := s.faults[fi]
		s.faults = slices.Delete(s.faults, fi, fi+1)
		s.stats.Faults++
		s.mu.Unlock()
		switch {
		case f.daily:
			writeJSON(w, http.StatusTooManyRequests, hubErr{Status: "error", Message: "You have reached your daily limit.", ErrorType: "RATE_LIMIT", CorrelationID: correlationID(), PolicyName: "DAILY", Category: "RATE_LIMITS"})
		case f.status == http.StatusTooManyRequests:
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
			}
			writeJSON(w, f.status, hubErr{Status: "error", Message: "You have reached your ten_secondly_rolling limit.", ErrorType: "RATE_LIMIT", CorrelationID: correlationID(), PolicyName: "TEN_SECONDLY_ROLLING", Category: "RATE_LIMITS"})
		case f.applied:
			s.serveAuthorized(httptest.NewRecorder(), r)
			writeErr(w, f.status, "INTERNAL_ERROR", "internal error (injected after the request was applied)")
		default:
			writeErr(w, f.status, "INTERNAL_ERROR", "internal error (injected fault)")
		}
		return
	}
	s.mu.Unlock()
	s.serveAuthorized(w, r)
}

// serveAuthorized serves a request that got past the injected faults.
func (s *Server) serveAuthorized(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/oauth/v1/token" {
		s.serveToken(w, r)
		return
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	s.mu.Lock()
	valid, expired := ok && s.tokens[token], ok && s.expired[token]
	s.mu.Unlock()
	if expired {
		writeErr(w, http.StatusUnauthorized, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired 1 minute(s) ago.")
		return
	}
	if !valid {
		writeErr(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
		return
	}
	if !s.rateLimit(w, token) {
		return
	}
	s.route(w, r)
}

// rateLimit applies the per-token window and sets HubSpot's headers; false
// when it answered 429.
func (s *Server) rateLimit(w http.ResponseWriter, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	win := s.windows[token]
	if win == nil || !now.Before(win.start.Add(s.opts.RateWindow)) {
		win = &window{start: now}
		s.windows[token] = win
	}
	h := w.Header()
	h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(s.opts.RateLimit))
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.FormatInt(s.opts.RateWindow.Milliseconds(), 10))
	if win.count >= s.opts.RateLimit {
		s.stats.RateLimited++
		h.Set("X-HubSpot-RateLimit-Remaining", "0")
		wait := win.start.Add(s.opts.RateWindow).Sub(now)
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(hubErr{Status: "error", Message: "You have reached your ten_secondly_rolling limit.", ErrorType: "RATE_LIMIT", CorrelationID: correlationID(), PolicyName: "TEN_SECONDLY_ROLLING", Category: "RATE_LIMITS"})
		return false
	}
	win.count++
	h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(s.opts.RateLimit-win.count))
	return true
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "invalid form body")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token", "correlationId": correlationID()})
		return
	}
	if f.Get("client_id") != s.opts.ClientID || f.Get("client_secret") != s.opts.ClientSecret || s.opts.ClientID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "BAD_CLIENT_ID", "message": "missing or unknown client id", "correlationId": correlationID()})
		return
	}
	if f.Get("refresh_token") != s.opts.RefreshToken {
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "correlationId": correlationID()})
		return
	}
	s.mu.Lock()
	s.tokenN++
	tok := fmt.Sprintf("fresh-access-%d", s.tokenN)
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "refresh_token": s.opts.RefreshToken, "expires_in": 1800, "token_type": "bearer"})
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/crm/v3/objects/")
	if !ok {
		writeErr(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "unknown path "+r.URL.Path)
		return
	}
	parts := strings.Split(rest, "/")
	object := parts[0]
	if object == "0-3" {
		object = "deals"
	}
	if _, ok := objectProps[object]; !ok {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type from: "+parts[0])
		return
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		s.list(w, r, object)
	case len(parts) == 2 && parts[1] == "search" && r.Method == http.MethodPost:
		s.search(w, r, object)
	case len(parts) == 3 && parts[1] == "batch" && r.Method == http.MethodPost:
		s.batch(w, r, object, parts[2])
	default:
		writeErr(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "no route for "+r.Method+" "+r.URL.Path)
	}
}

// publicObject is a record as the API returns it.
type publicObject struct {
	ID                 string         `json:"id"`
	Properties         map[string]any `json:"properties"`
	CreatedAt          string         `json:"createdAt"`
	UpdatedAt          string         `json:"updatedAt"`
	Archived           bool           `json:"archived"`
	ArchivedAt         string         `json:"archivedAt,omitempty"`
	New                *bool          `json:"new,omitempty"`
	ObjectWriteTraceID string         `json:"objectWriteTraceId,omitempty"`
}

var defaultProps = map[string][]string{
	"contacts":  {"firstname", "lastname", "email"},
	"companies": {"name", "domain"},
	"deals":     {"dealname", "amount", "closedate", "pipeline", "dealstage"},
}

func toPublic(object string, r *Record, props []string) publicObject {
	if len(props) == 0 {
		props = defaultProps[object]
	}
	p := map[string]any{
		"hs_object_id":               r.Properties["hs_object_id"],
		"createdate":                 r.Properties["createdate"],
		LastModifiedProperty(object): r.Properties[LastModifiedProperty(object)],
	}
	for _, k := range props {
		if v, ok := r.Properties[k]; ok {
			p[k] = v
		} else {
			p[k] = nil
		}
	}
	o := publicObject{ID: r.ID, Properties: p, CreatedAt: fmtTime(r.CreatedAt), UpdatedAt: fmtTime(r.UpdatedAt), Archived: r.Archived}
	if r.Archived {
		o.ArchivedAt = fmtTime(r.ArchivedAt)
	}
	return o
}

func idNum(id string) int64 { n, _ := strconv.ParseInt(id, 10, 64); return n }

// sorted returns the records matching keep, ordered by id.
func (st *store) sorted(keep func(*Record) bool) []*Record {
	var out []*Record
	for _, r := range st.recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return idNum(out[i].ID) < idNum(out[j].ID) })
	return out
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, object string) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "limit must be a positive integer")
			return
		}
		limit = min(n, 100)
	}
	archived := q.Get("archived") == "true"
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "invalid after")
			return
		}
		after = n
	}
	var props []string
	for _, v := range q["properties"] {
		for p := range strings.SplitSeq(v, ",") {
			if p != "" {
				props = append(props, p)
			}
		}
	}
	s.mu.Lock()
	recs := s.objects[object].sorted(func(rec *Record) bool { return rec.Archived == archived && idNum(rec.ID) >= after })
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	res := make([]publicObject, 0, len(recs))
	for _, rec := range recs {
		res = append(res, toPublic(object, rec, props))
	}
	s.mu.Unlock()
	body := map[string]any{"results": res}
	if more {
		next := strconv.FormatInt(idNum(recs[len(recs)-1].ID)+1, 10)
		body["paging"] = map[string]any{"next": map[string]string{"after": next, "link": "?after=" + next}}
	}
	writeJSON(w, http.StatusOK, body)
}

// readBody reads and, when validating, checks the body against schema.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, object, schema string, v any) bool {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "cannot read body")
		return false
	}
	if s.validator != nil {
		if err := s.validator.validate(object, schema, raw); err != nil {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: "+err.Error())
			return false
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error())
		return false
	}
	return true
}

type filter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

type searchReq struct {
	FilterGroups []struct {
		Filters []filter `json:"filters"`
	} `json:"filterGroups"`
	Sorts      []json.RawMessage `json:"sorts"`
	Properties []string          `json:"properties"`
	Limit      int               `json:"limit"`
	After      string            `json:"after"`
}

// parseTime reads a filter value: epoch milliseconds or RFC 3339.
func parseTime(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(n), true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func cmp[T int64 | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func match(f filter, rec *Record) (bool, error) {
	var c int
	switch f.PropertyName {
	case "lastmodifieddate", "hs_lastmodifieddate", "createdate":
		t, ok := parseTime(f.Value)
		if !ok {
			return false, fmt.Errorf("%s is not a valid date: %q", f.PropertyName, f.Value)
		}
		at := rec.UpdatedAt
		if f.PropertyName == "createdate" {
			at = rec.CreatedAt
		}
		c = cmp(at.UnixMilli(), t.UnixMilli())
	case "hs_object_id":
		n, err := strconv.ParseInt(f.Value, 10, 64)
		if err != nil {
			return false, fmt.Errorf("hs_object_id is not a number: %q", f.Value)
		}
		c = cmp(idNum(rec.ID), n)
	default:
		if f.Operator != "EQ" {
			return false, fmt.Errorf("the fake supports only EQ on %s", f.PropertyName)
		}
		return rec.Properties[f.PropertyName] == f.Value, nil
	}
	switch f.Operator {
	case "EQ":
		return c == 0, nil
	case "GT":
		return c > 0, nil
	case "GTE":
		return c >= 0, nil
	case "LT":
		return c < 0, nil
	case "LTE":
		return c <= 0, nil
	}
	return false, fmt.Errorf("operator %q is not supported by the fake", f.Operator)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, object string) {
	var req searchReq
	if !s.readBody(w, r, object, "PublicObjectSearchRequest", &req) {
		return
	}
	if req.Limit <= 0 {
		req.Limit = 10
	}
	if req.Limit > MaxSearchLimit {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("limit must be <= %d", MaxSearchLimit))
		return
	}
	nf := 0
	for _, g := range req.FilterGroups {
		if len(g.Filters) > 6 {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "a filter group has more than 6 filters")
			return
		}
		nf += len(g.Filters)
	}
	if len(req.FilterGroups) > 5 || nf > 18 {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "too many filter groups or filters (max 5 groups, 18 filters)")
		return
	}
	offset := 0
	if req.After != "" {
		n, err := strconv.Atoi(req.After)
		if err != nil || n < 0 {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "invalid after")
			return
		}
		offset = n
	}
	if offset+req.Limit > SearchWindow {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Cannot page beyond %d results", SearchWindow))
		return
	}
	desc := false
	var sortProp string
	for _, raw := range req.Sorts {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			if p, ok := strings.CutPrefix(str, "-"); ok {
				desc, sortProp = true, p
			} else {
				sortProp = str
			}
			continue
		}
		var o struct{ PropertyName, Direction string }
		if err := json.Unmarshal(raw, &o); err != nil {
			writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", "invalid sort")
			return
		}
		sortProp, desc = o.PropertyName, o.Direction == "DESCENDING"
	}
	var matchErr error
	s.mu.Lock()
	now := s.opts.Now()
	recs := s.objects[object].sorted(func(rec *Record) bool {
		if rec.Archived || now.Before(rec.IndexedAt) {
			return false
		}
		if len(req.FilterGroups) == 0 {
			return true
		}
		for _, g := range req.FilterGroups {
			all := true
			for _, f := range g.Filters {
				ok, err := match(f, rec)
				if err != nil {
					matchErr = err
				}
				all = all && ok
			}
			if all {
				return true
			}
		}
		return false
	})
	switch sortProp {
	case "hs_object_id":
		if desc {
			slices.Reverse(recs)
		}
	case "lastmodifieddate", "hs_lastmodifieddate":
		switch s.opts.TieOrder {
		case TiesReversed:
			slices.Reverse(recs)
		case TiesShuffled:
			rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		}
		sort.SliceStable(recs, func(i, j int) bool {
			if desc {
				return recs[i].UpdatedAt.After(recs[j].UpdatedAt)
			}
			return recs[i].UpdatedAt.Before(recs[j].UpdatedAt)
		})
	}
	total := len(recs)
	var page []publicObject
	for i := offset; i < len(recs) && i < offset+req.Limit; i++ {
		page = append(page, toPublic(object, recs[i], req.Properties))
	}
	s.mu.Unlock()
	if matchErr != nil {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", matchErr.Error())
		return
	}
	if page == nil {
		page = []publicObject{}
	}
	body := map[string]any{"total": total, "results": page}
	if offset+req.Limit < total {
		next := strconv.Itoa(offset + req.Limit)
		body["paging"] = map[string]any{"next": map[string]string{"after": next}}
	}
	writeJSON(w, http.StatusOK, body)
}

type batchInput struct {
	ID                 string            `json:"id"`
	IDProperty         string            `json:"idProperty"`
	Properties         map[string]string `json:"properties"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId"`
}

type batchReq struct {
	Inputs     []batchInput `json:"inputs"`
	Properties []string     `json:"properties"`
}

var batchSchemas = map[string]string{
	"create":  "BatchInputSimplePublicObjectBatchInputForCreate",
	"read":    "BatchReadInputSimplePublicObjectId",
	"update":  "BatchInputSimplePublicObjectBatchInput",
	"upsert":  "BatchInputSimplePublicObjectBatchInputUpsert",
	"archive": "BatchInputSimplePublicObjectId",
}

// validEmail is the fake's idea of a valid email address.
func validEmail(v string) bool {
	at := strings.LastIndexByte(v, '@')
	return at > 0 && strings.Contains(v[at+1:], ".") && !strings.ContainsAny(v, " ,")
}

// checkProps answers a per-record error for invalid properties (nil if ok).
func checkProps(object string, in batchInput) *hubErr {
	allowed := objectProps[object]
	for k, v := range in.Properties {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return &hubErr{Status: "error", Category: "VALIDATION_ERROR", SubCategory: "PROPERTY_DOESNT_EXIST",
				Message: fmt.Sprintf("Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"%s\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"%s\"}]", k, k),
				Context: map[string][]string{"propertyName": {k}}}
		}
		if k == "email" && !validEmail(v) {
			return &hubErr{Status: "error", Category: "VALIDATION_ERROR", SubCategory: "INVALID_EMAIL",
				Message: fmt.Sprintf("Property values were not valid: [{\"isValid\":false,\"message\":\"Email address %s is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]", v),
				Context: map[string][]string{"propertyName": {"email"}}}
		}
	}
	return nil
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, object, op string) {
	schema, ok := batchSchemas[op]
	if !ok {
		writeErr(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "unknown batch operation "+op)
		return
	}
	var req batchReq
	if !s.readBody(w, r, object, schema, &req) {
		return
	}
	if len(req.Inputs) > MaxBatch {
		writeErr(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Batch input size %d is over the limit of %d", len(req.Inputs), MaxBatch))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.objects[object]
	now := s.opts.Now()
	started := fmtTime(now)
	var results []publicObject
	var errs []standardError
	fail := func(in batchInput, e *hubErr) {
		se := standardError{Status: "error", Category: e.Category, Message: e.Message, Context: e.Context, Errors: []any{}, Links: map[string]string{}}
		if se.Context == nil {
			se.Context = map[string][]string{}
		}
		if in.ObjectWriteTraceID != "" {
			se.Context["objectWriteTraceId"] = []string{in.ObjectWriteTraceID}
		}
		if in.ID != "" {
			se.Context["ids"] = []string{in.ID}
		}
		errs = append(errs, se)
	}
	ok200 := func(rec *Record, in batchInput, isNew *bool) {
		o := toPublic(object, rec, nil)
		for k := range in.Properties {
			o.Properties[k] = rec.Properties[k]
		}
		o.New = isNew
		o.ObjectWriteTraceID = in.ObjectWriteTraceID
		results = append(results, o)
	}
	if s.opts.AtomicBatches && op != "archive" && op != "read" {
		for _, in := range req.Inputs {
			check := in
			if op == "upsert" && in.IDProperty != "" {
				check.Properties = map[string]string{in.IDProperty: in.ID}
				for k, v := range in.Properties {
					check.Properties[k] = v
				}
			}
			if e := checkProps(object, check); e != nil {
				e.CorrelationID = correlationID()
				writeJSON(w, http.StatusBadRequest, e)
				return
			}
		}
	}
	switch op {
	case "archive":
		for _, in := range req.Inputs {
			if rec, ok := st.recs[in.ID]; ok && !rec.Archived {
				rec.Archived, rec.ArchivedAt = true, now
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	case "read":
		for _, in := range req.Inputs {
			rec, ok := st.recs[in.ID]
			if !ok || rec.Archived {
				fail(in, &hubErr{Status: "error", Category: "OBJECT_NOT_FOUND", Message: "Could not get some " + object + " objects, they may be deleted or not exist."})
				continue
			}
			results = append(results, toPublic(object, rec, req.Properties))
		}
	case "create":
		for _, in := range req.Inputs {
			if e := checkProps(object, in); e != nil {
				fail(in, e)
				continue
			}
			ok200(s.create(object, st, in.Properties, now), in, nil)
		}
	case "update":
		for _, in := range req.Inputs {
			rec, ok := st.recs[in.ID]
			if !ok || rec.Archived {
				fail(in, &hubErr{Status: "error", Category: "OBJECT_NOT_FOUND", Message: "Object not found. objectId are usually numeric."})
				continue
			}
			if e := checkProps(object, in); e != nil {
				fail(in, e)
				continue
			}
			s.update(object, st, rec, in.Properties, now)
			ok200(rec, in, nil)
		}
	case "upsert":
		for _, in := range req.Inputs {
			if in.IDProperty == "" || in.IDProperty == "hs_object_id" {
				fail(in, &hubErr{Status: "error", Category: "VALIDATION_ERROR", Message: "upsert needs a unique idProperty"})
				continue
			}
			props := map[string]string{}
			for k, v := range in.Properties {
				props[k] = v
			}
			props[in.IDProperty] = in.ID
			in.Properties = props
			if e := checkProps(object, in); e != nil {
				fail(in, e)
				continue
			}
			var found *Record
			if in.IDProperty == "email" {
				if rec := st.byEmail[strings.ToLower(in.ID)]; rec != nil && !rec.Archived && strings.EqualFold(rec.Properties["email"], in.ID) {
					found = rec
				}
			} else {
				for _, rec := range st.recs {
					if !rec.Archived && strings.EqualFold(rec.Properties[in.IDProperty], in.ID) {
						found = rec
						break
					}
				}
			}
			isNew := found == nil
			if isNew {
				found = s.create(object, st, props, now)
			} else {
				s.update(object, st, found, props, now)
			}
			ok200(found, in, &isNew)
		}
	}
	if results == nil {
		results = []publicObject{}
	}
	body := map[string]any{"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": fmtTime(s.opts.Now())}
	status := http.StatusOK
	if op == "create" {
		status = http.StatusCreated
	}
	if len(errs) > 0 {
		body["errors"] = errs
		body["numErrors"] = len(errs)
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, body)
}
