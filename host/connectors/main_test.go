package connectors

// The tests run real connector processes: TestMain builds plugins/sample once
// (or reuses the binaries in $SYNCHRON_PLUGIN_DIR_FOR_TESTS, laid out as
// sample/<version>/<executable>), and each test gets its own plugin
// directory (hard links or copies of those binaries) and its own PostgreSQL
// database (sdk/testdb).

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"go.uber.org/goleak"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// pluginDirEnv names a directory of prebuilt plugins to use instead of
// building plugins/sample.
const pluginDirEnv = "SYNCHRON_PLUGIN_DIR_FOR_TESTS"

const sampleExe = "synchron-connector-sample"

// sampleBins maps a sample version to its prebuilt executable.
var sampleBins = map[string]string{}

// hostModeEnv set to a plugin path makes the test binary a host that
// launches that plugin, prints its pid and exits without stopping it (see
// TestPluginDiesWithHost).
const hostModeEnv = "SYNCHRON_CONNECTORS_TEST_HOST_PLUGIN"

func TestMain(m *testing.M) {
	if path := os.Getenv(hostModeEnv); path != "" {
		os.Exit(runHost(path))
	}
	os.Exit(run(m))
}

// runHost launches the plugin at path the way the Manager does, prints its
// pid and returns without killing it.
func runHost(path string) int {
	sum, err := fileSHA256(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := hex.DecodeString(sum)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m := &Manager{opts: defaultOptions(), logger: hclog.NewNullLogger(), ctx: context.Background()}
	p, _, err := m.startProcess(launchArgs{name: "sample", version: "0.1.0", path: path, sum: raw})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.pid)
	return 0
}

func run(m *testing.M) int {
	dir := os.Getenv(pluginDirEnv)
	if dir == "" {
		tmp, err := os.MkdirTemp("", "synchron-connectors-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "temp dir:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		out := filepath.Join(dir, "sample", "0.1.0", sampleExe)
		cmd := exec.Command("go", "build", "-o", out, "github.com/synchron-io/synchron/plugins/sample")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building plugins/sample:", err)
			return 1
		}
	}
	for _, v := range []string{"0.1.0", "0.2.0"} {
		p := filepath.Join(dir, "sample", v, sampleExe)
		if _, err := os.Stat(p); err == nil {
			sampleBins[v] = p
		}
	}
	if sampleBins["0.1.0"] == "" {
		fmt.Fprintf(os.Stderr, "no sample/0.1.0/%s in %s\n", sampleExe, dir)
		return 1
	}
	if sampleBins["0.2.0"] == "" { // the upgrade tests only need a second version
		sampleBins["0.2.0"] = sampleBins["0.1.0"]
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			return 1
		}
	}
	return code
}

// installSample puts sample version v in dir. copyFile forces a copy (for
// tests that alter the binary); otherwise a hard link is used when possible.
func installSample(t testing.TB, dir, v string, copyFile bool) string {
	t.Helper()
	dst := filepath.Join(dir, "sample", v, sampleExe)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	src := sampleBins[v]
	if !copyFile && os.Link(src, dst) == nil {
		return dst
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeScript installs a shell-script "connector" (which never completes the
// handshake) as name/version in dir.
func writeScript(t testing.TB, dir, name, version, body string) string {
	t.Helper()
	p := filepath.Join(dir, name, version, "run.sh")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger collects the host's and the plugins' logs, shown if t fails.
func testLogger(t testing.TB) hclog.Logger {
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug})
}

// recorder collects the Manager's events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) hook(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) of(kind EventKind) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// env is one test's Manager with its plugin directory, database and events.
type env struct {
	t      testing.TB
	dir    string
	db     *sqlx.DB
	m      *Manager
	events *recorder
	logger hclog.Logger
}

// migratedDB is a fresh database with the host's migrations applied (the
// catalog's tables among them).
func migratedDB(t testing.TB) *sqlx.DB {
	t.Helper()
	st := store.New(testdb.Open(t))
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st.DB()
}

// newEnv makes an empty plugin directory and database; setup fills the
// directory before the Manager starts.
func newEnv(t testing.TB, setup func(dir string), opts ...Option) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), db: migratedDB(t), events: &recorder{}, logger: testLogger(t)}
	if setup != nil {
		setup(e.dir)
	}
	e.m = e.open(opts...)
	return e
}

// open starts a Manager on the env's directory and database; it is closed
// when the test ends.
func (e *env) open(opts ...Option) *Manager {
	e.t.Helper()
	ctx := testCtx(e.t)
	m, err := NewManager(ctx, e.db, e.dir, e.logger, append([]Option{WithEventHook(e.events.hook)}, opts...)...)
	if err != nil {
		e.t.Fatalf("NewManager: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return m
}

// testCtx bounds a test's calls.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidAlive reports whether a process exists (and is not yet reaped).
func pidAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// leasePID is the pid of the process behind a lease, as go-plugin reports it.
func leasePID(t testing.TB, l *Lease) int {
	t.Helper()
	lc, ok := l.Connector.(*leaseConn)
	if !ok {
		t.Fatalf("lease connector is %T", l.Connector)
	}
	rc := lc.p.client.ReattachConfig()
	if rc == nil || rc.Pid == 0 {
		t.Fatal("no ReattachConfig pid for the lease's process")
	}
	if rc.Pid != lc.p.pid {
		t.Fatalf("ReattachConfig pid %d, manager recorded %d", rc.Pid, lc.p.pid)
	}
	return rc.Pid
}

// status returns the Status entry of name/version.
func status(t testing.TB, m *Manager, name, version string) VersionStatus {
	t.Helper()
	for _, s := range m.Status() {
		if s.Name == name && s.Version == version {
			return s
		}
	}
	t.Fatalf("no status for %s %s in %+v", name, version, m.Status())
	return VersionStatus{}
}
