package pgconnector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lib/pq"
)

// Pool limits (see Options).
const (
	DefaultMaxPools        = 64
	DefaultMaxOpenConns    = 8
	DefaultConnMaxIdleTime = 2 * time.Minute
	DefaultConnMaxLifetime = 30 * time.Minute
)

// errStopped is returned by calls made after Stop.
var errStopped = errors.New("postgres: connector stopped")

// pools holds one *sql.DB per connection URL, shared by every call (and every
// account) using that URL. Unused pools beyond maxPools are closed, least
// recently used first.
type pools struct {
	logger          hclog.Logger
	maxPools        int
	maxOpenConns    int
	connMaxIdleTime time.Duration

	mu      sync.Mutex
	byURL   map[string]*poolEntry
	stopped bool
}

type poolEntry struct {
	url      string
	db       *sql.DB
	refs     int
	lastUsed time.Time
}

func newPools(logger hclog.Logger, maxPools, maxOpenConns int, idle time.Duration) *pools {
	return &pools{
		logger:          logger,
		maxPools:        maxPools,
		maxOpenConns:    maxOpenConns,
		connMaxIdleTime: idle,
		byURL:           map[string]*poolEntry{},
	}
}

// acquire returns the pool of rawURL, opening it if needed. Call release
// when done with it.
func (p *pools) acquire(rawURL string) (*poolEntry, error) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil, errStopped
	}
	e, ok := p.byURL[rawURL]
	if !ok {
		cfg, err := pq.NewConfig(rawURL)
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("postgres: parse url: %s", redactURLText(err.Error(), rawURL))
		}
		// One round trip per parameterized statement instead of two
		// (prepare, then bind and execute). The connector never sends []byte
		// parameters, the only ones this changes the encoding of.
		cfg.BinaryParameters = true
		connector, err := pq.NewConnectorConfig(cfg)
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("postgres: parse url: %s", redactURLText(err.Error(), rawURL))
		}
		db := sql.OpenDB(connector)
		db.SetMaxOpenConns(p.maxOpenConns)
		db.SetMaxIdleConns(p.maxOpenConns)
		db.SetConnMaxIdleTime(p.connMaxIdleTime)
		db.SetConnMaxLifetime(DefaultConnMaxLifetime)
		e = &poolEntry{url: rawURL, db: db}
		p.byURL[rawURL] = e
		p.logger.Debug("opened connection pool", "url", redactedURL(rawURL))
	}
	e.refs++
	e.lastUsed = time.Now()
	evicted := p.evictLocked()
	p.mu.Unlock()
	p.closeAll(evicted)
	return e, nil
}

// release gives back a pool from acquire. discard closes it once unused (a
// URL that failed to connect is not worth keeping).
func (p *pools) release(e *poolEntry, discard bool) {
	p.mu.Lock()
	e.refs--
	e.lastUsed = time.Now()
	var evicted []*poolEntry
	if discard && e.refs == 0 && p.byURL[e.url] == e {
		delete(p.byURL, e.url)
		evicted = append(evicted, e)
	}
	evicted = append(evicted, p.evictLocked()...)
	p.mu.Unlock()
	p.closeAll(evicted)
}

// evictLocked removes unused pools beyond maxPools, least recently used
// first, and returns them to be closed.
func (p *pools) evictLocked() []*poolEntry {
	var out []*poolEntry
	for len(p.byURL) > p.maxPools {
		var lru *poolEntry
		for _, e := range p.byURL {
			if e.refs == 0 && (lru == nil || e.lastUsed.Before(lru.lastUsed)) {
				lru = e
			}
		}
		if lru == nil {
			break // all in use: over the limit until some are released
		}
		delete(p.byURL, lru.url)
		out = append(out, lru)
	}
	return out
}

func (p *pools) closeAll(es []*poolEntry) {
	for _, e := range es {
		if err := e.db.Close(); err != nil {
			p.logger.Warn("closing connection pool", "url", redactedURL(e.url), "error", redactURLText(err.Error(), e.url))
		}
		p.logger.Debug("closed connection pool", "url", redactedURL(e.url))
	}
}

// stop closes every pool and refuses new ones. sql.DB.Close waits for the
// queries in flight; stop gives up waiting when ctx is done.
func (p *pools) stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopped = true
	all := make([]*poolEntry, 0, len(p.byURL))
	for _, e := range p.byURL {
		all = append(all, e)
	}
	p.byURL = map[string]*poolEntry{}
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, e := range all {
			wg.Go(func() { p.closeAll([]*poolEntry{e}) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("postgres: stop: waiting for %d connection pools to close: %w", len(all), ctx.Err())
	}
}
