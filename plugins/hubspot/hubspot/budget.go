package hubspot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"
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

// budget is the request budget of one token: at most max requests in any
// interval, counted from the send times of our own requests (a sliding
// window, so HubSpot's window, wherever it starts, never sees more).
type budget struct {
	mu       sync.Mutex
	max      int
	interval time.Duration
	sent     []time.Time // send times in the last interval, oldest first
}

// budgets holds the budgets of every token this process uses, shared by
// every call (every workflow) with the same token.
type budgets struct {
	mu sync.Mutex
	m  map[string]*budget
}

func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func (bs *budgets) get(key string) *budget {
	return bs.getWith(key, defaultRateMax, defaultRateInterval)
}

// getWith returns the budget of key, created with max per interval.
func (bs *budgets) getWith(key string, max int, interval time.Duration) *budget {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.m == nil {
		bs.m = map[string]*budget{}
	}
	b := bs.m[key]
	if b == nil {
		b = &budget{max: max, interval: interval}
		bs.m[key] = b
	}
	return b
}

// trim drops send times older than the window.
func (b *budget) trim(now time.Time) {
	cut := now.Add(-b.interval - rateMargin)
	i := 0
	for i < len(b.sent) && !b.sent[i].After(cut) {
		i++
	}
	b.sent = b.sent[i:]
}

// reserve takes one request of budget at now, or answers how long to wait.
func (b *budget) reserve(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trim(now)
	if len(b.sent) < b.max {
		b.sent = append(b.sent, now)
		return 0
	}
	wait := b.sent[len(b.sent)-b.max].Add(b.interval + rateMargin).Sub(now)
	if wait <= 0 {
		wait = time.Millisecond
	}
	return wait
}

// wait blocks until the budget allows one more request, and takes it.
func (b *budget) wait(ctx context.Context, now func() time.Time, sleep func(context.Context, time.Duration) error) error {
	for {
		d := b.reserve(now())
		if d == 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// observe updates the budget from HubSpot's X-HubSpot-RateLimit-* headers.
// When HubSpot reports fewer remaining requests than we count (another
// process uses the same token), the difference is counted as spent now.
func (b *budget) observe(h http.Header, now time.Time) {
	maxV, err1 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Max"))
	ms, err2 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds"))
	rem, err3 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Remaining"))
	b.mu.Lock()
	defer b.mu.Unlock()
	if err1 == nil && maxV > 0 {
		b.max = maxV
	}
	if err2 == nil && ms > 0 {
		b.interval = time.Duration(ms) * time.Millisecond
	}
	if err3 == nil && rem >= 0 {
		b.trim(now)
		for extra := b.max - len(b.sent) - rem; extra > 0; extra-- {
			b.sent = append(b.sent, now)
		}
	}
}
