// Package hubspot is the HubSpot CRM connector: contacts, companies and deals
// through the CRM v3 API (incremental reads through search, batch writes,
// webhooks v3), with a per-token rate-limit budget shared by every call of
// the process, and by every host when the host attaches its budgets.
package hubspot

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Connector implements sdk.Connector for HubSpot. One instance serves every
// account; its rate-limit budgets are shared by all calls with the same token.
type Connector struct {
	version, docs string
	http          *http.Client
	now           func() time.Time
	sleep         func(context.Context, time.Duration) error
	objects       []objectDef
	// local holds the budgets when no host shares them (sdk.Budgets).
	local *sdk.LocalBudgets
}

var _ sdk.Connector = (*Connector)(nil)

// Option configures a Connector (tests).
type Option func(*Connector)

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(c *http.Client) Option { return func(k *Connector) { k.http = c } }

// WithClock sets the clock and the sleep function used for rate-limit and
// retry waits (tests use a fake clock whose sleep advances it).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(k *Connector) { k.now, k.sleep = now, sleep }
}

// New returns the connector.
func New(version, docs string, opts ...Option) *Connector {
	c := &Connector{
		version: version,
		docs:    docs,
		http:    &http.Client{Timeout: 2 * time.Minute},
		now:     time.Now,
		sleep:   sleepCtx,
		objects: objects(),
	}
	for _, o := range opts {
		o(c)
	}
	c.local = sdk.NewLocalBudgets(func() time.Time { return c.now() })
	return c
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

// Spec describes the connector.
func (c *Connector) Spec(context.Context) (*sdk.Spec, error) {
	objs := make([]sdk.Object, len(c.objects))
	for i, o := range c.objects {
		objs[i] = o.obj
	}
	return &sdk.Spec{
		Name:            "hubspot",
		Version:         trimVersion(c.version),
		Title:           "HubSpot CRM",
		ConfigSchema:    json.RawMessage(configSchema),
		Objects:         objs,
		Capabilities:    sdk.Capabilities{Read: true, Write: true, Webhooks: true},
		Docs:            c.docs,
		ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

func trimVersion(v string) string {
	for len(v) > 0 && (v[len(v)-1] == '\n' || v[len(v)-1] == '\r' || v[len(v)-1] == ' ') {
		v = v[:len(v)-1]
	}
	return v
}

// Check verifies the credentials with a cheap call (one contact).
func (c *Connector) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	cfg, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return &sdk.CheckResponse{Diagnostics: diags}, nil
	}
	s := c.newSession(cfg)
	_, err := s.do(ctx, http.MethodGet, "/crm/v3/objects/contacts", url.Values{"limit": {"1"}}, nil, nil)
	resp := &sdk.CheckResponse{UpdatedConfig: s.updatedConfig()}
	if err != nil {
		d, ok := credentialDiagnostic(err, cfg)
		if !ok {
			return nil, err
		}
		resp.Diagnostics = append(resp.Diagnostics, d)
	}
	return resp, nil
}

// credentialDiagnostic turns an auth or permission error into a diagnostic.
func credentialDiagnostic(err error, cfg Config) (sdk.Diagnostic, bool) {
	e, ok := asAPIError(err)
	if !ok {
		return sdk.Diagnostic{}, false
	}
	attr := "access_token"
	if cfg.OAuth() && e.Status == http.StatusBadRequest {
		attr = "refresh_token"
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return sdk.Errorf(attr, "HubSpot refused the access token", e.Message), true
	case e.Status == http.StatusForbidden:
		return sdk.Errorf(attr, "the token lacks a required scope", e.Message), true
	case e.Status == http.StatusBadRequest && cfg.OAuth():
		return sdk.Errorf(attr, "HubSpot refused the OAuth refresh", e.Message), true
	}
	return sdk.Diagnostic{}, false
}

// Discover answers the objects of the spec (HubSpot custom properties are
// not discovered yet).
func (c *Connector) Discover(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	spec, _ := c.Spec(ctx)
	return &sdk.DiscoverResponse{Objects: spec.Objects}, nil
}

// Stop releases idle connections.
func (c *Connector) Stop(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}
