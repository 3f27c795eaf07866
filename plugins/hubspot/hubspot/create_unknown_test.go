package hubspot

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// A create without a natural key (contact without email, company, deal)
// that HubSpot applied before answering a server error is not answered
// retryable (the host would create it again): the connector finds the
// record it made and answers OK with its id.
func TestCreateAppliedThen5xxNotDuplicated(t *testing.T) {
	for _, tc := range []struct {
		object string
		fields []string
	}{
		{"contacts", []string{`{"firstname":"Anon","lastname":"Ymous"}`, `{"firstname":"Other","phone":"+1 555 0100"}`, `{"firstname":"Third"}`}},
		{"companies", []string{`{"name":"Acme","domain":"acme.example","numberofemployees":42}`, `{"name":"Globex","city":"Springfield"}`, `{"name":"Initech"}`}},
		{"deals", []string{`{"dealname":"Big","amount":1200.5}`, `{"dealname":"Small","amount":3}`, `{"dealname":"Third"}`}},
	} {
		t.Run(tc.object, func(t *testing.T) {
			e := newEnv(t, fake.Options{})
			cfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": e.srv.URL(), "search_delay_seconds": 5})
			// An older record with the same properties, created long before.
			var same map[string]any
			_ = json.Unmarshal([]byte(tc.fields[0]), &same)
			props := map[string]string{}
			for k, v := range same {
				b, _ := json.Marshal(v)
				if s, ok := v.(string); ok {
					props[k] = s
				} else {
					props[k] = string(b)
				}
			}
			old := e.srv.Seed(tc.object, props)[0]
			e.clock.Add(time.Hour)

			e.srv.InjectAppliedFaults(502)
			resp := write(t, e, cfg, tc.object, rec("a", "", tc.fields[0]), rec("b", "", tc.fields[1]))
			for _, r := range resp.Results {
				if r.Status != sdk.WriteOK || r.Action != sdk.ActionCreated || r.ID == "" || r.ID == old {
					t.Fatalf("%s: %+v", r.Ref, r)
				}
				if _, ok := e.srv.Get(tc.object, r.ID); !ok {
					t.Fatalf("%s: id %s does not exist", r.Ref, r.ID)
				}
			}
			if resp.Results[0].ID == resp.Results[1].ID {
				t.Fatal("one id for two records")
			}
			if n := e.srv.Count(tc.object); n != 3 {
				t.Fatalf("%d %s, want 3", n, tc.object)
			}
			if sl := e.clock.Sleeps(); len(sl) != 1 || sl[0] != 5*time.Second {
				t.Fatalf("waits %v: want the search delay before looking", sl)
			}

			// Not applied: nothing found, retryable.
			e.srv.InjectFaults(500)
			resp = write(t, e, cfg, tc.object, rec("c", "", tc.fields[2]))
			if r := resp.Results[0]; r.Status != sdk.WriteRetryable {
				t.Fatalf("not applied: %+v", r)
			}
			// Applied, but two records created in the last minutes match:
			// which one is ours is unknown, retryable.
			e.srv.InjectAppliedFaults(500)
			resp = write(t, e, cfg, tc.object, rec("d", "", tc.fields[1]))
			if r := resp.Results[0]; r.Status != sdk.WriteRetryable {
				t.Fatalf("ambiguous: %+v", r)
			}
		})
	}
}
