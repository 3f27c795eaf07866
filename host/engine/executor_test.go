package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/secrets"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// wireRegistry serves in-process connectors over a real gRPC connection.
type wireRegistry struct {
	mu    sync.Mutex
	conns map[string]sdk.Connector
}

func (r *wireRegistry) Apps(ctx context.Context) ([]connectors.App, error) { return nil, nil }
func (r *wireRegistry) App(ctx context.Context, name string) (connectors.App, error) {
	return connectors.App{}, connectors.ErrUnknownApp
}
func (r *wireRegistry) Acquire(_ context.Context, name string) (*connectors.Lease, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.conns[name]
	if !ok {
		return nil, connectors.ErrUnknownApp
	}
	return connectors.NewLease(c, name, "0.0.1", nil), nil
}

type execBundle struct {
	db     *sqlx.DB
	box    *secrets.Box
	reg    *wireRegistry
	target *memTarget
	wfID   string
}

func setupExec(t *testing.T, count int) *execBundle {
	t.Helper()
	ctx := context.Background()
	db, box := hostDB(t), newBox(t)
	target := newMemTarget()
	reg := &wireRegistry{conns: map[string]sdk.Connector{}}
	for name, c := range map[string]sdk.Connector{"sample": sample.New("0.0.1", ""), "mem": target} {
		wire, closeFn, err := sdk.ServeTestConn(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeFn)
		reg.conns[name] = wire
	}
	b := &execBundle{db: db, box: box, reg: reg, target: target, wfID: "wf_test"}
	seal := func(id, cfg string) []byte {
		c, err := box.Seal([]byte(cfg), []byte(id))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO accounts (id, name) VALUES ('acc_a', 'A'), ('acc_b', 'B')`, nil},
		{`INSERT INTO connections (id, account_id, app, name, config_enc) VALUES ('con_src', 'acc_a', 'sample', 's', $1), ('con_dst', 'acc_a', 'mem', 'm', $2)`,
			[]any{seal("con_src", `{"count": `+itoa(count)+`}`), seal("con_dst", `{}`)}},
		{`INSERT INTO workflows (id, account_id, name, source_connection_id, source_object, target_connection_id, target_object, mapping, interval_seconds)
		  VALUES ('wf_test', 'acc_a', 'w', 'con_src', 'contacts', 'con_dst', 'people', $1, 900)`,
			[]any{`[{"source":"email","target":"email"},{"source":"id","target":"source_id"}]`}},
	} {
		if _, err := b.db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("fixture %s: %v", q.sql, err)
		}
	}
	return b
}

// hostDB is a fresh host database with every migration applied.
func hostDB(t *testing.T) *sqlx.DB {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st.DB()
}

// newBox is a secrets box with a random key.
func newBox(t *testing.T) *secrets.Box {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// serve puts c in the registry as app name (over a real gRPC connection),
// in place of the bundle's own.
func (b *execBundle) serve(t *testing.T, name string, c sdk.Connector) {
	t.Helper()
	wire, closeFn, err := sdk.ServeTestConn(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	b.reg.mu.Lock()
	b.reg.conns[name] = wire
	b.reg.mu.Unlock()
}

// runOnce enqueues a run of the bundle's workflow, executes it and returns
// its row.
func (b *execBundle) runOnce(t *testing.T, e *engine.Executor) runRow {
	t.Helper()
	ctx := context.Background()
	id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	return b.run(t, id)
}

func (b *execBundle) executor(hostID string) *engine.Executor {
	return engine.NewExecutor(b.db, b.reg, b.box, hclog.NewNullLogger(), engine.Options{
		HostID: hostID, BatchSize: 100, Lease: 2 * time.Second,
		Retry: engine.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
	})
}

type runRow struct {
	Status       string  `db:"status"`
	Read         int64   `db:"read_count"`
	Created      int64   `db:"created_count"`
	Failed       int64   `db:"failed_count"`
	Transactions int64   `db:"transactions"`
	Versions     string  `db:"connector_versions"`
	Error        *string `db:"error"`
	LeasedBy     *string `db:"leased_by"`
}

func (b *execBundle) run(t *testing.T, id string) runRow {
	t.Helper()
	var r runRow
	if err := b.db.Get(&r, `SELECT status, read_count, created_count, failed_count, transactions, connector_versions::text, error, leased_by FROM runs WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnqueueOneActiveRunPerWorkflowAndScopedToAccount(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 10)
	e := b.executor("h1")
	ctx := context.Background()
	first, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("second Enqueue made run %s while %s is queued: a workflow must not run twice at once", second, first)
	}
	if _, err := e.Enqueue(ctx, "acc_b", b.wfID, "manual"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Enqueue from another account = %v, want ErrNotFound", err)
	}
	if _, err := e.Enqueue(ctx, "acc_a", "wf_nope", "manual"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Enqueue of an unknown workflow = %v, want ErrNotFound", err)
	}
}

func TestExecutorRunsAndPersistsProgress(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 250)
	b.target.rejectOn = "7@"
	e := b.executor("h1")
	ctx := context.Background()
	id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if ran, err := e.RunOnce(ctx); err != nil || !ran {
		t.Fatalf("RunOnce = %v, %v", ran, err)
	}
	r := b.run(t, id)
	if r.Status != "partial" || r.Read != 250 || r.Created != 225 || r.Failed != 25 || r.Transactions != 225 {
		t.Fatalf("run = %+v, want partial with 250 read, 225 created, 25 failed", r)
	}
	if r.LeasedBy != nil {
		t.Fatalf("finished run still leased by %s", *r.LeasedBy)
	}
	var failures int
	if err := b.db.Get(&failures, `SELECT count(*) FROM run_records WHERE run_id = $1 AND account_id = 'acc_a' AND message LIKE 'invalid email%'`, id); err != nil {
		t.Fatal(err)
	}
	if failures != 25 {
		t.Fatalf("%d failed records kept, want 25", failures)
	}
	var cursor []byte
	if err := b.db.Get(&cursor, `SELECT cursor FROM workflows WHERE id = $1`, b.wfID); err != nil || len(cursor) == 0 {
		t.Fatalf("checkpoint not saved: %q, %v", cursor, err)
	}

	// The next run starts from the checkpoint: nothing new to read.
	id2, _ := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if _, err := e.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.run(t, id2); r.Status != "succeeded" || r.Read != 0 {
		t.Fatalf("second run = %+v, want succeeded with nothing read", r)
	}
}

func TestExpiredLeaseIsTakenOverByAnotherHost(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 300)
	ctx := context.Background()
	h1, h2 := b.executor("h1"), b.executor("h2")
	id, err := h1.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	// h1 claims the run and dies before doing anything: its lease runs out.
	if _, err := b.db.Exec(`UPDATE runs SET status = 'running', leased_by = 'h1', lease_expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if ran, err := h2.RunOnce(ctx); err != nil || !ran {
		t.Fatalf("h2 did not take the expired run over: %v, %v", ran, err)
	}
	if r := b.run(t, id); r.Status != "succeeded" || r.Created != 300 {
		t.Fatalf("run after takeover = %+v, want succeeded with 300 created", r)
	}
	if got := b.target.count(); got != 300 {
		t.Fatalf("target holds %d records, want 300", got)
	}
}

func TestLiveLeaseIsNotTakenOver(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 10)
	ctx := context.Background()
	id, err := b.executor("h1").Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Exec(`UPDATE runs SET status = 'running', leased_by = 'h1', lease_expires_at = now() + interval '1 hour' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if ran, err := b.executor("h2").RunOnce(ctx); err != nil || ran {
		t.Fatalf("h2 ran a run whose lease is alive: %v, %v", ran, err)
	}
}

func TestStartStopDrains(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 500)
	ctx := context.Background()
	e := b.executor("h1")
	e.Start(ctx)
	id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.run(t, id).Status != "succeeded" {
		if time.Now().After(deadline) {
			t.Fatalf("run not finished: %+v", b.run(t, id))
		}
		time.Sleep(10 * time.Millisecond) // polling observable state
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestLinkedRetryableFailuresAreRetriedByLaterRuns(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 30)
	// Matching by email sends this one-way workflow through the linked sync.
	b.db.MustExec(`UPDATE workflows SET match = '{"source": "email", "target": "email"}' WHERE id = $1`, b.wfID)
	b.target.retryFirst = 2 // the first two writes answer 429: more than the run's retries
	e := b.executor("h1")
	ctx := context.Background()
	id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.run(t, id); r.Status != "partial" || r.Failed != 30 {
		t.Fatalf("first run = %+v, want partial with 30 failed", r)
	}
	var queued int
	if err := b.db.Get(&queued, `SELECT count(*) FROM retry_queue WHERE workflow_id = $1 AND kind = 'retryable' AND next_retry_at > now()`, b.wfID); err != nil || queued != 30 {
		t.Fatalf("%d records queued for a later retry, want 30 (%v)", queued, err)
	}
	// Their backoff has passed: the next run writes them, though nothing new was read.
	b.db.MustExec(`UPDATE retry_queue SET next_retry_at = now() - interval '1 second'`)
	id2, _ := e.Enqueue(ctx, "acc_a", b.wfID, "schedule")
	if _, err := e.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.run(t, id2); r.Status != "succeeded" || r.Created != 30 {
		t.Fatalf("retry run = %+v, want 30 created", r)
	}
	if got := b.target.count(); got != 30 {
		t.Fatalf("target holds %d records, want 30", got)
	}
	if err := b.db.Get(&queued, `SELECT count(*) FROM retry_queue WHERE workflow_id = $1`, b.wfID); err != nil || queued != 0 {
		t.Fatalf("%d records left in the retry queue, want 0", queued)
	}
}

func TestEnqueueDuringARunQueuesAFollowUp(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 10)
	e := b.executor("h1")
	ctx := context.Background()
	id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
	if err != nil {
		t.Fatal(err)
	}
	// Another host is running it: a webhook now may announce a change that
	// run has already read past.
	b.db.MustExec(`UPDATE runs SET status = 'running', leased_by = 'hX', lease_expires_at = now() + interval '1 hour' WHERE id = $1`, id)
	again, err := e.Enqueue(ctx, "acc_a", b.wfID, "webhook")
	if err != nil || again != id {
		t.Fatalf("Enqueue during the run = %q, %v; want the running run %q", again, err, id)
	}
	var queued int
	b.db.Get(&queued, `SELECT count(*) FROM runs WHERE status = 'queued'`) //nolint:errcheck
	if queued != 0 {
		t.Fatalf("%d runs queued while one runs: a workflow must not run twice at once", queued)
	}
	// The run ends (here: taken over and finished by h1): the follow-up is queued.
	b.db.MustExec(`UPDATE runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, id)
	if ran, err := e.RunOnce(ctx); err != nil || !ran {
		t.Fatalf("RunOnce = %v, %v", ran, err)
	}
	var follow []string
	if err := b.db.Select(&follow, `SELECT trigger FROM runs WHERE status = 'queued' AND id <> $1`, id); err != nil {
		t.Fatal(err)
	}
	if len(follow) != 1 || follow[0] != "webhook" {
		t.Fatalf("follow-up runs = %v, want one queued by the webhook", follow)
	}
}
