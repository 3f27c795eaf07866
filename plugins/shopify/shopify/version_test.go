package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
)

// The config schema (which the host enforces) accepts any quarterly
// version, not only the two the connector was tested with.
func TestConfigSchemaAcceptsNewerVersions(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(configSchema))
	if err != nil {
		t.Fatal(err)
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource("urn:config", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := comp.Compile("urn:config")
	if err != nil {
		t.Fatal(err)
	}
	for v, ok := range map[string]bool{"2024-10": true, "2025-01": true, "2025-07": true, "2026-10": true, "2025-02": false, "unstable": false, "2025-1": false} {
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"shop":"acme.myshopify.com","access_token":"x","api_version":"` + v + `"}`)))
		if err := sch.Validate(inst); (err == nil) != ok {
			t.Errorf("api_version %s: schema validation error %v, want accepted %v", v, err, ok)
		}
	}
}

func TestAPIVersionValidation(t *testing.T) {
	for _, tc := range []struct {
		version string
		err     string // "" : no error
		warn    bool
	}{
		{"2025-01", "", false},
		{"2025-07", "", true},
		{"2027-04", "", true},
		{"2025-02", "month 01, 04, 07 or 10", false},
		{"25-01", "YYYY-MM", false},
		{"unstable", "not supported", false},
	} {
		_, d := parseConfig(json.RawMessage(`{"shop":"acme.myshopify.com","access_token":"x","api_version":"` + tc.version + `"}`))
		if tc.err == "" && d.HasError() || tc.err != "" && (!d.HasError() || !strings.Contains(d.Error(), tc.err) || d[0].Attribute != "api_version") {
			t.Errorf("%s: diagnostics %v, want error %q", tc.version, d, tc.err)
		}
		warned := len(d) > 0 && !d.HasError() && d[0].Severity == sdk.SeverityWarning && d[0].Attribute == "api_version"
		if warned != tc.warn {
			t.Errorf("%s: diagnostics %v, want warning %v", tc.version, d, tc.warn)
		}
	}
}

// Check of a version the connector was not tested with works and warns;
// of a version Shopify no longer supports (older than 12 months) warns.
func TestCheckWarnsOnVersions(t *testing.T) {
	clock := fake.NewClock(t0) // 2025-01-15
	shop := fake.New(fake.Options{Token: "shpat_test", Now: clock.Now, Versions: []string{"2023-10", "2025-04"}})
	srv := httptest.NewServer(shop)
	defer srv.Close()
	conn := New("0.1.0", "docs", Options{Now: clock.Now, Sleep: clock.Sleep, HTTPClient: srv.Client()})
	for v, want := range map[string]string{"2025-04": "untested API version 2025-04", "2023-10": "no longer supported by Shopify"} {
		cfg := `{"shop":"acme.myshopify.com","access_token":"shpat_test","base_url":"` + srv.URL + `","api_version":"` + v + `"}`
		resp, err := conn.Check(context.Background(), sdk.CheckRequest{Config: json.RawMessage(cfg)})
		if err != nil || resp.Diagnostics.HasError() {
			t.Fatalf("Check %s: %v %v", v, err, resp)
		}
		found := false
		for _, d := range resp.Diagnostics {
			found = found || d.Severity == sdk.SeverityWarning && d.Attribute == "api_version" && strings.Contains(d.Summary, want)
		}
		if !found {
			t.Errorf("Check %s: diagnostics %+v, want a warning %q", v, resp.Diagnostics, want)
		}
	}
}
