package sdk_test

// These tests run real plugin processes without building a binary: the test
// binary re-executes itself with SYNCHRON_SDK_TEST_MODE set, and TestMain then
// runs sdk.Serve (mode "plugin") or a host that launches a plugin and dies
// without closing it (mode "launcher").
//
// The plugin reports Connector.Stop calls as lines "stop" on file descriptor 3
// when the test passes one: the test reads that pipe until EOF, which also
// proves the plugin process (the last holder of the write end) has exited.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"

	"github.com/synchron-io/synchron/sdk"
)

const (
	modeEnv   = "SYNCHRON_SDK_TEST_MODE"
	stopFDEnv = "SYNCHRON_SDK_TEST_STOP_FD" // "3" when fd 3 is the Stop report pipe
)

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "plugin":
		sdk.Serve(newProcConn())
		os.Exit(0)
	case "launcher":
		os.Exit(runLauncher())
	}
	goleak.VerifyTestMain(m)
}

// newProcConn is the connector served by plugin processes.
func newProcConn() sdk.Connector {
	var report io.Writer = io.Discard
	if os.Getenv(stopFDEnv) == "3" {
		report = os.NewFile(3, "stop-report")
	}
	return &fakeConn{
		spec: func(context.Context) (*sdk.Spec, error) {
			return &sdk.Spec{Name: "proc", Version: "0.0.1", ProtocolVersion: sdk.ProtocolVersion}, nil
		},
		check: func(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
			switch string(req.Config) {
			case `"fail"`:
				return nil, errors.New("app unreachable")
			case `"budget"`:
				return checkBudget(ctx)
			}
			return &sdk.CheckResponse{}, nil
		},
		read: func(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
			switch req.Object {
			case "big": // 8 MiB, over gRPC's default 4 MiB limit
				return sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: "big", Fields: json.RawMessage(`"` + strings.Repeat("x", 8<<20) + `"`)}}})
			case "crash": // the process dies in the middle of a stream
				if err := sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: "1"}}}); err != nil {
					return err
				}
				os.Exit(3)
			}
			return nil
		},
		stop: func(context.Context) error {
			_, err := io.WriteString(report, "stop\n")
			return err
		},
	}
}

// runLauncher is a host that launches a plugin, checks it answers, prints its
// pid and exits without closing it. fd 3 is passed on to the plugin.
func runLauncher() int {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=plugin", stopFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "stop-report")}
	pc := plugin.NewClient(sdk.NewClientConfig(cmd, hclog.NewNullLogger()))
	c, err := sdk.DispenseClient(pc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.Spec(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(pc.ReattachConfig().Pid)
	return 0 // without pc.Kill: the plugin must notice on its own
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

// stopPipe returns a pipe whose write end is given to a plugin as fd 3.
func stopPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	return r, w
}

// readStopReport reads the plugin's Stop reports until the plugin exits (EOF).
func readStopReport(t *testing.T, r *os.File) string {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the plugin did not exit: %v (reported %q)", err, b)
	}
	return string(b)
}

// launch starts a plugin process (this test binary in plugin mode) the way
// the host does and returns its connector.
func launch(t *testing.T, stopReport *os.File) (*plugin.Client, *sdk.Client) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=plugin")
	if stopReport != nil {
		cmd.Env = append(cmd.Env, stopFDEnv+"=3")
		cmd.ExtraFiles = []*os.File{stopReport}
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug})
	pc := plugin.NewClient(sdk.NewClientConfig(cmd, logger))
	t.Cleanup(func() {
		pc.Kill()
		if t.Failed() {
			t.Logf("host and plugin logs:\n%s", logs.String())
		}
	})
	c, err := sdk.DispenseClient(pc)
	if err != nil {
		t.Fatalf("DispenseClient: %v", err)
	}
	return pc, c
}

func TestPluginProcess(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, c := launch(t, nil)

	spec, err := c.Spec(ctx)
	if err != nil || spec.Name != "proc" {
		t.Fatalf("Spec = %+v, %v", spec, err)
	}
	var got collect
	if err := c.Read(ctx, sdk.ReadRequest{Object: "big"}, &got); err != nil {
		t.Fatalf("Read of an 8 MiB record: %v", err)
	}
	if len(got.batches) != 1 || len(got.batches[0].Records[0].Fields) < 8<<20 {
		t.Fatal("the 8 MiB record did not come back whole")
	}
	_, err = c.Check(ctx, sdk.CheckRequest{Config: json.RawMessage(`"fail"`)})
	var ce *sdk.ConnectorError
	if !errors.As(err, &ce) || ce.Message != "app unreachable" || sdk.IsTransportError(err) {
		t.Fatalf("Check = %v, want the connector's error, not a transport error", err)
	}
}

func TestPluginCrashIsTransportError(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pc, c := launch(t, nil)
	var got collect
	err := c.Read(ctx, sdk.ReadRequest{Object: "crash"}, &got)
	if err == nil || !sdk.IsTransportError(err) {
		t.Fatalf("Read from a crashing plugin = %v, want a transport error", err)
	}
	if !strings.HasPrefix(err.Error(), "connector read: ") {
		t.Fatalf("error %q lacks context", err)
	}
	_, err = c.Spec(ctx)
	if !sdk.IsTransportError(err) {
		t.Fatalf("Spec after the crash = %v, want a transport error", err)
	}
	if !pc.Exited() {
		// Exited flips when go-plugin has reaped the process; it may lag the
		// broken connection, so only log.
		t.Log("plugin not yet reaped")
	}
}

func TestPluginStopCalledOnceOnKill(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r, w := stopPipe(t)
	pc, c := launch(t, w)
	_ = w.Close() // the plugin holds the only write end now

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	pc.Kill() // Serve returns and must not call Stop a second time
	if got := readStopReport(t, r); got != "stop\n" {
		t.Fatalf("Stop reports = %q, want exactly one", got)
	}
}

func TestPluginStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r, w := stopPipe(t)
	pc, c := launch(t, w)
	_ = w.Close()
	if _, err := c.Spec(ctx); err != nil {
		t.Fatal(err)
	}
	proc, err := os.FindProcess(pc.ReattachConfig().Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readStopReport(t, r); got != "stop\n" {
		t.Fatalf("Stop reports after SIGTERM = %q, want one", got)
	}
}

func TestPluginExitsWhenHostDies(t *testing.T) {
	t.Parallel()
	r, w := stopPipe(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=launcher")
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	_ = w.Close()
	if err != nil {
		t.Fatalf("launcher: %v\n%s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		t.Fatalf("launcher printed %q", out)
	}
	// The launcher has exited without closing its plugin: the plugin must call
	// Stop and exit by itself (read until EOF = plugin gone).
	if got := readStopReport(t, r); got != "stop\n" {
		t.Fatalf("orphaned plugin %d reported %q, want one Stop before exiting", pid, got)
	}
}

func TestPluginRefusesToRunByHand(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=plugin") // no magic cookie
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("plugin run by hand: err %v, want exit status 1", err)
	}
	if !bytes.Contains(out, []byte("This binary is a plugin")) {
		t.Fatalf("output %q does not explain", out)
	}
}

func TestNewLoggerLevelFromEnv(t *testing.T) {
	// Not parallel: it sets an environment variable.
	for _, tt := range []struct {
		env  string
		want hclog.Level
	}{
		{"", hclog.Info},
		{"debug", hclog.Debug},
		{"ERROR", hclog.Error},
		{"nonsense", hclog.Info},
	} {
		t.Setenv(sdk.LogLevelEnv, tt.env)
		if got := sdk.NewLogger("x").GetLevel(); got != tt.want {
			t.Errorf("%s=%q: level %v, want %v", sdk.LogLevelEnv, tt.env, got, tt.want)
		}
	}
}
