// Command synchron is the Synchron host: the web API, the run engine and the
// connector runtime in one process. Configuration comes from the environment
// (see README.md); `synchron serve` runs the server, `synchron migrate`
// applies the database migrations and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/synchron-io/synchron/host/api"
	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/scheduler"
	"github.com/synchron-io/synchron/host/secrets"
	"github.com/synchron-io/synchron/host/store"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "synchron:", err)
		os.Exit(1)
	}
}

const usage = `usage: synchron <command>

commands:
  serve       run the web API, the run engine and the connector runtime
  migrate     apply the database migrations and exit
  connectors  list, install, activate and roll back connector versions through
              a host's operator API (synchron connectors help)

environment:
  DATABASE_URL          PostgreSQL URL (required)
  SYNCHRON_ADDR         listen address (default 127.0.0.1:8080; port 0 picks a free port)
  SYNCHRON_PLUGIN_DIR   connector directory <name>/<version>/<executable> (default bin/plugins)
  SYNCHRON_SECRET_KEY   32-byte key, base64 or hex, that encrypts connection credentials (required)
  SYNCHRON_ADMIN_TOKEN  bearer token of the operator API under /admin (empty: disabled)
  SYNCHRON_TRUSTED_PROXIES  comma-separated proxy addresses/CIDRs whose X-Forwarded-For is believed
  SYNCHRON_WORKERS      runs executed at once by this host (default 4)
  SYNCHRON_RUN_LEASE    how long a run stays this host's without a heartbeat; another host takes
                        it over after that (Go duration, default 30s)
  SYNCHRON_SCHEDULER    on or off: enqueue runs of due workflows on this host (default on)
  SYNCHRON_PLUGIN_REINSTALL  on: a rebuilt connector under the same version is installed anew
                        (developer machines; make run and make demo set it). Default off: a
                        changed executable is refused (checksum_mismatch)
  SYNCHRON_LOG_LEVEL    trace, debug, info, warn, error (default info)
  SYNCHRON_LOG_FORMAT   json or text (default json)`

// catalogRefresh is how often a host reads the active connector versions,
// so that an activation on any host reaches every host within it.
const catalogRefresh = 5 * time.Second

// config is the host's configuration, read once from the environment.
type config struct {
	DatabaseURL string
	Addr        string
	PluginDir   string
	SecretKey   []byte
	AdminToken  string
	Workers     int
	LogLevel    string
	LogJSON     bool
	// TrustedProxies are the proxies whose X-Forwarded-For the API believes.
	TrustedProxies []string
	// PasswordCost is the bcrypt cost of password hashes (default 12; tests lower it).
	PasswordCost int
	// RunLease is the run lease of the executor (engine.Options.Lease).
	RunLease time.Duration
	// Scheduler: this host enqueues runs of due workflows (SYNCHRON_SCHEDULER).
	Scheduler bool
	// PluginReinstall: a rebuilt connector executable under the same
	// version is installed anew (developer machines, SYNCHRON_PLUGIN_REINSTALL).
	PluginReinstall bool
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		DatabaseURL:  getenv("DATABASE_URL"),
		Addr:         getenv("SYNCHRON_ADDR"),
		PluginDir:    getenv("SYNCHRON_PLUGIN_DIR"),
		AdminToken:   getenv("SYNCHRON_ADMIN_TOKEN"),
		LogLevel:     getenv("SYNCHRON_LOG_LEVEL"),
		LogJSON:      getenv("SYNCHRON_LOG_FORMAT") != "text",
		Workers:      4,
		PasswordCost: 12,
		RunLease:     30 * time.Second,
		Scheduler:    true,
	}
	if c.DatabaseURL == "" {
		return c, errors.New("DATABASE_URL is not set: give the PostgreSQL URL (make run starts a local one)")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.PluginDir == "" {
		c.PluginDir = "bin/plugins"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if w := getenv("SYNCHRON_WORKERS"); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 || n > 256 {
			return c, fmt.Errorf("SYNCHRON_WORKERS=%q: give a number from 1 to 256", w)
		}
		c.Workers = n
	}
	if l := getenv("SYNCHRON_RUN_LEASE"); l != "" {
		d, err := time.ParseDuration(l)
		if err != nil || d < time.Second {
			return c, fmt.Errorf("SYNCHRON_RUN_LEASE=%q: give a Go duration of at least 1s, e.g. 30s", l)
		}
		c.RunLease = d
	}
	switch v := getenv("SYNCHRON_SCHEDULER"); v {
	case "", "on":
	case "off":
		c.Scheduler = false
	default:
		return c, fmt.Errorf("SYNCHRON_SCHEDULER=%q: give on or off", v)
	}
	switch v := getenv("SYNCHRON_PLUGIN_REINSTALL"); v {
	case "", "off":
	case "on":
		c.PluginReinstall = true
	default:
		return c, fmt.Errorf("SYNCHRON_PLUGIN_REINSTALL=%q: give on or off", v)
	}
	for _, p := range strings.Split(getenv("SYNCHRON_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	if pc := getenv("SYNCHRON_PASSWORD_COST"); pc != "" {
		n, err := strconv.Atoi(pc)
		if err != nil || n < 4 || n > 16 {
			return c, fmt.Errorf("SYNCHRON_PASSWORD_COST=%q: give a bcrypt cost from 4 to 16", pc)
		}
		c.PasswordCost = n
	}
	raw := getenv("SYNCHRON_SECRET_KEY")
	if raw == "" {
		return c, errors.New("SYNCHRON_SECRET_KEY is not set: give 32 random bytes as base64, e.g. `head -c32 /dev/urandom | base64`")
	}
	key, err := secrets.ParseKey(raw)
	if err != nil {
		return c, fmt.Errorf("SYNCHRON_SECRET_KEY: %w", err)
	}
	c.SecretKey = key
	return c, nil
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve", "migrate":
	case "connectors":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runConnectors(ctx, args[1:], os.Getenv, os.Stdout)
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "synchron", Level: hclog.LevelFromString(cfg.LogLevel), JSONFormat: cfg.LogJSON, Output: os.Stderr,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	if cmd == "migrate" {
		logger.Info("migrations applied")
		return nil
	}
	return serve(ctx, cfg, logger, st)
}

func serve(ctx context.Context, cfg config, logger hclog.Logger, st *store.Store) error {
	box, err := secrets.New(cfg.SecretKey)
	if err != nil {
		return err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var managerOpts []connectors.Option
	if cfg.PluginReinstall {
		managerOpts = append(managerOpts, connectors.WithReinstallChanged())
	}
	manager, err := connectors.NewManager(ctx, st.DB(), cfg.PluginDir, logger.Named("connectors"), managerOpts...)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := manager.Close(cctx); err != nil {
			logger.Warn("stop connectors", "error", err)
		}
	}()

	// Versions activated or rolled back on another host are picked up here.
	go func() {
		t := time.NewTicker(catalogRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := manager.RefreshActive(ctx); err != nil && ctx.Err() == nil {
					logger.Warn("refresh active connector versions", "error", err)
				}
			}
		}
	}()

	exec := engine.NewExecutor(st.DB(), manager, box, logger, engine.Options{Workers: cfg.Workers, Lease: cfg.RunLease})
	exec.Start(ctx)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := exec.Stop(sctx); err != nil {
			logger.Warn("stop engine", "error", err)
		}
	}()
	if cfg.Scheduler {
		// Started after the executor, stopped (deferred) before it.
		enqueued := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "synchron_scheduler_runs_enqueued_total", Help: "Runs of due workflows enqueued by this host's scheduler.",
		})
		metrics.MustRegister(enqueued)
		sched := scheduler.New(st.DB(), logger, scheduler.Options{OnEnqueued: func(n int) {
			enqueued.Add(float64(n))
			exec.Wake(n)
		}})
		sched.Start(ctx)
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := sched.Stop(sctx); err != nil {
				logger.Warn("stop scheduler", "error", err)
			}
		}()
	}

	handler := api.New(api.Deps{
		Store: st, Registry: manager, Admin: manager, Runner: exec, Secrets: box, AdminToken: cfg.AdminToken,
		Logger: logger.Named("api"), Metrics: metrics, PasswordCost: cfg.PasswordCost,
		TrustedProxies: cfg.TrustedProxies,
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	// The first line on stdout says where the server listens: scripts and
	// tests that start it with port 0 read it.
	fmt.Printf("synchron: listening on http://%s\n", ln.Addr())
	logger.Info("listening", "addr", ln.Addr().String(), "host_id", exec.HostID(), "plugin_dir", cfg.PluginDir)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
