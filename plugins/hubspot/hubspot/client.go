package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Retry policy of one API call. A 429 of the rolling window is waited out
// (Retry-After, else one window, each wait capped at max429Wait) as long as
// the call's context lives: a 429 never fails a run. Server and network
// errors are retried max5xxAttempts times in all, then returned as
// sdk.Retryable (the host resumes the run from its checkpoint later). The
// daily cap fails the call at once.
const (
	max5xxAttempts   = 4
	default429Wait   = defaultRateInterval
	max429Wait       = 2 * time.Minute
	refreshSkew      = time.Minute
	maxErrorBodySize = 64 << 10
)

// APIError is a HubSpot error answer.
type APIError struct {
	Status   int
	Category string
	Message  string
	// Policy is the rate-limit policy of a 429 (DAILY, TEN_SECONDLY_ROLLING...).
	Policy     string
	RetryAfter time.Duration
	// Body is HubSpot's raw answer (error bodies carry no secrets).
	Body []byte
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Category != "" {
		return fmt.Sprintf("hubspot: %d %s: %s", e.Status, e.Category, msg)
	}
	return fmt.Sprintf("hubspot: %d: %s", e.Status, msg)
}

// Retryable reports whether the error is transient (429, 5xx).
func (e *APIError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

func parseAPIError(status int, h http.Header, body []byte) *APIError {
	e := &APIError{Status: status, Body: body}
	var b struct {
		Message    string `json:"message"`
		Category   string `json:"category"`
		PolicyName string `json:"policyName"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Message, e.Category, e.Policy = b.Message, b.Category, b.PolicyName
	}
	if ra := h.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

// session is one connector call with one config: it refreshes OAuth tokens
// as needed and remembers that the config changed.
type session struct {
	c       *Connector
	cfg     Config
	updated bool
}

func (c *Connector) newSession(cfg Config) *session { return &session{c: c, cfg: cfg} }

// updatedConfig is the config to hand back when tokens were refreshed.
func (s *session) updatedConfig() json.RawMessage {
	if !s.updated {
		return nil
	}
	return s.cfg.marshal()
}

// budgetKey identifies the rate-limit budget: the OAuth app and account for
// OAuth (tokens change on refresh), the token for private apps.
func (s *session) budgetKey() string {
	if s.cfg.OAuth() {
		return tokenKey("oauth\x00" + s.cfg.ClientID + "\x00" + s.cfg.RefreshToken)
	}
	return tokenKey("token\x00" + s.cfg.AccessToken)
}

// ensureToken refreshes the OAuth access token when it is missing or
// about to expire.
func (s *session) ensureToken(ctx context.Context) error {
	if !s.cfg.OAuth() {
		return nil
	}
	if s.cfg.AccessToken != "" && (s.cfg.expires.IsZero() || s.c.now().Add(refreshSkew).Before(s.cfg.expires)) {
		return nil
	}
	return s.refresh(ctx)
}

// refresh exchanges the refresh token for a new access token.
func (s *session) refresh(ctx context.Context) error {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {s.cfg.ClientID},
		"client_secret": {s.cfg.ClientSecret},
		"refresh_token": {s.cfg.RefreshToken},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.baseURL(), "/")+"/oauth/v1/token", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("hubspot: build token refresh request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("hubspot: refresh OAuth token: %w", ctx.Err())
		}
		return sdk.Retryable(fmt.Errorf("hubspot: refresh OAuth token: %w", err), 0)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodySize))
	if err != nil {
		return fmt.Errorf("hubspot: read token refresh answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := parseAPIError(resp.StatusCode, resp.Header, nil)
		var b struct{ Status, Message string }
		if json.Unmarshal(body, &b) == nil {
			e.Category, e.Message = b.Status, b.Message
		}
		err := fmt.Errorf("hubspot: refresh OAuth token: %w", e)
		if e.Retryable() {
			return sdk.Retryable(err, e.RetryAfter)
		}
		return err
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return errors.New("hubspot: refresh OAuth token: answer without access_token")
	}
	s.cfg.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		s.cfg.RefreshToken = tok.RefreshToken
	}
	s.cfg.expires = time.Time{}
	if tok.ExpiresIn > 0 {
		s.cfg.expires = s.c.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	s.updated = true
	return nil
}

// do calls the API: waits for the token's rate budget, waits out 429 (after
// Retry-After) for as long as ctx lives, retries 5xx and network errors (with
// backoff) then returns them as sdk.Retryable, refreshes an OAuth token once on 401,
// and decodes a 2xx JSON answer into out (when not nil). It returns the
// status, or an *APIError (wrapped) for answers that are not 2xx.
func (s *session) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, fmt.Errorf("hubspot: encode %s %s: %w", method, path, err)
		}
	}
	if err := s.ensureToken(ctx); err != nil {
		return 0, err
	}
	u := strings.TrimRight(s.cfg.baseURL(), "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	// A create that failed with a server or network error may have been
	// applied: retrying it here could duplicate records, so it is left to
	// the caller (the records are reported retryable).
	retry5xx := !strings.HasSuffix(path, "/batch/create")
	refreshed := false
	n5xx := 0
	budgets := s.c.budgets(ctx)
	for {
		key := s.budgetKey()
		if strings.HasSuffix(path, "/search") {
			if _, err := budgets.Take(ctx, searchBudget(key), searchLimit, 1); err != nil {
				return 0, fmt.Errorf("hubspot: %s %s: waiting for the search rate limit: %w", method, path, err)
			}
		}
		if _, err := budgets.Take(ctx, requestBudget(key), requestLimit, 1); err != nil {
			return 0, fmt.Errorf("hubspot: %s %s: waiting for the rate limit: %w", method, path, err)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return 0, fmt.Errorf("hubspot: build %s %s: %w", method, path, err)
		}
		req.Header.Set("Authorization", "Bearer "+s.cfg.AccessToken)
		req.Header.Set("Accept", "application/json")
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := s.c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("hubspot: %s %s: %w", method, path, ctx.Err())
			}
			n5xx++
			if n5xx >= max5xxAttempts || !retry5xx {
				return 0, sdk.Retryable(fmt.Errorf("hubspot: %s %s: %w", method, path, err), 0)
			}
			if err := s.c.sleep(ctx, backoff(n5xx)); err != nil {
				return 0, fmt.Errorf("hubspot: %s %s: %w", method, path, err)
			}
			continue
		}
		// A failed report only loses a correction: the request's own
		// answer is what matters here.
		_ = budgets.Observe(ctx, requestBudget(key), requestLimit, observation(resp.Header))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			err := decode(resp, out)
			if err != nil {
				return resp.StatusCode, fmt.Errorf("hubspot: %s %s: decode answer: %w", method, path, err)
			}
			return resp.StatusCode, nil
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodySize))
		resp.Body.Close()
		apiErr := parseAPIError(resp.StatusCode, resp.Header, raw)
		var wait time.Duration
		switch {
		case resp.StatusCode == http.StatusUnauthorized && s.cfg.OAuth() && !refreshed:
			refreshed = true
			if err := s.refresh(ctx); err != nil {
				return 0, err
			}
			continue
		case resp.StatusCode == http.StatusTooManyRequests:
			if apiErr.Policy == "DAILY" {
				// The daily cap resets at midnight: waiting here would not help.
				return resp.StatusCode, fmt.Errorf("hubspot: %s %s: HubSpot's daily API limit is reached; it resets at midnight (the HubSpot account's time zone): %w", method, path, apiErr)
			}
			wait = apiErr.RetryAfter
			if wait <= 0 {
				wait = default429Wait
			}
			wait = min(wait, max429Wait)
			// Every process using the token holds off as long.
			_ = budgets.Observe(ctx, requestBudget(key), requestLimit, sdk.Observation{RetryAfter: wait})
		case resp.StatusCode >= 500:
			n5xx++
			if n5xx >= max5xxAttempts || !retry5xx {
				return resp.StatusCode, sdk.Retryable(fmt.Errorf("hubspot: %s %s: %w", method, path, apiErr), apiErr.RetryAfter)
			}
			wait = max(apiErr.RetryAfter, backoff(n5xx))
		default:
			return resp.StatusCode, fmt.Errorf("hubspot: %s %s: %w", method, path, apiErr)
		}
		if err := s.c.sleep(ctx, wait); err != nil {
			return 0, fmt.Errorf("hubspot: %s %s: %w", method, path, err)
		}
	}
}

func backoff(attempt int) time.Duration {
	return time.Duration(1<<(attempt-1)) * 500 * time.Millisecond
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// asAPIError unwraps an *APIError.
func asAPIError(err error) (*APIError, bool) {
	var e *APIError
	ok := errors.As(err, &e)
	return e, ok
}
