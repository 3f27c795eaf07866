package conformance

import (
	"os"
	"os/exec"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/synchron-io/synchron/sdk"
)

// ServeIfPlugin runs the plugin's main and exits when the test binary was
// started as the plugin (env set to "1" by LaunchSelf). A connector's main
// package calls it first in TestMain, so its tests can run the real process
// path (handshake, embedded VERSION and docs, gRPC) without building it.
func ServeIfPlugin(env string, main func()) {
	if os.Getenv(env) == "1" {
		main()
		os.Exit(0)
	}
}

// LaunchSelf starts the test binary as the plugin process, the way the host
// launches connectors, and returns its client. The process is killed when
// the test ends.
func LaunchSelf(t testing.TB, env string) *sdk.Client {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env+"=1")
	pc := plugin.NewClient(sdk.NewClientConfig(cmd, hclog.NewNullLogger()))
	t.Cleanup(pc.Kill)
	c, err := sdk.DispenseClient(pc)
	if err != nil {
		t.Fatalf("conformance: launch the plugin process: %v", err)
	}
	return c
}
