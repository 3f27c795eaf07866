package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Every call to a shop reserves its cost in the shop's budget (an
// sdk.BudgetBucket: Shopify's leaky bucket) before it is sent, so that
// concurrent reads and writes, of this process and of every host sharing
// the budgets, never send what the shop cannot afford; each answer ends its
// reservation and corrects the budget from extensions.cost.throttleStatus
// (the newest figure as is; an older one, when other answers came since the
// call was sent, only lowers it, minus the reservations still in flight).
// Until an answer tells the bucket's size, one call at a time, costing at
// most probeCost.

// Until the first answer the bucket assumes Shopify's smallest plan.
const (
	defaultMaximum = 1000
	defaultRestore = 50
)

// probeCost caps the cost of calls until the shop has told the bucket's
// size: the first call is cheap so that it is never throttled.
const probeCost = 50

// costLimit is the model of a shop's budget until the shop tells its size.
var costLimit = sdk.BucketLimit(defaultMaximum, defaultRestore, probeCost)

// costBudget is the budget key of a shop (its myshopify domain: no secret).
func costBudget(shop string) string { return "shopify:" + shop + ":cost" }

// bucket is what this process last heard of a shop's bucket: its size
// sizes queries, its level estimates how long a retry must wait.
type bucket struct {
	mu    sync.Mutex
	known bool
	max   float64
	avail float64
	rate  float64
}

// learn records a throttle status.
func (b *bucket) learn(st *throttleStatus) {
	if st == nil || st.MaximumAvailable <= 0 || st.RestoreRate <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.known = true
	b.max, b.avail, b.rate = st.MaximumAvailable, st.CurrentlyAvailable, st.RestoreRate
}

// maximum is what one call may cost: the bucket's size as last reported by
// the shop, or probeCost before any answer.
func (b *bucket) maximum() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.known {
		return probeCost
	}
	return b.max
}

// retryAfter is how long until cost is affordable.
func (b *bucket) retryAfter(cost float64) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	need := math.Min(cost, b.max) - b.avail
	if need <= 0 {
		return time.Second
	}
	return time.Duration(math.Ceil(need / b.rate * float64(time.Second)))
}

// settleTimeout bounds the report that ends a reservation; it is sent even
// when the call's context is done, or the reservation would hold the
// bucket until it goes stale.
const settleTimeout = 5 * time.Second

// settle ends the reservation of a call with the shop's throttle status,
// when the answer had one.
func (c *Connector) settle(ctx context.Context, budgets *sdk.Budgets, shop string, b *bucket, ticket int64, cost float64, st *throttleStatus) {
	b.learn(st)
	obs := sdk.Observation{Ticket: ticket, Release: cost}
	if st != nil {
		obs.Max, obs.Rate = st.MaximumAvailable, st.RestoreRate
		obs.HasRemaining, obs.Remaining = true, st.CurrentlyAvailable
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	// A failed report leaves the reservation to go stale: the budget is
	// only more cautious meanwhile.
	_ = budgets.Observe(ctx, costBudget(shop), costLimit, obs)
}

type throttleStatus struct {
	MaximumAvailable   float64 `json:"maximumAvailable"`
	CurrentlyAvailable float64 `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"`
}

type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     json.RawMessage `json:"errors"`
	Extensions struct {
		Cost struct {
			RequestedQueryCost float64         `json:"requestedQueryCost"`
			ThrottleStatus     *throttleStatus `json:"throttleStatus"`
		} `json:"cost"`
	} `json:"extensions"`
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// Errors of a GraphQL call.
var (
	errUnauthorized = errors.New("shopify refused the access token (401/403)")
	errNotFound     = errors.New("shopify answered 404: unknown shop or API version")
	errTooCostly    = errors.New("the query costs more than the shop's whole bucket")
)

// unknownOutcomeError is a failed call that Shopify may have applied (a 5xx
// answer or a network error) and that was not resent because the caller
// asked so (a create without natural key: resending could create twice).
type unknownOutcomeError struct{ err error }

func (e *unknownOutcomeError) Error() string { return "outcome unknown: " + e.err.Error() }
func (e *unknownOutcomeError) Unwrap() error { return e.err }

// networkError is a request that got no HTTP answer.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// queryError is a GraphQL error answer (invalid query, bad argument...).
type queryError struct{ msgs []string }

func (e *queryError) Error() string { return "shopify: " + strings.Join(e.msgs, "; ") }

// maxFailures bounds the attempts of a call that get a 5xx answer or a
// network error; then the call returns an sdk.Retryable error (the host
// resumes the run later). Throttled answers (THROTTLED, HTTP 429) are not
// counted: a call waits for the shop's bucket as long as its context lives.
const maxFailures = 6

// call sends one GraphQL document costing at most cost points and decodes
// its data into out. It waits for the shop's bucket before sending, waits
// out THROTTLED and 429 answers (for as long as ctx lives), retries 5xx
// answers and network errors with backoff up to maxFailures attempts, and
// never logs or returns the token.
func (c *Connector) call(ctx context.Context, cfg Config, query string, vars map[string]any, cost float64, out any) error {
	return c.callOnce(ctx, cfg, query, vars, cost, out, false)
}

// callOnce is call; with noResend, a 5xx answer or a network error (Shopify
// may have applied the request) is returned at once as an
// *unknownOutcomeError instead of being resent. Throttled answers, which
// Shopify did not apply, are still waited out and resent.
func (c *Connector) callOnce(ctx context.Context, cfg Config, query string, vars map[string]any, cost float64, out any, noResend bool) error {
	b := c.bucket(cfg.Shop)
	budgets := c.budgets(ctx)
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return fmt.Errorf("encode query: %w", err)
	}
	failures, throttles := 0, 0
	var wait time.Duration
	// failure counts a 5xx or network error: the wait before the next
	// attempt, or the error to return.
	failure := func(err error) error {
		if noResend {
			return &unknownOutcomeError{err: err}
		}
		failures++
		if failures >= maxFailures {
			return sdk.Retryable(fmt.Errorf("after %d attempts: %w", failures, err), backoff(failures+1))
		}
		wait = backoff(failures)
		return nil
	}
	for {
		if wait > 0 {
			if err := c.opts.Sleep(ctx, wait); err != nil {
				return err
			}
			wait = 0
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ticket, err := budgets.Take(ctx, costBudget(cfg.Shop), costLimit, cost)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for the cost budget of %s: %w", cfg.Shop, err)
		}
		resp, status, retryAfter, err := c.post(ctx, cfg, body)
		if err != nil {
			c.settle(ctx, budgets, cfg.Shop, b, ticket, cost, nil)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := failure(&networkError{err: err}); err != nil {
				return err
			}
			continue
		}
		var st *throttleStatus
		if resp != nil {
			st = resp.Extensions.Cost.ThrottleStatus
		}
		c.settle(ctx, budgets, cfg.Shop, b, ticket, cost, st)
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return errUnauthorized
		case status == http.StatusNotFound:
			return errNotFound
		case status == http.StatusTooManyRequests:
			// Not applied: wait (Retry-After, else the bucket's restore,
			// else backoff) and resend, however many times.
			throttles++
			wait = retryAfter
			if wait <= 0 && st != nil {
				wait = b.retryAfter(cost)
			}
			if wait <= 0 {
				wait = backoff(min(throttles, maxFailures))
			}
			continue
		case status >= 500:
			if err := failure(fmt.Errorf("shopify answered HTTP %d", status)); err != nil {
				return err
			}
			continue
		case status != http.StatusOK || resp == nil:
			return fmt.Errorf("shopify answered HTTP %d without a GraphQL answer", status)
		}
		if len(resp.Errors) > 0 && string(resp.Errors) != "null" {
			var errs []gqlError
			if err := json.Unmarshal(resp.Errors, &errs); err != nil {
				return &queryError{msgs: []string{strings.Trim(string(resp.Errors), `"`)}}
			}
			throttled := false
			msgs := make([]string, 0, len(errs))
			for _, e := range errs {
				switch e.Extensions.Code {
				case "THROTTLED":
					throttled = true
				case "MAX_COST_EXCEEDED":
					return errTooCostly
				}
				msgs = append(msgs, e.Message)
			}
			if throttled && cost > b.maximum() {
				// It will never be affordable: the caller must ask less.
				return errTooCostly
			}
			if throttled {
				// Not applied. The budget now holds the shop's figure (the
				// next Take waits for the restore); wait at least what the
				// throttle status says the cost needs, and resend.
				throttles++
				wait = b.retryAfter(cost)
				continue
			}
			return &queryError{msgs: msgs}
		}
		if out != nil {
			if err := json.Unmarshal(resp.Data, out); err != nil {
				return fmt.Errorf("decode shopify answer: %w", err)
			}
		}
		return nil
	}
}

func backoff(attempt int) time.Duration {
	return time.Duration(math.Min(float64(time.Second)*math.Pow(2, float64(attempt-1)), float64(30*time.Second)))
}

// post sends body; a nil response with a status means a non-JSON answer.
// retryAfter is the answer's Retry-After (0 when absent).
func (c *Connector) post(ctx context.Context, cfg Config, body []byte) (*gqlResponse, int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.endpoint(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("build request for %s: %w", cfg.Shop, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Shopify-Access-Token", cfg.AccessToken)
	res, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds no secret.
		return nil, 0, 0, fmt.Errorf("post to %s: %w", cfg.Shop, err)
	}
	defer res.Body.Close()
	var retryAfter time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After"))); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read answer of %s: %w", cfg.Shop, err)
	}
	var r gqlResponse
	if json.Unmarshal(raw, &r) != nil {
		return nil, res.StatusCode, retryAfter, nil
	}
	return &r, res.StatusCode, retryAfter, nil
}
