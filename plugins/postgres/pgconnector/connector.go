// Package pgconnector is the PostgreSQL connector: it treats one PostgreSQL
// table as an app with a single object, named after the table. Reads page
// through the table with keyset pagination, incrementally on an updated-at
// column when the config names one; writes upsert batches by the key column
// with one statement per batch, falling back to bisection inside savepoints
// to reject only the records PostgreSQL refuses, and return the rows as
// stored. With a soft-delete column, reads report soft-deleted rows as
// deleted records and deletes mark rows instead of removing them.
//
// One Connector serves every account: it keeps one bounded *sql.DB per
// connection URL, shared by all calls, and closes them in Stop.
package pgconnector

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/synchron-io/synchron/sdk"
)

// Name is the connector's name in its Spec.
const Name = "postgres"

// DefaultConnectTimeout bounds the connection and catalog queries of Check
// when the caller's context allows more.
const DefaultConnectTimeout = 15 * time.Second

// Connector is the PostgreSQL connector. It is safe for concurrent use.
type Connector struct {
	version        string
	docs           string
	logger         hclog.Logger
	connectTimeout time.Duration
	pools          *pools
}

var _ sdk.Connector = (*Connector)(nil)

// Option configures New.
type Option func(*options)

type options struct {
	logger         hclog.Logger
	maxPools       int
	maxOpenConns   int
	idleTime       time.Duration
	connectTimeout time.Duration
}

// WithLogger makes the connector log with l (default: no logs). Messages
// never contain passwords.
func WithLogger(l hclog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithPoolLimits bounds the connection pools: at most maxPools idle pools
// (one per connection URL) are kept, each with at most maxOpenConns
// connections, idle connections being closed after idle. Zero keeps a
// default.
func WithPoolLimits(maxPools, maxOpenConns int, idle time.Duration) Option {
	return func(o *options) {
		if maxPools > 0 {
			o.maxPools = maxPools
		}
		if maxOpenConns > 0 {
			o.maxOpenConns = maxOpenConns
		}
		if idle > 0 {
			o.idleTime = idle
		}
	}
}

// WithConnectTimeout bounds Check's connection attempt (default
// DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.connectTimeout = d
		}
	}
}

// New returns the connector reporting the given version (surrounding
// whitespace is trimmed: it usually comes from an embedded VERSION file) and
// Markdown docs.
func New(version, docs string, opts ...Option) *Connector {
	o := options{
		logger:         hclog.NewNullLogger(),
		maxPools:       DefaultMaxPools,
		maxOpenConns:   DefaultMaxOpenConns,
		idleTime:       DefaultConnMaxIdleTime,
		connectTimeout: DefaultConnectTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return &Connector{
		version:        strings.TrimSpace(version),
		docs:           docs,
		logger:         o.logger,
		connectTimeout: o.connectTimeout,
		pools:          newPools(o.logger, o.maxPools, o.maxOpenConns, o.idleTime),
	}
}

// Spec implements sdk.Connector. Objects are discovered (one per config: the
// configured table), so the Spec lists none.
func (c *Connector) Spec(context.Context) (*sdk.Spec, error) {
	return &sdk.Spec{
		Name:            Name,
		Version:         c.version,
		Title:           "PostgreSQL table",
		ConfigSchema:    json.RawMessage(configSchema),
		Capabilities:    sdk.Capabilities{Read: true, Write: true, Discover: true},
		Docs:            c.docs,
		ProtocolVersion: sdk.ProtocolVersion,
	}, nil
}

// session is a config with its pool and inspected table, for one call.
type session struct {
	cfg   Config
	pool  *poolEntry
	db    *sql.DB
	table *table
}

// open acquires the pool of a parsed config and inspects the table. diags
// holds the problems with the table (config keys to fix); err is a failure to
// reach the database. The caller must call c.close(s, ...), even when err is
// set (close ignores a nil session).
func (c *Connector) open(ctx context.Context, cfg Config) (s *session, diags sdk.Diagnostics, err error) {
	e, err := c.pools.acquire(cfg.URL)
	if err != nil {
		return nil, nil, err
	}
	s = &session{cfg: cfg, pool: e, db: e.db}
	t, diags, err := inspect(ctx, e.db, cfg)
	if err != nil {
		return s, nil, redactErr(err, cfg.URL)
	}
	s.table = t
	return s, diags, nil
}

func (c *Connector) close(s *session, discard bool) {
	if s != nil {
		c.pools.release(s.pool, discard)
	}
}

// Check implements sdk.Connector: it validates the config, connects (bounded
// by the connect timeout), and checks the table, the key column, the
// updated-at column and the soft-delete column.
func (c *Connector) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	cfg, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return &sdk.CheckResponse{Diagnostics: diags}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	e, err := c.pools.acquire(cfg.URL)
	if errors.Is(err, errStopped) {
		return nil, err
	}
	if err != nil {
		return &sdk.CheckResponse{Diagnostics: sdk.Diagnostics{sdk.Errorf(keyURL, "url is not a valid PostgreSQL URL", redactURLText(err.Error(), cfg.URL))}}, nil
	}
	ok := false
	defer func() { c.pools.release(e, !ok) }()

	if err := e.db.PingContext(ctx); err != nil {
		d, _ := connProblem(err, cfg.URL)
		c.logger.Info("check: cannot connect", "url", redactedURL(cfg.URL), "error", d.Detail)
		return &sdk.CheckResponse{Diagnostics: sdk.Diagnostics{d}}, nil
	}
	ok = true
	t, diags, err := inspect(ctx, e.db, cfg)
	if err != nil {
		d, _ := connProblem(err, cfg.URL)
		return &sdk.CheckResponse{Diagnostics: sdk.Diagnostics{d}}, nil
	}
	if diags.HasError() {
		return &sdk.CheckResponse{Diagnostics: diags}, nil
	}
	diags = append(diags, c.checkWarnings(ctx, e.db, cfg, t)...)
	return &sdk.CheckResponse{Diagnostics: diags}, nil
}

// checkWarnings reports what works but deserves attention: missing write
// privileges (DELETE is not needed with soft deletes), a nullable key, no
// index for incremental reads.
func (c *Connector) checkWarnings(ctx context.Context, db *sql.DB, cfg Config, t *table) sdk.Diagnostics {
	var diags sdk.Diagnostics
	warn := func(attr, summary, detail string) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning, Attribute: attr, Summary: summary, Detail: detail})
	}
	var missing []string
	for _, p := range []struct {
		name string
		ok   bool
	}{{"INSERT", t.canInsert}, {"UPDATE", t.canUpdate}, {"DELETE", t.canDelete}} {
		if !p.ok && !(p.name == "DELETE" && t.deleted != nil) { // soft deletes UPDATE
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		warn(keyTable, fmt.Sprintf("the user in url may not %s table %q: writes will be rejected", strings.Join(missing, ", "), cfg.Table),
			fmt.Sprintf("GRANT %s ON %s TO the user, or use the connection as a source only", strings.Join(missing, ", "), t.qname))
	}
	if !t.pk.notNull {
		warn(keyPrimaryKey, fmt.Sprintf("column %q allows NULL: rows with a NULL key are never read", cfg.PrimaryKey),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t.qname, quoteIdent(t.pk.name)))
	}
	if t.updatedAt != nil {
		var indexed bool
		err := db.QueryRowContext(ctx, `
SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_index i
  WHERE i.indrelid = $1::regclass AND i.indpred IS NULL AND i.indnkeyatts >= 2
    AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = $2)
    AND i.indkey[1] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = $3))`,
			t.qname, t.updatedAt.name, t.pk.name).Scan(&indexed)
		if err != nil {
			c.logger.Warn("check: index lookup failed", "table", t.qname, "error", redactURLText(err.Error(), cfg.URL))
		} else if !indexed {
			warn(keyUpdatedAtColumn, fmt.Sprintf("no index on (%s, %s): every incremental read page scans the table", t.updatedAt.name, t.pk.name),
				fmt.Sprintf("CREATE INDEX ON %s (%s, %s)", t.qname, quoteIdent(t.updatedAt.name), quoteIdent(t.pk.name)))
		}
	}
	return diags
}

// Discover implements sdk.Connector: one object, named after the table as
// the config gives it, with the table's columns as fields.
func (c *Connector) Discover(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	cfg, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return &sdk.DiscoverResponse{Diagnostics: diags}, nil
	}
	s, diags, err := c.open(ctx, cfg)
	defer c.close(s, err != nil)
	if err != nil {
		if d, permanent := connProblem(err, cfg.URL); permanent {
			return &sdk.DiscoverResponse{Diagnostics: sdk.Diagnostics{d}}, nil
		}
		return nil, fmt.Errorf("postgres: discover %s: %w", cfg.Table, err)
	}
	if diags.HasError() {
		return &sdk.DiscoverResponse{Diagnostics: diags}, nil
	}
	return &sdk.DiscoverResponse{Objects: []sdk.Object{s.table.object(cfg.Table)}, Diagnostics: diags}, nil
}

// HandleWebhook implements sdk.Connector: PostgreSQL has no webhooks.
func (c *Connector) HandleWebhook(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{
		Verified:    false,
		Diagnostics: sdk.Diagnostics{sdk.Errorf("", "postgres does not accept webhooks", "changes are found by incremental reads on updated_at_column")},
	}, nil
}

// Stop implements sdk.Connector: it closes every connection pool (waiting
// for queries in flight, up to ctx) and refuses later calls.
func (c *Connector) Stop(ctx context.Context) error {
	return c.pools.stop(ctx)
}

// connProblem turns a failure to connect or query into a diagnostic on the
// url key, with advice and the redacted error. permanent says that retrying
// with the same config cannot help (authentication, missing database, bad
// SSL settings...).
func connProblem(err error, rawURL string) (d sdk.Diagnostic, permanent bool) {
	msg := redactURLText(err.Error(), rawURL)
	host := "the server"
	if u := redactedURL(rawURL); u != "<invalid url>" {
		host = u
	}
	if pe := pq.As(err); pe != nil {
		switch {
		case pe.Code == pqerror.InvalidPassword || pe.Code.Class() == pqerror.ClassInvalidAuthorizationSpecification:
			return sdk.Errorf(keyURL, "authentication failed", "check the user and password in url: "+msg), true
		case pe.Code == pqerror.InvalidCatalogName:
			return sdk.Errorf(keyURL, "the database does not exist", "check the database name (the path of url): "+msg), true
		case pe.Code == pqerror.InsufficientPrivilege:
			return sdk.Errorf(keyURL, "permission denied", "grant the user in url access to the database and the table: "+msg), true
		case pe.Code == pqerror.TooManyConnections:
			return sdk.Errorf(keyURL, "the server has too many connections", "try again later or raise max_connections: "+msg), false
		}
		return sdk.Errorf(keyURL, "PostgreSQL refused the connection", msg), false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return sdk.Errorf(keyURL, "timed out connecting to "+host, "check the host and port in url and that the server accepts connections from here: "+msg), false
	}
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(msg, "dial ") {
		return sdk.Errorf(keyURL, "cannot reach "+host, "check the host and port in url and that the server accepts connections from here: "+msg), false
	}
	if strings.Contains(msg, "SSL") {
		return sdk.Errorf(keyURL, "SSL negotiation failed", "set sslmode in url (e.g. ?sslmode=require, or ?sslmode=disable for a server without SSL): "+msg), true
	}
	return sdk.Errorf(keyURL, "cannot connect to PostgreSQL", msg), false
}

// redactedError is an error whose message has the connection URL's secrets
// removed; Unwrap still gives the original error (for errors.Is / As).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr removes rawURL's secrets from err's message.
func redactErr(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	msg := redactURLText(err.Error(), rawURL)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
