// Package shopify is the Shopify connector: customers, orders and products
// through the GraphQL Admin API, with a per-shop query-cost budget shared by
// every call of the process (and by every host when the host attaches its
// budgets), and webhooks verified by HMAC.
package shopify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Options configure a Connector; zero values take the defaults.
type Options struct {
	// HTTPClient sends the requests (default: a client with a 60s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx is done (default: a timer). Tests pass a
	// fake clock's Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Connector implements sdk.Connector for Shopify.
type Connector struct {
	version, docs string
	opts          Options

	mu      sync.Mutex
	buckets map[string]*bucket
	// local holds the cost budgets when no host shares them.
	local *sdk.LocalBudgets
}

var _ sdk.Connector = (*Connector)(nil)

// New returns a connector reporting version and docs in its Spec.
func New(version, docs string, opts Options) *Connector {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	return &Connector{
		version: strings.TrimSpace(version), docs: docs, opts: opts,
		buckets: map[string]*bucket{},
		local:   sdk.NewLocalBudgets(opts.Now),
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// bucket returns what the process knows of a shop's cost bucket (its size,
// for sizing queries), shared by all its calls.
func (c *Connector) bucket(shop string) *bucket {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[shop]
	if b == nil {
		b = &bucket{max: defaultMaximum, avail: defaultMaximum, rate: defaultRestore}
		c.buckets[shop] = b
	}
	return b
}

// budgets returns the cost budgets of a call: the host's when the host
// attached its shared budgets (every host's processes share them), the
// process's otherwise.
func (c *Connector) budgets(ctx context.Context) *sdk.Budgets {
	if a := sdk.BudgetAuthorityFrom(ctx); a != nil {
		return sdk.NewBudgets(a, c.opts.Sleep)
	}
	return sdk.NewBudgets(c.local, c.opts.Sleep)
}

// Spec describes the connector.
func (c *Connector) Spec(context.Context) (*sdk.Spec, error) {
	return &sdk.Spec{
		Name:            "shopify",
		Version:         c.version,
		Title:           "Shopify",
		ConfigSchema:    json.RawMessage(configSchema),
		Objects:         objects(),
		Capabilities:    sdk.Capabilities{Read: true, Write: true, Webhooks: true},
		Docs:            c.docs,
		ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

// Check verifies the config with a cheap query (shop { name }).
func (c *Connector) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	cfg, diags := parseConfig(req.Config)
	if diags.HasError() {
		return &sdk.CheckResponse{Diagnostics: diags}, nil
	}
	if versionRetired(cfg.APIVersion, c.opts.Now()) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning, Attribute: "api_version",
			Summary: "API version " + cfg.APIVersion + " is no longer supported by Shopify",
			Detail:  "Shopify supports each quarterly version for 12 months (then answers with its oldest supported one): set api_version to a newer release YYYY-MM"})
	}
	var out struct {
		Shop struct {
			Name string `json:"name"`
		} `json:"shop"`
	}
	err := c.call(ctx, cfg, `query Check { shop { name } }`, nil, 1, &out)
	if err == nil {
		return &sdk.CheckResponse{Diagnostics: diags}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &sdk.CheckResponse{Diagnostics: append(sdk.Diagnostics{callDiagnostic(cfg, err)}, diags...)}, nil
}

// callDiagnostic turns a failed call into a diagnostic on the attribute at fault.
func callDiagnostic(cfg Config, err error) sdk.Diagnostic {
	var qe *queryError
	var ne *networkError
	switch {
	case errors.Is(err, errUnauthorized):
		return sdk.Errorf("access_token", "Shopify refused the access token", "check the custom app's Admin API access token and that the app is installed")
	case errors.Is(err, errNotFound):
		return sdk.Errorf("shop", "shop or API version not found", "no shop "+cfg.Shop+" with Admin API version "+cfg.APIVersion)
	case errors.Is(err, errTooCostly):
		return sdk.Errorf("", "query too costly", "the query costs more than the shop's whole cost bucket")
	case errors.As(err, &qe):
		return sdk.Errorf("", "Shopify refused the query", qe.Error())
	case errors.As(err, &ne):
		// cannot reach the shop: below
	default:
		if _, ok := sdk.IsRetryable(err); ok {
			return sdk.Errorf("", "Shopify is unavailable", err.Error())
		}
	}
	attr := "shop"
	if cfg.BaseURL != "" {
		attr = "base_url"
	}
	return sdk.Errorf(attr, "cannot reach the shop", err.Error())
}

// Discover answers the static objects.
func (c *Connector) Discover(_ context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	_, diags := parseConfig(req.Config)
	return &sdk.DiscoverResponse{Objects: objects(), Diagnostics: diags}, nil
}

// Stop releases idle connections.
func (c *Connector) Stop(context.Context) error {
	c.opts.HTTPClient.CloseIdleConnections()
	return nil
}
