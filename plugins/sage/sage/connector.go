// Package sage is the Sage Business Cloud Accounting (v3.1) connector:
// contacts, products and sales invoices (read and write), ledger accounts
// and tax rates (read-only). It authenticates with OAuth2 access tokens that
// live 5 minutes and refresh tokens that rotate on every use: refreshed
// tokens are handed back to the host in the UpdatedConfig of the very
// response whose call refreshed them, and a refresh token is never sent
// twice (refreshes are serialized per connection in the process).
package sage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Defaults.
const (
	DefaultBaseURL  = "https://api.accounting.sage.com/v3.1"
	DefaultTokenURL = "https://oauth.accounting.sage.com/token"
	// DefaultRequestsPerMinute and DefaultBurst are the assumed per-business
	// request budget (see docs.md).
	DefaultRequestsPerMinute = 100
	DefaultBurst             = 20
	// DefaultMaxRetries bounds the retries of one read request on 429/5xx.
	DefaultMaxRetries = 4
	maxItemsPerPage   = 200
	defaultBatch      = 100
	maxRetryWait      = 2 * time.Minute
)

// Options tune the connector (zero values take the defaults).
type Options struct {
	HTTPClient        *http.Client
	Now               func() time.Time
	Sleep             func(ctx context.Context, d time.Duration) error
	RequestsPerMinute int
	Burst             int
	MaxRetries        int
}

// Connector implements sdk.Connector.
type Connector struct {
	version, docs string
	opts          Options
	mu            sync.Mutex
	sessions      map[string]*session
	// pending are the creates whose outcome is unknown (key -> sent at).
	pending map[string]time.Time
	// local holds the request budgets when no host shares them.
	local *sdk.LocalBudgets
}

var _ sdk.Connector = (*Connector)(nil)

// New returns the connector.
func New(version, docs string, opts Options) *Connector {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: time.Minute}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	if opts.RequestsPerMinute <= 0 {
		opts.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	return &Connector{version: strings.TrimSpace(version), docs: docs, opts: opts,
		sessions: map[string]*session{}, pending: map[string]time.Time{}, local: sdk.NewLocalBudgets(opts.Now)}
}

type config struct {
	ClientID     string    `json:"client_id"`
	ClientSecret string    `json:"client_secret"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	BusinessID   string    `json:"business_id"`
	BaseURL      string    `json:"base_url,omitempty"`
	TokenURL     string    `json:"token_url,omitempty"`
}

const configSchema = `{
  "type": "object",
  "required": ["client_id", "client_secret", "access_token", "refresh_token", "business_id"],
  "additionalProperties": false,
  "properties": {
    "client_id": {"type": "string", "description": "OAuth client id of the Sage app"},
    "client_secret": {"type": "string", "description": "OAuth client secret", "secret": true},
    "access_token": {"type": "string", "secret": true},
    "refresh_token": {"type": "string", "secret": true},
    "expires_at": {"type": "string", "format": "date-time", "description": "expiry of access_token"},
    "business_id": {"type": "string", "description": "Sage business id (X-Business)"},
    "base_url": {"type": "string", "description": "API base URL (tests)"},
    "token_url": {"type": "string", "description": "OAuth token URL (tests)"}
  }
}`

func parseConfig(raw json.RawMessage) (config, sdk.Diagnostics) {
	var cfg config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "invalid config", err.Error())}
	}
	var d sdk.Diagnostics
	for _, r := range []struct{ name, v string }{
		{"client_id", cfg.ClientID}, {"client_secret", cfg.ClientSecret}, {"access_token", cfg.AccessToken},
		{"refresh_token", cfg.RefreshToken}, {"business_id", cfg.BusinessID},
	} {
		if strings.TrimSpace(r.v) == "" {
			d = append(d, sdk.Errorf(r.name, "missing "+r.name, ""))
		}
	}
	for _, u := range []struct{ name, v string }{{"base_url", cfg.BaseURL}, {"token_url", cfg.TokenURL}} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			d = append(d, sdk.Errorf(u.name, "invalid "+u.name, "want an http(s) URL"))
		}
	}
	return cfg, d
}

// Spec implements sdk.Connector.
func (c *Connector) Spec(context.Context) (*sdk.Spec, error) {
	var objs []sdk.Object
	for _, o := range objects() {
		objs = append(objs, o.sdkObject())
	}
	return &sdk.Spec{Name: "sage", Version: c.version, Title: "Sage Business Cloud Accounting",
		ConfigSchema: json.RawMessage(configSchema), Objects: objs, Docs: c.docs,
		Capabilities:    sdk.Capabilities{Read: true, Write: true},
		ProtocolVersion: sdk.ProtocolVersion}, nil
}

// diagnose turns a call failure into diagnostics (nil when err is not about
// the config or credentials).
func diagnose(err error) sdk.Diagnostics {
	if isAuth(err) {
		return sdk.Diagnostics{sdk.Errorf("access_token", "Sage rejected the credentials", err.Error())}
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusForbidden, http.StatusNotFound:
			return sdk.Diagnostics{sdk.Errorf("business_id", "the business is not reachable with these credentials", ae.Error())}
		}
	}
	return nil
}

// Check implements sdk.Connector: one cheap list call.
func (c *Connector) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	cfg, d := parseConfig(req.Config)
	if d.HasError() {
		return &sdk.CheckResponse{Diagnostics: d}, nil
	}
	k := c.newCall(cfg)
	err := k.do(ctx, http.MethodGet, "/contacts?items_per_page=1", nil, nil)
	resp := &sdk.CheckResponse{UpdatedConfig: k.updatedConfig()}
	if err != nil {
		if d := diagnose(err); d != nil {
			resp.Diagnostics = d
			return resp, nil
		}
		var ae *apiError
		if errors.As(err, &ae) {
			resp.Diagnostics = sdk.Diagnostics{sdk.Errorf("", "Sage answered an error", ae.Error())}
			return resp, nil
		}
		return resp, fmt.Errorf("sage check: %w", err)
	}
	return resp, nil
}

// Discover implements sdk.Connector (the objects are fixed).
func (c *Connector) Discover(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	spec, _ := c.Spec(ctx)
	return &sdk.DiscoverResponse{Objects: spec.Objects}, nil
}

// HandleWebhook implements sdk.Connector: Sage has no webhooks.
func (c *Connector) HandleWebhook(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{Verified: false, ResponseStatus: http.StatusNotFound,
		Diagnostics: sdk.Diagnostics{sdk.Errorf("", "Sage has no webhooks", "")}}, nil
}

// Stop implements sdk.Connector.
func (c *Connector) Stop(context.Context) error {
	c.opts.HTTPClient.CloseIdleConnections()
	return nil
}

// cursor is a read checkpoint.
type cursor struct {
	// Since is the live part: records changed at or after it are read next
	// (updated_or_created_since is inclusive). Seen holds a fingerprint of
	// each record read with updated_at equal to Since: such a record is
	// skipped only while its fingerprint is unchanged, so a second edit
	// within the same second is read again.
	Since time.Time         `json:"since,omitzero"`
	Seen  map[string]string `json:"seen,omitempty"`
	// IDs are the boundary records of checkpoints of earlier versions (ids
	// without fingerprints): they are read again once. Never written.
	IDs []string `json:"ids,omitempty"`
	// DelSince is the largest deleted_at read; DelIDs the records with it.
	DelSince time.Time `json:"del_since,omitzero"`
	DelIDs   []string  `json:"del_ids,omitempty"`
	// DelDone is set once a deletion scan finished: until then deletions
	// before DelFrom are not reported (nothing was read before them).
	DelDone bool      `json:"del_done,omitempty"`
	DelFrom time.Time `json:"del_from,omitzero"`
}

// deleteSkew is how far before the start of a first read deletions are
// still reported (clock skew between the connector and Sage); it is also
// the margin taken before the connector's clock when Sage's is unknown.
const deleteSkew = 5 * time.Minute

type envelope struct {
	Next  *string           `json:"$next"`
	Items []json.RawMessage `json:"$items"`
}

// getRetry is a GET that waits out 429 answers for as long as ctx lives
// (each wait Retry-After, or a growing backoff, at most maxRetryWait), and
// retries 5xx answers and network errors Options.MaxRetries times; past
// that it returns an sdk.Retryable error (the host resumes the run from its
// checkpoint later instead of failing it).
func (k *call) getRetry(ctx context.Context, path string, out any) error {
	failures, throttled := 0, 0
	for {
		err := k.do(ctx, http.MethodGet, path, nil, out)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ae *apiError
		var ne *netError
		var wait time.Duration
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			if wait = ae.RetryAfter; wait <= 0 {
				wait = time.Second << min(throttled, 7)
			}
			throttled++
		case errors.As(err, &ae) && ae.Status >= 500, errors.As(err, &ne):
			if ae != nil {
				wait = ae.RetryAfter
			}
			if wait <= 0 {
				wait = time.Second << min(failures, 7)
			}
			if failures >= k.c.opts.MaxRetries {
				return sdk.Retryable(err, min(wait, maxRetryWait))
			}
			failures++
		default:
			return err
		}
		if err := k.c.opts.Sleep(ctx, min(wait, maxRetryWait)); err != nil {
			return fmt.Errorf("sage: wait to retry: %w", err)
		}
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// mark is the version of a record a read took.
type mark struct {
	at time.Time
	fp string
}

// fingerprint identifies a version of a record (its flattened fields).
func fingerprint(fields []byte) string {
	sum := sha256.Sum256(fields)
	return hex.EncodeToString(sum[:8])
}

// Read implements sdk.Connector: records changed since the checkpoint
// (updated_or_created_since, inclusive: records read at the boundary second
// are skipped while unchanged), then deletions (deleted_since).
//
// Sales invoices are listed sorted by updated_at, so each batch carries a
// checkpoint. Other lists come in Sage's own order: a checkpoint taken after
// a page could be newer than records on pages not read yet, so their batches
// carry none (the checkpoint does not move) and the checkpoint is emitted
// once the whole listing is read. Deletions likewise move the checkpoint only
// once the deletion listing is read.
func (c *Connector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	cfg, d := parseConfig(req.Config)
	if d.HasError() {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: d})
	}
	o, ok := findObject(req.Object)
	if !ok {
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "unknown object "+req.Object, "")}})
	}
	var from cursor
	if len(req.Cursor) > 0 {
		if err := json.Unmarshal(req.Cursor, &from); err != nil {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("", "invalid checkpoint", err.Error())}})
		}
	}
	startedAt := c.opts.Now()
	per := req.BatchSize
	if per <= 0 {
		per = defaultBatch
	}
	per = min(per, maxItemsPerPage)
	k := c.newCall(cfg)
	fail := func(err error) error {
		if d := diagnose(err); d != nil {
			return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: d, UpdatedConfig: k.updatedConfig()})
		}
		if cfgUpd := k.updatedConfig(); cfgUpd != nil {
			// Hand the rotated tokens over even though the read failed.
			if emitErr := sink.Emit(ctx, sdk.ReadBatch{UpdatedConfig: cfgUpd}); emitErr != nil {
				return emitErr
			}
		}
		return fmt.Errorf("sage read %s: %w", o.name, err)
	}

	// cur is the checkpoint this read moves to; from the one it started at.
	cur := from
	cur.IDs = nil
	cur.Seen = maps.Clone(from.Seen)
	if cur.Seen == nil {
		cur.Seen = map[string]string{}
	}
	cur.DelIDs = slices.Clone(from.DelIDs)
	if !cur.DelDone && cur.DelFrom.IsZero() {
		cur.DelFrom = startedAt.Add(-deleteSkew)
	}
	var live *cursor // checkpoints of live batches (nil: none)
	if o.sortable {
		live = &cur
	}

	// Live records.
	q := url.Values{"attributes": {"all"}, "items_per_page": {strconv.Itoa(per)}}
	if !from.Since.IsZero() {
		q.Set("updated_or_created_since", stamp(from.Since))
	}
	if o.sortable {
		q.Set("sort", "updated_at:asc")
	}
	// read: the version of each record this read took (or skipped as
	// unchanged at the boundary).
	read := map[string]mark{}
	// take applies the boundary rule to one record; ok is false when this
	// version was read already.
	take := func(rec map[string]any) (r sdk.Record, ok bool, err error) {
		id, _ := rec["id"].(string)
		if id == "" {
			return r, false, nil
		}
		at, _ := time.Parse(time.RFC3339, fmt.Sprint(rec["updated_at"]))
		fields, err := json.Marshal(o.flatten(rec))
		if err != nil {
			return r, false, fmt.Errorf("encode a record: %w", err)
		}
		fp := fingerprint(fields)
		if m, seen := read[id]; seen && m.fp == fp {
			return r, false, nil
		}
		read[id] = mark{at, fp}
		if at.Equal(from.Since) && from.Seen[id] == fp {
			return r, false, nil // read at the boundary second already, unchanged
		}
		if at.After(cur.Since) {
			cur.Since, cur.Seen = at, map[string]string{}
		}
		if at.Equal(cur.Since) {
			cur.Seen[id] = fp
		}
		return sdk.Record{ID: id, UpdatedAt: at, Fields: fields}, true, nil
	}
	next := "/" + o.path + "?" + q.Encode()
	pages := 0
	var listedAt time.Time // Sage's clock when the listing began
	for next != "" {
		var env envelope
		if err := k.getRetry(ctx, next, &env); err != nil {
			return fail(err)
		}
		if pages == 0 {
			listedAt = k.date
		}
		pages++
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
		var recs []sdk.Record
		for _, raw := range env.Items {
			var rec map[string]any
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fail(fmt.Errorf("decode a record: %w", err))
			}
			r, ok, err := take(rec)
			if err != nil {
				return fail(err)
			}
			if ok {
				recs = append(recs, r)
			}
		}
		if len(recs) == 0 && (next != "" || live == nil) {
			continue
		}
		if err := k.emit(ctx, sink, recs, live); err != nil {
			return err
		}
	}
	if pages > 1 {
		// Sage pages by offset: a record changed while we paged can move and
		// shift an unread record onto a page already read, and (in an order
		// other than updated_at) a record changed on a page already read
		// stays there. List the ids and updated_at of the query again
		// (cheap) and fetch the records missed or changed since read.
		if err := k.catchUp(ctx, o, q, per, read, take, sink, live); err != nil {
			var se sinkError
			if errors.As(err, &se) {
				return se.err // the sink said stop: do not emit again
			}
			return fail(err)
		}
	}
	if !o.sortable {
		// A record changed after the listing began, on a page already read,
		// is not in this read although a later record may be: the
		// checkpoint goes no further than the listing's start.
		limit := listedAt.Truncate(time.Second)
		if limit.IsZero() {
			limit = startedAt.Add(-deleteSkew).Truncate(time.Second)
		}
		limit = maxTime(limit, from.Since)
		if cur.Since.After(limit) {
			cur.Since, cur.Seen = limit, map[string]string{}
			for id, m := range read {
				if m.at.Equal(limit) {
					cur.Seen[id] = m.fp
				}
			}
		}
		if err := k.flush(ctx, sink, &cur); err != nil {
			return err
		}
	}

	// Deletions. The first scan asks for every deletion (it cannot know the
	// server's clock) and reports only those since the first read started.
	if !o.deletes {
		return k.flush(ctx, sink, &cur)
	}
	first := !from.DelDone
	dq := url.Values{"items_per_page": {strconv.Itoa(per)}, "deleted_since": {"1970-01-01T00:00:00Z"}}
	if !from.DelSince.IsZero() {
		// deleted_since is exclusive: ask from one second before and skip
		// the ids already reported at the boundary.
		dq.Set("deleted_since", stamp(from.DelSince.Add(-time.Second)))
	}
	fromDel := map[string]bool{}
	for _, id := range from.DelIDs {
		fromDel[id] = true
	}
	reported := map[string]bool{}
	next = "/" + o.path + "?" + dq.Encode()
	for next != "" {
		var env envelope
		if err := k.getRetry(ctx, next, &env); err != nil {
			return fail(err)
		}
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
		var recs []sdk.Record
		for _, raw := range env.Items {
			var rec struct {
				ID        string `json:"id"`
				DeletedAt string `json:"deleted_at"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fail(fmt.Errorf("decode a deleted record: %w", err))
			}
			at, _ := time.Parse(time.RFC3339, rec.DeletedAt)
			if rec.ID == "" || reported[rec.ID] || at.Before(from.DelSince) || (at.Equal(from.DelSince) && fromDel[rec.ID]) {
				continue
			}
			reported[rec.ID] = true
			if at.After(cur.DelSince) {
				cur.DelSince, cur.DelIDs = at, nil
			}
			if at.Equal(cur.DelSince) {
				cur.DelIDs = append(cur.DelIDs, rec.ID)
			}
			if first && at.Before(cur.DelFrom) {
				continue // deleted before the first read: nothing to report
			}
			recs = append(recs, sdk.Record{ID: rec.ID, UpdatedAt: at, Deleted: true})
		}
		if len(recs) == 0 {
			continue
		}
		// The deletion listing is in no known order: no checkpoint until
		// it is read to the end.
		if err := k.emit(ctx, sink, recs, nil); err != nil {
			return err
		}
	}
	cur.DelDone, cur.DelFrom = true, time.Time{}
	return k.flush(ctx, sink, &cur)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sinkError is an error of the sink (or of encoding a checkpoint for it).
type sinkError struct{ err error }

func (e sinkError) Error() string { return e.err.Error() }
func (e sinkError) Unwrap() error { return e.err }

// catchUp lists the ids and updated_at of the read's query and reads the
// records not read, or changed since read. Batches carry the checkpoint cur
// (nil: none).
func (k *call) catchUp(ctx context.Context, o objectDef, q url.Values, per int, read map[string]mark,
	take func(map[string]any) (sdk.Record, bool, error), sink sdk.ReadSink, cur *cursor) error {
	vq := url.Values{}
	for key, v := range q {
		vq[key] = v
	}
	vq.Set("attributes", "updated_at")
	vq.Set("items_per_page", strconv.Itoa(maxItemsPerPage))
	var missing []string
	listed := map[string]bool{}
	for next := "/" + o.path + "?" + vq.Encode(); next != ""; {
		var env envelope
		if err := k.getRetry(ctx, next, &env); err != nil {
			return err
		}
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
		for _, raw := range env.Items {
			var rec struct {
				ID        string `json:"id"`
				UpdatedAt string `json:"updated_at"`
			}
			if json.Unmarshal(raw, &rec) != nil || rec.ID == "" || listed[rec.ID] {
				continue
			}
			listed[rec.ID] = true
			at, _ := time.Parse(time.RFC3339, rec.UpdatedAt)
			if m, ok := read[rec.ID]; !ok || at.After(m.at) {
				missing = append(missing, rec.ID)
			}
		}
	}
	var recs []sdk.Record
	for i, id := range missing {
		var rec map[string]any
		err := k.getRetry(ctx, "/"+o.path+"/"+url.PathEscape(id), &rec)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			err = nil // deleted meanwhile: the deletion scan reports it
		} else if err != nil {
			return err
		} else {
			r, ok, err := take(rec)
			if err != nil {
				return err
			}
			if ok {
				recs = append(recs, r)
			}
		}
		if len(recs) == per || (i == len(missing)-1 && len(recs) > 0) {
			if err := k.emit(ctx, sink, recs, cur); err != nil {
				return sinkError{err}
			}
			recs = nil
		}
	}
	return nil
}

// emit hands over a batch, with the checkpoint cur (nil: the checkpoint
// does not move) and rotated tokens not yet handed over.
func (k *call) emit(ctx context.Context, sink sdk.ReadSink, recs []sdk.Record, cur *cursor) error {
	var cp []byte
	if cur != nil {
		var err error
		if cp, err = json.Marshal(cur); err != nil {
			return fmt.Errorf("sage: encode checkpoint: %w", err)
		}
		k.lastCP = cp
	}
	return sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: cp, UpdatedConfig: k.updatedConfig()})
}

// flush hands over the checkpoint cur when it is not the last one emitted,
// or rotated tokens not yet handed over.
func (k *call) flush(ctx context.Context, sink sdk.ReadSink, cur *cursor) error {
	cp, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("sage: encode checkpoint: %w", err)
	}
	if k.tok == k.lastCfg && bytes.Equal(cp, k.lastCP) {
		return nil
	}
	return k.emit(ctx, sink, nil, cur)
}
