// Package scheduler turns due workflows into queued runs. Every host runs a
// Scheduler against the one PostgreSQL database; the engine's executors then
// claim the queued runs.
//
// One pass is one SQL statement: it locks a batch of due workflows (status
// active, next_run_at reached, account not deleted) with FOR UPDATE SKIP
// LOCKED, advances each one's next_run_at by its interval, and inserts a
// queued run (trigger schedule) for each. Because the advance and the insert
// commit together, and a workflow row is locked by at most one pass, any
// number of hosts share the work and a workflow is enqueued at most once per
// due time. A workflow whose previous run is still queued or running when it
// is due again is skipped until its next due time: it never runs twice at
// once.
//
// The interval is the larger of the workflow's interval_seconds and its
// account plan's minimum (store.Plans), so a plan downgrade takes effect
// without rewriting workflows. A workflow that fell more than one interval
// behind (the scheduler was down) runs once, and its next due time moves to
// the first point of its own grid (due time + k * interval) after now: no
// catch-up burst, and workflows spread over the minute stay spread.
package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/synchron-io/synchron/host/store"
)

// Options tune a Scheduler. Zero values take the defaults.
type Options struct {
	// BatchSize is how many due workflows one pass locks (default 500).
	BatchSize int
	// MaxWait is the longest the loop sleeps between passes (default 1s): it
	// bounds how late a workflow made due by another host (resume, create)
	// is noticed.
	MaxWait time.Duration
	// MinWait is the shortest sleep between passes that did not fill a batch
	// (default 50ms), so that workflows due a few milliseconds apart are
	// enqueued together rather than one statement each.
	MinWait time.Duration
	// Plans is the plan table the interval minimums come from (default
	// store.Plans()). An account whose plan is not listed gets the largest
	// minimum.
	Plans []store.Plan
	// OnEnqueued, when set, is called on the loop's goroutine after a pass
	// that enqueued n > 0 runs (to wake executors, count metrics).
	OnEnqueued func(n int)
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MaxWait <= 0 {
		o.MaxWait = time.Second
	}
	if o.MinWait <= 0 {
		o.MinWait = 50 * time.Millisecond
	}
	if o.MinWait > o.MaxWait {
		o.MinWait = o.MaxWait
	}
	if len(o.Plans) == 0 {
		o.Plans = store.Plans()
	}
}

// Scheduler enqueues runs of due workflows. Start runs its loop; Tick runs
// one pass.
type Scheduler struct {
	db   *sqlx.DB
	log  hclog.Logger
	opts Options

	// The plan table as SQL parameters: names[i] has minimum mins[i].
	names      []string
	mins       []int64
	defaultMin int64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a Scheduler on the host database; Start begins scheduling.
func New(db *sqlx.DB, log hclog.Logger, opts Options) *Scheduler {
	opts.defaults()
	s := &Scheduler{db: db, log: log.Named("scheduler"), opts: opts}
	for _, p := range opts.Plans {
		s.names = append(s.names, p.Name)
		s.mins = append(s.mins, int64(p.MinIntervalSeconds))
		s.defaultMin = max(s.defaultMin, int64(p.MinIntervalSeconds))
	}
	return s
}

// passSQL is one pass. $1, $2: the plan table (names, minimum seconds); $3:
// the minimum of an unknown plan; $4: the batch size; $5: fresh run ids (at
// least $4 of them).
//
// Under READ COMMITTED, a row another pass advanced and committed after this
// statement's snapshot is re-checked when locked (next_run_at is then in the
// future, so it drops out), and a row another pass holds is skipped: a due
// time is enqueued once whatever the number of schedulers.
const passSQL = `
WITH plan (name, min_seconds) AS (
	SELECT * FROM unnest($1::text[], $2::bigint[])
), due AS (
	SELECT w.id, w.account_id,
		COALESCE(w.next_run_at, now()) AS due_at,
		GREATEST(w.interval_seconds, COALESCE(p.min_seconds, $3)) AS interval_seconds
	FROM workflows w
	JOIN accounts a ON a.id = w.account_id
	LEFT JOIN plan p ON p.name = a.plan
	WHERE w.status = 'active'
		AND COALESCE(w.next_run_at, '-infinity'::timestamptz) <= now()
		AND a.status <> 'deleted'
	ORDER BY COALESCE(w.next_run_at, '-infinity'::timestamptz)
	LIMIT $4
	FOR UPDATE OF w SKIP LOCKED
), advanced AS (
	UPDATE workflows w
	SET next_run_at = d.due_at + interval '1 second' * (d.interval_seconds *
		(floor(extract(epoch FROM now() - d.due_at) / d.interval_seconds) + 1))::float8
	FROM due d
	WHERE w.id = d.id
	RETURNING w.id, w.account_id, d.due_at
), enqueued AS (
	INSERT INTO runs (id, account_id, workflow_id, status, trigger, created_at, scheduled_for)
	SELECT ($5::text[])[row_number() OVER ()], a.account_id, a.id, 'queued', 'schedule', now(), a.due_at
	FROM advanced a
	ON CONFLICT (workflow_id) WHERE status IN ('queued', 'running') DO NOTHING
	RETURNING 1
)
SELECT (SELECT count(*) FROM advanced) AS due, (SELECT count(*) FROM enqueued) AS enqueued`

// nextDueSQL is how many seconds remain until the earliest due workflow
// (negative when one is due now, NULL when none is active).
const nextDueSQL = `
SELECT extract(epoch FROM COALESCE(w.next_run_at, now()) - now())::float8
FROM workflows w JOIN accounts a ON a.id = w.account_id
WHERE w.status = 'active' AND a.status <> 'deleted'
ORDER BY COALESCE(w.next_run_at, '-infinity'::timestamptz)
LIMIT 1`

// passResult is what one pass did.
type passResult struct {
	Due      int `db:"due"`      // due workflows locked and advanced
	Enqueued int `db:"enqueued"` // runs inserted (Due minus workflows with an active run)
}

// Tick runs one pass: it enqueues a run of at most BatchSize due workflows
// and returns how many runs it enqueued. Workflows skipped because a run of
// theirs is still queued or running are advanced but not counted.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	r, err := s.pass(ctx)
	return r.Enqueued, err
}

func (s *Scheduler) pass(ctx context.Context) (passResult, error) {
	ids := make([]string, s.opts.BatchSize)
	for i := range ids {
		ids[i] = store.NewID(store.PrefixRun)
	}
	var r passResult
	if err := s.db.GetContext(ctx, &r, passSQL,
		pq.Array(s.names), pq.Array(s.mins), s.defaultMin, s.opts.BatchSize, pq.Array(ids)); err != nil {
		return passResult{}, fmt.Errorf("scheduler: enqueue due workflows: %w", err)
	}
	if r.Due > 0 {
		s.log.Debug("pass", "due", r.Due, "enqueued", r.Enqueued, "skipped_active", r.Due-r.Enqueued)
	}
	return r, nil
}

// untilNextDue is how long until the earliest active workflow is due,
// clamped to [MinWait, MaxWait].
func (s *Scheduler) untilNextDue(ctx context.Context) (time.Duration, error) {
	var secs []float64
	if err := s.db.SelectContext(ctx, &secs, nextDueSQL); err != nil {
		return s.opts.MaxWait, fmt.Errorf("scheduler: next due time: %w", err)
	}
	if len(secs) == 0 {
		return s.opts.MaxWait, nil
	}
	d := time.Duration(secs[0] * float64(time.Second))
	return min(max(d, s.opts.MinWait), s.opts.MaxWait), nil
}

// Start launches the loop on its own goroutine; it runs until Stop or until
// ctx ends. Starting a started Scheduler does nothing.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.loop(ctx)
	}()
}

// Stop stops the loop and waits for it to exit, or for ctx to end. A pass in
// flight is cancelled: its statement rolls back whole, so nothing is half
// enqueued, and another host (or the next start) enqueues those workflows.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: stop: loop still running: %w", ctx.Err())
	}
}

func (s *Scheduler) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := s.opts.MaxWait
		r, err := s.pass(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			s.log.Error("scheduling pass failed", "error", err)
		case r.Due >= s.opts.BatchSize:
			// More may be due: pass again at once.
			wait = 0
		case r.Due > 0:
			// Workflows are coming due now: the next ones are likely close,
			// no need to ask when.
			wait = s.opts.MinWait
		default:
			if wait, err = s.untilNextDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scheduling pass failed", "error", err)
			}
		}
		if r.Enqueued > 0 && s.opts.OnEnqueued != nil {
			s.opts.OnEnqueued(r.Enqueued)
		}
		timer.Reset(wait)
	}
}
