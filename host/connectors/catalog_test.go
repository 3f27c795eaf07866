package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/sdk"
)

func TestSemver(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"0.1.0", "0.2.0", -1},
		{"0.10.0", "0.9.0", 1},
		{"1.0.0", "1.0.0", 0},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
		{"1.0.0+build.5", "1.0.0", 0},
		{"2.0.0", "10.0.0", -1},
	} {
		t.Run(tt.a+"_vs_"+tt.b, func(t *testing.T) {
			t.Parallel()
			a, okA := sdk.ParseVersion(tt.a)
			b, okB := sdk.ParseVersion(tt.b)
			if !okA || !okB {
				t.Fatalf("parse %q: %v, %q: %v", tt.a, okA, tt.b, okB)
			}
			if got := a.Compare(b); got != tt.want {
				t.Fatalf("compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := b.Compare(a); got != -tt.want {
				t.Fatalf("compare(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
	for _, bad := range []string{"", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a..b", "1.0.x"} {
		if _, ok := sdk.ParseVersion(bad); ok {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestScan(t *testing.T) {
	t.Parallel()
	type file struct {
		path string
		mode os.FileMode
	}
	for _, tt := range []struct {
		name     string
		files    []file
		want     []string // name@version
		problems []string // substrings, one per problem
	}{
		{
			name:  "valid layout, sorted by semver",
			files: []file{{"a/0.10.0/run", 0o755}, {"a/0.9.0/run", 0o755}, {"b/1.0.0/bin", 0o755}},
			want:  []string{"a@0.9.0", "a@0.10.0", "b@1.0.0"},
		},
		{
			name:  "non-executable files beside the executable are ignored",
			files: []file{{"a/1.0.0/run", 0o755}, {"a/1.0.0/README.md", 0o644}, {"a/1.0.0/.hidden", 0o755}},
			want:  []string{"a@1.0.0"},
		},
		{
			name:     "version is not semver",
			files:    []file{{"a/latest/run", 0o755}, {"a/1.0/run", 0o755}, {"a/1.0.0/run", 0o755}},
			want:     []string{"a@1.0.0"},
			problems: []string{`"1.0" is not semver`, `"latest" is not semver`},
		},
		{
			name:     "two executables",
			files:    []file{{"a/1.0.0/run", 0o755}, {"a/1.0.0/other", 0o755}},
			problems: []string{"2 executable files, want exactly one"},
		},
		{
			name:     "no executable",
			files:    []file{{"a/1.0.0/run", 0o644}},
			problems: []string{"no executable file"},
		},
		{
			name:     "invalid connector name",
			files:    []file{{"Bad Name/1.0.0/run", 0o755}, {"ok/1.0.0/run", 0o755}},
			want:     []string{"ok@1.0.0"},
			problems: []string{"invalid connector name"},
		},
		{
			name:  "stray files are ignored",
			files: []file{{"README", 0o644}, {"a/NOTES", 0o644}, {"a/1.0.0/run", 0o755}},
			want:  []string{"a@1.0.0"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for i, f := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(f.path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				// Distinct contents, so distinct checksums.
				if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+strings.Repeat("x", i)+"\n"), f.mode); err != nil {
					t.Fatal(err)
				}
			}
			found, problems, err := Scan(context.Background(), dir)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			var got []string
			for _, v := range found {
				got = append(got, v.Name+"@"+v.Version)
				if !filepath.IsAbs(v.Path) {
					t.Errorf("%s: path %q is not absolute", v.Name, v.Path)
				}
				if want := sha256Hex(t, v.Path); v.SHA256 != want {
					t.Errorf("%s %s: sha256 %s, want %s", v.Name, v.Version, v.SHA256, want)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("found %v, want %v", got, tt.want)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %v, want %d matching %q", problems, len(tt.problems), tt.problems)
			}
			for _, want := range tt.problems {
				ok := false
				for _, p := range problems {
					ok = ok || strings.Contains(p.Error(), want)
				}
				if !ok {
					t.Errorf("no problem mentions %q: %v", want, problems)
				}
			}
		})
	}
}

func TestScanMissingDir(t *testing.T) {
	t.Parallel()
	_, _, err := Scan(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Scan of a missing directory = %v, want ErrNotExist", err)
	}
}

// TestSyncInstallsAndDefaultsActive checks the persisted catalog: checksums,
// paths and the default active version (highest release, numeric order).
func TestSyncInstallsAndDefaultsActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		writeScript(t, dir, "multi", "0.9.0", "exit 1")
		writeScript(t, dir, "multi", "0.10.0", "exit 2")
		writeScript(t, dir, "multi", "1.0.0-rc.1", "exit 3")
		writeScript(t, dir, "pre", "1.0.0-rc.1", "exit 4")
		writeScript(t, dir, "pre", "1.0.0-rc.2", "exit 5")
	})
	ctx := testCtx(t)

	var rows []versionRow
	if err := e.db.SelectContext(ctx, &rows, `SELECT name, version, sha256, path, status, spec, docs, installed_at FROM connector_versions ORDER BY name, version`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d versions installed, want 6: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Status != StatusInstalled {
			t.Errorf("%s %s status %q", r.Name, r.Version, r.Status)
		}
		if want := sha256Hex(t, r.Path); r.SHA256 != want {
			t.Errorf("%s %s sha256 %s, want %s", r.Name, r.Version, r.SHA256, want)
		}
		if r.InstalledAt.IsZero() {
			t.Errorf("%s %s has no installed_at", r.Name, r.Version)
		}
	}
	want := map[string]string{"sample": "0.1.0", "multi": "0.10.0", "pre": "1.0.0-rc.2"}
	var conns []connectorRow
	if err := e.db.SelectContext(ctx, &conns, `SELECT name, active_version, previous_version FROM connectors`); err != nil {
		t.Fatal(err)
	}
	if len(conns) != len(want) {
		t.Fatalf("connectors %+v, want %v", conns, want)
	}
	for _, c := range conns {
		if c.ActiveVersion.String != want[c.Name] {
			t.Errorf("%s active %q, want %q", c.Name, c.ActiveVersion.String, want[c.Name])
		}
	}
	for _, s := range e.m.Status() {
		if s.Active != (want[s.Name] == s.Version) || s.State != StateIdle || s.PID != 0 {
			t.Errorf("status %+v", s)
		}
	}

	// A new version does not change an active version already set.
	writeScript(t, e.dir, "multi", "2.0.0", "exit 6")
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s := status(t, e.m, "multi", "2.0.0"); s.Active {
		t.Fatal("Sync moved the active version to a new install")
	}
	if !status(t, e.m, "multi", "0.10.0").Active {
		t.Fatal("multi 0.10.0 is no longer active")
	}
}

// TestSyncMissingVersion: a version removed from disk becomes missing and is
// refused; it comes back when restored.
func TestSyncMissingVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) { writeScript(t, dir, "gone", "1.0.0", "exit 1") })
	ctx := testCtx(t)
	if err := os.RemoveAll(filepath.Join(e.dir, "gone", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s := status(t, e.m, "gone", "1.0.0"); s.State != StateMissing {
		t.Fatalf("state %q, want %q", s.State, StateMissing)
	}
	if _, err := e.m.Acquire(ctx, "gone"); !errors.Is(err, ErrMissing) {
		t.Fatalf("Acquire of a missing version = %v, want ErrMissing", err)
	}
	writeScript(t, e.dir, "gone", "1.0.0", "exit 1")
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s := status(t, e.m, "gone", "1.0.0"); s.State != StateIdle {
		t.Fatalf("restored version state %q, want %q", s.State, StateIdle)
	}
	if n := len(e.events.of(EventStarted)) + len(e.events.of(EventStartFailed)); n != 0 {
		t.Fatalf("%d launches, want none", n)
	}
}

// tamper appends to an executable, changing its checksum.
func tamper(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("tampered"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTamperedBinaryRefusedAtLaunch: the binary changes after install while
// the host runs; go-plugin's SecureConfig refuses it, the version is marked
// checksum_mismatch (in memory and in the database) and is not tried again.
func TestTamperedBinaryRefusedAtLaunch(t *testing.T) {
	t.Parallel()
	var exe string
	e := newEnv(t, func(dir string) { exe = installSample(t, dir, "0.1.0", true) })
	ctx := testCtx(t)
	installed := status(t, e.m, "sample", "0.1.0").SHA256
	tamper(t, exe)

	_, err := e.m.Acquire(ctx, "sample")
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Acquire of a tampered binary = %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), exe) {
		t.Errorf("error %q does not name the executable", err)
	}
	if n := len(e.events.of(EventStarted)); n != 0 {
		t.Fatalf("a tampered binary was started (%d)", n)
	}
	if s := status(t, e.m, "sample", "0.1.0"); s.State != StateChecksumMismatch || s.SHA256 != installed {
		t.Fatalf("status %+v, want %s with the installed sha256", s, StateChecksumMismatch)
	}
	waitFor(t, "checksum_mismatch in the database", func() bool {
		var st string
		err := e.db.GetContext(ctx, &st, `SELECT status FROM connector_versions WHERE name = 'sample' AND version = '0.1.0'`)
		return err == nil && st == StatusChecksumMismatch
	})
	// Refused again without another launch attempt.
	if _, err := e.m.Acquire(ctx, "sample"); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("second Acquire = %v, want ErrChecksumMismatch", err)
	}
	if n := len(e.events.of(EventStartFailed)); n != 1 {
		t.Fatalf("%d launch attempts, want 1", n)
	}
	if err := e.m.Activate(ctx, "sample", "0.1.0"); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Activate of a tampered version = %v, want ErrChecksumMismatch", err)
	}
}

// TestTamperedBinaryRefusedAtSync: the binary changed while the host was
// down; the next start's Sync marks it and nothing is launched. The recorded
// checksum is kept, so restoring the original binary makes it usable again.
func TestTamperedBinaryRefusedAtSync(t *testing.T) {
	t.Parallel()
	var exe string
	e := newEnv(t, func(dir string) { exe = installSample(t, dir, "0.1.0", true) })
	ctx := testCtx(t)
	original, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	installed := status(t, e.m, "sample", "0.1.0").SHA256
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tamper(t, exe)

	m2 := e.open()
	if s := status(t, m2, "sample", "0.1.0"); s.State != StateChecksumMismatch || s.SHA256 != installed {
		t.Fatalf("after Sync: %+v, want %s with the installed sha256", s, StateChecksumMismatch)
	}
	if _, err := m2.Acquire(ctx, "sample"); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Acquire = %v, want ErrChecksumMismatch", err)
	}
	if n := len(e.events.of(EventStarted)) + len(e.events.of(EventStartFailed)); n != 0 {
		t.Fatalf("%d launch attempts of a binary known to be tampered, want 0", n)
	}

	if err := os.WriteFile(exe, original, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := m2.Acquire(ctx, "sample")
	if err != nil {
		t.Fatalf("Acquire of the restored binary: %v", err)
	}
	l.Release()
}
