package pgconnector

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// TestPools checks that pools are shared per URL, that unused pools beyond
// the limit are closed (least recently used first) while pools in use are
// kept, that a discarded pool is closed, and that stop closes everything.
func TestPools(t *testing.T) {
	t.Parallel()
	a, b, c := testdb.URL(t), testdb.URL(t), testdb.URL(t)
	p := newPools(hclog.NewNullLogger(), 2, 2, time.Minute)
	size := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.byURL)
	}
	ping := func(e *poolEntry) {
		t.Helper()
		if err := e.db.PingContext(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}

	ea, err := p.acquire(a)
	if err != nil {
		t.Fatal(err)
	}
	ea2, _ := p.acquire(a)
	if ea != ea2 {
		t.Fatal("two pools for one URL")
	}
	eb, _ := p.acquire(b)
	ec, _ := p.acquire(c)
	if size() != 3 {
		t.Fatalf("%d pools, want 3: pools in use are never closed", size())
	}
	ping(ea)
	ping(eb)
	ping(ec)
	p.release(eb, false)
	if size() != 2 {
		t.Fatalf("%d pools after releasing b, want 2 (b closed)", size())
	}
	if err := eb.db.PingContext(context.Background()); err == nil {
		t.Fatal("evicted pool still open")
	}
	p.release(ea, false)
	p.release(ea2, false)
	p.release(ec, true)
	if size() != 1 {
		t.Fatalf("%d pools after discarding c, want 1", size())
	}

	// Concurrent use of one pool, beyond its connection limit.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			e, err := p.acquire(a)
			if err != nil {
				t.Error(err)
				return
			}
			defer p.release(e, false)
			if _, err := e.db.ExecContext(context.Background(), "SELECT pg_sleep(0.01)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ea.db.Stats().MaxOpenConnections; n != 2 {
		t.Fatalf("MaxOpenConnections %d, want 2", n)
	}

	if err := p.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if size() != 0 {
		t.Fatal("pools left after stop")
	}
	if _, err := p.acquire(a); err != errStopped {
		t.Fatalf("acquire after stop: %v, want errStopped", err)
	}
}
