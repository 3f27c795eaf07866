package connectors

import (
	"os"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Defaults of the Manager's options.
const (
	DefaultStartTimeout   = 30 * time.Second
	DefaultStopTimeout    = 5 * time.Second
	DefaultProbeTimeout   = 2 * time.Second
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultCrashLimit     = 5
	DefaultCrashWindow    = 5 * time.Minute
)

// defaultPluginEnv lists the host environment variables passed on to
// connector processes by default. Nothing else of the host's environment
// reaches them (secrets stay in the host).
func defaultPluginEnv() []string {
	return []string{
		"SYNCHRON_LOG_LEVEL", "TZ",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
	}
}

type options struct {
	startTimeout   time.Duration
	stopTimeout    time.Duration
	probeTimeout   time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	crashLimit     int
	crashWindow    time.Duration
	env            []string
	onEvent        func(Event)
	now            func() time.Time
	// budgets is served to every process (nil: each keeps its own);
	// budgetsSet: WithBudgets was given (else NewManager uses the
	// database's).
	budgets    sdk.BudgetAuthority
	budgetsSet bool
	// reinstallChanged: see WithReinstallChanged.
	reinstallChanged bool
}

func defaultOptions() options {
	var env []string
	for _, k := range defaultPluginEnv() {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return options{
		startTimeout:   DefaultStartTimeout,
		stopTimeout:    DefaultStopTimeout,
		probeTimeout:   DefaultProbeTimeout,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
		crashLimit:     DefaultCrashLimit,
		crashWindow:    DefaultCrashWindow,
		env:            env,
		now:            time.Now,
	}
}

// Option configures a Manager.
type Option func(*options)

// WithStartTimeout bounds a process launch: go-plugin's handshake and the
// first Spec call (default DefaultStartTimeout).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.startTimeout = d
		}
	}
}

// WithStopTimeout bounds the Connector.Stop call made before a process is
// killed, by Close or when an old version retires (default DefaultStopTimeout).
func WithStopTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.stopTimeout = d
		}
	}
}

// WithProbeTimeout bounds the health probe made on a process that returned a
// transport error before it is handed out again (default DefaultProbeTimeout).
func WithProbeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.probeTimeout = d
		}
	}
}

// WithRestartBackoff sets the delay before restarting a crashed process:
// initial after one crash in the crash window, doubling with each further
// crash, at most max (defaults DefaultBackoffInitial, DefaultBackoffMax).
func WithRestartBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.backoffInitial = initial
		}
		if max >= o.backoffInitial {
			o.backoffMax = max
		}
	}
}

// WithCrashLimit marks a version crashed, and refuses to start it, after
// limit crashes (or failed launches) within window, until the oldest of them
// leaves the window or ResetCrashes is called (defaults DefaultCrashLimit,
// DefaultCrashWindow).
func WithCrashLimit(limit int, window time.Duration) Option {
	return func(o *options) {
		if limit > 0 {
			o.crashLimit = limit
		}
		if window > 0 {
			o.crashWindow = window
		}
	}
}

// WithPluginEnv sets the whole environment of connector processes (KEY=VALUE
// entries), replacing the default: the host's values of SYNCHRON_LOG_LEVEL,
// TZ, the proxy variables, SSL_CERT_FILE and SSL_CERT_DIR.
func WithPluginEnv(env []string) Option {
	return func(o *options) { o.env = append([]string(nil), env...) }
}

// WithBudgets sets the rate-limit budgets the Manager serves to its
// connector processes (sdk.Client.AttachBudgets). The default is the
// database's (store.Budgets), shared by every host on the database; nil
// leaves each process its own in-process budgets.
func WithBudgets(b sdk.BudgetAuthority) Option {
	return func(o *options) { o.budgets, o.budgetsSet = b, true }
}

// WithEventHook calls f for every process event (a hook for metrics and
// audit logs). f is called synchronously from the Manager's goroutines,
// never with a lock held; it must be quick and may call Status. The outcome
// of a launch (EventStarted, EventStartFailed) and a crash found by Acquire
// (EventCrashed) are reported before the Acquire calls concerned return;
// EventStopped once the process has exited.
func WithEventHook(f func(Event)) Option {
	return func(o *options) { o.onEvent = f }
}

// WithReinstallChanged makes Sync record an executable that changed on disk
// under the same version as a reinstall (new sha256, spec read again)
// instead of refusing it with checksum_mismatch. For a developer's machine,
// where every build changes the binaries (make run, make demo); never for
// production, where a version's executable must not change.
func WithReinstallChanged() Option {
	return func(o *options) { o.reinstallChanged = true }
}

// EventKind names a process event.
type EventKind string

// Process events.
const (
	// EventStarted: a process was launched and answered Spec (Took is the
	// launch + handshake + Spec time).
	EventStarted EventKind = "started"
	// EventStartFailed: a launch failed (Err says why).
	EventStartFailed EventKind = "start_failed"
	// EventCrashed: a running process was found dead or unresponsive.
	EventCrashed EventKind = "crashed"
	// EventStopped: a process was stopped on purpose (retired or Close).
	EventStopped EventKind = "stopped"
)

// Event is a process event reported to the hook of WithEventHook.
type Event struct {
	Kind    EventKind
	Name    string
	Version string
	PID     int
	At      time.Time
	Took    time.Duration
	Err     error
}
