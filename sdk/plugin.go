package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// PluginName is the key of the connector plugin in PluginSet, for Dispense.
const PluginName = "connector"

// MaxMessageBytes is the largest gRPC message either side sends or accepts
// (a Read batch, a Write request...). gRPC's default receive limit is 4 MiB;
// both the plugin (Serve) and the host (ClientDialOptions) set this one
// explicitly so that they agree.
const MaxMessageBytes = 64 << 20

// LogLevelEnv names the environment variable that sets the level of a
// plugin's logs (trace, debug, info, warn, error; default info).
const LogLevelEnv = "SYNCHRON_LOG_LEVEL"

// DefaultStopTimeout bounds the Connector.Stop call Serve makes before the
// process exits. It is shorter than the 2 s go-plugin's Client.Kill waits for a
// graceful exit.
const DefaultStopTimeout = 1500 * time.Millisecond

// parentPollInterval is how often Serve checks that the host is still alive.
const parentPollInterval = 500 * time.Millisecond

// HandshakeConfig returns the go-plugin handshake shared by the host and every
// connector. The magic cookie only prevents running a plugin by hand; it is not
// a security measure. ProtocolVersion is sdk.ProtocolVersion.
func HandshakeConfig() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "SYNCHRON_CONNECTOR",
		MagicCookieValue: "3e427812df15e65e1ad426eae9b1700dab59e6c3d01f3851d18b55155186f4c8",
	}
}

// GRPCPlugin is the go-plugin plugin of a connector. In a plugin process Impl
// is the connector to serve (Serve sets it); on the host Impl is nil and
// GRPCClient returns a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the connector served by GRPCServer.
	Impl Connector
	// Logger receives recovered panics with their stack (nil: discarded).
	Logger hclog.Logger
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the connector service on s.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("sdk: GRPCPlugin.Impl is nil: no connector to serve")
	}
	connectorv1.RegisterConnectorServer(s, newGRPCServer(p.Impl, p.Logger, broker))
	return nil
}

// GRPCClient returns a *Client calling the connector on cc; the broker lets
// the Client serve the host's budgets to the connector (AttachBudgets).
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	c := NewClient(cc)
	c.broker = broker
	return c, nil
}

// PluginSet is the host's set of plugins for protocol version ProtocolVersion:
// use it as ClientConfig.VersionedPlugins[ProtocolVersion].
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{}}
}

// ClientDialOptions are the gRPC dial options the host must use for a
// connector (ClientConfig.GRPCDialOptions): they raise the message limits to
// MaxMessageBytes.
func ClientDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
	}
}

// serverOptions are the gRPC server options of a connector process.
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	}
}

// NewClientConfig returns the go-plugin client configuration to launch the
// connector program cmd. The host may adjust it (StartTimeout, AutoMTLS,
// SyncStdout...) before plugin.NewClient. logger receives the plugin's logs
// (its JSON lines on stderr are parsed into log entries); nil uses go-plugin's
// default.
//
// The plugin does not inherit the host's environment (SkipHostEnv): it gets
// cmd.Env plus go-plugin's own variables, so host secrets do not leak into
// connector processes. Put in cmd.Env what connectors need (SYNCHRON_LOG_LEVEL,
// proxy settings, TZ...). Without SkipHostEnv go-plugin would append the
// host's whole environment after cmd.Env, overriding it.
func NewClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  HandshakeConfig(),
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: PluginSet()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  ClientDialOptions(),
		Logger:           logger,
		SkipHostEnv:      true,
	}
}

// DispenseClient connects to the plugin launched by pc (starting it if
// needed) and returns its connector.
func DispenseClient(pc *plugin.Client) (*Client, error) {
	rpc, err := pc.Client()
	if err != nil {
		return nil, fmt.Errorf("sdk: start connector plugin: %w", err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("sdk: dispense connector plugin: %w", err)
	}
	c, ok := raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("sdk: dispense connector plugin: got %T, want *sdk.Client", raw)
	}
	return c, nil
}

// NewLogger returns the logger of a connector process: JSON lines on stderr
// (which go-plugin forwards to the host's logger), level from the
// SYNCHRON_LOG_LEVEL environment variable (default info).
func NewLogger(name string) hclog.Logger {
	raw := os.Getenv(LogLevelEnv)
	level := hclog.Info
	if raw != "" {
		level = hclog.LevelFromString(raw)
	}
	bad := level == hclog.NoLevel
	if bad {
		level = hclog.Info
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if bad {
		logger.Warn("invalid log level, using info", "env", LogLevelEnv, "value", raw)
	}
	return logger
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logger       hclog.Logger
	stopTimeout  time.Duration
	getppid      func() int
	pollInterval time.Duration
	exit         func(code int)
}

// WithLogger makes Serve log with l instead of NewLogger("connector"). Pass
// the same logger to the connector so that all its logs reach the host.
func WithLogger(l hclog.Logger) ServeOption {
	return func(c *serveConfig) { c.logger = l }
}

// WithStopTimeout bounds the Connector.Stop call made before the process
// exits (default DefaultStopTimeout).
func WithStopTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) {
		if d > 0 {
			c.stopTimeout = d
		}
	}
}

// Serve is the whole of a connector program's main:
//
//	func main() { sdk.Serve(myconnector.New()) }
//
// It serves c over gRPC with the handshake of HandshakeConfig and the message
// limits of MaxMessageBytes, logging JSON to stderr. It refuses to run when
// not launched by a host (go-plugin's magic cookie).
//
// The process ends with the host:
//   - when the host closes the plugin (go-plugin's Client.Kill), Serve calls
//     c.Stop (bounded by the stop timeout) and returns;
//   - when the host process dies (its parent pid changes, checked every
//     500 ms) or on SIGTERM, Serve calls c.Stop and exits the process
//     (code 0, or 1 if Stop failed).
//
// SIGINT is ignored, as go-plugin does: a Ctrl-C in a terminal reaches the
// whole process group, and the host must stay able to stop its plugins
// cleanly. If the host dies of it, the parent watch ends the plugin.
//
// c.Stop is called at most once, whether by the host's Stop call or by Serve.
func Serve(c Connector, opts ...ServeOption) {
	cfg := serveConfig{
		stopTimeout:  DefaultStopTimeout,
		getppid:      os.Getppid,
		pollInterval: parentPollInterval,
		exit:         os.Exit,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = NewLogger("connector")
	}
	logger := cfg.logger
	conn := &stopOnce{Connector: c}

	// With SIGPIPE delivered to a channel, a write to the stderr of a dead
	// host fails with EPIPE instead of killing the process before Stop runs.
	pipeCh := make(chan os.Signal, 1)
	signal.Notify(pipeCh, syscall.SIGPIPE)
	defer signal.Stop(pipeCh)
	termCh := make(chan os.Signal, 1)
	signal.Notify(termCh, syscall.SIGTERM)
	defer signal.Stop(termCh)

	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.stopTimeout)
		defer cancel()
		return conn.Stop(ctx)
	}
	shutdown := func(reason string) {
		code := 0
		if err := stop(); err != nil {
			code = 1
			logger.Error("connector stop failed", "reason", reason, "error", err)
		}
		logger.Info("connector exiting", "reason", reason)
		cfg.exit(code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if watchParent(ctx, cfg.getppid, cfg.pollInterval) {
			shutdown("host process exited")
		}
	}()
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case sig := <-termCh:
			shutdown("received " + sig.String())
		}
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: HandshakeConfig(),
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Impl: conn, Logger: logger}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, serverOptions()...))
		},
		Logger: logger,
	})

	// The host closed the plugin.
	cancel()
	wg.Wait()
	if err := stop(); err != nil {
		logger.Error("connector stop failed", "error", err)
	}
}

// watchParent polls getppid every interval and reports true as soon as it
// differs from its value at the start (the parent died and the process was
// re-parented), or false when ctx is done.
func watchParent(ctx context.Context, getppid func() int, interval time.Duration) bool {
	start := getppid()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if getppid() != start {
				return true
			}
		}
	}
}

// stopOnce calls the wrapped connector's Stop once; later calls return the
// first call's error.
type stopOnce struct {
	Connector
	once sync.Once
	err  error
}

func (s *stopOnce) Stop(ctx context.Context) error {
	s.once.Do(func() { s.err = s.Connector.Stop(ctx) })
	return s.err
}
