package e2e_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// copyPlugin copies the executable of connector name, version fromVersion,
// from the plugin directory src to version toVersion in dst, and returns the
// copy's path.
func copyPlugin(t *testing.T, src, dst, name, fromVersion, toVersion string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(src, name, fromVersion))
	if err != nil {
		t.Fatal(err)
	}
	var out string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(src, name, fromVersion, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(dst, name, toVersion)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out = filepath.Join(dir, e.Name())
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// An operator installs a new version of a connector, activates it while a
// run is in flight and rolls it back, through the operator API of the real
// host: the run in flight finishes on the version it started with, the next
// run uses the new one, and nothing fails.
func TestOperatorUpgradesAConnectorWhileItRuns(t *testing.T) {
	t.Parallel()
	plugins := t.TempDir()
	for name, version := range map[string]string{"sample": "0.1.0", "postgres": "0.2.0"} {
		copyPlugin(t, filepath.Join(binDir, "plugins"), plugins, name, version, version)
	}
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off", "SYNCHRON_PLUGIN_DIR="+plugins)
	admin := func(want int, method, path string, body any) map[string]any {
		t.Helper()
		r := h.do(t, method, path, h.admin, body)
		if r.Status != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, r.Status, r.Body, want)
		}
		return r.json(t)
	}
	sampleView := func() map[string]any {
		t.Helper()
		for _, it := range admin(http.StatusOK, "GET", "/admin/connectors", nil)["items"].([]any) {
			if c := it.(map[string]any); c["name"] == "sample" {
				return c
			}
		}
		t.Fatal("sample is not listed")
		return nil
	}
	if v := sampleView(); v["active_version"] != "0.1.0" || len(v["versions"].([]any)) != 1 {
		t.Fatalf("before the upgrade: %v", v)
	}

	// A long run of the sample connector, into a table.
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	defer app.Close()
	execSQL(t, app, `CREATE TABLE contacts (email text PRIMARY KEY, first_name text, source_id text, updated_at timestamptz)`)
	tok := h.signup(t, "upgrade@example.com")
	src := h.must(t, http.StatusCreated, "POST", "/v1/connections", tok, map[string]any{
		"app": "sample", "name": "demo", "config": map[string]any{"count": 100000, "seed": 3}})
	dst := pgConnection(t, h, tok, "CRM DB", appURL, "contacts", "email")
	wf := h.must(t, http.StatusCreated, "POST", "/v1/workflows", tok, map[string]any{
		"name": "sample to CRM", "source": map[string]any{"connection_id": src["id"], "object": "contacts"},
		"target": map[string]any{"connection_id": dst, "object": "contacts"}, "direction": "one_way",
		"mapping": []map[string]any{{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
			{"source": "id", "target": "source_id"}},
		"interval_seconds": 900,
	})
	wfID := wf["id"].(string)
	first := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)["id"].(string)
	deadline := time.Now().Add(time.Minute)
	for {
		run := h.must(t, http.StatusOK, "GET", "/v1/runs/"+first, tok, nil)
		if run["status"] == "running" && counts(t, run)["read"] > 0 {
			break
		}
		if s := run["status"]; s != "running" && s != "queued" || time.Now().After(deadline) {
			t.Fatalf("the run ended (or never started) before the upgrade: %v", run)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state
	}

	// Install 0.2.0: a wrong checksum is refused, the right one installs.
	exe := copyPlugin(t, plugins, plugins, "sample", "0.1.0", "0.2.0")
	r := h.do(t, "POST", "/admin/connectors/sample/versions", h.admin, map[string]any{"version": "0.2.0", "sha256": strings.Repeat("0", 64)})
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "checksum_mismatch") {
		t.Fatalf("install with a wrong sha256 = %d %s, want 409 checksum_mismatch", r.Status, r.Body)
	}
	// The refused install left the catalog alone: 0.2.0 cannot be activated yet.
	admin(http.StatusUnprocessableEntity, "POST", "/admin/connectors/sample/activate", map[string]any{"version": "0.2.0"})
	admin(http.StatusOK, "POST", "/admin/connectors/sample/versions", map[string]any{"version": "0.2.0", "sha256": fileSum(t, exe)})
	admin(http.StatusUnprocessableEntity, "POST", "/admin/connectors/sample/versions", map[string]any{"version": "0.3.0"})
	admin(http.StatusUnprocessableEntity, "POST", "/admin/connectors/sample/activate", map[string]any{"version": "9.9.9"})
	admin(http.StatusNotFound, "POST", "/admin/connectors/nope/activate", map[string]any{"version": "1.0.0"})
	if v := admin(http.StatusOK, "POST", "/admin/connectors/sample/activate", map[string]any{"version": "0.2.0"}); v["active_version"] != "0.2.0" {
		t.Fatalf("after activate: %v", v)
	}
	if run := h.must(t, http.StatusOK, "GET", "/v1/runs/"+first, tok, nil); run["status"] != "running" {
		t.Fatalf("the run ended before the activation (%v): make it longer, or the test proves nothing", run["status"])
	}
	// The run in flight is still on 0.1.0, whose process keeps its lease.
	var old map[string]any
	for _, it := range sampleView()["versions"].([]any) {
		if v := it.(map[string]any); v["version"] == "0.1.0" {
			old = v
		}
	}
	if old == nil {
		t.Fatal("0.1.0 is no longer listed")
	}

	run := h.waitRun(t, tok, first, 3*time.Minute)
	if c := counts(t, run); run["status"] != "succeeded" || c["created"] != 100000 {
		t.Fatalf("the run in flight = %v, want it to finish every record", run)
	}
	if v := fmt.Sprint(run["connector_versions"]); !strings.Contains(v, "sample:0.1.0") {
		t.Errorf("the run in flight used %s, want sample 0.1.0 (it started on it)", v)
	}
	second := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)["id"].(string)
	run = h.waitRun(t, tok, second, time.Minute)
	if v := fmt.Sprint(run["connector_versions"]); run["status"] != "succeeded" || !strings.Contains(v, "sample:0.2.0") {
		t.Fatalf("the next run = %v, want it succeeded on sample 0.2.0", run)
	}

	if v := admin(http.StatusOK, "POST", "/admin/connectors/sample/rollback", nil); v["active_version"] != "0.1.0" {
		t.Fatalf("after rollback: %v", v)
	}
	third := h.must(t, http.StatusAccepted, "POST", "/v1/workflows/"+wfID+"/run", tok, nil)["id"].(string)
	run = h.waitRun(t, tok, third, time.Minute)
	if v := fmt.Sprint(run["connector_versions"]); run["status"] != "succeeded" || !strings.Contains(v, "sample:0.1.0") {
		t.Fatalf("the run after rollback = %v, want it succeeded on sample 0.1.0", run)
	}

	// The same through the CLI.
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir, "synchron"), append([]string{"connectors"}, args...)...)
		cmd.Env = []string{"SYNCHRON_URL=" + h.baseURL, "SYNCHRON_ADMIN_TOKEN=" + h.admin}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("activate", "sample", "0.2.0"); err != nil || !regexp.MustCompile(`(?m)^sample\s+0\.2\.0\s+\*`).MatchString(out) {
		t.Fatalf("synchron connectors activate = %v\n%s", err, out)
	}
	if out, err := cli("list"); err != nil || !regexp.MustCompile(`(?m)^sample\s+0\.1\.0\s+(idle|running|exited)`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^postgres\s+0\.2\.0\s+\*`).MatchString(out) {
		t.Fatalf("synchron connectors list = %v\n%s", err, out)
	}
	if out, err := cli("activate", "sample", "9.9.9"); err == nil || !strings.Contains(out, "has no installed version") {
		t.Fatalf("activating a missing version through the CLI = %v\n%s, want an error saying so", err, out)
	}
}
