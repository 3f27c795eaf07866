package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// binDir holds bin/synchron and bin/plugins: SYNCHRON_BIN_DIR (set by make
// test after make build), or a fresh build into a temporary directory.
var binDir string

func TestMain(m *testing.M) {
	dir, cleanup, err := findOrBuildBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func findOrBuildBinaries() (string, func(), error) {
	if dir := os.Getenv("SYNCHRON_BIN_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "synchron")); err != nil {
			return "", nil, fmt.Errorf("SYNCHRON_BIN_DIR=%s has no synchron binary: run make build", dir)
		}
		return dir, func() {}, nil
	}
	root, err := testdb.RepoRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "synchron-e2e-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	if err := build(filepath.Join(dir, "synchron"), "./host/cmd/synchron"); err != nil {
		cleanup()
		return "", nil, err
	}
	mains, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "main.go"))
	for _, m := range mains {
		pdir := filepath.Dir(m)
		name := filepath.Base(pdir)
		v, err := os.ReadFile(filepath.Join(pdir, "VERSION"))
		if err != nil {
			cleanup()
			return "", nil, err
		}
		out := filepath.Join(dir, "plugins", name, strings.TrimSpace(string(v)), "synchron-connector-"+name)
		if err := build(out, "./plugins/"+name); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

// host is a running bin/synchron serve process.
type host struct {
	t       *testing.T
	cmd     *exec.Cmd
	baseURL string
	admin   string
	logs    *syncBuffer
	done    chan struct{}
}

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

func randomKey(t *testing.T) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// startHost starts the real host binary against databaseURL and waits until
// it listens. extraEnv entries override the defaults.
func startHost(t *testing.T, databaseURL string, extraEnv ...string) *host {
	t.Helper()
	h := &host{t: t, admin: "admin-" + randomKey(t)[:16], logs: &syncBuffer{}, done: make(chan struct{})}
	h.cmd = exec.Command(filepath.Join(binDir, "synchron"), "serve")
	h.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + databaseURL,
		"SYNCHRON_ADDR=127.0.0.1:0",
		"SYNCHRON_PLUGIN_DIR=" + filepath.Join(binDir, "plugins"),
		"SYNCHRON_SECRET_KEY=" + randomKey(t),
		"SYNCHRON_ADMIN_TOKEN=" + h.admin,
		"SYNCHRON_LOG_FORMAT=text",
		"SYNCHRON_PASSWORD_COST=4",
	}, extraEnv...)
	h.cmd.Stderr = h.logs
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host: %v", err)
	}
	go func() { h.cmd.Wait(); close(h.done) }() //nolint:errcheck // exit status read via ProcessState
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("host logs:\n%s", h.logs.String())
		}
	})

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "synchron: listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		h.baseURL = a
	case <-h.done:
		t.Fatalf("host exited before listening:\n%s", h.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("host did not listen within 60s:\n%s", h.logs.String())
	}
	return h
}

// stop sends SIGTERM and waits for a clean exit.
func (h *host) stop() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(45 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
		h.t.Errorf("host did not stop within 45s of SIGTERM")
	}
}

type response struct {
	Status int
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

func (h *host) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Body: b}
}

// must performs a request and fails the test unless the status is want.
func (h *host) must(t *testing.T, want int, method, path, token string, body any) map[string]any {
	t.Helper()
	r := h.do(t, method, path, token, body)
	if r.Status != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.json(t)
}

// signup creates an account and returns its session token.
func (h *host) signup(t *testing.T, email string) string {
	t.Helper()
	m := h.must(t, http.StatusCreated, "POST", "/v1/signup", "", map[string]any{
		"email": email, "password": "correct horse battery staple", "name": "Test User",
	})
	tok, _ := m["token"].(string)
	if tok == "" {
		t.Fatalf("signup returned no token: %v", m)
	}
	return tok
}

// waitRun polls the run until it reaches a final status and returns it.
func (h *host) waitRun(t *testing.T, token, runID string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		run := h.must(t, http.StatusOK, "GET", "/v1/runs/"+runID, token, nil)
		switch run["status"] {
		case "succeeded", "partial", "failed":
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %v after %s", runID, run["status"], timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling an observable state, not synchronising
	}
}

func counts(t *testing.T, run map[string]any) map[string]int {
	t.Helper()
	raw, ok := run["counts"].(map[string]any)
	if !ok {
		t.Fatalf("run has no counts object: %v", run)
	}
	out := map[string]int{}
	for k, v := range raw {
		f, _ := v.(float64)
		out[k] = int(f)
	}
	if f, ok := run["transactions"].(float64); ok {
		out["transactions"] = int(f)
	}
	return out
}
