package sage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// tokens are one access/refresh token pair.
type tokens struct {
	Access, Refresh string
	Expires         time.Time
}

// successor is what a consumed refresh token was exchanged for.
type successor struct {
	next tokens
	at   time.Time
}

// session serializes the token refreshes of one connection (client id and
// business) and remembers which refresh tokens were already used, so that a
// call carrying a stale config uses the newest tokens instead of sending a
// consumed refresh token again.
type session struct {
	mu    sync.Mutex
	succs map[string]successor // consumed refresh token -> what it was exchanged for
}

// successorTTL is how long a consumed refresh token is remembered (longer
// than Sage's 31-day refresh-token life).
const successorTTL = 32 * 24 * time.Hour

// refreshMargin: tokens expiring sooner than this are refreshed before use.
const refreshMargin = 30 * time.Second

// errAuth is a credentials failure: a refresh refused, or 401 with fresh tokens.
type errAuth struct{ msg string }

func (e *errAuth) Error() string { return e.msg }

// apiError is a non-2xx answer of the Sage API.
type apiError struct {
	Status     int
	RetryAfter time.Duration
	Errors     []sageError
}

type sageError struct {
	Severity string `json:"$severity"`
	DataCode string `json:"$dataCode"`
	Message  string `json:"$message"`
	Source   string `json:"$source"`
}

func (e *apiError) Error() string {
	var parts []string
	for _, x := range e.Errors {
		p := x.Message
		if x.Source != "" {
			p += " (" + x.Source + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("sage: HTTP %d", e.Status)
	}
	return fmt.Sprintf("sage: HTTP %d: %s", e.Status, strings.Join(parts, "; "))
}

func (e *apiError) retryable() bool { return e.Status == http.StatusTooManyRequests || e.Status >= 500 }

// netError is a transport failure of a request that may have reached Sage
// (the connection broke, timed out or was reset before the whole answer
// was read): its outcome is unknown.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// outcomeUnknown reports whether a failed request may have been applied by
// Sage: a 5xx answer (a gateway may answer it after Sage did the work) or a
// transport failure after the request was sent. A 429 is refused before any
// work.
func outcomeUnknown(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	var ne *netError
	return errors.As(err, &ne)
}

// call is the state of one connector call for one connection: the config,
// the tokens in use and whether they changed.
type call struct {
	c    *Connector
	cfg  config
	sess *session
	tok  tokens
	base string
	// budget is the key of the business's request budget.
	budget  string
	lastCfg tokens // tokens last handed to the host
	// date is the Date header of the last answer (Sage's clock), zero when
	// absent.
	date time.Time
	// lastCP is the last checkpoint a read emitted.
	lastCP []byte
}

func (c *Connector) newCall(cfg config) *call {
	key := sha256.Sum256([]byte(cfg.ClientID + "\x00" + cfg.BusinessID))
	k := hex.EncodeToString(key[:])
	c.mu.Lock()
	s := c.sessions[k]
	if s == nil {
		s = &session{succs: map[string]successor{}}
		c.sessions[k] = s
	}
	c.mu.Unlock()
	t := tokens{cfg.AccessToken, cfg.RefreshToken, cfg.ExpiresAt}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	return &call{c: c, cfg: cfg, sess: s, tok: t, lastCfg: t, base: base, budget: requestBudget(cfg.BusinessID)}
}

// updatedConfig returns the config with the current tokens when they differ
// from what the host last received, and records them as handed over.
func (k *call) updatedConfig() json.RawMessage {
	if k.tok == k.lastCfg {
		return nil
	}
	cfg := k.cfg
	cfg.AccessToken, cfg.RefreshToken, cfg.ExpiresAt = k.tok.Access, k.tok.Refresh, k.tok.Expires.UTC()
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil
	}
	k.lastCfg = k.tok
	return raw
}

// ensureTokens brings k.tok up to date: it follows refresh tokens already
// exchanged by this process, and refreshes when the access token expires
// soon or when stale (the token a 401 answered) is still the current one.
func (k *call) ensureTokens(ctx context.Context, stale string) error {
	k.sess.mu.Lock()
	defer k.sess.mu.Unlock()
	now := k.c.opts.Now()
	for n := 0; n < 1000; n++ {
		s, ok := k.sess.succs[k.tok.Refresh]
		if !ok {
			break
		}
		k.tok = s.next
	}
	if stale == "" && now.Add(refreshMargin).Before(k.tok.Expires) {
		return nil
	}
	if stale != "" && stale != k.tok.Access {
		return nil // another call already refreshed
	}
	if k.tok.Refresh == "" {
		return &errAuth{"the access token is expired or invalid and there is no refresh token"}
	}
	next, err := k.refresh(ctx)
	if err != nil {
		return err
	}
	for old, s := range k.sess.succs {
		if now.Sub(s.at) > successorTTL {
			delete(k.sess.succs, old)
		}
	}
	k.sess.succs[k.tok.Refresh] = successor{next: next, at: now}
	k.tok = next
	return nil
}

// refresh exchanges the refresh token (once: Sage rotates it).
func (k *call) refresh(ctx context.Context) (tokens, error) {
	tokenURL := k.cfg.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {k.tok.Refresh},
		"client_id": {k.cfg.ClientID}, "client_secret": {k.cfg.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokens{}, fmt.Errorf("sage: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := k.c.opts.HTTPClient.Do(req)
	if err != nil {
		return tokens{}, &netError{fmt.Errorf("sage: refresh the access token: %w", err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokens{}, &netError{fmt.Errorf("sage: read the token answer: %w", err)}
	}
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Error        string `json:"error"`
	}
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
		// Never echo the body: it may hold tokens.
		return tokens{}, &errAuth{fmt.Sprintf("the token endpoint refused the refresh (HTTP %d %s): reconnect the Sage account", resp.StatusCode, out.Error)}
	}
	if resp.StatusCode/100 != 2 || out.AccessToken == "" {
		return tokens{}, &apiError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	}
	if out.RefreshToken == "" {
		out.RefreshToken = k.tok.Refresh
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 300
	}
	return tokens{out.AccessToken, out.RefreshToken, k.c.opts.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// do sends one API request (path relative to the base URL, or a $next path)
// and decodes a 2xx JSON answer into out (when not nil). A 401 refreshes the
// token once and retries.
func (k *call) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("sage: encode the %s body: %w", method, err)
		}
	}
	if err := k.ensureTokens(ctx, ""); err != nil {
		return err
	}
	budgets := k.c.budgets(ctx)
	for attempt := 0; ; attempt++ {
		ticket, err := budgets.Take(ctx, k.budget, k.c.requestLimit(), 1)
		if err != nil {
			return fmt.Errorf("sage: wait for the request budget: %w", err)
		}
		target, err := k.resolve(path)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("sage: build %s request: %w", method, err)
		}
		req.Header.Set("Authorization", "Bearer "+k.tok.Access)
		req.Header.Set("X-Business", k.cfg.BusinessID)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := k.c.opts.HTTPClient.Do(req)
		obs := sdk.Observation{Ticket: ticket, Release: 1}
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			// Every call to the business, on every host, holds off as long
			// (this one is retried by its caller or handed back retryable).
			obs.RetryAfter = min(max(retryAfter(resp.Header), time.Second), maxRetryWait)
		}
		k.settle(ctx, budgets, obs)
		if err != nil {
			err = fmt.Errorf("sage: %s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
			if ctx.Err() != nil {
				return err
			}
			return &netError{err}
		}
		if d, derr := http.ParseTime(resp.Header.Get("Date")); derr == nil {
			k.date = d.UTC()
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			err = fmt.Errorf("sage: read the answer of %s: %w", method, err)
			if ctx.Err() != nil {
				return err
			}
			return &netError{err}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			if attempt > 0 {
				return &errAuth{"Sage refused the access token (HTTP 401) even after a refresh"}
			}
			if err := k.ensureTokens(ctx, k.tok.Access); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			e := &apiError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
			_ = json.Unmarshal(raw, &e.Errors)
			return e
		}
		if out != nil && len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("sage: decode the answer of %s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
			}
		}
		return nil
	}
}

// resolve turns a path (or a $next link) into a URL. An absolute link must
// point at the API's own host: the bearer token is never sent elsewhere.
func (k *call) resolve(path string) (string, error) {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		u, err := url.Parse(path)
		if err != nil {
			return "", fmt.Errorf("sage: invalid link: %w", err)
		}
		b, err := url.Parse(k.base)
		if err != nil {
			return "", fmt.Errorf("sage: invalid base URL: %w", err)
		}
		if u.Scheme != b.Scheme || u.Host != b.Host {
			return "", fmt.Errorf("sage: link to another host (%s) refused", u.Host)
		}
		return path, nil
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return k.base + path, nil
}

// The request budget of a business is a token bucket of Options.Burst
// requests restored at Options.RequestsPerMinute (an sdk.BudgetBucket of
// known size), shared by every call of the process to that business, and
// by every host when the host attaches its budgets.

// requestBudget is the budget key of a business (an id, no secret).
func requestBudget(businessID string) string { return "sage:" + businessID + ":requests" }

func (c *Connector) requestLimit() sdk.Limit {
	return sdk.BucketLimit(float64(c.opts.Burst), float64(c.opts.RequestsPerMinute)/60, 0)
}

// budgets returns the budgets of a call: the host's when the host attached
// its shared budgets, the process's otherwise.
func (c *Connector) budgets(ctx context.Context) *sdk.Budgets {
	if a := sdk.BudgetAuthorityFrom(ctx); a != nil {
		return sdk.NewBudgets(a, c.opts.Sleep)
	}
	return sdk.NewBudgets(c.local, c.opts.Sleep)
}

// settleTimeout bounds the report that ends a request's reservation; it is
// sent even when the call's context is done.
const settleTimeout = 5 * time.Second

// settle ends a request's reservation (and passes a 429's Retry-After).
func (k *call) settle(ctx context.Context, budgets *sdk.Budgets, obs sdk.Observation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	// A failed report leaves the reservation to go stale: the budget is
	// only more cautious meanwhile.
	_ = budgets.Observe(ctx, k.budget, k.c.requestLimit(), obs)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isAuth(err error) bool {
	var a *errAuth
	return errors.As(err, &a)
}
