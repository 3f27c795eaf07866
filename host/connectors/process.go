package connectors

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/synchron-io/synchron/sdk"
)

// proc is one connector process. Its fields other than client, conn, pid and
// started are guarded by Manager.mu.
type proc struct {
	v       *version
	client  *plugin.Client
	conn    *sdk.Client
	pid     int
	started time.Time

	leases int
	// suspect: a call returned a transport error; the process is probed
	// before it is handed out again.
	suspect bool
	// gone: the process is no longer its version's process (it died, was
	// retired or closed); it is being or has been killed.
	gone bool
}

// launchArgs is what a launch needs, copied from the version under the lock.
type launchArgs struct {
	name, version, path string
	sum                 []byte
}

// startProcess launches one connector process with go-plugin and checks
// that it answers Spec. go-plugin verifies the executable's SHA-256 against
// the catalog's right before it execs it.
func (m *Manager) startProcess(args launchArgs) (*proc, *sdk.Spec, error) {
	what := args.name + " " + args.version
	cmd := exec.Command(args.path)
	cmd.Env = append([]string(nil), m.opts.env...)
	setParentDeathSignal(cmd)

	// sdk.NewClientConfig sets the handshake, the plugin set, gRPC only, the
	// message limits and SkipHostEnv (the plugin gets cmd.Env only).
	cfg := sdk.NewClientConfig(cmd, m.logger.Named(args.name).With("version", args.version))
	cfg.AutoMTLS = true
	cfg.SecureConfig = &plugin.SecureConfig{Checksum: args.sum, Hash: sha256.New()}
	cfg.StartTimeout = m.opts.startTimeout
	// Not Managed: go-plugin keeps managed clients in a process-wide list
	// that is never pruned (one entry per restart); Close kills ours.
	cfg.Managed = false
	pc := plugin.NewClient(cfg)

	conn, err := sdk.DispenseClient(pc)
	if err != nil {
		pc.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, nil, fmt.Errorf("connectors: start %s: refusing to launch %s: %w", what, args.path, ErrChecksumMismatch)
		}
		return nil, nil, fmt.Errorf("connectors: start %s (%s): %w", what, args.path, err)
	}
	pid := 0
	if rc := pc.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.opts.startTimeout)
	defer cancel()
	spec, err := conn.Spec(ctx)
	if err != nil {
		pc.Kill()
		return nil, nil, fmt.Errorf("connectors: start %s (pid %d): %w", what, pid, err)
	}
	if m.opts.budgets != nil {
		// The process's rate-limit budgets become the host's, shared with
		// every other host; a connector built with an older SDK keeps its own.
		err := conn.AttachBudgets(ctx, m.opts.budgets)
		switch {
		case errors.Is(err, sdk.ErrBudgetsUnsupported):
			m.logger.Warn("connector keeps its rate-limit budgets in its process (not shared across hosts)",
				"connector", args.name, "version", args.version, "error", err)
		case err != nil:
			pc.Kill()
			return nil, nil, fmt.Errorf("connectors: start %s (pid %d): %w", what, pid, err)
		}
	}
	if spec.Name != args.name || spec.Version != args.version {
		m.logger.Warn("connector spec does not match its catalog entry",
			"connector", args.name, "version", args.version, "spec_name", spec.Name, "spec_version", spec.Version)
	}
	return &proc{client: pc, conn: conn, pid: pid, started: time.Now()}, spec, nil
}

// newLease wraps a process the caller already holds a lease count on.
func (m *Manager) newLease(p *proc) *Lease {
	lc := &leaseConn{m: m, p: p}
	var once sync.Once
	return NewLease(lc, p.v.name, p.v.version, func() {
		once.Do(func() {
			lc.released.Store(true)
			m.release(p)
		})
	})
}

// leaseConn is the sdk.Connector of a Lease: the process's client, which
// reports transport errors to the supervisor and refuses calls after
// Release. Stop does nothing: the process is shared, the Manager stops it.
type leaseConn struct {
	m        *Manager
	p        *proc
	released atomic.Bool
}

var _ sdk.Connector = (*leaseConn)(nil)

func (l *leaseConn) check(method string) error {
	if l.released.Load() {
		return fmt.Errorf("connector %s: %s %s: %w", method, l.p.v.name, l.p.v.version, ErrLeaseReleased)
	}
	return nil
}

// observe marks the process suspect after a transport error, so that the
// next Acquire probes it (and restarts it if it is dead) instead of handing
// it out. The error itself is returned unchanged.
func (l *leaseConn) observe(err error) {
	if sdk.IsTransportError(err) {
		l.m.mu.Lock()
		l.p.suspect = true
		l.m.mu.Unlock()
	}
}

func (l *leaseConn) Spec(ctx context.Context) (*sdk.Spec, error) {
	if err := l.check("spec"); err != nil {
		return nil, err
	}
	s, err := l.p.conn.Spec(ctx)
	l.observe(err)
	return s, err
}

func (l *leaseConn) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	if err := l.check("check"); err != nil {
		return nil, err
	}
	r, err := l.p.conn.Check(ctx, req)
	l.observe(err)
	return r, err
}

func (l *leaseConn) Discover(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	if err := l.check("discover"); err != nil {
		return nil, err
	}
	r, err := l.p.conn.Discover(ctx, req)
	l.observe(err)
	return r, err
}

func (l *leaseConn) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	if err := l.check("read"); err != nil {
		return err
	}
	err := l.p.conn.Read(ctx, req, sink)
	l.observe(err)
	return err
}

func (l *leaseConn) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	if err := l.check("write"); err != nil {
		return nil, err
	}
	r, err := l.p.conn.Write(ctx, req)
	l.observe(err)
	return r, err
}

func (l *leaseConn) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	if err := l.check("webhook"); err != nil {
		return nil, err
	}
	r, err := l.p.conn.HandleWebhook(ctx, req)
	l.observe(err)
	return r, err
}

// Stop does nothing: the process is shared by every lease; Release the
// lease instead. The Manager calls the process's Stop when it retires it or
// closes.
func (l *leaseConn) Stop(context.Context) error { return nil }
