package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk"
)

// ErrNotFound is returned when a workflow does not exist in the account. It
// is the store's sentinel, so callers test one error whatever layer found it.
var ErrNotFound = store.ErrNotFound

// ErrLeaseLost means another host took the run over (this host's lease
// expired); this host stops without touching the run again.
var ErrLeaseLost = errors.New("run lease lost to another host")

// Sealer encrypts and decrypts connection configs at rest (host/secrets.Box).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// Options tune an Executor. Zero values take the defaults.
type Options struct {
	// HostID names this host in run leases (default: random).
	HostID string
	// Workers is how many runs this host executes at once (default 4).
	Workers int
	// Lease is how long a claimed run stays this host's without a heartbeat
	// (default 30s); another host takes the run over after it expires.
	Lease time.Duration
	// Poll is how often idle workers look for queued runs (default 1s);
	// Enqueue on this host wakes them at once.
	Poll      time.Duration
	BatchSize int // records per batch (default 1000)
	Retry     RetryPolicy
	// RunAttempts is how many times a run is resumed from its last committed
	// checkpoint after a connector crash or transport error (default 3).
	RunAttempts int
	// RunRetryDelay is the first pause before resuming (default 500ms, doubling).
	RunRetryDelay time.Duration
}

func (o *Options) defaults() {
	if o.HostID == "" {
		o.HostID = "host_" + randomID()
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Retry.MaxAttempts <= 0 {
		o.Retry = DefaultRetryPolicy()
	}
	if o.RunAttempts <= 0 {
		o.RunAttempts = 3
	}
	if o.RunRetryDelay <= 0 {
		o.RunRetryDelay = 500 * time.Millisecond
	}
}

// Executor executes queued runs. Runs live in PostgreSQL: Enqueue inserts a
// queued run, and workers on every host claim queued runs (or runs whose
// lease expired because their host died) with FOR UPDATE SKIP LOCKED.
type Executor struct {
	db       *sqlx.DB
	registry connectors.Registry
	sealer   Sealer
	log      hclog.Logger
	opts     Options

	wake   chan struct{}
	mu     sync.Mutex
	cancel context.CancelFunc // stops claiming new runs
	runCtx context.CancelFunc // cancels runs in flight
	wg     sync.WaitGroup
}

// NewExecutor builds an Executor; Start begins executing.
func NewExecutor(db *sqlx.DB, registry connectors.Registry, sealer Sealer, log hclog.Logger, opts Options) *Executor {
	opts.defaults()
	return &Executor{db: db, registry: registry, sealer: sealer, log: log.Named("engine"), opts: opts, wake: make(chan struct{}, opts.Workers)}
}

// HostID is the name this executor leases runs under.
func (e *Executor) HostID() string { return e.opts.HostID }

// Enqueue queues a run of the workflow and returns its id. When the
// workflow already has a queued or running run, that run's id is returned:
// a workflow never runs twice at once.
func (e *Executor) Enqueue(ctx context.Context, accountID, workflowID, trigger string) (string, error) {
	for attempt := 0; attempt < 3; attempt++ {
		var id string
		err := e.db.GetContext(ctx, &id, `
			INSERT INTO runs (id, account_id, workflow_id, status, trigger, created_at)
			SELECT $1, w.account_id, w.id, 'queued', $4, now()
			FROM workflows w WHERE w.id = $2 AND w.account_id = $3
			ON CONFLICT (workflow_id) WHERE status IN ('queued', 'running') DO NOTHING
			RETURNING id`, "run_"+randomID(), workflowID, accountID, trigger)
		if err == nil {
			e.Wake(1)
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("engine: enqueue run of %s: %w", workflowID, err)
		}
		// Either the workflow is not this account's, or a run is active. A
		// running run may already have read past the change that prompted
		// this call: ask it for a follow-up run when it ends.
		var active struct {
			ID     string `db:"id"`
			Status string `db:"status"`
		}
		err = e.db.GetContext(ctx, &active, `
			SELECT r.id, r.status FROM runs r JOIN workflows w ON w.id = r.workflow_id
			WHERE r.workflow_id = $1 AND w.account_id = $2 AND r.status IN ('queued', 'running')`, workflowID, accountID)
		if errors.Is(err, sql.ErrNoRows) {
			var exists bool
			if err := e.db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM workflows WHERE id = $1 AND account_id = $2)`,
				workflowID, accountID); err != nil {
				return "", fmt.Errorf("engine: enqueue run of %s: %w", workflowID, err)
			}
			if !exists {
				return "", ErrNotFound
			}
			continue // the active run ended meanwhile: queue again
		}
		if err != nil {
			return "", fmt.Errorf("engine: enqueue run of %s: %w", workflowID, err)
		}
		if active.Status == "queued" {
			return active.ID, nil
		}
		res, err := e.db.ExecContext(ctx, `UPDATE runs SET rerun_trigger = $2 WHERE id = $1 AND status = 'running'`, active.ID, trigger)
		if err != nil {
			return "", fmt.Errorf("engine: enqueue run of %s: %w", workflowID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return active.ID, nil
		}
	}
	return "", fmt.Errorf("engine: enqueue run of %s: its runs kept changing state", workflowID)
}

// Start launches the workers. They run until Stop or StopAndCancel.
func (e *Executor) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return
	}
	claimCtx, cancel := context.WithCancel(ctx)
	runCtx, runCancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel, e.runCtx = cancel, runCancel
	for i := 0; i < e.opts.Workers; i++ {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.work(claimCtx, runCtx)
		}()
	}
}

// Stop stops claiming runs and waits for the runs in flight to finish, or
// for ctx to end, whichever comes first; then it cancels what is left (those
// runs are handed back to the queue and resume from their checkpoint).
func (e *Executor) Stop(ctx context.Context) error {
	e.mu.Lock()
	cancel, runCancel := e.cancel, e.runCtx
	e.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		runCancel()
		return nil
	case <-ctx.Done():
		runCancel()
		<-done
		return fmt.Errorf("engine: stop: runs still in flight were cancelled: %w", ctx.Err())
	}
}

// StopAndCancel cancels the runs in flight at once (they go back to the
// queue) and waits for the workers to exit.
func (e *Executor) StopAndCancel(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	err := e.Stop(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (e *Executor) work(claimCtx, runCtx context.Context) {
	ticker := time.NewTicker(e.opts.Poll)
	defer ticker.Stop()
	for {
		run, err := e.claim(claimCtx)
		switch {
		case err == nil && run != nil:
			e.execute(runCtx, run)
			continue
		case err != nil && claimCtx.Err() == nil:
			e.log.Error("claim run", "error", err)
		}
		select {
		case <-claimCtx.Done():
			return
		case <-e.wake:
		case <-ticker.C:
		}
	}
}

type claimedRun struct {
	ID         string `db:"id"`
	AccountID  string `db:"account_id"`
	WorkflowID string `db:"workflow_id"`
	Attempts   int    `db:"attempts"`
	// configs are the sealed configs of the connections as the last
	// attempt started with them or saved them, by connection id.
	mu      sync.Mutex
	configs map[string][]byte
}

// noteConfig records a config the run saved itself.
func (r *claimedRun) noteConfig(connID string, sealed []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.configs != nil {
		r.configs[connID] = sealed
	}
}

// claim takes a running run whose host stopped renewing its lease (a dead
// host's run comes first), or else the oldest queued run, and leases it to
// this host. The two are separate queries so each walks its index in order:
// one OR-ed query would read and sort every queued run on each claim.
func (e *Executor) claim(ctx context.Context) (*claimedRun, error) {
	for _, pick := range []string{
		`SELECT id FROM runs WHERE status = 'running' AND lease_expires_at < now()
			ORDER BY lease_expires_at FOR UPDATE SKIP LOCKED LIMIT 1`,
		`SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1`,
	} {
		var r claimedRun
		err := e.db.GetContext(ctx, &r, `
			UPDATE runs SET status = 'running', leased_by = $1, lease_expires_at = now() + $2::interval,
				started_at = COALESCE(started_at, now()), attempts = attempts + 1
			WHERE id = (`+pick+`)
			RETURNING id, account_id, workflow_id, attempts`, e.opts.HostID, e.opts.Lease.String())
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("engine: claim: %w", err)
		}
		return &r, nil
	}
	return nil, nil
}

// Wake tells idle workers that n runs were queued (by the scheduler), so
// they claim them now rather than at their next poll.
func (e *Executor) Wake(n int) {
	for i := 0; i < n && i < e.opts.Workers; i++ {
		select {
		case e.wake <- struct{}{}:
		default:
			return
		}
	}
}

// RunOnce claims and executes at most one queued run on the caller's
// goroutine; it reports whether a run was found. Tools and tests use it.
func (e *Executor) RunOnce(ctx context.Context) (bool, error) {
	run, err := e.claim(ctx)
	if err != nil || run == nil {
		return false, err
	}
	e.execute(ctx, run)
	return true, nil
}

type workflowRow struct {
	ID                 string          `db:"id"`
	AccountID          string          `db:"account_id"`
	SourceConnectionID string          `db:"source_connection_id"`
	SourceObject       string          `db:"source_object"`
	TargetConnectionID string          `db:"target_connection_id"`
	TargetObject       string          `db:"target_object"`
	Mapping            json.RawMessage `db:"mapping"`
	Cursor             []byte          `db:"cursor"`
	TargetCursor       []byte          `db:"target_cursor"`
	Direction          string          `db:"direction"`
	Match              []byte          `db:"match"`
	Filter             []byte          `db:"filter"`
	Conflict           string          `db:"conflict"`
	Deletes            string          `db:"deletes"`
	WriteBack          []byte          `db:"write_back"`
	DeleteThreshold    float64         `db:"delete_threshold_pct"`
	TargetUpsertKey    sql.NullString  `db:"target_upsert_key"`
	SourceApp          string          `db:"source_app"`
	SourceConfig       []byte          `db:"source_config"`
	TargetApp          string          `db:"target_app"`
	TargetConfig       []byte          `db:"target_config"`
}

func (e *Executor) loadWorkflow(ctx context.Context, accountID, workflowID string) (*workflowRow, error) {
	var w workflowRow
	err := e.db.GetContext(ctx, &w, `
		SELECT w.id, w.account_id, w.source_connection_id, w.source_object, w.target_connection_id,
			w.target_object, w.mapping, w.cursor, w.target_cursor, w.direction, w.match, w.filter, w.conflict,
			w.deletes, w.write_back, w.delete_threshold_pct, w.target_upsert_key,
			s.app AS source_app, s.config_enc AS source_config, t.app AS target_app, t.config_enc AS target_config
		FROM workflows w
		JOIN connections s ON s.id = w.source_connection_id AND s.account_id = w.account_id
		JOIN connections t ON t.id = w.target_connection_id AND t.account_id = w.account_id
		WHERE w.id = $1 AND w.account_id = $2`, workflowID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load workflow %s: %w", workflowID, err)
	}
	return &w, nil
}

// execute runs one claimed run to its end and records the outcome. Transport
// failures (a connector crash) resume the run from its last committed
// checkpoint, up to RunAttempts times.
func (e *Executor) execute(ctx context.Context, run *claimedRun) {
	log := e.log.With("run", run.ID, "workflow", run.WorkflowID)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Heartbeat: keep the lease while the run is alive; stop the run when
	// another host has taken it over.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(e.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := e.renewLease(ctx, run.ID); err != nil {
					if ctx.Err() == nil {
						log.Warn("lease renewal failed", "error", err)
					}
					if errors.Is(err, ErrLeaseLost) {
						cancel(ErrLeaseLost)
						return
					}
				}
			}
		}
	}()
	defer func() { cancel(nil); <-hbDone }()

	var runErr error
	delay := e.opts.RunRetryDelay
	for attempt := 1; ; attempt++ {
		runErr = e.attempt(ctx, run)
		if runErr == nil || ctx.Err() != nil || attempt >= e.opts.RunAttempts {
			break
		}
		if !retryableRunError(runErr) && !e.credentialsChanged(ctx, run) {
			break
		}
		log.Warn("run attempt failed; resuming from the last checkpoint", "attempt", attempt, "error", runErr)
		wait := delay
		if after, ok := sdk.IsRetryable(runErr); ok && after > wait {
			wait = min(after, maxRetryAfter) // the app said when
		}
		if err := sleep(ctx, wait); err != nil {
			break
		}
		delay *= 2
	}

	if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
		log.Warn("run taken over by another host")
		return
	}
	if ctx.Err() != nil {
		// The host is stopping: hand the run back so any host resumes it.
		e.release(context.WithoutCancel(ctx), run.ID, log)
		return
	}
	e.finish(ctx, run, runErr, log)
}

// credentialsChanged reports whether a connection of the run got new
// credentials since its last attempt started: another run (on any host)
// refreshed them, and an app that rotates refresh tokens (Sage) refuses the
// old ones. The attempt failed on stale credentials, most likely: it is
// retried with the new ones instead of failing the run.
func (e *Executor) credentialsChanged(ctx context.Context, run *claimedRun) bool {
	run.mu.Lock()
	configs := maps.Clone(run.configs)
	run.mu.Unlock()
	for id, sealed := range configs {
		var now []byte
		if err := e.db.GetContext(ctx, &now, `SELECT config_enc FROM connections WHERE id = $1 AND account_id = $2`, id, run.AccountID); err != nil {
			return false
		}
		if !bytes.Equal(now, sealed) {
			return true
		}
	}
	return false
}

// maxRetryAfter bounds how long a run waits on an app's Retry-After before
// resuming (the lease is renewed meanwhile).
const maxRetryAfter = 10 * time.Minute

// retryableRunError reports whether a later attempt of the run may succeed:
// the connector process failed, the target kept answering retryable errors,
// or the connector said so (sdk.Retryable: the app kept answering 429 or
// 5xx).
func retryableRunError(err error) bool {
	_, retryable := sdk.IsRetryable(err)
	return retryable || sdk.IsTransportError(err) || errors.Is(err, ErrRetriesExhausted)
}

// linked reports whether a workflow needs the link table: two-way, or
// one-way with matching, write-back or deletes, or into an object without
// an upsert key. Other one-way workflows take the streaming fast path
// (upsert by the target's key).
func (w *workflowRow) linked() bool {
	return w.Direction == "two_way" || !isNullJSON(w.Match) || !isNullJSON(w.WriteBack) || w.Deletes != DeletesIgnore ||
		// A target where writes without id always create (no upsert key):
		// links make a changed source record update what it created.
		(w.TargetUpsertKey.Valid && w.TargetUpsertKey.String == "")
}

func isNullJSON(b []byte) bool {
	t := strings.TrimSpace(string(b))
	return t == "" || t == "null" || t == "{}"
}

// prepared connectors and settings of one attempt or preview.
type attemptSetup struct {
	run      *claimedRun // nil for a preview
	w        *workflowRow
	mapper   *mapping.Mapper
	src, dst *connectors.Lease
	srcCfg   json.RawMessage
	dstCfg   json.RawMessage
	// sealed is each connection's config as this attempt last read or
	// saved it (source and target may be one connection): a refreshed
	// config replaces only that, never a config changed meanwhile.
	cfgMu  sync.Mutex
	sealed map[string][]byte
}

func (a *attemptSetup) release() {
	if a.src != nil {
		a.src.Release()
	}
	if a.dst != nil {
		a.dst.Release()
	}
}

func (e *Executor) setup(ctx context.Context, accountID, workflowID string) (*attemptSetup, error) {
	w, err := e.loadWorkflow(ctx, accountID, workflowID)
	if err != nil {
		return nil, err
	}
	a := &attemptSetup{w: w, sealed: map[string][]byte{w.SourceConnectionID: w.SourceConfig, w.TargetConnectionID: w.TargetConfig}}
	rules, err := mapping.Parse(w.Mapping)
	if err != nil {
		return nil, fmt.Errorf("workflow mapping: %w", err)
	}
	if a.mapper, err = mapping.NewMapper(rules); err != nil {
		return nil, fmt.Errorf("workflow mapping: %w", err)
	}
	if a.srcCfg, err = e.sealer.Open(w.SourceConfig, []byte(w.SourceConnectionID)); err != nil {
		return nil, fmt.Errorf("decrypt source connection %s: %w", w.SourceConnectionID, err)
	}
	if a.dstCfg, err = e.sealer.Open(w.TargetConfig, []byte(w.TargetConnectionID)); err != nil {
		return nil, fmt.Errorf("decrypt target connection %s: %w", w.TargetConnectionID, err)
	}
	if a.src, err = e.registry.Acquire(ctx, w.SourceApp); err != nil {
		return nil, fmt.Errorf("start %s connector: %w", w.SourceApp, err)
	}
	if a.dst, err = e.registry.Acquire(ctx, w.TargetApp); err != nil {
		a.release()
		return nil, fmt.Errorf("start %s connector: %w", w.TargetApp, err)
	}
	return a, nil
}

// linkJob builds the linked sync of a prepared attempt.
func (e *Executor) linkJob(a *attemptSetup, runID string) (*linkJob, error) {
	w := a.w
	j := &linkJob{
		db: e.db, log: e.log, runID: runID, accountID: w.AccountID, wfID: w.ID,
		twoWay: w.Direction == "two_way", mapper: a.mapper, conflict: w.Conflict, deletes: w.Deletes,
		threshold: w.DeleteThreshold, batchSize: e.opts.BatchSize, retry: e.opts.Retry,
		sides: map[Side]*sideConn{
			SideSource: {side: SideSource, connID: w.SourceConnectionID, conn: a.src, config: a.srcCfg, object: w.SourceObject, cursor: w.Cursor,
				save: e.configSaver(a, w.SourceConnectionID)},
			SideTarget: {side: SideTarget, connID: w.TargetConnectionID, conn: a.dst, config: a.dstCfg, object: w.TargetObject, cursor: w.TargetCursor,
				save: e.configSaver(a, w.TargetConnectionID)},
		},
	}
	j.lookups = newLookups(e.db, w.AccountID, j.sides[SideTarget], a.mapper, e.opts.BatchSize, e.opts.Retry)
	var err error
	if j.match, err = mapping.ParseMatch(w.Match); err != nil {
		return nil, fmt.Errorf("workflow match: %w", err)
	}
	if j.filter, err = mapping.ParseFilter(w.Filter); err != nil {
		return nil, fmt.Errorf("workflow filter: %w", err)
	}
	if !isNullJSON(w.WriteBack) {
		var wb struct {
			Field string `json:"field"`
		}
		if err := json.Unmarshal(w.WriteBack, &wb); err != nil {
			return nil, fmt.Errorf("workflow write_back: %w", err)
		}
		j.writeBackField = wb.Field
	}
	return j, nil
}

// attempt executes the run once, from the workflow's committed checkpoints.
func (e *Executor) attempt(ctx context.Context, run *claimedRun) error {
	a, err := e.setup(ctx, run.AccountID, run.WorkflowID)
	if err != nil {
		return err
	}
	defer a.release()
	w := a.w
	a.run = run
	run.mu.Lock()
	run.configs = map[string][]byte{w.SourceConnectionID: w.SourceConfig, w.TargetConnectionID: w.TargetConfig}
	run.mu.Unlock()
	versions, _ := json.Marshal(map[string]string{a.src.Name: a.src.Version, a.dst.Name: a.dst.Version})
	if err := e.exec(ctx, run.ID, `UPDATE runs SET connector_versions = $2 WHERE id = $1 AND leased_by = $3`,
		run.ID, versions, e.opts.HostID); err != nil {
		return err
	}

	if w.linked() {
		j, err := e.linkJob(a, run.ID)
		if err != nil {
			return err
		}
		j.lease = func(ctx context.Context, tx *sqlx.Tx, c Counts, matched, ambiguous int64) error {
			return e.addCounts(ctx, tx, run, c, matched, ambiguous)
		}
		return j.run(ctx)
	}

	retries, err := e.dueRetries(ctx, w)
	if err != nil {
		return err
	}
	job := Job{
		Source: a.src, SourceConfig: a.srcCfg, SourceObject: w.SourceObject,
		Target: a.dst, TargetConfig: a.dstCfg, TargetObject: w.TargetObject,
		Mapper: a.mapper, Cursor: w.Cursor, BatchSize: e.opts.BatchSize, Retry: e.opts.Retry, Retries: retries,
		Commit: func(ctx context.Context, p Progress) error { return e.commit(ctx, run, w, p) },
		SaveConfig: func(ctx context.Context, side Side, cfg json.RawMessage) error {
			conn := w.SourceConnectionID
			if side == SideTarget {
				conn = w.TargetConnectionID
			}
			return e.configSaver(a, conn)(ctx, cfg)
		},
	}
	target := &sideConn{side: SideTarget, connID: w.TargetConnectionID, conn: a.dst, config: a.dstCfg, object: w.TargetObject,
		save: e.configSaver(a, w.TargetConnectionID)}
	job.lookups = newLookups(e.db, w.AccountID, target, a.mapper, e.opts.BatchSize, e.opts.Retry)
	_, err = Sync(ctx, job)
	return err
}

// dueRetries loads the records of a one-way workflow due for a retry.
func (e *Executor) dueRetries(ctx context.Context, w *workflowRow) ([]sdk.Record, error) {
	var rows []struct {
		RecordID string          `db:"record_id"`
		Fields   json.RawMessage `db:"fields"`
		Modified sql.NullTime    `db:"modified_at"`
		Deleted  bool            `db:"deleted"`
	}
	if err := e.db.SelectContext(ctx, &rows, `SELECT record_id, fields, modified_at, deleted FROM retry_queue
		WHERE workflow_id = $1 AND account_id = $2 AND side = 'source' AND kind = 'retryable' AND next_retry_at <= now()
		ORDER BY next_retry_at LIMIT 10000`, w.ID, w.AccountID); err != nil {
		return nil, fmt.Errorf("load retry queue: %w", err)
	}
	out := make([]sdk.Record, len(rows))
	for i, r := range rows {
		out[i] = sdk.Record{ID: r.RecordID, Fields: r.Fields, UpdatedAt: r.Modified.Time, Deleted: r.Deleted}
	}
	return out, nil
}

// addCounts adds to the run's counts and renews its lease inside tx; it
// fails with ErrLeaseLost when another host owns the run now.
func (e *Executor) addCounts(ctx context.Context, tx *sqlx.Tx, run *claimedRun, c Counts, matched, ambiguous int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE runs SET read_count = read_count + $3, created_count = created_count + $4,
			updated_count = updated_count + $5, deleted_count = deleted_count + $6,
			skipped_count = skipped_count + $7, failed_count = failed_count + $8,
			transactions = transactions + $9, matched_count = matched_count + $10,
			ambiguous_count = ambiguous_count + $11, lease_expires_at = now() + $12::interval
		WHERE id = $1 AND leased_by = $2 AND status = 'running'`,
		run.ID, e.opts.HostID, c.Read, c.Created, c.Updated, c.Deleted, c.Skipped, c.Failed, c.Transactions(),
		matched, ambiguous, e.opts.Lease.String())
	if err != nil {
		return fmt.Errorf("update run counts: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// configSaver returns the function that stores credentials a connector
// refreshed on a connection of the account, sealed like every config. The
// engine calls it as soon as a connector hands them over (sideConn.adopt,
// Job.SaveConfig), runs and previews alike.
func (e *Executor) configSaver(a *attemptSetup, connID string) func(ctx context.Context, cfg json.RawMessage) error {
	accountID := a.w.AccountID
	return func(ctx context.Context, cfg json.RawMessage) error {
		sealed, err := e.sealer.Seal(cfg, []byte(connID))
		if err != nil {
			return fmt.Errorf("encrypt refreshed credentials: %w", err)
		}
		// Saved even when the run's context ends: the app already
		// rotated the old token out.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		a.cfgMu.Lock()
		defer a.cfgMu.Unlock()
		// Only over the config this attempt knows: a user who reconnected
		// the account meanwhile (PATCH) keeps the new credentials.
		res, err := e.db.ExecContext(ctx, `UPDATE connections SET config_enc = $3, updated_at = now()
			WHERE id = $1 AND account_id = $2 AND config_enc = $4`, connID, accountID, sealed, a.sealed[connID])
		if err != nil {
			return fmt.Errorf("save refreshed credentials of connection %s: %w", connID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			e.log.Warn("connection changed during the run: its refreshed credentials are not saved over the new ones", "connection", connID)
			return nil
		}
		a.sealed[connID] = sealed
		if a.run != nil {
			a.run.noteConfig(connID, sealed)
		}
		return nil
	}
}

// Preview computes what the next run of the workflow would do. It reads
// both apps but writes nothing to them, nor to the workflow's links,
// checkpoints or runs.
func (e *Executor) Preview(ctx context.Context, accountID, workflowID string) (*Preview, error) {
	a, err := e.setup(ctx, accountID, workflowID)
	if err != nil {
		return nil, err
	}
	defer a.release()
	j, err := e.linkJob(a, "pre_"+randomID())
	if err != nil {
		return nil, err
	}
	j.dry = true
	j.preview = &Preview{Actions: []PlannedAction{}}
	if !a.w.linked() {
		j.preview.Note = "this one-way workflow upserts by the target's key: records it would write are counted as updates; the run tells creates from updates"
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = j.clearStage(cctx)
	}()
	if err := j.run(ctx); err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	return j.preview, nil
}

// RetryFailed queues the records that failed in a run for an immediate retry
// and enqueues a run (trigger "retry") of its workflow. It answers "" and 0
// when nothing of the run is left to retry (retried or synced since).
func (e *Executor) RetryFailed(ctx context.Context, accountID, runID string) (string, int, error) {
	var workflowID string
	err := e.db.GetContext(ctx, &workflowID, `SELECT workflow_id FROM runs WHERE id = $1 AND account_id = $2`, runID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("engine: retry run %s: %w", runID, err)
	}
	res, err := e.db.ExecContext(ctx, `UPDATE retry_queue SET kind = 'retryable', next_retry_at = now(), updated_at = now()
		WHERE account_id = $1 AND workflow_id = $2 AND run_id = $3`, accountID, workflowID, runID)
	if err != nil {
		return "", 0, fmt.Errorf("engine: retry run %s: %w", runID, err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return "", 0, nil
	}
	id, err := e.Enqueue(ctx, accountID, workflowID, "retry")
	if err != nil {
		return "", 0, err
	}
	return id, int(n), nil
}

// commit persists one batch in one transaction: run counts, failed records,
// refreshed credentials, the lease, and last the workflow's checkpoint.
func (e *Executor) commit(ctx context.Context, run *claimedRun, w *workflowRow, p Progress) error {
	tx, err := e.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	c := p.Counts
	res, err := tx.ExecContext(ctx, `
		UPDATE runs SET read_count = read_count + $3, created_count = created_count + $4,
			updated_count = updated_count + $5, deleted_count = deleted_count + $6,
			skipped_count = skipped_count + $7, failed_count = failed_count + $8,
			transactions = transactions + $9, lease_expires_at = now() + $10::interval
		WHERE id = $1 AND leased_by = $2 AND status = 'running'`,
		run.ID, e.opts.HostID, c.Read, c.Created, c.Updated, c.Deleted, c.Skipped, c.Failed, c.Transactions(), e.opts.Lease.String())
	if err != nil {
		return fmt.Errorf("update run counts: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	for _, f := range p.Failures {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO run_records (run_id, account_id, record_id, direction, status, message, created_at)
			VALUES ($1, $2, $3, 'to_target', $4, $5, now())`, run.ID, run.AccountID, f.RecordID, f.Status, truncate(f.Message, 2000)); err != nil {
			return fmt.Errorf("record failure of %s: %w", f.RecordID, err)
		}
		// Kept with the record so a user can retry it (rejected records are
		// not retried automatically: the same data would fail again);
		// retryable ones are retried by later runs, with backoff.
		kind := "rejected"
		if f.Status == "retryable" {
			kind = "retryable"
		}
		fields := []byte(f.Record.Fields)
		if len(fields) == 0 {
			fields = []byte("{}")
		}
		var mod *time.Time
		if !f.Record.UpdatedAt.IsZero() {
			mod = &f.Record.UpdatedAt
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO retry_queue (account_id, workflow_id, side, record_id, fields, modified_at, deleted, run_id, next_retry_at, last_error, kind)
			VALUES ($1, $2, 'source', $3, $4, $5, $6, $7, CASE WHEN $9 = 'retryable' THEN now() + interval '1 minute' ELSE now() END, $8, $9)
			ON CONFLICT (workflow_id, side, record_id) DO UPDATE SET fields = EXCLUDED.fields, modified_at = EXCLUDED.modified_at,
				run_id = EXCLUDED.run_id, attempts = retry_queue.attempts + 1, last_error = EXCLUDED.last_error,
				next_retry_at = CASE WHEN EXCLUDED.kind = 'retryable'
					THEN now() + least(interval '1 minute' * power(2, retry_queue.attempts), interval '1 day') ELSE retry_queue.next_retry_at END,
				kind = EXCLUDED.kind, updated_at = now()`,
			run.AccountID, w.ID, f.RecordID, fields, mod, f.Record.Deleted, run.ID, truncate(f.Message, 2000), kind); err != nil {
			return fmt.Errorf("keep failed record %s: %w", f.RecordID, err)
		}
	}
	if len(p.Retried) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM retry_queue WHERE workflow_id = $1 AND side = 'source' AND record_id = ANY($2)`,
			w.ID, pq.Array(p.Retried)); err != nil {
			return fmt.Errorf("clear retried records: %w", err)
		}
	}
	// Refreshed credentials (p.SourceConfig, p.TargetConfig) were saved
	// when the connector handed them over (Job.SaveConfig): saving them
	// again here could put back an older token after a newer one.
	if p.Checkpoint != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE workflows SET cursor = $3, updated_at = now() WHERE id = $1 AND account_id = $2`,
			w.ID, run.AccountID, p.Checkpoint); err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (e *Executor) renewLease(ctx context.Context, runID string) error {
	res, err := e.db.ExecContext(ctx, `UPDATE runs SET lease_expires_at = now() + $3::interval
		WHERE id = $1 AND leased_by = $2 AND status = 'running'`, runID, e.opts.HostID, e.opts.Lease.String())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// release hands a run back to the queue when this host stops mid-run.
func (e *Executor) release(ctx context.Context, runID string, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.db.ExecContext(ctx, `UPDATE runs SET status = 'queued', leased_by = NULL, lease_expires_at = NULL
		WHERE id = $1 AND leased_by = $2 AND status = 'running'`, runID, e.opts.HostID); err != nil {
		log.Error("hand run back to the queue", "error", err)
	}
}

func (e *Executor) finish(ctx context.Context, run *claimedRun, runErr error, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	msg := ""
	if runErr != nil {
		msg = truncate(runErr.Error(), 2000)
		log.Warn("run failed", "error", runErr)
	}
	var rerun sql.NullString
	err := e.db.GetContext(ctx, &rerun, `
		UPDATE runs SET status = CASE WHEN $3 <> '' THEN 'failed' WHEN failed_count > 0 THEN 'partial' ELSE 'succeeded' END,
			error = NULLIF($3, ''), finished_at = now(), leased_by = NULL, lease_expires_at = NULL
		WHERE id = $1 AND leased_by = $2
		RETURNING rerun_trigger`, run.ID, e.opts.HostID, msg)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		log.Error("record run outcome", "error", err)
		return
	}
	if rerun.Valid {
		// A change was announced while this run was running: follow up.
		if _, err := e.Enqueue(ctx, run.AccountID, run.WorkflowID, rerun.String); err != nil && !errors.Is(err, ErrNotFound) {
			log.Error("queue the follow-up run", "error", err)
		}
	}
}

func (e *Executor) exec(ctx context.Context, runID, query string, args ...any) error {
	res, err := e.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("run %s: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("engine: crypto/rand: %v", err))
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
