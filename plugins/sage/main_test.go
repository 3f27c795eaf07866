package main

// The test binary re-executes itself as the plugin (TestMain runs main when
// SYNCHRON_SAGE_TEST_PLUGIN is set), so the real process path is tested:
// handshake, embedded VERSION and docs, gRPC, a Check against the fake with
// an expired token whose refreshed tokens come back in UpdatedConfig.

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/sage/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

const pluginEnv = "SYNCHRON_SAGE_TEST_PLUGIN"

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
	if spec.Name != "sage" || spec.Version != "0.1.0" || !strings.Contains(spec.Docs, "# Sage Business Cloud Accounting") {
		t.Fatalf("spec: name %q, version %q, docs %.40q", spec.Name, spec.Version, spec.Docs)
	}

	f, err := fake.New(fake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	_, refresh, _ := f.IssueTokens()
	cfg, _ := json.Marshal(map[string]any{"client_id": "client", "client_secret": "secret", "access_token": "expired",
		"refresh_token": refresh, "expires_at": time.Now().Add(-time.Minute), "business_id": "biz-1",
		"base_url": srv.URL, "token_url": srv.URL + "/token"})
	resp, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %+v, %v", resp, err)
	}
	var upd map[string]any
	if err := json.Unmarshal(resp.UpdatedConfig, &upd); err != nil || upd["refresh_token"] == refresh || f.RefreshTokenValid(refresh) {
		t.Fatalf("Check did not hand back rotated tokens: %v", err)
	}
}
