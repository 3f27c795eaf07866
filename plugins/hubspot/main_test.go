package main

// The test binary re-executes itself as the plugin (TestMain runs main when
// SYNCHRON_HUBSPOT_TEST_PLUGIN is set), so the real process path is tested:
// handshake, embedded VERSION and docs, gRPC.

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

const pluginEnv = "SYNCHRON_HUBSPOT_TEST_PLUGIN"

func TestMain(m *testing.M) {
	conformance.ServeIfPlugin(pluginEnv, main)
	os.Exit(m.Run())
}

func TestPluginProcess(t *testing.T) {
	c := conformance.LaunchSelf(t, pluginEnv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	if spec.Name != "hubspot" || spec.Version != "0.1.0" || !strings.Contains(spec.Docs, "# HubSpot CRM") {
		t.Fatalf("spec: name %q, version %q, docs %.40q", spec.Name, spec.Version, spec.Docs)
	}
	srv := fake.New(fake.Options{})
	defer srv.Close()
	cfg, _ := json.Marshal(map[string]string{"access_token": "test-token", "base_url": srv.URL()})
	resp, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %v %+v", err, resp)
	}
}
