package main

// The test binary re-executes itself as the plugin (TestMain runs main when
// SYNCHRON_SHOPIFY_TEST_PLUGIN is set), so the real process path is tested:
// handshake, embedded VERSION and docs, gRPC.

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

const pluginEnv = "SYNCHRON_SHOPIFY_TEST_PLUGIN"

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
	if spec.Name != "shopify" || spec.Version != "0.1.0" || !strings.Contains(spec.Docs, "# Shopify") {
		t.Fatalf("spec: name %q, version %q, docs %.40q", spec.Name, spec.Version, spec.Docs)
	}
	shop := fake.New(fake.Options{Token: "shpat_x"})
	srv := httptest.NewServer(shop)
	defer srv.Close()
	shop.AddCustomer(fake.Customer{Email: "a@example.com"})
	cfg, _ := json.Marshal(map[string]string{"shop": "acme.myshopify.com", "access_token": "shpat_x", "base_url": srv.URL})
	check, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || check.Diagnostics.HasError() {
		t.Fatalf("Check: %+v, %v", check, err)
	}
	n := 0
	err = c.Read(ctx, sdk.ReadRequest{Config: cfg, Object: "customers"}, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		n += len(b.Records)
		return nil
	}))
	if err != nil || n != 1 {
		t.Fatalf("Read: %d records, %v", n, err)
	}
}
