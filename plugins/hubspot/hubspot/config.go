package hubspot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// DefaultBaseURL is HubSpot's API.
const DefaultBaseURL = "https://api.hubapi.com"

// configSchema is the JSON Schema of Config, as published in the Spec.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "access_token": {"type": "string", "description": "Private app access token, or the current OAuth access token.", "writeOnly": true},
    "client_id": {"type": "string", "description": "OAuth app client id."},
    "client_secret": {"type": "string", "description": "OAuth app client secret.", "writeOnly": true},
    "refresh_token": {"type": "string", "description": "OAuth refresh token.", "writeOnly": true},
    "expires_at": {"type": "string", "format": "date-time", "description": "RFC 3339 expiry of access_token (OAuth)."},
    "base_url": {"type": "string", "format": "uri", "description": "API base URL (default https://api.hubapi.com)."},
    "app_secret": {"type": "string", "description": "Client secret of the app that sends webhooks (signature v3).", "writeOnly": true},
    "webhook_url": {"type": "string", "format": "uri", "description": "Public URL HubSpot posts webhooks to, as signed by HubSpot."},
    "search_delay_seconds": {"type": "integer", "minimum": 0, "maximum": 3600, "default": 10, "description": "Reads leave records changed in the last N seconds to the next read, so that HubSpot's search index has caught up with them."},
    "deletes_scan_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "default": 15, "description": "Deleted (archived) records are found by listing HubSpot's whole archive, which no filter narrows: reads do it at most once every N minutes (0: at every read), so deletions reach the other side within that time."}
  }
}`

// Config is a connection config. Either AccessToken (private app) or the
// OAuth fields (ClientID, ClientSecret, RefreshToken; AccessToken and
// ExpiresAt optional) are set.
type Config struct {
	AccessToken  string `json:"access_token,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresAt    string `json:"expires_at,omitempty"`
	BaseURL      string `json:"base_url,omitempty"`
	AppSecret    string `json:"app_secret,omitempty"`
	WebhookURL   string `json:"webhook_url,omitempty"`
	// SearchDelay is search_delay_seconds (nil: DefaultSearchDelay).
	SearchDelay *int `json:"search_delay_seconds,omitempty"`
	// DeletesScan is deletes_scan_minutes (nil: DefaultDeletesScan).
	DeletesScan *int `json:"deletes_scan_minutes,omitempty"`

	expires time.Time
}

// DefaultSearchDelay is how recent a change must be for a read to leave it
// to the next read: HubSpot's search index takes a few seconds to catch up
// with writes, and not always in the order of their timestamps.
const DefaultSearchDelay = 10 * time.Second

func (c Config) searchDelay() time.Duration {
	if c.SearchDelay == nil {
		return DefaultSearchDelay
	}
	return time.Duration(*c.SearchDelay) * time.Second
}

// DefaultDeletesScan is how often reads list HubSpot's archive to find
// deleted records: each listing costs one request per 100 archived records.
const DefaultDeletesScan = 15 * time.Minute

func (c Config) deletesInterval() time.Duration {
	if c.DeletesScan == nil {
		return DefaultDeletesScan
	}
	return time.Duration(*c.DeletesScan) * time.Minute
}

// OAuth reports whether the config uses OAuth (tokens can be refreshed).
func (c Config) OAuth() bool { return c.RefreshToken != "" }

func (c Config) baseURL() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return c.BaseURL
}

// ParseConfig parses and validates a config; problems are error diagnostics
// on the config key. Secrets never appear in diagnostics.
func ParseConfig(raw json.RawMessage) (Config, sdk.Diagnostics) {
	var cfg Config
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is required", `a JSON object such as {"access_token": "pat-..."}`)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is not a valid HubSpot config", safeJSONError(err))}
	}
	var diags sdk.Diagnostics
	if cfg.OAuth() {
		if cfg.ClientID == "" {
			diags = append(diags, sdk.Errorf("client_id", "client_id is required with refresh_token", ""))
		}
		if cfg.ClientSecret == "" {
			diags = append(diags, sdk.Errorf("client_secret", "client_secret is required with refresh_token", ""))
		}
	} else if cfg.AccessToken == "" {
		diags = append(diags, sdk.Errorf("access_token", "access_token is required", "a private app access token, or client_id, client_secret and refresh_token for OAuth"))
	}
	if cfg.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, cfg.ExpiresAt)
		if err != nil {
			diags = append(diags, sdk.Errorf("expires_at", "expires_at must be an RFC 3339 time", ""))
		}
		cfg.expires = t
	}
	if cfg.SearchDelay != nil && (*cfg.SearchDelay < 0 || *cfg.SearchDelay > 3600) {
		diags = append(diags, sdk.Errorf("search_delay_seconds", "search_delay_seconds must be from 0 to 3600", ""))
	}
	if cfg.DeletesScan != nil && (*cfg.DeletesScan < 0 || *cfg.DeletesScan > 1440) {
		diags = append(diags, sdk.Errorf("deletes_scan_minutes", "deletes_scan_minutes must be from 0 to 1440", ""))
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			diags = append(diags, sdk.Errorf("base_url", "base_url must be an http(s) URL", ""))
		}
	}
	return cfg, diags
}

// safeJSONError describes a decoding error without echoing values.
func safeJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("%s must be a %s", e.Field, e.Type)
	}
	// Unknown field errors name the key, not the value.
	return err.Error()
}

// marshal returns the config as JSON (for UpdatedConfig).
func (c Config) marshal() json.RawMessage {
	if !c.expires.IsZero() {
		c.ExpiresAt = c.expires.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(c)
	return b
}
