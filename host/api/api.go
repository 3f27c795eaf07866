// Package api owns Synchron's public HTTP API (the v1 JSON routes of
// shared/API.md, the operator routes under /admin, health and metrics): Gin
// routing, authentication, validation of requests, and the JSON shapes of
// answers. It holds no state of its own; everything lives in the store.
package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/synchron-io/synchron/host/auth"
	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/secrets"
	"github.com/synchron-io/synchron/host/store"
)

// Runner queues runs of workflows and answers questions only the engine
// can. The engine implements it. Every method answers store.ErrNotFound for
// an id that is not the account's.
type Runner interface {
	// Enqueue queues a run of a workflow of the account and returns its id;
	// when the workflow already has a queued or running run, it returns that
	// run's id instead. trigger is one of store.Trigger*.
	Enqueue(ctx context.Context, accountID, workflowID, trigger string) (runID string, err error)
	// Preview computes what the next run of a workflow of the account would
	// do, writing nothing anywhere.
	Preview(ctx context.Context, accountID, workflowID string) (*engine.Preview, error)
	// RetryFailed queues a run that retries the failed records of a run of
	// the account; it answers the new run's id and how many records it
	// retries ("" and 0 when there is nothing left to retry).
	RetryFailed(ctx context.Context, accountID, runID string) (newRunID string, retried int, err error)
}

// MetricsRegistry is where the API registers its metrics and what /metrics
// serves: a *prometheus.Registry made by main (never the global default).
type MetricsRegistry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Deps is what the API needs. Store, Registry and Secrets are required.
type Deps struct {
	Store    *store.Store
	Registry connectors.Registry
	// Runner queues manual runs, previews and retries; nil answers 503 on
	// the routes that need it (approved deletes then wait for the schedule).
	Runner Runner
	// Secrets seals connection configs and replayed idempotent answers.
	Secrets *secrets.Box
	// AdminToken guards /admin; empty disables those routes (404).
	AdminToken string
	// Admin installs, activates and rolls back connector versions for the
	// operator routes (nil: GET /admin/connectors lists the active versions
	// and the other routes answer 501).
	Admin ConnectorAdmin
	// Logger receives one line per request and every internal error; nil
	// discards. Request bodies, tokens and configs are never logged.
	Logger hclog.Logger
	// Metrics gets the HTTP metrics and is served on /metrics; nil uses a
	// private registry.
	Metrics MetricsRegistry
	// PasswordCost is the bcrypt cost (0: auth.DefaultCost; tests use
	// bcrypt.MinCost).
	PasswordCost int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// GinMode is passed to gin.SetMode, which gin keeps globally ("":
	// release, so that gin prints nothing on stdout).
	GinMode string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// finding a client's IP (for the login rate limit); nil trusts none.
	TrustedProxies []string
	// SessionTTL is the life of a session token (0: 30 days).
	SessionTTL time.Duration
	// LoginLimitPerEmail and LoginLimitPerIP bound failed logins (zero
	// values: 10 per email and 50 per IP in 15 minutes).
	LoginLimitPerEmail store.LoginLimit
	LoginLimitPerIP    store.LoginLimit
}

// Defaults of Deps.
const (
	DefaultSessionTTL = 30 * 24 * time.Hour
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
	// idempotencyTTL is how long an Idempotency-Key answers the same result.
	idempotencyTTL = 24 * time.Hour
	// connectorTimeout bounds one call to a connector made while answering a
	// request (Check, Discover).
	connectorTimeout = 30 * time.Second
)

func defaultLoginLimits() (perEmail, perIP store.LoginLimit) {
	return store.LoginLimit{Max: 10, Window: 15 * time.Minute}, store.LoginLimit{Max: 50, Window: 15 * time.Minute}
}

// server is the state of one API handler: its dependencies and caches.
type server struct {
	store          *store.Store
	registry       connectors.Registry
	runner         Runner
	box            *secrets.Box
	adminToken     string
	admin          ConnectorAdmin
	log            hclog.Logger
	metrics        *httpMetrics
	metricsHandler http.Handler
	openAPIDoc     []byte
	hasher         *auth.Hasher
	now            func() time.Time
	sessionTTL     time.Duration
	perEmail       store.LoginLimit
	perIP          store.LoginLimit
	printer        *message.Printer
	// schemas caches compiled connector config schemas by "app@version".
	schemas sync.Map
	// hooks rate-limits webhook deliveries per connection (in this process).
	hooks *hookLimiter
}

// New builds the API handler. It panics when a required dependency is
// missing or invalid: that is a wiring mistake of main, caught at start.
func New(deps Deps) http.Handler {
	return newEngine(deps)
}

func newEngine(deps Deps) *gin.Engine {
	if deps.Store == nil || deps.Registry == nil || deps.Secrets == nil {
		panic("api: Deps.Store, Deps.Registry and Deps.Secrets are required")
	}
	hasher, err := auth.NewHasher(deps.PasswordCost)
	if err != nil {
		panic("api: " + err.Error())
	}
	s := &server{
		store:      deps.Store,
		registry:   deps.Registry,
		runner:     deps.Runner,
		box:        deps.Secrets,
		adminToken: deps.AdminToken,
		admin:      deps.Admin,
		log:        deps.Logger,
		hasher:     hasher,
		sessionTTL: deps.SessionTTL,
		perEmail:   deps.LoginLimitPerEmail,
		perIP:      deps.LoginLimitPerIP,
		printer:    message.NewPrinter(language.English),
		hooks:      newHookLimiter(webhookRate, webhookBurst),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	clock := deps.Now
	if clock == nil {
		clock = time.Now
	}
	// PostgreSQL keeps microseconds: times the API computes are cut to the
	// same precision, so what it stores is what it computed.
	s.now = func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	if s.sessionTTL <= 0 {
		s.sessionTTL = DefaultSessionTTL
	}
	de, di := defaultLoginLimits()
	if s.perEmail.Max <= 0 || s.perEmail.Window <= 0 {
		s.perEmail = de
	}
	if s.perIP.Max <= 0 || s.perIP.Window <= 0 {
		s.perIP = di
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newHTTPMetrics(reg)
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	doc, err := openAPIDocument()
	if err != nil {
		panic("api: " + err.Error())
	}
	s.openAPIDoc = doc

	mode := deps.GinMode
	if mode == "" {
		mode = gin.ReleaseMode
	}
	gin.SetMode(mode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	if err := e.SetTrustedProxies(deps.TrustedProxies); err != nil {
		panic("api: trusted proxies: " + err.Error())
	}
	e.Use(s.observe, s.recover, s.limitBody, s.checkParams)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, errorf(http.StatusNotFound, "not_found", "no route %s %s: see GET /v1/openapi.json", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; allowed: %s",
			c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow")))
	})
	s.routes(e)
	return e
}

// routes registers every route. The OpenAPI document (openapi.go) lists the
// same routes; a test keeps the two in step.
func (s *server) routes(e *gin.Engine) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.serveMetrics)

	v1 := e.Group("/v1")
	v1.GET("/openapi.json", s.openAPI)
	v1.POST("/signup", s.h(s.signup))
	v1.POST("/login", s.h(s.login))
	// The app calls it: the connector's signature check is the auth.
	v1.POST("/hooks/:connection_id", s.h(s.receiveWebhook))

	u := v1.Group("", s.authenticate)
	idem := s.idempotent
	u.POST("/logout", s.h(s.logout))
	u.GET("/me", s.h(s.me))

	u.GET("/tokens", s.h(s.listTokens))
	u.POST("/tokens", idem, s.h(s.createToken))
	u.DELETE("/tokens/:id", s.h(s.deleteToken))

	u.GET("/apps", s.h(s.listApps))
	u.GET("/apps/:app", s.h(s.getApp))
	u.GET("/apps/:app/docs", s.h(s.getAppDocs))

	u.GET("/connections", s.h(s.listConnections))
	u.POST("/connections", idem, s.h(s.createConnection))
	u.GET("/connections/:id", s.h(s.getConnection))
	u.PATCH("/connections/:id", s.h(s.updateConnection))
	u.DELETE("/connections/:id", s.h(s.deleteConnection))
	u.POST("/connections/:id/check", s.h(s.checkConnection))
	u.GET("/connections/:id/webhooks", s.h(s.listWebhookEvents))

	u.GET("/workflows", s.h(s.listWorkflows))
	u.POST("/workflows", idem, s.h(s.createWorkflow))
	u.GET("/workflows/:id", s.h(s.getWorkflow))
	u.PATCH("/workflows/:id", s.h(s.updateWorkflow))
	u.DELETE("/workflows/:id", s.h(s.deleteWorkflow))
	u.POST("/workflows/:id/pause", s.h(s.pauseWorkflow))
	u.POST("/workflows/:id/resume", s.h(s.resumeWorkflow))
	u.POST("/workflows/:id/run", idem, s.h(s.runWorkflow))
	u.POST("/workflows/:id/preview", s.h(s.previewWorkflow))
	u.GET("/workflows/:id/runs", s.h(s.listRuns))
	u.GET("/workflows/:id/records", s.h(s.listLinks))
	u.GET("/workflows/:id/records/:link_id", s.h(s.getLink))
	u.GET("/workflows/:id/deletes", s.h(s.listDeletes))
	u.POST("/workflows/:id/deletes/approve-all", s.h(s.approveAllDeletes))
	u.POST("/workflows/:id/deletes/discard-all", s.h(s.discardAllDeletes))
	u.POST("/workflows/:id/deletes/:delete_id/approve", s.h(s.approveDelete))
	u.POST("/workflows/:id/deletes/:delete_id/discard", s.h(s.discardDelete))

	u.GET("/runs/:id", s.h(s.getRun))
	u.GET("/runs/:id/records", s.h(s.listRunRecords))
	u.POST("/runs/:id/records/retry", idem, s.h(s.retryRunRecords))

	u.GET("/notifications", s.h(s.listNotifications))
	u.POST("/notifications/:id/read", s.h(s.readNotification))

	admin := e.Group("/admin", s.requireAdmin)
	admin.GET("/connectors", s.h(s.adminConnectors))
	admin.POST("/connectors/:name/versions", s.h(s.installVersion))
	admin.POST("/connectors/:name/activate", s.h(s.activateVersion))
	admin.POST("/connectors/:name/rollback", s.h(s.rollbackVersion))
}
