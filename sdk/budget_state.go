package sdk

import (
	"fmt"
	"math"
	"time"
)

// BudgetModel is how a rate-limit budget counts.
type BudgetModel int

const (
	// BudgetWindow allows at most Max units in any sliding window of
	// Interval (widened by Margin): HubSpot's ten-second limit, Sage's
	// requests per minute.
	BudgetWindow BudgetModel = iota + 1
	// BudgetBucket is a leaky bucket of Max units restored at Rate units per
	// second: Shopify's query-cost bucket.
	BudgetBucket
)

func (m BudgetModel) String() string {
	switch m {
	case BudgetWindow:
		return "window"
	case BudgetBucket:
		return "bucket"
	}
	return "unspecified"
}

// Limit is the model of a budget and its sizes until the app tells
// otherwise (Observe). The first Take of a key creates its budget with
// these values; later Takes' limits only matter for a budget that was lost.
type Limit struct {
	Model BudgetModel
	// Max is the window's units per Interval, or the bucket's size.
	Max float64
	// Interval and Margin size the window: a unit stays counted for
	// Interval+Margin after it was granted, so that requests sent at the
	// edge of our window do not land inside the app's.
	Interval, Margin time.Duration
	// Rate is the bucket's restore rate, units per second.
	Rate float64
	// Probe, when positive, makes a bucket of unknown size (no Observe
	// with its size yet) grant one Take at a time: the others wait until
	// an answer tells the size.
	Probe float64
}

// WindowLimit is at most max units in any interval (plus margin).
func WindowLimit(max int, interval, margin time.Duration) Limit {
	return Limit{Model: BudgetWindow, Max: float64(max), Interval: interval, Margin: margin}
}

// BucketLimit is a leaky bucket of size units restored at rate units per
// second; probe > 0 means the size is a guess until an Observe gives it.
func BucketLimit(size, rate, probe float64) Limit {
	return Limit{Model: BudgetBucket, Max: size, Rate: rate, Probe: probe}
}

// Validate reports whether l can create a budget: a window of at least 1
// per positive interval, or a bucket of positive size and rate.
func (l Limit) Validate() error {
	switch {
	case l.Model == BudgetWindow && l.Max >= 1 && l.Interval > 0 && l.Margin >= 0:
	case l.Model == BudgetBucket && l.Max > 0 && l.Rate > 0 && l.Probe >= 0:
	default:
		return fmt.Errorf("invalid %s budget limit %+v", l.Model, l)
	}
	return nil
}

// Grant is the answer to a Take: granted now, or wait.
type Grant struct {
	// Wait is zero when the units were granted; otherwise how long to
	// wait before asking again.
	Wait time.Duration
	// Ticket identifies a granted bucket Take: pass it back in the
	// Observation that ends it.
	Ticket int64
	// Probing: not granted because the bucket's size is being learned by
	// another Take (Wake, when set, is closed when it is).
	Probing bool
	// Wake, when set by an in-process implementation, is closed when
	// asking again may succeed sooner than Wait.
	Wake <-chan struct{}
	// At is when the authority decided, on its clock (tests, metrics).
	At time.Time
}

// Granted reports whether the units were granted.
func (g Grant) Granted() bool { return g.Wait <= 0 }

// Observation is what the app said about a budget, and for a bucket the end
// of a granted Take. Zero values are unknown.
type Observation struct {
	// Ticket and Release end a granted bucket Take of Release units (its
	// cost); every granted bucket Take must be ended by one Observation.
	Ticket  int64
	Release float64
	// Max and Interval are the window's size (HubSpot's
	// X-HubSpot-RateLimit-Max and -Interval-Milliseconds), or Max and Rate
	// the bucket's (Shopify's maximumAvailable and restoreRate).
	Max      float64
	Interval time.Duration
	Rate     float64
	// Remaining (when HasRemaining) is what the app says is left: it lowers
	// the budget, never raises it above what was counted.
	HasRemaining bool
	Remaining    float64
	// RetryAfter (a 429's Retry-After) holds every Take of the key for
	// that long.
	RetryAfter time.Duration
}

// probeWait is how long a Take of a bucket being probed waits before asking
// again, when the implementation cannot wake it (the host's).
const probeWait = 50 * time.Millisecond

// staleInflight: reservations of a bucket that nothing ended for this long
// (a process died with calls in flight) are forgotten.
const staleInflight = 2 * time.Minute

// BudgetState is the state of one budget and its algorithms, shared by the
// in-process implementation (LocalBudgets) and the host's (which stores it
// in PostgreSQL and applies it under a row lock). Its methods are pure:
// the caller serialises them and passes the clock.
type BudgetState struct {
	Model BudgetModel `json:"model"`
	// Window: its size and the grant times still counted, oldest first.
	Max      float64       `json:"max"`
	Interval time.Duration `json:"interval,omitempty"`
	Margin   time.Duration `json:"margin,omitempty"`
	Sent     []time.Time   `json:"sent,omitempty"`
	// Bucket: what it holds as of At, its restore rate, the units granted
	// and not yet answered, whether its size is known, and how many
	// answers it got (Take's ticket).
	Avail      float64   `json:"avail,omitempty"`
	Rate       float64   `json:"rate,omitempty"`
	At         time.Time `json:"at,omitzero"`
	Inflight   float64   `json:"inflight,omitempty"`
	InflightAt time.Time `json:"inflight_at,omitzero"`
	Probe      float64   `json:"probe,omitempty"`
	Known      bool      `json:"known,omitempty"`
	Settled    int64     `json:"settled,omitempty"`
	// BlockedUntil holds every Take (a 429's Retry-After).
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
}

// NewBudgetState returns the state of a new budget of limit, full at now.
func NewBudgetState(limit Limit, now time.Time) BudgetState {
	s := BudgetState{Model: limit.Model, Max: limit.Max}
	switch limit.Model {
	case BudgetWindow:
		s.Interval, s.Margin = limit.Interval, limit.Margin
	case BudgetBucket:
		s.Avail, s.Rate, s.At, s.Probe = limit.Max, limit.Rate, now, limit.Probe
		s.Known = limit.Probe <= 0
	}
	return s
}

// Take grants cost units at now or answers how long to wait.
func (s *BudgetState) Take(now time.Time, cost float64) Grant {
	var g Grant
	switch {
	case now.Before(s.BlockedUntil):
		g = Grant{Wait: s.BlockedUntil.Sub(now)}
	case s.Model == BudgetBucket:
		g = s.takeBucket(now, cost)
	default:
		g = s.takeWindow(now, cost)
	}
	g.At = now
	return g
}

// Observe applies what the app said. It reports whether Takes waiting for
// a bucket's size (Probing) should ask again.
func (s *BudgetState) Observe(now time.Time, obs Observation) (wake bool) {
	if obs.RetryAfter > 0 {
		if until := now.Add(obs.RetryAfter); until.After(s.BlockedUntil) {
			s.BlockedUntil = until
		}
	}
	if s.Model == BudgetBucket {
		return s.observeBucket(now, obs)
	}
	s.observeWindow(now, obs)
	return false
}

// trim drops the grant times that left the window.
func (s *BudgetState) trim(now time.Time) {
	cut := now.Add(-s.Interval - s.Margin)
	i := 0
	for i < len(s.Sent) && !s.Sent[i].After(cut) {
		i++
	}
	s.Sent = append(s.Sent[:0:0], s.Sent[i:]...)
}

func (s *BudgetState) windowMax() int {
	return max(1, int(s.Max))
}

func (s *BudgetState) takeWindow(now time.Time, cost float64) Grant {
	s.trim(now)
	n := min(max(1, int(math.Ceil(cost))), s.windowMax())
	if len(s.Sent)+n <= s.windowMax() {
		for range n {
			s.Sent = append(s.Sent, now)
		}
		return Grant{}
	}
	// The oldest len+n-max grants must leave the window first.
	k := len(s.Sent) + n - s.windowMax()
	wait := s.Sent[k-1].Add(s.Interval + s.Margin).Sub(now)
	if wait <= 0 {
		wait = time.Millisecond
	}
	return Grant{Wait: wait}
}

// observeWindow takes the window's size from the app, and when the app
// reports fewer remaining units than counted (someone else uses the same
// credential), counts the difference as spent now.
func (s *BudgetState) observeWindow(now time.Time, obs Observation) {
	if obs.Max >= 1 {
		s.Max = math.Floor(obs.Max)
	}
	if obs.Interval > 0 {
		s.Interval = obs.Interval
	}
	if obs.HasRemaining && obs.Remaining >= 0 {
		s.trim(now)
		for extra := s.windowMax() - len(s.Sent) - int(obs.Remaining); extra > 0; extra-- {
			s.Sent = append(s.Sent, now)
		}
	}
}

func (s *BudgetState) refill(now time.Time) {
	if d := now.Sub(s.At).Seconds(); d > 0 {
		s.Avail = math.Min(s.Max, s.Avail+d*s.Rate)
	}
	if now.After(s.At) {
		s.At = now
	}
}

func (s *BudgetState) takeBucket(now time.Time, cost float64) Grant {
	if s.Inflight > 0 && now.Sub(s.InflightAt) > staleInflight {
		s.Inflight = 0
	}
	if !s.Known && s.Inflight > 0 {
		return Grant{Wait: probeWait, Probing: true}
	}
	s.refill(now)
	cost = math.Min(cost, s.Max)
	if s.Avail >= cost {
		s.Avail -= cost
		s.Inflight += cost
		s.InflightAt = now
		return Grant{Ticket: s.Settled}
	}
	wait := time.Duration(math.Ceil((cost - s.Avail) / s.Rate * float64(time.Second)))
	return Grant{Wait: max(wait, time.Millisecond)}
}

// observeBucket ends a reservation and takes the shop's throttle status
// when known. An answer is the newest when no other was settled since its
// Take: only then is the shop's figure taken as is; otherwise the figure
// may predate other calls (answers arrive out of order), so it never
// raises the estimate and reservations it may not have seen are deducted.
func (s *BudgetState) observeBucket(now time.Time, obs Observation) bool {
	ending := obs.Release > 0
	newest := false
	if ending {
		s.Inflight = math.Max(0, s.Inflight-math.Min(obs.Release, s.Max))
		s.InflightAt = now
		newest = s.Settled == obs.Ticket
		s.Settled++
	}
	if obs.Max <= 0 || obs.Rate <= 0 || !obs.HasRemaining {
		// Still unknown: the waiters ask again, one of them probes next.
		return !s.Known
	}
	wake := !s.Known
	s.Known = true
	s.refill(now)
	s.Max, s.Rate, s.At = obs.Max, obs.Rate, now
	if s.Inflight == 0 && newest {
		s.Avail = math.Min(s.Max, math.Max(0, obs.Remaining))
		return wake
	}
	s.Avail = math.Max(0, math.Min(s.Avail, obs.Remaining-s.Inflight))
	return wake
}

// Size is the budget's size as last known: the window's max or the
// bucket's; a bucket still probing answers its probe cost.
func (s *BudgetState) Size() float64 {
	if s.Model == BudgetBucket && !s.Known {
		return s.Probe
	}
	return s.Max
}
