package main

// The test binary re-executes itself as the plugin (TestMain runs main when
// SYNCHRON_HUBSPOT_TEST_PLUGIN is set), so the real process path is tested:
// handshake, embedded VERSION and docs, gRPC.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

const pluginEnv = "SYNCHRON_HUBSPOT_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPluginProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), pluginEnv+"=1")
	pc := plugin.NewClient(sdk.NewClientConfig(cmd, hclog.NewNullLogger()))
	t.Cleanup(pc.Kill)
	c, err := sdk.DispenseClient(pc)
	if err != nil {
		t.Fatalf("DispenseClient: %v", err)
	}
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
