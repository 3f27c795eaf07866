package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/scheduler"
	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// newDB gives the test a migrated host database of its own.
func newDB(t *testing.T) *sqlx.DB {
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

func mustExec(t *testing.T, db *sqlx.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// addAccount inserts an account with one connection (used as both source and
// target of its workflows) and returns the account id.
func addAccount(t *testing.T, db *sqlx.DB, plan, status string) string {
	t.Helper()
	acc := store.NewID(store.PrefixAccount)
	mustExec(t, db, `INSERT INTO accounts (id, name, plan, status) VALUES ($1, 'test', $2, $3)`, acc, plan, status)
	mustExec(t, db, `INSERT INTO connections (id, account_id, app, name, config_enc) VALUES ($1, $2, 'sample', 'c', '\x00')`,
		"con_"+acc, acc)
	return acc
}

// addWorkflow inserts a workflow whose next_run_at is the SQL expression
// nextRunAt (e.g. "now() - interval '1 second'", or "NULL").
func addWorkflow(t *testing.T, db *sqlx.DB, acc string, intervalSeconds int, status, nextRunAt string) string {
	t.Helper()
	id := store.NewID(store.PrefixWorkflow)
	mustExec(t, db, `INSERT INTO workflows (id, account_id, name, source_connection_id, source_object,
			target_connection_id, target_object, mapping, interval_seconds, status, next_run_at)
		VALUES ($1, $2, 'w', $3, 'contacts', $3, 'contacts', '[]', $4, $5, `+nextRunAt+`)`,
		id, acc, "con_"+acc, intervalSeconds, status)
	return id
}

func newScheduler(db *sqlx.DB, opts scheduler.Options) *scheduler.Scheduler {
	return scheduler.New(db, hclog.NewNullLogger(), opts)
}

func tick(t *testing.T, s *scheduler.Scheduler) int {
	t.Helper()
	n, err := s.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func runCount(t *testing.T, db *sqlx.DB, workflowID string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM runs WHERE workflow_id = $1`, workflowID); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTickEnqueuesOnlyDueWorkflows(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	live := addAccount(t, db, store.PlanEnterprise, "active")
	deleted := addAccount(t, db, store.PlanEnterprise, "deleted")
	cases := []struct {
		name      string
		acc       string
		status    string
		nextRunAt string
		wantRun   bool
	}{
		{"due", live, store.WorkflowActive, "now() - interval '1 second'", true},
		{"due exactly now", live, store.WorkflowActive, "now()", true},
		{"never scheduled (NULL) is due now", live, store.WorkflowActive, "NULL", true},
		{"not due yet", live, store.WorkflowActive, "now() + interval '1 minute'", false},
		{"paused", live, store.WorkflowPaused, "now() - interval '1 second'", false},
		{"paused, never scheduled", live, store.WorkflowPaused, "NULL", false},
		{"account deleted", deleted, store.WorkflowActive, "now() - interval '1 second'", false},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = addWorkflow(t, db, tc.acc, 60, tc.status, tc.nextRunAt)
	}
	s := newScheduler(db, scheduler.Options{})
	if n := tick(t, s); n != 3 {
		t.Fatalf("Tick enqueued %d runs, want 3", n)
	}
	if n := tick(t, s); n != 0 {
		t.Fatalf("second Tick enqueued %d runs, want 0: a due time is enqueued once", n)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs []struct {
				Status       string     `db:"status"`
				Trigger      string     `db:"trigger"`
				ScheduledFor *time.Time `db:"scheduled_for"`
			}
			if err := db.Select(&runs, `SELECT status, trigger, scheduled_for FROM runs WHERE workflow_id = $1`, ids[i]); err != nil {
				t.Fatal(err)
			}
			if got := len(runs) == 1; got != tc.wantRun || len(runs) > 1 {
				t.Fatalf("%d runs, want run: %v", len(runs), tc.wantRun)
			}
			if tc.wantRun {
				r := runs[0]
				if r.Status != store.RunQueued || r.Trigger != store.TriggerSchedule || r.ScheduledFor == nil {
					t.Fatalf("run = %+v, want a queued schedule run with scheduled_for", r)
				}
			}
		})
	}
}

func TestResumedWorkflowIsDueAtOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	acc := addAccount(t, db, store.PlanEnterprise, "active")
	wf := addWorkflow(t, db, acc, 60, store.WorkflowPaused, "now() - interval '1 hour'")
	s := newScheduler(db, scheduler.Options{})
	if n := tick(t, s); n != 0 {
		t.Fatalf("paused workflow enqueued %d runs", n)
	}
	// What POST /v1/workflows/{id}/resume does (store.SetWorkflowStatus).
	mustExec(t, db, `UPDATE workflows SET status = 'active', next_run_at = now() WHERE id = $1`, wf)
	if n := tick(t, s); n != 1 {
		t.Fatalf("resumed workflow: Tick enqueued %d runs, want 1", n)
	}
}

func TestIntervalIsClampedToPlanMinimum(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	minimum := func(plan string) int {
		p, ok := store.PlanByName(plan)
		if !ok {
			t.Fatalf("no plan %s", plan)
		}
		return p.MinIntervalSeconds
	}
	cases := []struct {
		name     string
		plan     string
		interval int
		want     int
	}{
		// PRODUCT.md: Individual 15 min, Team 5 min, Enterprise 1 min.
		{"individual 60s runs every 15 min", store.PlanIndividual, 60, 900},
		{"team 60s runs every 5 min", store.PlanTeam, 60, 300},
		{"enterprise 60s stays 60s", store.PlanEnterprise, 60, 60},
		{"individual 1h stays 1h", store.PlanIndividual, 3600, 3600},
		{"team 400s stays 400s", store.PlanTeam, 400, 400},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		if got := max(tc.interval, minimum(tc.plan)); got != tc.want {
			t.Fatalf("%s: plan table gives %d, the product rule says %d", tc.name, got, tc.want)
		}
		acc := addAccount(t, db, tc.plan, "active")
		ids[i] = addWorkflow(t, db, acc, tc.interval, store.WorkflowActive, "now() - interval '2 seconds'")
	}
	if n := tick(t, newScheduler(db, scheduler.Options{})); n != len(cases) {
		t.Fatalf("Tick enqueued %d runs, want %d", n, len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var gap float64
			if err := db.Get(&gap, `SELECT extract(epoch FROM w.next_run_at - r.scheduled_for)::float8
				FROM workflows w JOIN runs r ON r.workflow_id = w.id WHERE w.id = $1`, ids[i]); err != nil {
				t.Fatal(err)
			}
			if gap != float64(tc.want) {
				t.Fatalf("next run %vs after the due time, want %ds", gap, tc.want)
			}
		})
	}
}

func TestFellBehindRunsOnceWithoutCatchUp(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	acc := addAccount(t, db, store.PlanEnterprise, "active")
	cases := []struct {
		name   string
		behind string // how far in the past the due time is
	}{
		{"less than one interval", "30 seconds"}, // next due 30 s ahead: a margin for a slow machine
		{"ten intervals", "607 seconds"},
		{"a day", "1 day 7 seconds"},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = addWorkflow(t, db, acc, 60, store.WorkflowActive, "now() - interval '"+tc.behind+"'")
	}
	s := newScheduler(db, scheduler.Options{})
	if n := tick(t, s); n != len(cases) {
		t.Fatalf("Tick enqueued %d runs, want %d (one per workflow)", n, len(cases))
	}
	// The runs finish; nothing is due until the next point of each grid.
	mustExec(t, db, `UPDATE runs SET status = 'succeeded', finished_at = now()`)
	if n := tick(t, s); n != 0 {
		t.Fatalf("after the runs finished, Tick enqueued %d more: a catch-up burst", n)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r struct {
				Ahead   float64 `db:"ahead"`
				FromDue float64 `db:"from_due"`
			}
			if err := db.Get(&r, `SELECT extract(epoch FROM w.next_run_at - now())::float8 AS ahead,
					extract(epoch FROM w.next_run_at - r.scheduled_for)::float8 AS from_due
				FROM workflows w JOIN runs r ON r.workflow_id = w.id WHERE w.id = $1`, ids[i]); err != nil {
				t.Fatal(err)
			}
			if r.Ahead <= 0 || r.Ahead > 60 {
				t.Fatalf("next run in %vs, want within the next interval (0, 60]", r.Ahead)
			}
			if k := r.FromDue / 60; k != float64(int(k)) {
				t.Fatalf("next run %vs after the missed due time: off the workflow's 60s grid", r.FromDue)
			}
		})
	}
}

func TestActiveRunBlocksANewOne(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	acc := addAccount(t, db, store.PlanEnterprise, "active")
	cases := []struct {
		prior   string
		wantNew bool
	}{
		{store.RunQueued, false},
		{store.RunRunning, false},
		{store.RunSucceeded, true},
		{store.RunPartial, true},
		{store.RunFailed, true},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = addWorkflow(t, db, acc, 60, store.WorkflowActive, "now() - interval '1 second'")
		mustExec(t, db, `INSERT INTO runs (id, account_id, workflow_id, status, trigger) VALUES ($1, $2, $3, $4, 'manual')`,
			store.NewID(store.PrefixRun), acc, ids[i], tc.prior)
	}
	if n := tick(t, newScheduler(db, scheduler.Options{})); n != 3 {
		t.Fatalf("Tick enqueued %d runs, want 3", n)
	}
	for i, tc := range cases {
		t.Run("prior run "+tc.prior, func(t *testing.T) {
			t.Parallel()
			want := 1
			if tc.wantNew {
				want = 2
			}
			if n := runCount(t, db, ids[i]); n != want {
				t.Fatalf("%d runs, want %d", n, want)
			}
			// Skipped or not, the due time is consumed: the workflow waits
			// for its next one.
			var due bool
			if err := db.Get(&due, `SELECT next_run_at <= now() FROM workflows WHERE id = $1`, ids[i]); err != nil {
				t.Fatal(err)
			}
			if due {
				t.Fatal("next_run_at not advanced")
			}
		})
	}
}

// Several schedulers (as on several hosts) pass concurrently over many due
// workflows, round after round: each due time of each workflow gets exactly
// one run.
func TestConcurrentSchedulersNeverDoubleEnqueue(t *testing.T) {
	t.Parallel()
	const (
		workflows  = 1500
		schedulers = 6
		rounds     = 3
	)
	db := newDB(t)
	acc := addAccount(t, db, store.PlanEnterprise, "active")
	mustExec(t, db, `INSERT INTO workflows (id, account_id, name, source_connection_id, source_object,
			target_connection_id, target_object, mapping, interval_seconds, next_run_at)
		SELECT 'wf_' || i, $1, 'w', $2, 'contacts', $2, 'contacts', '[]', 60, now() - i * interval '1 ms'
		FROM generate_series(1, $3) i`, acc, "con_"+acc, workflows)
	// Executors as fast as can be: a run is over the moment it is inserted,
	// so the one-active-run index cannot hide a second enqueue of a due time.
	mustExec(t, db, `CREATE FUNCTION finish_at_once() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN NEW.status := 'succeeded'; RETURN NEW; END $$`)
	mustExec(t, db, `CREATE TRIGGER finish_at_once BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION finish_at_once()`)
	ss := make([]*scheduler.Scheduler, schedulers)
	for i := range ss {
		ss[i] = newScheduler(db, scheduler.Options{BatchSize: 37})
	}
	for round := 1; round <= rounds; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, schedulers)
		total := make([]int, schedulers)
		for i, s := range ss {
			wg.Go(func() {
				// Pass until a pass finds nothing: the others then hold or
				// have done the rest.
				for {
					n, err := s.Tick(context.Background())
					if err != nil {
						errs <- err
						return
					}
					if n == 0 {
						return
					}
					total[i] += n
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		sum := 0
		for _, n := range total {
			sum += n
		}
		var runs, distinct int
		if err := db.Get(&runs, `SELECT count(*) FROM runs`); err != nil {
			t.Fatal(err)
		}
		if err := db.Get(&distinct, `SELECT count(DISTINCT (workflow_id, scheduled_for)) FROM runs`); err != nil {
			t.Fatal(err)
		}
		if sum != workflows || runs != workflows*round || distinct != runs {
			t.Fatalf("round %d: schedulers report %d, runs table holds %d (%d distinct workflow due times), want %d new",
				round, sum, runs, distinct, workflows)
		}
		t.Logf("round %d: runs per scheduler %v", round, total)
		// A minute passes: every workflow is due again.
		mustExec(t, db, `UPDATE workflows SET next_run_at = next_run_at - interval '61 seconds'`)
	}
}

// The loop sleeps until the earliest due time, not a fixed poll, and passes
// again at once while passes fill a batch.
func TestLoopEnqueuesAtTheDueTime(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	acc := addAccount(t, db, store.PlanEnterprise, "active")
	const backlog = 45
	for range backlog {
		addWorkflow(t, db, acc, 60, store.WorkflowActive, "now() - interval '5 seconds'")
	}
	later := addWorkflow(t, db, acc, 60, store.WorkflowActive, "now() + interval '300 milliseconds'")

	enqueued := make(chan int, 100)
	s := newScheduler(db, scheduler.Options{
		BatchSize: 10, MaxWait: time.Hour, MinWait: time.Millisecond,
		OnEnqueued: func(n int) { enqueued <- n },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Start(ctx)
	defer func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	deadline := time.After(30 * time.Second)
	for got := 0; got < backlog+1; {
		select {
		case n := <-enqueued:
			got += n
		case <-deadline:
			t.Fatalf("after 30s, %d of %d runs enqueued (the loop waits MaxWait = 1h instead of the due time?)", got, backlog+1)
		}
	}
	var lag float64
	if err := db.Get(&lag, `SELECT extract(epoch FROM created_at - scheduled_for)::float8 FROM runs WHERE workflow_id = $1`, later); err != nil {
		t.Fatal(err)
	}
	if lag < 0 || lag > 5 {
		t.Fatalf("run enqueued %vs after its due time, want within (0, 5s)", lag)
	}
}

func TestStopDrainsTheLoop(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		db := newDB(t)
		acc := addAccount(t, db, store.PlanEnterprise, "active")
		addWorkflow(t, db, acc, 60, store.WorkflowActive, "NULL")
		enqueued := make(chan int, 1)
		s := newScheduler(db, scheduler.Options{OnEnqueued: func(n int) { enqueued <- n }})
		if err := s.Stop(context.Background()); err != nil {
			t.Fatalf("Stop before Start = %v", err)
		}
		s.Start(context.Background())
		s.Start(context.Background()) // a second Start does nothing
		select {
		case <-enqueued:
		case <-time.After(30 * time.Second):
			t.Fatal("the loop enqueued nothing in 30s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop = %v", err)
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("second Stop = %v", err)
		}
	})
	t.Run("pass blocked in the database", func(t *testing.T) {
		t.Parallel()
		db := newDB(t)
		acc := addAccount(t, db, store.PlanEnterprise, "active")
		wf := addWorkflow(t, db, acc, 60, store.WorkflowActive, "NULL")
		// Another session holds the runs table: the pass waits on it.
		lock, err := db.BeginTxx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Rollback() //nolint:errcheck // the test ends the transaction either way
		if _, err := lock.Exec(`LOCK TABLE runs IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		s := newScheduler(db, scheduler.Options{})
		s.Start(context.Background())
		deadline := time.Now().Add(30 * time.Second)
		for {
			var waiting int
			if err := db.Get(&waiting, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE OF w SKIP LOCKED%'`); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the pass never reached the lock")
			}
			time.Sleep(10 * time.Millisecond) // polling an observable state
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop with a pass blocked = %v", err)
		}
		t.Logf("stopped in %v", time.Since(start))
		if err := lock.Rollback(); err != nil {
			t.Fatal(err)
		}
		// The cancelled pass rolled back whole: no run, the workflow still due.
		if n := runCount(t, db, wf); n != 0 {
			t.Fatalf("%d runs after a cancelled pass, want 0", n)
		}
		var due bool
		if err := db.Get(&due, `SELECT COALESCE(next_run_at <= now(), true) FROM workflows WHERE id = $1`, wf); err != nil {
			t.Fatal(err)
		}
		if !due {
			t.Fatal("a cancelled pass advanced next_run_at")
		}
	})
}
