package shopify

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// DefaultAPIVersion is the Admin API version used when the config names none.
const DefaultAPIVersion = "2025-01"

// testedVersions are the Admin API versions whose schemas the connector's
// queries are validated against in its tests. Other quarterly versions are
// accepted with a warning.
var testedVersions = []string{"2024-10", "2025-01"}

func testedVersion(v string) bool { return slices.Contains(testedVersions, v) }

// supportMonths is how long Shopify supports a version after its release.
const supportMonths = 12

// versionRetired reports whether Shopify's support of a version (YYYY-MM)
// has ended at now.
func versionRetired(v string, now time.Time) bool {
	released, err := time.Parse("2006-01", v)
	return err == nil && !now.Before(released.AddDate(0, supportMonths, 0))
}

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
    "api_version": {"type": "string", "description": "GraphQL Admin API version: a quarterly release YYYY-MM (month 01, 04, 07 or 10). Shopify supports each for 12 months; tested with 2024-10 and 2025-01", "pattern": "^[0-9]{4}-(01|04|07|10)$", "default": "2025-01"},
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
	switch {
	case c.APIVersion == "unstable":
		d = append(d, sdk.Errorf("api_version", "api_version unstable is not supported",
			"unstable is Shopify's preview of the next version and changes without notice: set a quarterly release YYYY-MM such as "+DefaultAPIVersion))
	case !versionRE.MatchString(c.APIVersion):
		d = append(d, sdk.Errorf("api_version", "invalid api_version "+strconv.Quote(c.APIVersion),
			"want a Shopify Admin API release YYYY-MM, released quarterly in January, April, July and October (month 01, 04, 07 or 10), such as "+DefaultAPIVersion))
	case !testedVersion(c.APIVersion):
		d = append(d, sdk.Diagnostic{Severity: sdk.SeverityWarning, Attribute: "api_version", Summary: "untested API version " + c.APIVersion,
			Detail: "the connector was tested with the schemas of " + strings.Join(testedVersions, " and ") + ": another version may differ in the fields it reads, so check a first sync"})
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
