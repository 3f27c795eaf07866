package connectors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// Errors of the Manager. They come wrapped with the connector and version
// concerned; test them with errors.Is.
var (
	// ErrUnknownVersion: the catalog has no such version of the connector.
	ErrUnknownVersion = errors.New("unknown connector version")
	// ErrNoActiveVersion: the connector has no installed version to use.
	ErrNoActiveVersion = errors.New("connector has no active version")
	// ErrNoPreviousVersion: Rollback has nothing to go back to.
	ErrNoPreviousVersion = errors.New("connector has no previous version")
	// ErrChecksumMismatch: the executable changed on disk since it was
	// installed; it is not launched.
	ErrChecksumMismatch = errors.New("executable checksum does not match the installed one (changed on disk since install)")
	// ErrMissing: the version's executable is no longer in the plugin directory.
	ErrMissing = errors.New("executable missing from the plugin directory")
	// ErrCrashLoop: the version crashed too often within the crash window; it
	// is not restarted until the window passes or ResetCrashes is called.
	ErrCrashLoop = errors.New("connector version crashed too often")
	// ErrRestartBackoff: the version crashed recently and the caller's
	// deadline ends before its restart is allowed.
	ErrRestartBackoff = errors.New("connector version is waiting to be restarted")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("connector manager closed")
	// ErrLeaseReleased: a call was made on a lease after Release.
	ErrLeaseReleased = errors.New("lease already released")
	// ErrConflict: Activate or Rollback found the stored active version
	// changed by someone else (another host sharing the database). Sync
	// reloads the catalog; then retry.
	ErrConflict = errors.New("the active version was changed concurrently (by another host?); run Sync and retry")
)

// Runtime states of a version, as reported by Status.
const (
	StateIdle             = "idle"     // installed, no process (started on first Acquire)
	StateStarting         = "starting" // a launch is in progress
	StateRunning          = "running"
	StateExited           = "exited"  // the process died; restarted on the next Acquire
	StateBackoff          = "backoff" // crashed recently; next start not before RetryAt
	StateCrashed          = "crashed" // crash limit reached; refused until RetryAt or ResetCrashes
	StateChecksumMismatch = StatusChecksumMismatch
	StateMissing          = StatusMissing
)

// VersionStatus is the state of one connector version, for the admin API.
type VersionStatus struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Path    string `json:"path"`
	// Active is true for the version Acquire uses.
	Active bool `json:"active"`
	// State is one of the State constants.
	State string `json:"state"`
	// PID of the process (0 if none).
	PID int `json:"pid,omitempty"`
	// Leases currently held on the process.
	Leases int `json:"leases"`
	// Restarts counts launches that followed a crash or a failed launch.
	Restarts int `json:"restarts"`
	// Crashes counts crashes and failed launches within the crash window.
	Crashes int `json:"crashes"`
	// RetryAt is when a version in backoff or crashed may start again.
	RetryAt   time.Time `json:"retry_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Manager is the connector runtime: the catalog of installed versions, one
// pooled process per version (started on first use, shared by every run and
// account), and the supervisor that restarts crashed processes with
// exponential backoff. It implements Registry. Its methods are safe for
// concurrent use.
type Manager struct {
	db     *sqlx.DB
	dir    string
	logger hclog.Logger
	opts   options

	// ctx ends when Close finishes; it bounds launches and background writes.
	ctx    context.Context
	cancel context.CancelFunc

	admin sync.Mutex // serialises Sync, Activate and Rollback

	mu      sync.Mutex
	closed  bool
	closing chan struct{} // closed by Close
	apps    map[string]*app
	// procs holds every process not yet gone, including those of versions
	// no longer in the catalog that still have leases.
	procs map[*proc]struct{}
	// wg counts the goroutines in flight: launches and process stops.
	// Add is only called with mu held and closed false, or by Close itself.
	wg sync.WaitGroup
}

var _ Registry = (*Manager)(nil)

// app is one connector of the catalog.
type app struct {
	name     string
	active   string
	previous string
	versions map[string]*version
}

// version is one installed version and its runtime state; guarded by
// Manager.mu.
type version struct {
	name    string
	version string
	sha256  string
	sum     []byte
	path    string
	status  string
	spec    *sdk.Spec

	proc      *proc
	launching *launchOp
	// crashes holds the times of crashes and failed launches within the
	// crash window (pruned on use).
	crashes []time.Time
	// crashedSinceStart: the last process died or the last launch failed.
	crashedSinceStart bool
	restarts          int
	lastErr           error
}

// launchOp is a launch in progress; the Acquire calls waiting for it share
// its outcome.
type launchOp struct {
	done      chan struct{} // closed when the launch is over
	completed bool          // under Manager.mu: proc and err are set
	waiters   int           // under Manager.mu: Acquire calls owed a lease
	proc      *proc
	err       error
}

// NewManager returns the connector runtime for the plugin directory
// pluginDir (laid out as <dir>/<name>/<version>/<executable>) on a database
// migrated by host/store (which holds the catalog's tables), and syncs the
// catalog with the directory (Sync). No process is started until the first
// Acquire. logger may be nil. Close the Manager to stop its processes.
func NewManager(ctx context.Context, db *sqlx.DB, pluginDir string, logger hclog.Logger, opts ...Option) (*Manager, error) {
	if db == nil {
		return nil, errors.New("connectors: new manager: nil database")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if !o.budgetsSet {
		o.budgets = store.NewBudgets(db)
	}
	m := &Manager{
		db:      db,
		dir:     pluginDir,
		logger:  logger,
		opts:    o,
		closing: make(chan struct{}),
		apps:    map[string]*app{},
		procs:   map[*proc]struct{}{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := m.Sync(ctx); err != nil {
		m.cancel()
		return nil, err
	}
	return m, nil
}

// Sync scans the plugin directory and records it in the catalog: new
// versions are installed, a version whose executable changed since install
// gets status checksum_mismatch (and is never launched), vanished ones get
// status missing, and a connector without an active version gets its highest
// installed release (a pre-release only if it has no release). Running
// processes are not affected, except idle ones of versions that can no
// longer be used, which are stopped.
func (m *Manager) Sync(ctx context.Context) error {
	m.admin.Lock()
	defer m.admin.Unlock()
	return m.syncLocked(ctx, nil)
}

// SHA256MismatchError is Install's refusal of an executable whose sha256 is
// not the one given. It matches ErrChecksumMismatch with errors.Is.
type SHA256MismatchError struct {
	Name, Version, Path string
	Got, Want           string
}

func (e *SHA256MismatchError) Error() string {
	return fmt.Sprintf("connectors: install %s %s: %s has sha256 %s, not the %s given: not installed", e.Name, e.Version, e.Path, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrChecksumMismatch) true.
func (e *SHA256MismatchError) Is(target error) bool { return target == ErrChecksumMismatch }

// Install records one version an operator put in the plugin directory
// (<dir>/<name>/<version>/<executable>) in the catalog. When wantSHA256 is
// not empty, the executable is hashed first and a different sha256 is
// refused with a *SHA256MismatchError (errors.Is ErrChecksumMismatch) before
// the catalog is touched: the version is then not installed. Otherwise the
// plugin directory is synced (as Sync), recording the sha256 checked, and
// the version's status is returned (its State may be checksum_mismatch when
// the version was installed before with another executable). A connector
// or version not in the plugin directory fails with ErrUnknownApp or
// ErrUnknownVersion.
func (m *Manager) Install(ctx context.Context, name, version, wantSHA256 string) (VersionStatus, error) {
	if !validName.MatchString(name) {
		return VersionStatus{}, fmt.Errorf("connectors: install %q: invalid connector name: %w", name, ErrUnknownApp)
	}
	if version == "" || version == "." || version == ".." || strings.ContainsAny(version, `/\`) {
		return VersionStatus{}, fmt.Errorf("connectors: install %s %q: invalid version: %w", name, version, ErrUnknownVersion)
	}
	m.admin.Lock()
	defer m.admin.Unlock()
	abs, err := filepath.Abs(m.dir)
	if err != nil {
		return VersionStatus{}, fmt.Errorf("connectors: install %s %s: %w", name, version, err)
	}
	nameDir := filepath.Join(abs, name) // absolute, as Scan records paths
	if fi, err := os.Stat(nameDir); err != nil || !fi.IsDir() {
		return VersionStatus{}, fmt.Errorf("connectors: install %s: no directory %s: %w", name, nameDir, ErrUnknownApp)
	}
	sv, err := scanVersion(ctx, name, version, filepath.Join(nameDir, version))
	switch {
	case err != nil:
		return VersionStatus{}, fmt.Errorf("connectors: install %s %s: %w: %w", name, version, ErrUnknownVersion, err)
	case sv == nil:
		return VersionStatus{}, fmt.Errorf("connectors: install %s %s: %s is not a directory: %w", name, version, filepath.Join(nameDir, version), ErrUnknownVersion)
	}
	if wantSHA256 != "" && !strings.EqualFold(wantSHA256, sv.SHA256) {
		return VersionStatus{}, &SHA256MismatchError{Name: name, Version: version, Path: sv.Path, Got: sv.SHA256, Want: strings.ToLower(wantSHA256)}
	}
	if err := m.syncLocked(ctx, sv); err != nil {
		return VersionStatus{}, err
	}
	for _, st := range m.Status() {
		if st.Name == name && st.Version == version {
			return st, nil
		}
	}
	return VersionStatus{}, fmt.Errorf("connectors: install %s %s: not in the catalog after sync: %w", name, version, ErrUnknownVersion)
}

// syncLocked is Sync with m.admin held. checked, when not nil, is a version
// Install hashed: it replaces what the scan found for that version, so the
// catalog records the sha256 that was checked (an executable changed since
// fails its launch with ErrChecksumMismatch).
func (m *Manager) syncLocked(ctx context.Context, checked *ScannedVersion) error {
	found, problems, err := Scan(ctx, m.dir)
	if err != nil {
		return err
	}
	for _, p := range problems {
		m.logger.Warn("skipping plugin directory entry", "error", p)
	}
	if checked != nil {
		replaced := false
		for i := range found {
			if found[i].Name == checked.Name && found[i].Version == checked.Version {
				found[i], replaced = *checked, true
			}
		}
		if !replaced {
			found = append(found, *checked)
		}
	}
	st, err := syncCatalog(ctx, m.db, found, m.opts.reinstallChanged)
	if err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("connectors: sync: %w", ErrClosed)
	}
	inDB := map[[2]string]bool{}
	for _, r := range st.versions {
		inDB[[2]string{r.Name, r.Version}] = true
		a := m.apps[r.Name]
		if a == nil {
			a = &app{name: r.Name, versions: map[string]*version{}}
			m.apps[r.Name] = a
		}
		sum, err := hex.DecodeString(r.SHA256)
		if err != nil {
			return fmt.Errorf("connectors: sync: %s %s: bad stored sha256: %w", r.Name, r.Version, err)
		}
		v := a.versions[r.Version]
		if v == nil || v.sha256 != r.SHA256 { // new, or reinstalled by an operator
			if v != nil && v.proc != nil && v.proc.leases == 0 {
				m.retireLocked(v.proc) // else at its last release
			}
			v = &version{name: r.Name, version: r.Version}
			a.versions[r.Version] = v
		}
		v.sha256, v.sum, v.path, v.status = r.SHA256, sum, r.Path, r.Status
		if v.spec == nil {
			spec, err := decodeSpec(r.Spec, r.Docs)
			if err != nil {
				m.logger.Warn("ignoring stored spec", "connector", r.Name, "version", r.Version, "error", err)
			}
			v.spec = spec
		}
	}
	for _, a := range m.apps {
		for key, v := range a.versions {
			if !inDB[[2]string{a.name, key}] { // row deleted by an operator
				if v.proc != nil && v.proc.leases == 0 {
					m.retireLocked(v.proc) // else at its last release
				}
				delete(a.versions, key)
			}
		}
		a.active, a.previous = "", ""
	}
	for _, r := range st.connectors {
		if a := m.apps[r.Name]; a != nil {
			a.active, a.previous = r.ActiveVersion.String, r.PreviousVersion.String
		}
	}
	for _, a := range m.apps {
		for _, v := range a.versions {
			if p := v.proc; p != nil && p.leases == 0 && m.shouldRetireLocked(p) {
				m.retireLocked(p)
			}
		}
	}
	return nil
}

// Apps implements Registry: every connector with an active version, sorted
// by name, with that version's Spec (launching its process if the Spec is
// not cached yet). A connector that cannot be described is left out and its
// error joined into err; the returned list is valid even when err is not nil.
func (m *Manager) Apps(ctx context.Context) ([]App, error) {
	m.mu.Lock()
	names := make([]string, 0, len(m.apps))
	for n, a := range m.apps {
		if a.active != "" {
			names = append(names, n)
		}
	}
	m.mu.Unlock()
	sort.Strings(names)
	out := make([]App, 0, len(names))
	var errs []error
	for _, n := range names {
		a, err := m.App(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("connectors: apps: %w", ctx.Err())
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}

// App implements Registry: the connector's active version and its Spec. The
// Spec is cached per version (in memory and in the catalog); when it is not
// known yet, the version's process is started to ask for it.
func (m *Manager) App(ctx context.Context, name string) (App, error) {
	m.mu.Lock()
	a := m.apps[name]
	if a == nil {
		m.mu.Unlock()
		return App{}, fmt.Errorf("connectors: app %q: %w", name, ErrUnknownApp)
	}
	ver := a.active
	var spec *sdk.Spec
	if v := a.versions[ver]; v != nil {
		spec = v.spec
	}
	m.mu.Unlock()
	if ver == "" {
		return App{}, fmt.Errorf("connectors: app %s: %w", name, ErrNoActiveVersion)
	}
	if spec == nil {
		l, err := m.acquire(ctx, name, ver)
		if err != nil {
			return App{}, fmt.Errorf("connectors: app %s: spec: %w", name, err)
		}
		l.Release()
		m.mu.Lock()
		if v := a.versions[ver]; v != nil {
			spec = v.spec
		}
		m.mu.Unlock()
		if spec == nil {
			return App{}, fmt.Errorf("connectors: app %s %s: no spec after launch", name, ver)
		}
	}
	return App{Name: name, Version: ver, Spec: cloneSpec(spec)}, nil
}

// Acquire implements Registry: a lease on the active version of the named
// connector, starting (or restarting) its process if needed. Concurrent
// calls share one launch. A crashed process is restarted no earlier than its
// backoff allows: Acquire waits for it, or fails at once with
// ErrRestartBackoff when ctx's deadline is earlier. A version that crashed
// too often fails with ErrCrashLoop.
func (m *Manager) Acquire(ctx context.Context, name string) (*Lease, error) {
	return m.acquire(ctx, name, "")
}

// AcquireVersion is Acquire for a given version (a run that pinned it),
// active or not. The process of a version that is not active stops when its
// last lease is released.
func (m *Manager) AcquireVersion(ctx context.Context, name, version string) (*Lease, error) {
	if version == "" {
		return nil, fmt.Errorf("connectors: acquire %s: empty version: %w", name, ErrUnknownVersion)
	}
	return m.acquire(ctx, name, version)
}

// acquire leases a process of want (the active version if empty).
func (m *Manager) acquire(ctx context.Context, name, want string) (*Lease, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("connectors: acquire %s: %w", name, err)
		}
		m.mu.Lock()
		v, err := m.lookupLocked(name, want)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		what := v.name + " " + v.version

		if p := v.proc; p != nil {
			if p.client.Exited() {
				ev := m.dropLocked(p, fmt.Errorf("process %d exited", p.pid))
				m.mu.Unlock()
				m.emit(ev)
				continue
			}
			if p.suspect {
				m.mu.Unlock()
				perr := m.probe(ctx, p)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("connectors: acquire %s: %w", what, ctx.Err())
				}
				m.mu.Lock()
				var ev Event
				if perr != nil {
					ev = m.dropLocked(p, perr)
				} else {
					p.suspect = false
				}
				m.mu.Unlock()
				m.emit(ev)
				continue
			}
			p.leases++
			m.mu.Unlock()
			return m.newLease(p), nil
		}

		op := v.launching
		if op == nil {
			now := m.opts.now()
			if n := m.pruneLocked(v, now); n >= m.opts.crashLimit {
				until := v.crashes[0].Add(m.opts.crashWindow)
				err := fmt.Errorf("connectors: acquire %s: %w: %d crashes or failed launches within %s (last: %v); refused until %s or an operator resets it",
					what, ErrCrashLoop, n, m.opts.crashWindow, v.lastErr, until.Format(time.RFC3339))
				m.mu.Unlock()
				return nil, err
			}
			if at := m.retryAtLocked(v); now.Before(at) {
				m.mu.Unlock()
				if dl, ok := ctx.Deadline(); ok && dl.Before(at) {
					return nil, fmt.Errorf("connectors: acquire %s: %w until %s (last: %v)", what, ErrRestartBackoff, at.Format(time.RFC3339Nano), v.lastErr)
				}
				t := time.NewTimer(at.Sub(now))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, fmt.Errorf("connectors: acquire %s: waiting for restart backoff: %w", what, ctx.Err())
				case <-m.closing:
					t.Stop()
					return nil, fmt.Errorf("connectors: acquire %s: %w", what, ErrClosed)
				}
				continue
			}
			op = &launchOp{done: make(chan struct{})}
			v.launching = op
			m.wg.Add(1)
			go m.launch(v, op, launchArgs{name: v.name, version: v.version, path: v.path, sum: v.sum})
		}
		op.waiters++
		m.mu.Unlock()

		select {
		case <-op.done:
		case <-ctx.Done():
			m.mu.Lock()
			owed := op.completed && op.proc != nil
			if !op.completed {
				op.waiters--
			}
			m.mu.Unlock()
			if owed {
				m.release(op.proc)
			}
			return nil, fmt.Errorf("connectors: acquire %s: waiting for launch: %w", what, ctx.Err())
		}
		if op.err != nil {
			return nil, op.err
		}
		return m.newLease(op.proc), nil
	}
}

// lookupLocked finds the version to acquire and checks it may be used.
func (m *Manager) lookupLocked(name, want string) (*version, error) {
	if m.closed {
		return nil, fmt.Errorf("connectors: acquire %s: %w", name, ErrClosed)
	}
	a := m.apps[name]
	if a == nil {
		return nil, fmt.Errorf("connectors: acquire %q: %w", name, ErrUnknownApp)
	}
	ver := want
	if ver == "" {
		ver = a.active
		if ver == "" {
			return nil, fmt.Errorf("connectors: acquire %s: %w", name, ErrNoActiveVersion)
		}
	}
	v := a.versions[ver]
	if v == nil {
		return nil, fmt.Errorf("connectors: acquire %s %s: %w", name, ver, ErrUnknownVersion)
	}
	switch v.status {
	case StatusChecksumMismatch:
		return nil, fmt.Errorf("connectors: acquire %s %s: refusing to launch %s: %w", name, ver, v.path, ErrChecksumMismatch)
	case StatusMissing:
		return nil, fmt.Errorf("connectors: acquire %s %s: %s: %w", name, ver, v.path, ErrMissing)
	}
	return v, nil
}

// launch starts a process for v and hands it to the waiters of op.
func (m *Manager) launch(v *version, op *launchOp, args launchArgs) {
	defer m.wg.Done()
	start := time.Now()
	p, spec, err := m.startProcess(args)
	took := time.Since(start)

	var evs []Event
	var persistStatus string
	var persistSpec *sdk.Spec
	var discard *proc
	m.mu.Lock()
	v.launching = nil
	op.completed = true
	now := m.opts.now()
	switch {
	case err == nil && m.closed:
		discard = p
		op.err = fmt.Errorf("connectors: acquire %s %s: %w", args.name, args.version, ErrClosed)
	case errors.Is(err, ErrChecksumMismatch):
		v.status, v.lastErr = StatusChecksumMismatch, err
		persistStatus = StatusChecksumMismatch
		op.err = err
		evs = append(evs, Event{Kind: EventStartFailed, Name: args.name, Version: args.version, At: now, Took: took, Err: err})
	case err != nil:
		v.crashes = append(v.crashes, now)
		v.crashedSinceStart, v.lastErr = true, err
		op.err = err
		evs = append(evs, Event{Kind: EventStartFailed, Name: args.name, Version: args.version, At: now, Took: took, Err: err})
	default:
		p.v = v
		v.proc = p
		m.procs[p] = struct{}{}
		if v.crashedSinceStart {
			v.restarts++
			v.crashedSinceStart = false
		}
		if v.spec == nil {
			v.spec, persistSpec = spec, spec
		}
		p.leases = op.waiters
		op.proc = p
		evs = append(evs, Event{Kind: EventStarted, Name: args.name, Version: args.version, PID: p.pid, At: now, Took: took})
		if p.leases == 0 && m.shouldRetireLocked(p) { // every waiter gave up
			m.retireLocked(p)
		}
	}
	m.mu.Unlock()
	if discard != nil {
		close(op.done)
		discard.client.Kill()
		return
	}
	if err != nil {
		m.logger.Error("connector launch failed", "connector", args.name, "version", args.version, "error", err)
	} else {
		m.logger.Info("connector started", "connector", args.name, "version", args.version, "pid", p.pid, "took", took)
	}
	m.emit(evs...) // before the waiters return: the hook sees the outcome first
	close(op.done)

	ctx, cancel := context.WithTimeout(m.ctx, m.opts.startTimeout)
	defer cancel()
	if persistStatus != "" {
		if err := setVersionStatus(ctx, m.db, args.name, args.version, persistStatus); err != nil {
			m.logger.Error("recording connector status", "error", err)
		}
	}
	if persistSpec != nil {
		if err := saveSpec(ctx, m.db, args.name, args.version, persistSpec); err != nil {
			m.logger.Warn("caching connector spec", "error", err)
		}
	}
}

// probe checks that a process which returned a transport error still
// answers. An error from the connector itself proves it alive.
func (m *Manager) probe(ctx context.Context, p *proc) error {
	pctx, cancel := context.WithTimeout(ctx, m.opts.probeTimeout)
	defer cancel()
	_, err := p.conn.Spec(pctx)
	var ce *sdk.ConnectorError
	if err == nil || errors.As(err, &ce) {
		return nil
	}
	return fmt.Errorf("process %d does not answer: %w", p.pid, err)
}

// dropLocked forgets a dead or unresponsive process, records the crash and
// reaps the process in the background.
func (m *Manager) dropLocked(p *proc, cause error) Event {
	if p.gone {
		return Event{}
	}
	p.gone = true
	delete(m.procs, p)
	v := p.v
	if v.proc == p {
		v.proc = nil
	}
	now := m.opts.now()
	v.crashes = append(v.crashes, now)
	v.crashedSinceStart, v.lastErr = true, cause
	m.logger.Warn("connector process crashed", "connector", v.name, "version", v.version, "pid", p.pid, "error", cause)
	m.wg.Add(1)
	go m.stopProcess(p, false)
	return Event{Kind: EventCrashed, Name: v.name, Version: v.version, PID: p.pid, At: now, Err: cause}
}

// shouldRetireLocked reports whether an idle process should not be kept:
// only the active version of a connector keeps an idle process.
func (m *Manager) shouldRetireLocked(p *proc) bool {
	v := p.v
	a := m.apps[v.name]
	return a == nil || a.active != v.version || v.status != StatusInstalled || a.versions[v.version] != v
}

// retireLocked stops a process on purpose (Stop, then Kill) in the
// background (EventStopped is reported when it has exited).
func (m *Manager) retireLocked(p *proc) {
	if p.gone || m.closed {
		return
	}
	p.gone = true
	delete(m.procs, p)
	if p.v.proc == p {
		p.v.proc = nil
	}
	m.logger.Info("retiring connector process", "connector", p.v.name, "version", p.v.version, "pid", p.pid)
	m.wg.Add(1)
	go m.stopProcess(p, true)
}

// stopProcess ends a process: Connector.Stop first when graceful, then
// go-plugin's Kill, which waits for the process to exit.
func (m *Manager) stopProcess(p *proc, graceful bool) {
	defer m.wg.Done()
	if graceful {
		ctx, cancel := context.WithTimeout(m.ctx, m.opts.stopTimeout)
		if err := p.conn.Stop(ctx); err != nil {
			m.logger.Warn("connector stop failed", "connector", p.v.name, "version", p.v.version, "pid", p.pid, "error", err)
		}
		cancel()
	}
	p.client.Kill()
	if graceful {
		m.emit(Event{Kind: EventStopped, Name: p.v.name, Version: p.v.version, PID: p.pid, At: m.opts.now()})
	}
}

// release gives back one lease on p; the last lease of a process that should
// not be kept stops it.
func (m *Manager) release(p *proc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.leases--
	if p.leases == 0 && !p.gone && m.shouldRetireLocked(p) {
		m.retireLocked(p)
	}
}

// pruneLocked drops the crashes older than the crash window and returns how
// many remain.
func (m *Manager) pruneLocked(v *version, now time.Time) int {
	cut := now.Add(-m.opts.crashWindow)
	i := 0
	for i < len(v.crashes) && !v.crashes[i].After(cut) {
		i++
	}
	v.crashes = v.crashes[i:]
	return len(v.crashes)
}

// retryAtLocked is when v may be started again: after its last crash plus
// the backoff for the number of crashes in the window (zero if none).
func (m *Manager) retryAtLocked(v *version) time.Time {
	n := len(v.crashes)
	if n == 0 {
		return time.Time{}
	}
	if n >= m.opts.crashLimit {
		return v.crashes[0].Add(m.opts.crashWindow)
	}
	return v.crashes[n-1].Add(m.backoff(n))
}

// backoff is the restart delay after n crashes: initial doubling, at most max.
func (m *Manager) backoff(n int) time.Duration {
	d := m.opts.backoffInitial
	for i := 1; i < n && d < m.opts.backoffMax; i++ {
		d *= 2
	}
	return min(d, m.opts.backoffMax)
}

// ResetCrashes is the operator action that clears the crash history of a
// version, so that a crashed version may be started again at once.
func (m *Manager) ResetCrashes(name, version string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.apps[name]
	if a == nil {
		return fmt.Errorf("connectors: reset crashes of %q: %w", name, ErrUnknownApp)
	}
	v := a.versions[version]
	if v == nil {
		return fmt.Errorf("connectors: reset crashes of %s %s: %w", name, version, ErrUnknownVersion)
	}
	v.crashes = nil
	return nil
}

// Activate makes version the active version of the connector (the one
// Acquire leases) and remembers the previous one for Rollback. Leases on the
// old version are unaffected; its process stops when the last one is
// released.
func (m *Manager) Activate(ctx context.Context, name, version string) error {
	m.admin.Lock()
	defer m.admin.Unlock()
	m.mu.Lock()
	a, err := m.adminLookupLocked(name, version)
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("connectors: activate %s %s: %w", name, version, err)
	}
	old := a.active
	m.mu.Unlock()
	if old == version {
		return nil
	}
	return m.moveActive(ctx, a, old, version, old)
}

// Rollback makes the previous active version active again (and the current
// one previous, so a second Rollback undoes the first).
func (m *Manager) Rollback(ctx context.Context, name string) error {
	m.admin.Lock()
	defer m.admin.Unlock()
	m.mu.Lock()
	a := m.apps[name]
	if a == nil {
		m.mu.Unlock()
		return fmt.Errorf("connectors: rollback %q: %w", name, ErrUnknownApp)
	}
	cur, prev := a.active, a.previous
	if prev == "" {
		m.mu.Unlock()
		return fmt.Errorf("connectors: rollback %s: %w", name, ErrNoPreviousVersion)
	}
	if _, err := m.adminLookupLocked(name, prev); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("connectors: rollback %s to %s: %w", name, prev, err)
	}
	m.mu.Unlock()
	return m.moveActive(ctx, a, cur, prev, cur)
}

// adminLookupLocked checks that version may become active.
func (m *Manager) adminLookupLocked(name, version string) (*app, error) {
	if m.closed {
		return nil, ErrClosed
	}
	a := m.apps[name]
	if a == nil {
		return nil, ErrUnknownApp
	}
	v := a.versions[version]
	if v == nil {
		return nil, ErrUnknownVersion
	}
	switch v.status {
	case StatusChecksumMismatch:
		return nil, ErrChecksumMismatch
	case StatusMissing:
		return nil, ErrMissing
	}
	return a, nil
}

// moveActive persists and applies a move of the active alias from cur to
// next, then stops the old version's process if it has no lease.
func (m *Manager) moveActive(ctx context.Context, a *app, cur, next, previous string) error {
	if err := setActive(ctx, m.db, a.name, cur, next, previous); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a.active, a.previous = next, previous
	m.logger.Info("connector version activated", "connector", a.name, "version", next, "previous", previous)
	if v := a.versions[cur]; v != nil && v.proc != nil && v.proc.leases == 0 {
		m.retireLocked(v.proc)
	}
	return nil
}

// RefreshActive reads the active and previous versions from the catalog, so
// a version another host activated (or rolled back to) is the one this host
// leases from now on; idle processes of versions no longer active stop.
// Unlike Sync it does not scan the plugin directory, so it is cheap enough
// to run every few seconds; only when the active version is one this host
// does not know (installed by another host and not synced here yet) does it
// Sync, then apply the catalog again. A version still unknown after that is
// logged and left for a later refresh.
func (m *Manager) RefreshActive(ctx context.Context) error {
	unknown, err := m.refreshActive(ctx)
	if err != nil || len(unknown) == 0 {
		return err
	}
	for _, u := range unknown {
		m.logger.Info("connector version activated elsewhere is not known here: syncing the catalog", "connector", u[0], "version", u[1])
	}
	if err := m.Sync(ctx); err != nil { // takes m.admin itself
		return fmt.Errorf("connectors: refresh active versions: %w", err)
	}
	if unknown, err = m.refreshActive(ctx); err != nil {
		return err
	}
	for _, u := range unknown {
		m.logger.Warn("connector version active in the catalog is unknown on this host, even after a sync: keeping the current one", "connector", u[0], "version", u[1])
	}
	return nil
}

// refreshActive applies the catalog's active and previous versions and
// returns the connectors (name, version) whose active version this host does
// not know, which it leaves as they are. The catalog is read with m.admin
// held, so a concurrent Activate or Rollback of this host cannot be reverted
// by a row read before it.
func (m *Manager) refreshActive(ctx context.Context) ([][2]string, error) {
	m.admin.Lock()
	defer m.admin.Unlock()
	var rows []connectorRow
	if err := m.db.SelectContext(ctx, &rows, `SELECT name, active_version, previous_version FROM connectors`); err != nil {
		return nil, fmt.Errorf("connectors: refresh active versions: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("connectors: refresh active versions: %w", ErrClosed)
	}
	var unknown [][2]string
	for _, r := range rows {
		a := m.apps[r.Name]
		if a == nil {
			if r.ActiveVersion.String != "" {
				unknown = append(unknown, [2]string{r.Name, r.ActiveVersion.String})
			}
			continue
		}
		if a.active == r.ActiveVersion.String && a.previous == r.PreviousVersion.String {
			continue
		}
		if _, ok := a.versions[r.ActiveVersion.String]; !ok {
			unknown = append(unknown, [2]string{r.Name, r.ActiveVersion.String})
			continue
		}
		old := a.active
		a.active, a.previous = r.ActiveVersion.String, r.PreviousVersion.String
		m.logger.Info("connector version activated elsewhere", "connector", a.name, "version", a.active, "previous", old)
		if v := a.versions[old]; v != nil && v.proc != nil && v.proc.leases == 0 {
			m.retireLocked(v.proc)
		}
	}
	return unknown, nil
}

// Status reports the state of every installed version, sorted by connector
// name and version.
func (m *Manager) Status() []VersionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.now()
	var out []VersionStatus
	for _, a := range m.apps {
		for _, v := range a.versions {
			s := VersionStatus{
				Name: v.name, Version: v.version, SHA256: v.sha256, Path: v.path,
				Active: a.active == v.version, Restarts: v.restarts, Crashes: m.pruneLocked(v, now),
			}
			if v.lastErr != nil {
				s.LastError = v.lastErr.Error()
			}
			if p := v.proc; p != nil {
				s.PID, s.Leases = p.pid, p.leases
			}
			switch {
			case v.status != StatusInstalled:
				s.State = v.status
			case v.proc != nil && v.proc.client.Exited():
				s.State = StateExited
			case v.proc != nil:
				s.State = StateRunning
			case v.launching != nil:
				s.State = StateStarting
			case s.Crashes >= m.opts.crashLimit:
				s.State, s.RetryAt = StateCrashed, m.retryAtLocked(v)
			case s.Crashes > 0 && now.Before(m.retryAtLocked(v)):
				s.State, s.RetryAt = StateBackoff, m.retryAtLocked(v)
			case v.crashedSinceStart:
				s.State = StateExited
			default:
				s.State = StateIdle
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return semverLess(out[i].Version, out[j].Version)
	})
	return out
}

// Close stops every process: Connector.Stop (bounded by the stop timeout),
// then go-plugin's Kill, and waits for them to exit and for launches in
// flight to end. Leases still held become unusable. Later calls to the
// Manager fail with ErrClosed. If ctx ends first, Close returns its error
// while the processes are still being killed.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.closing)
		for p := range m.procs {
			p.gone = true
			if p.v.proc == p {
				p.v.proc = nil
			}
			m.wg.Add(1)
			go m.stopProcess(p, true)
		}
		clear(m.procs)
	}
	m.mu.Unlock()

	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }() // ends when the stops and launches end
	select {
	case <-done:
		m.cancel()
		return nil
	case <-ctx.Done():
		m.cancel() // aborts the Stop calls: the kills follow at once
		return fmt.Errorf("connectors: close: %w", ctx.Err())
	}
}

// emit reports events to the hook; zero events are skipped.
func (m *Manager) emit(evs ...Event) {
	if m.opts.onEvent == nil {
		return
	}
	for _, e := range evs {
		if e.Kind != "" {
			m.opts.onEvent(e)
		}
	}
}

// cloneSpec deep-copies a Spec so that callers cannot alter the cache.
func cloneSpec(s *sdk.Spec) sdk.Spec {
	out := *s
	out.ConfigSchema = append([]byte(nil), s.ConfigSchema...)
	out.Objects = make([]sdk.Object, len(s.Objects))
	for i, o := range s.Objects {
		o.Fields = append([]sdk.Field(nil), o.Fields...)
		out.Objects[i] = o
	}
	return out
}
