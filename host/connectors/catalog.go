package connectors

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/sdk"
)

// Catalog statuses of a connector version (connector_versions.status).
const (
	// StatusInstalled: the executable on disk has the checksum recorded at
	// install time.
	StatusInstalled = "installed"
	// StatusChecksumMismatch: the executable changed on disk since it was
	// installed. It is never launched until an operator reinstalls it.
	StatusChecksumMismatch = "checksum_mismatch"
	// StatusMissing: the version directory or its executable is gone.
	StatusMissing = "missing"
)

// lockKey serialises catalog syncs across hosts sharing a database
// (pg_advisory_xact_lock). The catalog's tables come from host/store's
// numbered migrations (0008_connector_catalog.sql).
const lockKey = 0x73796e63_636f6e6e // "synconn" in ASCII

// ScannedVersion is one connector version found in the plugin directory.
type ScannedVersion struct {
	Name    string
	Version string
	// Path is the absolute path of the executable.
	Path string
	// SHA256 is the hex SHA-256 of the executable.
	SHA256 string
}

// validName is the form of a connector directory name.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Scan lists the connector versions of a plugin directory laid out as
// <dir>/<name>/<version>/<executable>, with the SHA-256 of each executable.
// Entries that do not fit the layout (a bad name, a version that is not
// semver, no or several executables) are left out and reported in problems;
// err is set only when dir itself cannot be read or ctx ends.
func Scan(ctx context.Context, dir string) (found []ScannedVersion, problems []error, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("connectors: scan %s: %w", dir, err)
	}
	names, err := os.ReadDir(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("connectors: scan %s: %w", abs, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".") {
			continue
		}
		nameDir := filepath.Join(abs, n.Name())
		if fi, err := os.Stat(nameDir); err != nil || !fi.IsDir() {
			continue // a stray file beside the connectors
		}
		if !validName.MatchString(n.Name()) {
			problems = append(problems, fmt.Errorf("connectors: scan: %s: invalid connector name (want %s)", nameDir, validName))
			continue
		}
		versions, err := os.ReadDir(nameDir)
		if err != nil {
			problems = append(problems, fmt.Errorf("connectors: scan: %w", err))
			continue
		}
		for _, v := range versions {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("connectors: scan %s: %w", abs, err)
			}
			if strings.HasPrefix(v.Name(), ".") {
				continue
			}
			sv, err := scanVersion(ctx, n.Name(), v.Name(), filepath.Join(nameDir, v.Name()))
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, fmt.Errorf("connectors: scan %s: %w", abs, ctx.Err())
				}
				problems = append(problems, err)
				continue
			}
			if sv != nil {
				found = append(found, *sv)
			}
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].Name != found[j].Name {
			return found[i].Name < found[j].Name
		}
		a, _ := sdk.ParseVersion(found[i].Version)
		b, _ := sdk.ParseVersion(found[j].Version)
		return a.Compare(b) < 0
	})
	return found, problems, nil
}

// scanVersion reads one version directory; it returns nil, nil for a stray
// file that is not a directory.
func scanVersion(ctx context.Context, name, version, dir string) (*ScannedVersion, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("connectors: scan: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil
	}
	if _, ok := sdk.ParseVersion(version); !ok {
		return nil, fmt.Errorf("connectors: scan: %s: version %q is not semver (MAJOR.MINOR.PATCH)", dir, version)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("connectors: scan: %w", err)
	}
	var exes []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		exes = append(exes, p)
	}
	switch len(exes) {
	case 0:
		return nil, fmt.Errorf("connectors: scan: %s: no executable file", dir)
	case 1:
	default:
		return nil, fmt.Errorf("connectors: scan: %s: %d executable files, want exactly one", dir, len(exes))
	}
	sum, err := fileSHA256(ctx, exes[0])
	if err != nil {
		return nil, err
	}
	return &ScannedVersion{Name: name, Version: version, Path: exes[0], SHA256: sum}, nil
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("connectors: hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("connectors: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// versionRow is a row of connector_versions.
type versionRow struct {
	Name        string         `db:"name"`
	Version     string         `db:"version"`
	SHA256      string         `db:"sha256"`
	Path        string         `db:"path"`
	Status      string         `db:"status"`
	Spec        []byte         `db:"spec"`
	Docs        sql.NullString `db:"docs"`
	InstalledAt time.Time      `db:"installed_at"`
}

// connectorRow is a row of connectors.
type connectorRow struct {
	Name            string         `db:"name"`
	ActiveVersion   sql.NullString `db:"active_version"`
	PreviousVersion sql.NullString `db:"previous_version"`
}

// catalogState is the persisted catalog after a sync.
type catalogState struct {
	versions   []versionRow
	connectors []connectorRow
}

// syncCatalog records the scanned versions in the database, in one
// transaction: new versions are installed, the status of known ones is
// recomputed from their checksum (the recorded checksum is never changed),
// versions gone from disk become missing, and a connector without an active
// version gets its highest installed release (a pre-release only when it has
// no release). It returns the whole catalog.
func syncCatalog(ctx context.Context, db *sqlx.DB, scanned []ScannedVersion, reinstallChanged bool) (catalogState, error) {
	var st catalogState
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("connectors: sync: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return st, fmt.Errorf("connectors: sync: lock: %w", err)
	}
	var rows []versionRow
	if err := tx.SelectContext(ctx, &rows, `SELECT name, version, sha256, path, status, spec, docs, installed_at FROM connector_versions`); err != nil {
		return st, fmt.Errorf("connectors: sync: load versions: %w", err)
	}
	known := make(map[[2]string]versionRow, len(rows))
	for _, r := range rows {
		known[[2]string{r.Name, r.Version}] = r
	}
	seen := make(map[[2]string]bool, len(scanned))
	for _, s := range scanned {
		key := [2]string{s.Name, s.Version}
		seen[key] = true
		r, ok := known[key]
		if !ok {
			if _, err := tx.ExecContext(ctx, `INSERT INTO connector_versions (name, version, sha256, path, status) VALUES ($1, $2, $3, $4, $5)`,
				s.Name, s.Version, s.SHA256, s.Path, StatusInstalled); err != nil {
				return st, fmt.Errorf("connectors: sync: install %s %s: %w", s.Name, s.Version, err)
			}
			continue
		}
		if r.SHA256 != s.SHA256 && reinstallChanged {
			// A developer's rebuild: record the new executable, and forget
			// the spec read from the old one.
			if _, err := tx.ExecContext(ctx, `UPDATE connector_versions SET sha256 = $3, path = $4, status = $5, spec = NULL, docs = NULL,
				installed_at = now(), updated_at = now() WHERE name = $1 AND version = $2`,
				s.Name, s.Version, s.SHA256, s.Path, StatusInstalled); err != nil {
				return st, fmt.Errorf("connectors: sync: reinstall %s %s: %w", s.Name, s.Version, err)
			}
			continue
		}
		status, path := StatusChecksumMismatch, r.Path
		if r.SHA256 == s.SHA256 {
			status, path = StatusInstalled, s.Path
		}
		if status != r.Status || path != r.Path {
			if _, err := tx.ExecContext(ctx, `UPDATE connector_versions SET status = $3, path = $4, updated_at = now() WHERE name = $1 AND version = $2`,
				s.Name, s.Version, status, path); err != nil {
				return st, fmt.Errorf("connectors: sync: update %s %s: %w", s.Name, s.Version, err)
			}
		}
	}
	for key, r := range known {
		if !seen[key] && r.Status != StatusMissing {
			if _, err := tx.ExecContext(ctx, `UPDATE connector_versions SET status = $3, updated_at = now() WHERE name = $1 AND version = $2`,
				r.Name, r.Version, StatusMissing); err != nil {
				return st, fmt.Errorf("connectors: sync: mark %s %s missing: %w", r.Name, r.Version, err)
			}
		}
	}

	// Connectors without an active version get their highest installed release.
	if err := tx.SelectContext(ctx, &st.versions, `SELECT name, version, sha256, path, status, spec, docs, installed_at FROM connector_versions ORDER BY name, version`); err != nil {
		return st, fmt.Errorf("connectors: sync: reload versions: %w", err)
	}
	best := map[string]string{}
	for _, r := range st.versions {
		if r.Status != StatusInstalled {
			continue
		}
		cur, ok := best[r.Name]
		if !ok || defaultRank(cur, r.Version) < 0 {
			best[r.Name] = r.Version
		}
	}
	names := make([]string, 0, len(best))
	for n := range best {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO connectors (name, active_version) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET active_version = EXCLUDED.active_version, updated_at = now()
			WHERE connectors.active_version IS NULL`, n, best[n]); err != nil {
			return st, fmt.Errorf("connectors: sync: default active version of %s: %w", n, err)
		}
	}
	if err := tx.SelectContext(ctx, &st.connectors, `SELECT name, active_version, previous_version FROM connectors ORDER BY name`); err != nil {
		return st, fmt.Errorf("connectors: sync: load connectors: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("connectors: sync: commit: %w", err)
	}
	return st, nil
}

// defaultRank orders candidates for a connector's default active version:
// releases above pre-releases, then by semver precedence.
func defaultRank(a, b string) int {
	x, _ := sdk.ParseVersion(a)
	y, _ := sdk.ParseVersion(b)
	if x.Prerelease() != y.Prerelease() {
		if !x.Prerelease() {
			return 1
		}
		return -1
	}
	return x.Compare(y)
}

func semverLess(a, b string) bool {
	x, _ := sdk.ParseVersion(a)
	y, _ := sdk.ParseVersion(b)
	return x.Compare(y) < 0
}

// setVersionStatus records a version's catalog status.
func setVersionStatus(ctx context.Context, db *sqlx.DB, name, version, status string) error {
	if _, err := db.ExecContext(ctx, `UPDATE connector_versions SET status = $3, updated_at = now() WHERE name = $1 AND version = $2`,
		name, version, status); err != nil {
		return fmt.Errorf("connectors: set status of %s %s to %s: %w", name, version, status, err)
	}
	return nil
}

// specJSON is how a Spec is stored: Spec.Docs is not part of its JSON.
func encodeSpec(s *sdk.Spec) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("connectors: encode spec: %w", err)
	}
	return b, nil
}

func decodeSpec(raw []byte, docs sql.NullString) (*sdk.Spec, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var s sdk.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("connectors: decode stored spec: %w", err)
	}
	s.Docs = docs.String
	return &s, nil
}

// saveSpec caches a version's Spec in the catalog (the Spec of a version is
// static: its executable cannot change without a checksum mismatch).
func saveSpec(ctx context.Context, db *sqlx.DB, name, version string, s *sdk.Spec) error {
	b, err := encodeSpec(s)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `UPDATE connector_versions SET spec = $3, docs = $4, updated_at = now() WHERE name = $1 AND version = $2`,
		name, version, b, s.Docs); err != nil {
		return fmt.Errorf("connectors: save spec of %s %s: %w", name, version, err)
	}
	return nil
}

// setActive moves a connector's active alias in the database. It fails with
// ErrConflict if the stored active version is no longer wantActive (another
// host moved it).
func setActive(ctx context.Context, db *sqlx.DB, name, wantActive, active, previous string) error {
	res, err := db.ExecContext(ctx, `
		UPDATE connectors SET active_version = $2, previous_version = NULLIF($3, ''), updated_at = now()
		WHERE name = $1 AND active_version IS NOT DISTINCT FROM NULLIF($4, '')`,
		name, active, previous, wantActive)
	if err != nil {
		return fmt.Errorf("connectors: set active version of %s to %s: %w", name, active, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("connectors: set active version of %s to %s: %w", name, active, err)
	}
	if n != 1 {
		return fmt.Errorf("connectors: set active version of %s to %s: %w", name, active, ErrConflict)
	}
	return nil
}
