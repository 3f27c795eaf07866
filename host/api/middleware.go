package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/synchron-io/synchron/host/auth"
	"github.com/synchron-io/synchron/host/store"
)

// Keys of values kept in a gin.Context.
const (
	ctxRequestID = "synchron.request_id"
	ctxPrincipal = "synchron.principal"
)

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// principal is the authenticated user of a request (set by authenticate).
func principal(c *gin.Context) store.Principal {
	p, _ := c.Get(ctxPrincipal)
	return p.(store.Principal)
}

// httpMetrics are the request counter and latency histogram.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synchron_http_requests_total",
			Help: "HTTP requests answered, by route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "synchron_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	return m
}

// register registers c, or returns the collector already registered under
// the same name (a second handler on the same registry shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("api: register metrics: " + err.Error())
	}
	return c
}

// observe gives each request an id, and counts, times and logs it. It logs
// the route pattern, never the body, the query or the headers.
func (s *server) observe(c *gin.Context) {
	start := time.Now()
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)

	c.Next()

	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	method := normalMethod(c.Request.Method)
	s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(method, route).Observe(elapsed.Seconds())
	log := s.log.Info
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		log = s.log.Debug // probes and scrapes would drown the rest
	}
	log("request", "method", method, "route", route, "status", status, "duration_ms", elapsed.Milliseconds(), "request_id", id)
}

// recover turns a panic into a 500 in the error format, without internals.
func (s *server) recover(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.log.Error("panic", "method", c.Request.Method, "route", c.FullPath(),
			"request_id", requestID(c), "panic", v, "stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		writeError(c, internalError(c))
	}()
	c.Next()
}

func (s *server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

// maxParamBytes bounds a path parameter (ids and app names are short).
const maxParamBytes = 200

// checkParams answers 404 for a path parameter that cannot name anything:
// invalid UTF-8, a NUL (which PostgreSQL refuses in text) or too long.
func (s *server) checkParams(c *gin.Context) {
	for _, p := range c.Params {
		if !cleanText(p.Value) || len(p.Value) > maxParamBytes {
			writeError(c, errorf(http.StatusNotFound, "not_found", "no %s matches the path: ids are short UTF-8 text", p.Key))
			return
		}
	}
	c.Next()
}

// cleanText reports whether s can be stored as PostgreSQL text.
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// normalMethod bounds the method label of metrics to the methods the API
// serves, so that odd methods cannot grow the label set.
func normalMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// authenticate requires a live bearer token.
func (s *server) authenticate(c *gin.Context) {
	header := c.GetHeader("Authorization")
	if header == "" {
		c.Header("WWW-Authenticate", `Bearer realm="synchron"`)
		writeError(c, errorf(http.StatusUnauthorized, "unauthorized", "missing token: send Authorization: Bearer <token> (from signup, login or an API token)"))
		return
	}
	token, err := auth.ParseBearer(header)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="synchron", error="invalid_token"`)
		writeError(c, errorf(http.StatusUnauthorized, "unauthorized", "malformed Authorization header: send Authorization: Bearer syn_..."))
		return
	}
	p, err := s.store.Authenticate(c.Request.Context(), auth.HashToken(token), s.now())
	if errors.Is(err, store.ErrNotFound) {
		c.Header("WWW-Authenticate", `Bearer realm="synchron", error="invalid_token"`)
		writeError(c, errorf(http.StatusUnauthorized, "unauthorized", "token is invalid, expired or revoked: log in again"))
		return
	}
	if err != nil {
		s.log.Error("authenticate", "request_id", requestID(c), "error", err)
		writeError(c, internalError(c))
		return
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

// requireAdmin guards the operator routes with the admin token, compared in
// constant time. Without an admin token the routes do not exist.
func (s *server) requireAdmin(c *gin.Context) {
	if s.adminToken == "" {
		writeError(c, errorf(http.StatusNotFound, "not_found", "no route %s %s", c.Request.Method, c.Request.URL.Path))
		return
	}
	scheme, given, ok := strings.Cut(strings.TrimSpace(c.GetHeader("Authorization")), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	given = strings.TrimSpace(given)
	want := sha256.Sum256([]byte(s.adminToken))
	got := sha256.Sum256([]byte(given))
	if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="synchron-admin"`)
		writeError(c, errorf(http.StatusUnauthorized, "unauthorized", "admin routes need Authorization: Bearer <SYNCHRON_ADMIN_TOKEN>"))
		return
	}
	c.Next()
}

// captureWriter keeps a copy of the body written, for idempotent replays.
type captureWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

const maxIdempotencyKey = 255

// idempotent makes a create replayable: the first request with an
// Idempotency-Key stores its answer; later ones with the same key (same
// account, method, path and body) get the same status and body back. The
// stored body is sealed: it may hold a new API token.
func (s *server) idempotent(c *gin.Context) {
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		c.Next()
		return
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		writeError(c, errorf(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1 to %d printable ASCII characters (a UUID is fine)", maxIdempotencyKey))
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(c, errorf(http.StatusRequestEntityTooLarge, "request_too_large", "request body is larger than %d bytes", MaxBodyBytes))
			return
		}
		writeError(c, errorf(http.StatusBadRequest, "bad_request", "could not read the request body"))
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	ctx := c.Request.Context()
	accountID := principal(c).Account.ID
	method, path := c.Request.Method, c.Request.URL.Path
	aad := []byte("idempotency:" + accountID + ":" + key)

	prev, reserved, err := s.store.ReserveIdempotencyKey(ctx, accountID, key, method, path, sum[:], s.now().Add(-idempotencyTTL))
	switch {
	case errors.Is(err, store.ErrConflict):
		writeError(c, errorf(http.StatusConflict, "idempotency_key_in_use", "a request with this Idempotency-Key is in progress: retry later"))
		return
	case err != nil:
		s.log.Error("idempotency key", "request_id", requestID(c), "error", err)
		writeError(c, internalError(c))
		return
	}
	if !reserved {
		switch {
		case prev.Method != method || prev.Path != path || !bytes.Equal(prev.RequestHash, sum[:]):
			writeError(c, invalid("idempotency_key_reused", "this Idempotency-Key was used for a different request: use a new key for a new request"))
		case prev.Status == 0:
			writeError(c, errorf(http.StatusConflict, "idempotency_key_in_use", "a request with this Idempotency-Key is in progress: retry later"))
		default:
			plain, err := s.box.Open(prev.Body, aad)
			if err != nil {
				s.log.Error("idempotency replay", "request_id", requestID(c), "error", err)
				writeError(c, internalError(c))
				return
			}
			c.Header("Idempotent-Replayed", "true")
			c.Data(prev.Status, "application/json; charset=utf-8", plain)
			c.Abort()
		}
		return
	}

	// The outcome is stored even if the client went away.
	bg := context.WithoutCancel(ctx)
	done := false
	defer func() {
		if !done {
			if err := s.store.ReleaseIdempotencyKey(bg, accountID, key); err != nil {
				s.log.Error("release idempotency key", "request_id", requestID(c), "error", err)
			}
		}
	}()
	w := &captureWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Next()
	c.Writer = w.ResponseWriter
	status := w.Status()
	if status >= 500 {
		return // not worth replaying: let the client retry with the same key
	}
	sealed, err := s.box.Seal(w.body.Bytes(), aad)
	if err == nil {
		err = s.store.CompleteIdempotencyKey(bg, accountID, key, status, sealed)
	}
	if err != nil {
		s.log.Error("complete idempotency key", "request_id", requestID(c), "error", err)
		return
	}
	done = true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
