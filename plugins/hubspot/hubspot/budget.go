package hubspot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Rate-limit defaults until HubSpot's headers say otherwise: the OAuth app
// burst (private apps get 190), the lower of the two.
const (
	defaultRateMax      = 100
	defaultRateInterval = 10 * time.Second
	// rateMargin widens the window a little so that requests sent at the
	// edge of our window do not land inside HubSpot's.
	rateMargin = 100 * time.Millisecond
	// HubSpot's search endpoints allow 5 requests per second per account.
	searchRateMax      = 5
	searchRateInterval = time.Second
)

// The budgets of one token: at most max requests in any interval, counted
// from the grant times of every request with the token (a sliding window,
// so HubSpot's window, wherever it starts, never sees more), corrected from
// HubSpot's X-HubSpot-RateLimit-* headers; and the search budget.
var (
	requestLimit = sdk.WindowLimit(defaultRateMax, defaultRateInterval, rateMargin)
	searchLimit  = sdk.WindowLimit(searchRateMax, searchRateInterval, rateMargin)
)

func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Budget keys of a token key (tokenKey: no secret in them).
func requestBudget(key string) string { return "hubspot:" + key + ":requests" }
func searchBudget(key string) string  { return "hubspot:" + key + ":search" }

// budgets returns the budgets of a call: the host's when the host attached
// its shared budgets (every host's processes share them), the process's
// otherwise.
func (c *Connector) budgets(ctx context.Context) *sdk.Budgets {
	if a := sdk.BudgetAuthorityFrom(ctx); a != nil {
		return sdk.NewBudgets(a, c.sleep)
	}
	return sdk.NewBudgets(c.local, c.sleep)
}

// observation reads HubSpot's X-HubSpot-RateLimit-* headers: the window's
// size and what is left of it. When HubSpot reports fewer remaining
// requests than the budget counts (something else uses the same token),
// the difference is counted as spent now.
func observation(h http.Header) sdk.Observation {
	var obs sdk.Observation
	if v, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Max")); err == nil && v > 0 {
		obs.Max = float64(v)
	}
	if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
		obs.Interval = time.Duration(ms) * time.Millisecond
	}
	if rem, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Remaining")); err == nil && rem >= 0 {
		obs.HasRemaining, obs.Remaining = true, float64(rem)
	}
	return obs
}
