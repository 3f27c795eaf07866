package shopify

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// DefaultAPIVersion is the Admin API version used when the config names none.
const DefaultAPIVersion = "2025-01"

// testedVersion reports whether the connector is tested with an Admin API
// version (the schemas of both are in its tests).
func testedVersion(v string) bool { return v == "2024-10" || v == "2025-01" }

// Config is a connection's config.
type Config struct {
	Shop         string `json:"shop"`
	AccessToken  string `json:"access_token"`
	APIVersion   string `json:"api_version,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// BaseURL replaces https://{shop} (tests, proxies).
	BaseURL string `json:"base_url,omitempty"`
}

const configSchema = `{
  "type": "object",
  "required": ["shop", "access_token"],
  "additionalProperties": false,
  "properties": {
    "shop": {"type": "string", "description": "The shop's myshopify.com domain, e.g. acme.myshopify.com", "pattern": "^[a-z0-9][a-z0-9-]*\\.myshopify\\.com$"},
    "access_token": {"type": "string", "description": "Admin API access token of a custom app (shpat_...)", "secret": true},
    "api_version": {"type": "string", "description": "GraphQL Admin API version (YYYY-MM)", "enum": ["2024-10", "2025-01"], "default": "2025-01"},
    "client_secret": {"type": "string", "description": "The app's client secret, to verify webhooks", "secret": true},
    "base_url": {"type": "string", "description": "Override of https://{shop} (testing only)"}
  }
}`

var (
	shopRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*\.myshopify\.com$`)
	versionRE = regexp.MustCompile(`^[0-9]{4}-(01|04|07|10)$`)
)

// parseConfig decodes and checks a config; problems are diagnostics.
func parseConfig(raw json.RawMessage) (Config, sdk.Diagnostics) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, sdk.Diagnostics{sdk.Errorf("", "invalid config", err.Error())}
	}
	var d sdk.Diagnostics
	c.Shop = strings.ToLower(strings.TrimSpace(c.Shop))
	if !shopRE.MatchString(c.Shop) {
		d = append(d, sdk.Errorf("shop", "invalid shop domain", "want the shop's myshopify.com domain, e.g. acme.myshopify.com"))
	}
	if strings.TrimSpace(c.AccessToken) == "" {
		d = append(d, sdk.Errorf("access_token", "access_token is required", "an Admin API access token of a custom app"))
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if !versionRE.MatchString(c.APIVersion) {
		d = append(d, sdk.Errorf("api_version", "invalid api_version", "want a quarterly version YYYY-MM such as "+DefaultAPIVersion))
	} else if !testedVersion(c.APIVersion) {
		d = append(d, sdk.Diagnostic{Severity: sdk.SeverityWarning, Attribute: "api_version", Summary: "untested API version " + c.APIVersion, Detail: "tested with 2024-10 and 2025-01"})
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d = append(d, sdk.Errorf("base_url", "invalid base_url", "want an http(s) URL"))
		}
	}
	return c, d
}

func (c Config) endpoint() string {
	base := "https://" + c.Shop
	if c.BaseURL != "" {
		base = strings.TrimRight(c.BaseURL, "/")
	}
	return base + "/admin/api/" + c.APIVersion + "/graphql.json"
}
