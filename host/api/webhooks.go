package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// Limits of the webhook route.
const (
	// webhookTimeout bounds the connector's HandleWebhook: apps give up on a
	// delivery after a few seconds (Shopify: 5).
	webhookTimeout = 5 * time.Second
	// webhookRate and webhookBurst bound deliveries per connection, per host
	// process (the bucket is in memory: N hosts accept up to N times more).
	webhookRate  = 50.0
	webhookBurst = 100.0
	// webhookBuckets bounds the limiter's memory: past it, full buckets are
	// forgotten (a full bucket is the same as no bucket).
	webhookBuckets = 10000
	// maxSummary bounds the recorded summary and error of a delivery.
	maxSummary = 500
)

// hookLimiter is a token bucket per connection id.
type hookLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*hookBucket
}

type hookBucket struct {
	tokens float64
	at     time.Time
}

func newHookLimiter(rate, burst float64) *hookLimiter {
	return &hookLimiter{rate: rate, burst: burst, buckets: map[string]*hookBucket{}}
}

// allow takes a token of key's bucket; when there is none it answers false
// and how long until there is one.
func (l *hookLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= webhookBuckets {
			l.sweep(now)
		}
		b = &hookBucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.at = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweep forgets the buckets that are full again.
func (l *hookLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

type webhookReceipt struct {
	Received bool `json:"received"`
	Runs     int  `json:"runs"`
	// Duplicate: the app delivered this already and it was processed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// receiveWebhook is POST /v1/hooks/{connection_id}: an app's delivery. It
// carries no bearer token: the connection's connector verifies the app's
// signature. Neither the body nor the headers are logged or stored.
func (s *server) receiveWebhook(c *gin.Context) error {
	ctx := c.Request.Context()
	id := c.Param("connection_id")
	if ok, wait := s.hooks.allow(id, time.Now()); !ok {
		c.Header("Retry-After", fmt.Sprint(int(wait/time.Second)+1))
		return errorf(http.StatusTooManyRequests, "rate_limited", "too many deliveries for this connection: retry in a moment")
	}
	if c.Request.ContentLength > MaxBodyBytes {
		return bodyTooLarge()
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyTooLarge()
		}
		return errorf(http.StatusBadRequest, "invalid_body", "the request body could not be read")
	}
	conn, err := s.store.GetConnectionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("connection", id)
	}
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	config, err := s.openConfig(conn)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	// Path keeps the query and Headers the Host: some apps sign the full
	// URL they called (HubSpot v3).
	headers := c.Request.Header.Clone()
	if c.Request.Host != "" {
		headers.Set("Host", c.Request.Host)
	}
	resp, err := s.handleWebhook(ctx, conn, sdk.WebhookRequest{
		Config: config, Method: c.Request.Method, Path: c.Request.URL.RequestURI(), Headers: headers, Body: body,
	})
	if err != nil {
		return err
	}
	event := store.WebhookEvent{AccountID: conn.AccountID, ConnectionID: conn.ID, ReceivedAt: s.now(), Verified: resp.Verified}
	if !resp.Verified {
		event.Error = "invalid signature"
		if resp.Diagnostics.HasError() {
			event.Error = clip(resp.Diagnostics.Error())
		}
		if _, err := s.store.RecordWebhookEvent(ctx, event); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		s.log.Warn("webhook refused", "connection", conn.ID, "app", conn.App, "request_id", requestID(c))
		return errorf(http.StatusUnauthorized, "invalid_signature", "the webhook's signature did not verify")
	}
	event.Changes = len(resp.Changes)
	event.Summary = summarize(resp)
	if resp.Diagnostics.HasError() {
		event.Error = clip(resp.Diagnostics.Error())
	}
	// A redelivery of a delivery already processed (on any host) queues
	// nothing; one that failed before is processed again.
	done, err := s.store.WebhookDelivered(ctx, conn.ID, resp.DeliveryID)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if done {
		event.Summary = clip("duplicate delivery " + resp.DeliveryID + ": already processed")
		event.Changes = 0
		if _, err := s.store.RecordWebhookEvent(ctx, event); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		c.JSON(http.StatusOK, webhookReceipt{Received: true, Duplicate: true})
		return nil
	}
	runs, enqueueErr := s.enqueueForWebhook(ctx, conn, resp)
	event.Runs = runs
	if enqueueErr != nil {
		event.Error = clip(strings.TrimPrefix(event.Error+"; ", "; ") + "runs not queued: try again")
	}
	event.DeliveryID = resp.DeliveryID
	if _, err := s.store.RecordWebhookEvent(ctx, event); err != nil && !errors.Is(err, store.ErrDuplicateDelivery) {
		// (A duplicate here is the same delivery processed at the same
		// moment by another request: both passed WebhookDelivered, so both
		// queued runs, and only the first is recorded. The runner coalesces
		// them: Enqueue joins a workflow's queued run (a running one is
		// asked for a follow-up run), so the effect is one run per workflow.)
		return fmt.Errorf("webhook: %w", err)
	}
	if enqueueErr != nil {
		return enqueueErr
	}
	if resp.ResponseStatus != 0 {
		ct := "text/plain; charset=utf-8"
		if json.Valid(resp.ResponseBody) {
			ct = "application/json"
		}
		c.Data(resp.ResponseStatus, ct, resp.ResponseBody)
		return nil
	}
	c.JSON(http.StatusOK, webhookReceipt{Received: true, Runs: runs})
	return nil
}

func bodyTooLarge() *apiError {
	return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body is over %d bytes", MaxBodyBytes)
}

// handleWebhook hands a delivery to the connection's connector. A connector
// that cannot answer is a 503, so that the app retries the delivery.
func (s *server) handleWebhook(ctx context.Context, conn store.Connection, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	unavailable := errorf(http.StatusServiceUnavailable, "connector_unavailable", "the %s connector is not available: retry the delivery later", conn.App)
	lease, err := s.registry.Acquire(ctx, conn.App)
	if err != nil {
		s.log.Warn("webhook: acquire connector", "app", conn.App, "connection", conn.ID, "error", err)
		return nil, unavailable
	}
	defer lease.Release()
	cctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	resp, err := lease.HandleWebhook(cctx, req)
	if err != nil || resp == nil {
		s.log.Warn("webhook: connector", "app", conn.App, "version", lease.Version, "connection", conn.ID, "error", err)
		return nil, unavailable
	}
	return resp, nil
}

// enqueueForWebhook queues a run of every active workflow of the account
// that reads from conn and reads an object the delivery changed. A queued or
// running run is reused by the runner, so a burst of deliveries queues one
// run per workflow. A delivery announcing nothing (a duplicate, an ignored
// topic) queues nothing; one the connector could not read (an error
// diagnostic) queues every workflow reading from the connection.
func (s *server) enqueueForWebhook(ctx context.Context, conn store.Connection, resp *sdk.WebhookResponse) (int, error) {
	if len(resp.Changes) == 0 && !resp.Diagnostics.HasError() {
		return 0, nil
	}
	objects := map[string]bool{}
	all := resp.Diagnostics.HasError()
	for _, ch := range resp.Changes {
		if ch.Object == "" {
			all = true
		}
		objects[ch.Object] = true
	}
	wfs, err := s.store.WebhookWorkflows(ctx, conn.AccountID, conn.ID)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	if s.runner == nil {
		if len(wfs) == 0 {
			return 0, nil
		}
		return 0, errorf(http.StatusServiceUnavailable, "runner_unavailable", "runs cannot be queued on this host: retry the delivery later")
	}
	runs := 0
	for _, w := range wfs {
		if !all && !objects[w.ObjectOn(conn.ID)] {
			continue
		}
		if _, err := s.runner.Enqueue(ctx, conn.AccountID, w.ID, store.TriggerWebhook); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			return runs, fmt.Errorf("webhook: enqueue workflow %s: %w", w.ID, err)
		}
		runs++
	}
	return runs, nil
}

// summarize describes what a delivery announced: "customers x2, orders x1"
// and the connector's warnings.
func summarize(resp *sdk.WebhookResponse) string {
	counts := map[string]int{}
	for _, ch := range resp.Changes {
		name := ch.Object
		if name == "" {
			name = "records"
		}
		if ch.Deleted {
			name += " (deleted)"
		}
		counts[name]++
	}
	parts := make([]string, 0, len(counts))
	for name, n := range counts {
		parts = append(parts, fmt.Sprintf("%s x%d", name, n))
	}
	sort.Strings(parts)
	for _, d := range resp.Diagnostics {
		if d.Severity == sdk.SeverityWarning {
			parts = append(parts, d.Summary)
		}
	}
	if len(parts) == 0 {
		return "no change"
	}
	return clip(strings.Join(parts, ", "))
}

// clip cuts s to maxSummary bytes at a rune boundary.
func clip(s string) string {
	if len(s) <= maxSummary {
		return s
	}
	cut := maxSummary
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut]
}

// listWebhookEvents is GET /v1/connections/{id}/webhooks.
func (s *server) listWebhookEvents(c *gin.Context) error {
	conn, err := s.getConn(c, c.Param("id"))
	if err != nil {
		return err
	}
	opts, err := listOptions(c)
	if err != nil {
		return err
	}
	es, next, err := s.store.ListWebhookEvents(c.Request.Context(), conn.AccountID, conn.ID, opts)
	if err != nil {
		return listError(err)
	}
	c.JSON(http.StatusOK, list(mapSlice(es, viewWebhookEvent), next))
	return nil
}

type webhookEventView struct {
	ID           string    `json:"id"`
	ConnectionID string    `json:"connection_id"`
	ReceivedAt   time.Time `json:"received_at"`
	Verified     bool      `json:"verified"`
	Summary      string    `json:"summary"`
	Changes      int       `json:"changes"`
	Runs         int       `json:"runs"`
	Error        string    `json:"error"`
	DeliveryID   string    `json:"delivery_id,omitempty"`
}

func viewWebhookEvent(e store.WebhookEvent) webhookEventView {
	return webhookEventView{
		ID: e.ID, ConnectionID: e.ConnectionID, ReceivedAt: e.ReceivedAt.UTC(), Verified: e.Verified,
		Summary: e.Summary, Changes: e.Changes, Runs: e.Runs, Error: e.Error, DeliveryID: e.DeliveryID,
	}
}
