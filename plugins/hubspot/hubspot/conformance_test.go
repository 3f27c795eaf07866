package hubspot

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

func TestConformance(t *testing.T) {
	dir := fake.FindSpecDir()
	if dir == "" {
		t.Log("no ../shared/specs/hubspot next to the repository: requests are not validated against the spec")
	}
	srv := fake.New(fake.Options{RateLimit: 1_000_000, SpecDir: dir})
	t.Cleanup(srv.Close)
	cfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": srv.URL(), "search_delay_seconds": 0})
	bad, _ := json.Marshal(map[string]string{"access_token": "wrong", "base_url": srv.URL()})
	conformance.Run(t, conformance.Suite{
		New:    func(*testing.T) sdk.Connector { return New("0.1.0\n", "docs") },
		Config: cfg,
		BadConfigs: map[string]json.RawMessage{
			"wrong_token":  bad,
			"no_token":     json.RawMessage(`{}`),
			"unknown_key":  json.RawMessage(`{"access_token":"test-token","colour":"blue"}`),
			"oauth_no_app": json.RawMessage(`{"refresh_token":"x"}`),
		},
		Object: "contacts",
		Seed: func(t *testing.T, n int) {
			srv.Seed("contacts", contacts(n, 0)...)
		},
		MinRecords:    25,
		ReadBatchSize: 4,
		NewRecord: func(i int) json.RawMessage {
			return json.RawMessage(fmt.Sprintf(`{"email":"conf%d@example.com","firstname":"C%d","lastname":"Test"}`, i, i))
		},
	})
}

// Companies and deals have no natural key to upsert on: read checks only.
func TestConformanceCompaniesDeals(t *testing.T) {
	for _, object := range []string{"companies", "deals"} {
		t.Run(object, func(t *testing.T) {
			srv := fake.New(fake.Options{RateLimit: 1_000_000, SpecDir: fake.FindSpecDir()})
			t.Cleanup(srv.Close)
			cfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": srv.URL(), "search_delay_seconds": 0})
			conformance.Run(t, conformance.Suite{
				New:    func(*testing.T) sdk.Connector { return New("0.1.0", "docs") },
				Config: cfg,
				Object: object,
				Seed: func(t *testing.T, n int) {
					props := make([]map[string]string, n)
					for i := range props {
						props[i] = map[string]string{"name": fmt.Sprint("Acme ", i), "dealname": fmt.Sprint("Deal ", i)}
						if object == "companies" {
							delete(props[i], "dealname")
						} else {
							delete(props[i], "name")
						}
					}
					srv.Seed(object, props...)
				},
				MinRecords:    12,
				ReadBatchSize: 5,
			})
		})
	}
}
