package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/hubspot/fake"
	"github.com/synchron-io/synchron/sdk"
)

// readErr reads until done and returns the error, failing on diagnostics.
func readErr(t *testing.T, c sdk.Connector, req sdk.ReadRequest) ([]sdk.ReadBatch, error) {
	t.Helper()
	var out []sdk.ReadBatch
	err := c.Read(context.Background(), req, sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
		if len(b.Diagnostics) > 0 {
			t.Errorf("diagnostics batch: %s", b.Diagnostics.Error())
		}
		out = append(out, b)
		return nil
	}))
	return out, err
}

// A 429 of the rolling window waits, it never fails a run: however many come
// in a row, each wait is Retry-After (or one window without it), at most two
// minutes, and the call goes on while its context lives.
func TestRateLimited429NeverFails(t *testing.T) {
	e := newEnv(t, fake.Options{})
	e.srv.Seed("contacts", contacts(3, 0)...)
	e.srv.InjectRateLimited(40, time.Second)
	e.srv.InjectRateLimited(3, 0)
	e.srv.InjectRateLimited(2, time.Hour)
	b := readAll(t, e.conn, sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts"})
	if len(ids(b)) != 3 {
		t.Fatalf("read %d", len(ids(b)))
	}
	sl := e.clock.Sleeps()
	if len(sl) != 45 || sl[0] != time.Second || sl[40] != defaultRateInterval || sl[43] != max429Wait || sl[44] != max429Wait {
		t.Fatalf("%d waits %v", len(sl), sl)
	}

	// Only the context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	e.srv.InjectRateLimited(1000, time.Second)
	n := 0
	e.conn.sleep = func(ctx context.Context, d time.Duration) error {
		if n++; n == 200 {
			cancel()
		}
		return e.clock.Sleep(ctx, d)
	}
	err := e.conn.Read(ctx, sdk.ReadRequest{Config: e.config("test-token"), Object: "contacts"}, sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error { return nil }))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after 200 429s and cancel: %v", err)
	}
}

// Server and network errors are retried a few times, then a read fails with
// sdk.Retryable (the host resumes the run from its checkpoint later), never
// with a diagnostic batch; the daily cap fails the read, saying when it
// resets.
func TestReadErrorsRetryable(t *testing.T) {
	e := newEnv(t, fake.Options{})
	e.srv.Seed("contacts", contacts(3, 0)...)
	cfg := e.config("test-token")

	e.srv.InjectFaults(500, 502, 503, 500)
	_, err := readErr(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
	if _, ok := sdk.IsRetryable(err); !ok || !strings.Contains(err.Error(), "500") {
		t.Fatalf("after 4 server errors: %v (retryable %v)", err, ok)
	}
	if st := e.srv.Stats(); st.Faults != 4 {
		t.Fatalf("%d attempts", st.Faults)
	}

	// The archive listing (deletes) fails the same way.
	cfg0, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": e.srv.URL(), "search_delay_seconds": 0, "deletes_scan_minutes": 0})
	b := readAll(t, e.conn, sdk.ReadRequest{Config: cfg0, Object: "contacts"})
	cp := b[len(b)-1].Checkpoint
	e.clock.Add(time.Minute)
	e.srv.InjectFaultsFor("GET /crm/v3/objects/contacts", 500, 500, 500, 500)
	_, err = readErr(t, e.conn, sdk.ReadRequest{Config: cfg0, Object: "contacts", Cursor: cp})
	if _, ok := sdk.IsRetryable(err); !ok {
		t.Fatalf("archive listing after 4 server errors: %v not retryable", err)
	}

	// Network errors: nothing listens.
	dead := httptest.NewServer(nil)
	url := dead.URL
	dead.Close()
	deadCfg, _ := json.Marshal(map[string]any{"access_token": "test-token", "base_url": url})
	_, err = readErr(t, e.conn, sdk.ReadRequest{Config: deadCfg, Object: "contacts"})
	if _, ok := sdk.IsRetryable(err); !ok {
		t.Fatalf("network error: %v not retryable", err)
	}

	// The daily cap: not retryable, not waited, says when it resets.
	before := len(e.clock.Sleeps())
	e.srv.InjectDailyLimit(1)
	_, err = readErr(t, e.conn, sdk.ReadRequest{Config: cfg, Object: "contacts"})
	if _, ok := sdk.IsRetryable(err); ok || err == nil || !strings.Contains(err.Error(), "daily") || !strings.Contains(err.Error(), "midnight") {
		t.Fatalf("daily cap: %v", err)
	}
	if len(e.clock.Sleeps()) != before {
		t.Fatal("the daily cap was waited")
	}
}
