package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// sampleOnly installs sample 0.1.0.
func sampleOnly(t testing.TB) func(dir string) {
	return func(dir string) { installSample(t, dir, "0.1.0", false) }
}

var sampleConfig = json.RawMessage(`{"count": 1000}`)

// readOK reads a few records through a lease, proving its process works.
func readOK(t *testing.T, l *Lease) {
	t.Helper()
	n := 0
	err := l.Read(testCtx(t), sdk.ReadRequest{Config: sampleConfig, Object: "contacts", BatchSize: 500},
		sdk.ReadSinkFunc(func(_ context.Context, b sdk.ReadBatch) error {
			if b.Diagnostics.HasError() {
				return errors.New(b.Diagnostics.Error())
			}
			n += len(b.Records)
			return nil
		}))
	if err != nil || n != 1000 {
		t.Fatalf("Read through the lease: %d records, %v", n, err)
	}
}

func TestConcurrentAcquireLaunchesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	const n = 8
	leases := make([]*Lease, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			leases[i], errs[i] = e.m.Acquire(ctx, "sample")
		}()
	}
	close(start)
	wg.Wait()
	pid := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Acquire %d: %v", i, errs[i])
		}
		p := leasePID(t, leases[i])
		if pid == 0 {
			pid = p
		} else if p != pid {
			t.Fatalf("lease %d on pid %d, lease 0 on pid %d: more than one process", i, p, pid)
		}
		if leases[i].Name != "sample" || leases[i].Version != "0.1.0" {
			t.Fatalf("lease %d is %s %s", i, leases[i].Name, leases[i].Version)
		}
	}
	if got := len(e.events.of(EventStarted)); got != 1 {
		t.Fatalf("%d launches, want 1", got)
	}
	s := status(t, e.m, "sample", "0.1.0")
	if s.State != StateRunning || s.PID != pid || s.Leases != n || !s.Active {
		t.Fatalf("status %+v, want running pid %d with %d leases", s, pid, n)
	}
	readOK(t, leases[0])
	for _, l := range leases {
		l.Release()
		l.Release() // harmless
	}
	// The active version keeps its idle process for the next run.
	if s := status(t, e.m, "sample", "0.1.0"); s.Leases != 0 || s.PID != pid || !pidAlive(pid) {
		t.Fatalf("after release: %+v (alive %v), want idle process %d kept", s, pidAlive(pid), pid)
	}
	l, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if leasePID(t, l) != pid {
		t.Fatal("a later Acquire started a new process")
	}
}

// TestKillMidRead: SIGKILL the process during a Read. The Read fails with a
// transport error, and the next Acquire gets a new, working process.
func TestKillMidRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	l, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	pid := leasePID(t, l)
	batches := 0
	err = l.Read(ctx, sdk.ReadRequest{Config: json.RawMessage(`{"count": 10000000}`), Object: "contacts", BatchSize: 100},
		sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error {
			batches++
			if batches == 1 {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Errorf("kill -9 %d: %v", pid, err)
				}
			}
			return nil
		}))
	if err == nil {
		t.Fatalf("Read survived kill -9 of its process (%d batches)", batches)
	}
	if !sdk.IsTransportError(err) {
		t.Fatalf("Read after kill -9 = %v, want a transport error", err)
	}
	// The old lease stays dead; a new Acquire (at once, no waiting for
	// go-plugin to notice the exit) gets a new process.
	if _, err := l.Spec(ctx); !sdk.IsTransportError(err) {
		t.Fatalf("Spec on the dead process = %v, want a transport error", err)
	}
	l.Release()

	l2, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatalf("Acquire after the crash: %v", err)
	}
	defer l2.Release()
	pid2 := leasePID(t, l2)
	if pid2 == pid {
		t.Fatalf("Acquire after the crash returned the dead process %d", pid)
	}
	readOK(t, l2)
	s := status(t, e.m, "sample", "0.1.0")
	if s.State != StateRunning || s.PID != pid2 || s.Restarts != 1 || s.Crashes != 1 || s.LastError == "" {
		t.Fatalf("status %+v, want running pid %d after 1 restart and 1 crash", s, pid2)
	}
	if got := e.events.of(EventCrashed); len(got) != 1 || got[0].PID != pid {
		t.Fatalf("crash events %+v, want one for pid %d", got, pid)
	}
	waitFor(t, "the killed process to be reaped", func() bool { return !pidAlive(pid) })
}

func TestBackoffDelays(t *testing.T) {
	t.Parallel()
	m := &Manager{opts: defaultOptions()}
	for _, tt := range []struct {
		crashes int
		want    time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{8, 12800 * time.Millisecond},
		{9, 25600 * time.Millisecond},
		{10, 30 * time.Second},
		{100, 30 * time.Second},
	} {
		if got := m.backoff(tt.crashes); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.crashes, got, tt.want)
		}
	}
}

// TestRestartBackoff: a connector that dies at start is retried no sooner
// than the backoff allows, doubling each time; a caller whose deadline is
// earlier is refused at once.
func TestRestartBackoff(t *testing.T) {
	t.Parallel()
	const initial = 150 * time.Millisecond
	e := newEnv(t, func(dir string) { writeScript(t, dir, "flaky", "1.0.0", "exit 1") },
		WithRestartBackoff(initial, 4*initial), WithCrashLimit(10, time.Minute))
	ctx := testCtx(t)

	for i := range 4 {
		if _, err := e.m.Acquire(ctx, "flaky"); err == nil || errors.Is(err, ErrRestartBackoff) || errors.Is(err, ErrCrashLoop) {
			t.Fatalf("Acquire %d = %v, want the launch error", i, err)
		}
	}
	fails := e.events.of(EventStartFailed)
	if len(fails) != 4 {
		t.Fatalf("%d failed launches, want 4", len(fails))
	}
	for i := 1; i < len(fails); i++ {
		started := fails[i].At.Add(-fails[i].Took)
		want := min(initial<<(i-1), 4*initial)
		if gap := started.Sub(fails[i-1].At); gap < want {
			t.Errorf("launch %d started %v after crash %d, want >= %v", i+1, gap, i, want)
		}
	}

	s := status(t, e.m, "flaky", "1.0.0")
	if s.State != StateBackoff || s.Crashes != 4 || s.RetryAt.IsZero() || s.LastError == "" {
		t.Fatalf("status %+v, want backoff after 4 crashes", s)
	}
	short, cancel := context.WithTimeout(ctx, initial/10)
	defer cancel()
	begin := time.Now()
	_, err := e.m.Acquire(short, "flaky")
	if !errors.Is(err, ErrRestartBackoff) {
		t.Fatalf("Acquire with a short deadline = %v, want ErrRestartBackoff", err)
	}
	if took := time.Since(begin); took >= initial/10 {
		t.Errorf("refusal took %v: it should not wait", took)
	}
	if n := len(e.events.of(EventStartFailed)); n != 4 {
		t.Fatalf("the refused Acquire launched (%d launches)", n)
	}
}

// TestCrashLimit: after the limit of crashes within the window a version is
// refused with a clear error until an operator resets it.
func TestCrashLimit(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t, sampleOnly(t), WithRestartBackoff(time.Millisecond, time.Millisecond), WithCrashLimit(limit, time.Hour))
	ctx := testCtx(t)

	seen := map[int]bool{}
	for i := range limit {
		l, err := e.m.Acquire(ctx, "sample")
		if err != nil {
			t.Fatalf("Acquire %d: %v", i, err)
		}
		pid := leasePID(t, l)
		if seen[pid] {
			t.Fatalf("Acquire %d returned the killed process %d", i, pid)
		}
		seen[pid] = true
		l.Release()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the crash to show in Status", func() bool {
			return status(t, e.m, "sample", "0.1.0").State == StateExited
		})
	}
	_, err := e.m.Acquire(ctx, "sample")
	if !errors.Is(err, ErrCrashLoop) {
		t.Fatalf("Acquire after %d crashes = %v, want ErrCrashLoop", limit, err)
	}
	t.Logf("refusal: %v", err)
	s := status(t, e.m, "sample", "0.1.0")
	if s.State != StateCrashed || s.Crashes != limit || s.Restarts != limit-1 || s.RetryAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("status %+v, want crashed until about an hour from now", s)
	}
	if len(e.events.of(EventStarted)) != limit {
		t.Fatal("a crashed version was launched")
	}

	if err := e.m.ResetCrashes("sample", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	l, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatalf("Acquire after ResetCrashes: %v", err)
	}
	defer l.Release()
	if seen[leasePID(t, l)] {
		t.Fatal("got an old process")
	}
	readOK(t, l)
	if err := e.m.ResetCrashes("sample", "9.9.9"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("ResetCrashes of an unknown version = %v", err)
	}
}

// TestCrashWindowExpires: the refusal ends by itself once the crashes leave
// the window.
func TestCrashWindowExpires(t *testing.T) {
	t.Parallel()
	const window = 400 * time.Millisecond
	e := newEnv(t, func(dir string) { writeScript(t, dir, "flaky", "1.0.0", "exit 1") },
		WithRestartBackoff(time.Millisecond, time.Millisecond), WithCrashLimit(2, window))
	ctx := testCtx(t)
	for range 2 {
		if _, err := e.m.Acquire(ctx, "flaky"); err == nil || errors.Is(err, ErrCrashLoop) {
			t.Fatalf("Acquire = %v, want the launch error", err)
		}
	}
	if _, err := e.m.Acquire(ctx, "flaky"); !errors.Is(err, ErrCrashLoop) {
		t.Fatalf("Acquire = %v, want ErrCrashLoop", err)
	}
	if s := status(t, e.m, "flaky", "1.0.0"); s.State != StateCrashed {
		t.Fatalf("state %q, want crashed", s.State)
	}
	waitFor(t, "the crash window to pass", func() bool {
		_, err := e.m.Acquire(ctx, "flaky")
		return err != nil && !errors.Is(err, ErrCrashLoop)
	})
	if n := len(e.events.of(EventStartFailed)); n != 3 {
		t.Fatalf("%d launches, want 3 (2, the refusal, then one after the window)", n)
	}
}

// TestActivateAndRollback: hot upgrade. A lease on 0.1.0 is held while 0.2.0
// is activated: new leases get 0.2.0, the old process lives until its last
// lease ends.
func TestActivateAndRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	old, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	oldPID := leasePID(t, old)

	installSample(t, e.dir, "0.2.0", false)
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Activate(ctx, "sample", "0.2.0"); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if err := e.m.Activate(ctx, "sample", "0.2.0"); err != nil {
		t.Fatalf("Activate of the active version: %v", err)
	}
	if a, err := e.m.App(ctx, "sample"); err != nil || a.Version != "0.2.0" {
		t.Fatalf("App = %+v, %v, want version 0.2.0", a, err)
	}
	nw, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	newPID := leasePID(t, nw)
	if nw.Version != "0.2.0" || newPID == oldPID {
		t.Fatalf("Acquire after Activate: version %s pid %d (old pid %d)", nw.Version, newPID, oldPID)
	}
	// The held lease on 0.1.0 still works.
	if !pidAlive(oldPID) {
		t.Fatal("the old version's process died while leased")
	}
	readOK(t, old)
	if s := status(t, e.m, "sample", "0.1.0"); s.State != StateRunning || s.Active || s.Leases != 1 {
		t.Fatalf("old version status %+v", s)
	}
	// A run pinned to 0.1.0 shares the old process.
	pinned, err := e.m.AcquireVersion(ctx, "sample", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if leasePID(t, pinned) != oldPID {
		t.Fatal("AcquireVersion(0.1.0) did not share the old process")
	}
	pinned.Release()
	if !pidAlive(oldPID) {
		t.Fatal("the old process stopped while a lease was still held")
	}
	old.Release()
	waitFor(t, "the old process to exit after its last lease", func() bool { return !pidAlive(oldPID) })
	if s := status(t, e.m, "sample", "0.1.0"); s.State != StateIdle || s.PID != 0 {
		t.Fatalf("old version status after retirement %+v", s)
	}
	// EventStopped comes once go-plugin's Kill returns, just after the reaping.
	waitFor(t, "the stop event", func() bool { return len(e.events.of(EventStopped)) == 1 })
	if crashes := e.events.of(EventCrashed); len(crashes) != 0 {
		t.Fatalf("crash events %+v during a hot upgrade", crashes)
	}

	var row connectorRow
	if err := e.db.GetContext(ctx, &row, `SELECT name, active_version, previous_version FROM connectors WHERE name = 'sample'`); err != nil {
		t.Fatal(err)
	}
	if row.ActiveVersion.String != "0.2.0" || row.PreviousVersion.String != "0.1.0" {
		t.Fatalf("stored aliases %+v", row)
	}

	// Rollback to 0.1.0: 0.2.0's process stays while nw holds it.
	if err := e.m.Rollback(ctx, "sample"); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	back, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != "0.1.0" || leasePID(t, back) == oldPID {
		t.Fatalf("after Rollback: version %s, pid %d", back.Version, leasePID(t, back))
	}
	back.Release()
	readOK(t, nw)
	nw.Release()
	waitFor(t, "0.2.0's process to exit", func() bool { return !pidAlive(newPID) })

	// The aliases survive a restart of the host, and a second Rollback
	// undoes the first.
	m2 := e.open()
	if a, err := m2.App(ctx, "sample"); err != nil || a.Version != "0.1.0" {
		t.Fatalf("after restart App = %+v, %v, want 0.1.0", a, err)
	}
	if err := m2.Rollback(ctx, "sample"); err != nil {
		t.Fatal(err)
	}
	if a, _ := m2.App(ctx, "sample"); a.Version != "0.2.0" {
		t.Fatalf("second Rollback: active %s, want 0.2.0", a.Version)
	}
}

func TestActivateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	for _, tt := range []struct {
		name string
		call func() error
		want error
	}{
		{"unknown app", func() error { return e.m.Activate(ctx, "nope", "1.0.0") }, ErrUnknownApp},
		{"unknown version", func() error { return e.m.Activate(ctx, "sample", "9.9.9") }, ErrUnknownVersion},
		{"rollback without previous", func() error { return e.m.Rollback(ctx, "sample") }, ErrNoPreviousVersion},
		{"rollback unknown app", func() error { return e.m.Rollback(ctx, "nope") }, ErrUnknownApp},
		{"acquire unknown app", func() error { _, err := e.m.Acquire(ctx, "nope"); return err }, ErrUnknownApp},
		{"acquire unknown version", func() error { _, err := e.m.AcquireVersion(ctx, "sample", "9.9.9"); return err }, ErrUnknownVersion},
		{"app unknown", func() error { _, err := e.m.App(ctx, "nope"); return err }, ErrUnknownApp},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCloseLeavesNoProcess: Close stops and reaps every process, leased or
// not, and the Manager refuses work afterwards.
func TestCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		installSample(t, dir, "0.2.0", false)
	})
	ctx := testCtx(t)
	held, err := e.m.AcquireVersion(ctx, "sample", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	idle, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	if idle.Version != "0.2.0" {
		t.Fatalf("default active version %s, want 0.2.0 (highest)", idle.Version)
	}
	pids := []int{leasePID(t, held), leasePID(t, idle)}
	idle.Release()
	for _, p := range pids {
		if !pidAlive(p) {
			t.Fatalf("process %d not running before Close", p)
		}
	}
	if err := e.m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range pids {
		if pidAlive(p) {
			t.Errorf("process %d still exists after Close", p)
		}
	}
	if got := len(e.events.of(EventStopped)); got != 2 {
		t.Errorf("%d stop events, want 2", got)
	}
	if _, err := e.m.Acquire(ctx, "sample"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
	}
	if _, err := held.Spec(ctx); err == nil {
		t.Fatal("a lease still works after Close")
	}
	held.Release()
	if err := e.m.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestAppSpecCache: App launches the process once to learn the Spec, which
// is then cached in memory and in the catalog (a restarted host answers
// without launching), and callers get copies.
func TestAppSpecCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		writeScript(t, dir, "broken", "1.0.0", "exit 1")
	}, WithCrashLimit(1, time.Hour))
	ctx := testCtx(t)
	a, err := e.m.App(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "sample" || a.Version != "0.1.0" || a.Spec.Name != "sample" || len(a.Spec.Objects) != 2 || a.Spec.Docs == "" {
		t.Fatalf("App = %+v", a)
	}
	a.Spec.Objects[0].Fields[0].Name = "mutated"
	again, err := e.m.App(ctx, "sample")
	if err != nil || again.Spec.Objects[0].Fields[0].Name != "id" {
		t.Fatalf("the cached Spec was altered through a returned copy: %v", err)
	}
	if n := len(e.events.of(EventStarted)); n != 1 {
		t.Fatalf("%d launches for two App calls, want 1", n)
	}

	apps, err := e.m.Apps(ctx)
	if len(apps) != 1 || apps[0].Name != "sample" {
		t.Fatalf("Apps = %+v", apps)
	}
	if err == nil {
		t.Fatal("Apps hid the broken connector's error")
	}

	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := e.open()
	a2, err := m2.App(ctx, "sample")
	if err != nil || a2.Spec.Docs != a.Spec.Docs || len(a2.Spec.Objects) != 2 || string(a2.Spec.ConfigSchema) == "" {
		t.Fatalf("App from the stored spec = %+v, %v", a2, err)
	}
	if n := len(e.events.of(EventStarted)); n != 1 {
		t.Fatalf("a restarted host launched the connector to get a stored Spec (%d launches)", n)
	}
}

// TestLeaseSemantics: Stop through a lease does not stop the shared process,
// and a released lease refuses calls.
func TestLeaseSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	a, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	readOK(t, b)
	a.Release()
	if _, err := a.Spec(ctx); !errors.Is(err, ErrLeaseReleased) {
		t.Fatalf("Spec after Release = %v, want ErrLeaseReleased", err)
	}
	if s := status(t, e.m, "sample", "0.1.0"); s.Leases != 1 {
		t.Fatalf("%d leases, want 1", s.Leases)
	}
}

// TestAcquireCancelledDuringLaunch: a caller that gives up while the process
// starts gets its context's error and leaks no lease; the launch completes,
// and a pinned version that nobody waits for any more is stopped.
func TestAcquireCancelledDuringLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		// 0.1.0 takes 500 ms to start: a shell that sleeps, then becomes
		// the sample connector (same pid).
		writeScript(t, dir, "sample", "0.1.0", "/bin/sleep 0.5; exec "+sampleBins["0.1.0"])
		installSample(t, dir, "0.2.0", false)
	})
	ctx := testCtx(t)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.m.AcquireVersion(cancelled, "sample", "0.1.0"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context = %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := e.m.AcquireVersion(short, "sample", "0.1.0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with a deadline shorter than the launch = %v", err)
	}
	waitFor(t, "the abandoned launch to complete", func() bool { return len(e.events.of(EventStarted)) == 1 })
	// 0.1.0 is not active (0.2.0 is): with no lease, its process stops.
	waitFor(t, "the unleased pinned process to stop", func() bool { return len(e.events.of(EventStopped)) == 1 })
	pid := e.events.of(EventStarted)[0].PID
	if pidAlive(pid) {
		t.Fatalf("process %d still alive", pid)
	}
	if s := status(t, e.m, "sample", "0.1.0"); s.Leases != 0 || s.PID != 0 || s.State != StateIdle {
		t.Fatalf("status %+v", s)
	}
	// Waiting callers with time to spare share one launch and get leases.
	l, err := e.m.AcquireVersion(ctx, "sample", "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != "0.1.0" {
		t.Fatalf("version %s", l.Version)
	}
	l.Release()
}

// TestReinstallWhileLeased: an operator deletes a version from the catalog
// and Sync reinstalls a new binary under the same version while a lease on
// the old process is held. The old process serves its lease to the end and
// then stops; Close also reaps such a process while it is still leased.
func TestReinstallWhileLeased(t *testing.T) {
	t.Parallel()
	var exe string
	e := newEnv(t, func(dir string) { exe = installSample(t, dir, "0.1.0", true) })
	ctx := testCtx(t)

	reinstall := func() {
		t.Helper()
		rebuild(t, exe)
		if _, err := e.db.ExecContext(ctx, `DELETE FROM connectors WHERE name = 'sample'`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.ExecContext(ctx, `DELETE FROM connector_versions WHERE name = 'sample'`); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if s := status(t, e.m, "sample", "0.1.0"); s.SHA256 != sha256Hex(t, exe) || s.State != StateIdle {
			t.Fatalf("after reinstall: %+v", s)
		}
	}

	old, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	oldPID := leasePID(t, old)
	reinstall()
	nw, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	if leasePID(t, nw) == oldPID || !pidAlive(oldPID) {
		t.Fatalf("new lease on pid %d, old pid %d alive %v", leasePID(t, nw), oldPID, pidAlive(oldPID))
	}
	readOK(t, old)
	old.Release()
	waitFor(t, "the replaced process to stop after its last lease", func() bool { return !pidAlive(oldPID) })
	nw.Release()

	// Again, but Close while the replaced process is still leased.
	held, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	heldPID := leasePID(t, held)
	reinstall()
	current, err := e.m.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	currentPID := leasePID(t, current)
	current.Release()
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{heldPID, currentPID} {
		if pidAlive(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	held.Release()
}

// rebuild replaces an executable the way an install does (write a new file,
// rename it over the old one; a running executable cannot be written) with a
// "new build": the same program with bytes appended, so a new checksum.
func rebuild(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, "rebuilt"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestActivateConflict: two hosts share the catalog. An Activate based on a
// stale view of the active version is refused instead of overwriting the
// other host's change; after Sync the view is current.
func TestActivateConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		installSample(t, dir, "0.2.0", false)
	})
	ctx := testCtx(t)
	other := e.open()
	if err := e.m.Activate(ctx, "sample", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	// other still believes 0.2.0 is active.
	if err := other.Rollback(ctx, "sample"); !errors.Is(err, ErrNoPreviousVersion) {
		t.Fatalf("Rollback on the stale host = %v, want ErrNoPreviousVersion", err)
	}
	if err := other.Activate(ctx, "sample", "0.1.0"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Activate on the stale host = %v, want ErrConflict", err)
	}
	if err := other.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := other.App(ctx, "sample"); err != nil || a.Version != "0.1.0" {
		t.Fatalf("after Sync: %+v, %v", a, err)
	}
	if err := other.Rollback(ctx, "sample"); err != nil {
		t.Fatalf("Rollback after Sync: %v", err)
	}
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.m.App(ctx, "sample"); a.Version != "0.2.0" {
		t.Fatalf("first host sees %s after the other's Rollback, want 0.2.0", a.Version)
	}
}

// A version activated on one host becomes the one another host leases at
// its next RefreshActive (every few seconds in the server), without a scan.
func TestRefreshActiveFollowsOtherHosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		installSample(t, dir, "0.2.0", false)
	})
	ctx := testCtx(t)
	other := e.open()
	if a, err := other.App(ctx, "sample"); err != nil || a.Version != "0.2.0" {
		t.Fatalf("default active version = %+v, %v, want 0.2.0", a, err)
	}
	if err := e.m.Activate(ctx, "sample", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	if err := other.RefreshActive(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := other.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.Version != "0.1.0" {
		t.Fatalf("the other host leases %s after RefreshActive, want 0.1.0", l.Version)
	}
	if err := other.Rollback(ctx, "sample"); err != nil {
		t.Fatalf("Rollback on the refreshed host: %v", err)
	}
	if err := e.m.RefreshActive(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.m.App(ctx, "sample"); a.Version != "0.2.0" {
		t.Fatalf("first host sees %s after the other's Rollback and a refresh, want 0.2.0", a.Version)
	}
}

// With WithReinstallChanged (a developer's machine), a rebuilt executable
// under the same version is recorded anew and runs; without it the same
// rebuild is refused (checksum_mismatch).
func TestReinstallChangedForDevelopers(t *testing.T) {
	t.Parallel()
	for name, dev := range map[string]bool{"production": false, "developer": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var exe string
			e := newEnv(t, func(dir string) { exe = installSample(t, dir, "0.1.0", true) })
			ctx := testCtx(t)
			before := status(t, e.m, "sample", "0.1.0").SHA256
			rebuild(t, exe)
			var opts []Option
			if dev {
				opts = append(opts, WithReinstallChanged())
			}
			m := e.open(opts...) // a host started after the rebuild
			s := status(t, m, "sample", "0.1.0")
			if !dev {
				if s.State != StatusChecksumMismatch || s.SHA256 != before {
					t.Fatalf("production: status %+v, want checksum_mismatch with the installed sha256", s)
				}
				return
			}
			if s.State == StatusChecksumMismatch || s.SHA256 == before {
				t.Fatalf("developer: status %+v, want the rebuilt executable installed", s)
			}
			l, err := m.Acquire(ctx, "sample")
			if err != nil {
				t.Fatalf("Acquire after the rebuild: %v", err)
			}
			readOK(t, l)
			l.Release()
		})
	}
}

// Install checks the sha256 given before touching the catalog: an
// executable that differs is not installed, so it cannot be activated; the
// right sha256 installs it.
func TestInstallChecksSHA256First(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	exe := installSample(t, e.dir, "0.2.0", true) // put in the directory after the host started
	rebuild(t, exe)                               // not the executable the operator vouched for
	want := status(t, e.m, "sample", "0.1.0").SHA256
	_, err := e.m.Install(ctx, "sample", "0.2.0", want)
	var bad *SHA256MismatchError
	if !errors.Is(err, ErrChecksumMismatch) || !errors.As(err, &bad) || bad.Want != want || bad.Got == want {
		t.Fatalf("Install with a wrong sha256 = %v, want a SHA256MismatchError", err)
	}
	var n int
	if err := e.db.GetContext(ctx, &n, `SELECT count(*) FROM connector_versions WHERE name = 'sample' AND version = '0.2.0'`); err != nil || n != 0 {
		t.Fatalf("catalog rows for the refused version: %d, %v; want none", n, err)
	}
	if err := e.m.Activate(ctx, "sample", "0.2.0"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Activate of the refused version = %v, want ErrUnknownVersion", err)
	}
	if _, err := e.m.Install(ctx, "sample", "0.3.0", ""); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Install of a version not in the directory = %v, want ErrUnknownVersion", err)
	}
	if _, err := e.m.Install(ctx, "nosuch", "0.1.0", ""); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("Install of a connector not in the directory = %v, want ErrUnknownApp", err)
	}
	got, err := fileSHA256(ctx, exe)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.m.Install(ctx, "sample", "0.2.0", strings.ToUpper(got))
	if err != nil || s.SHA256 != got || s.State != StateIdle {
		t.Fatalf("Install with the right sha256 = %+v, %v", s, err)
	}
	if err := e.m.Activate(ctx, "sample", "0.2.0"); err != nil {
		t.Fatalf("Activate after the install: %v", err)
	}
}

// RefreshActive reads the catalog only once it holds the admin lock: a
// local Activate that lands while a refresh waits is not reverted by a row
// read before it.
func TestRefreshActiveDoesNotRevertLocalActivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(dir string) {
		installSample(t, dir, "0.1.0", false)
		installSample(t, dir, "0.2.0", false)
	})
	ctx := testCtx(t)
	e.m.admin.Lock() // an Activate in progress
	done := make(chan error, 1)
	// Whenever the refresh runs relative to the Activate, it must not put
	// back the version the Activate replaced (before the fix it read the
	// catalog before taking the admin lock, and did when it ran first).
	go func() { done <- e.m.RefreshActive(ctx) }()
	e.m.mu.Lock()
	a := e.m.apps["sample"]
	e.m.mu.Unlock()
	err := e.m.moveActive(ctx, a, "0.2.0", "0.1.0", "0.2.0") // the rest of Activate(0.1.0)
	e.m.admin.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a, err := e.m.App(ctx, "sample"); err != nil || a.Version != "0.1.0" {
		t.Fatalf("after the Activate and a concurrent refresh: %s, %v; want 0.1.0", a.Version, err)
	}
}

// A version another host installed and activated, which this host has not
// synced, is synced by RefreshActive and then leased.
func TestRefreshActiveSyncsUnknownVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sampleOnly(t))
	ctx := testCtx(t)
	other := e.open()
	installSample(t, e.dir, "0.2.0", false)
	if err := e.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Activate(ctx, "sample", "0.2.0"); err != nil {
		t.Fatal(err)
	}
	if err := other.RefreshActive(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := other.Acquire(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.Version != "0.2.0" {
		t.Fatalf("the other host leases %s after RefreshActive, want 0.2.0 (installed and activated elsewhere)", l.Version)
	}
}
