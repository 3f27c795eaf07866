package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/plugins/postgres/pgconnector"
	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// twoWay is the test bundle of a workflow between two real PostgreSQL
// tables: people (the source) and contacts (the target), keyed by email.
type twoWay struct {
	t    *testing.T
	db   *sqlx.DB // the host's database
	app  *sqlx.DB // the "apps": both tables
	exec *engine.Executor
	wfID string
}

type wfSettings struct {
	direction string
	mapping   string
	match     string
	conflict  string
	deletes   string
	writeBack string
	threshold int
	filter    string
}

const defaultMapping = `[
	{"source": "email", "target": "email", "transform": "trim,lower"},
	{"source": "first_name", "target": "firstname"},
	{"source": "last_name", "target": "lastname"},
	{"source": "phone", "target": "phone"}
]`

func setupTwoWay(t *testing.T, s wfSettings) *twoWay {
	t.Helper()
	ctx := context.Background()
	db, box := hostDB(t), newBox(t)
	appURL := testdb.URL(t)
	app := sqlx.MustOpen("postgres", appURL)
	t.Cleanup(func() { app.Close() })
	app.MustExec(`CREATE TABLE people (email text PRIMARY KEY, first_name text, last_name text, phone text, crm_id text,
		updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted_at timestamptz)`)
	app.MustExec(`CREATE TABLE contacts (email text PRIMARY KEY, firstname text CHECK (length(firstname) < 30), lastname text,
		phone text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted_at timestamptz)`)

	wire, closeFn, err := sdk.ServeTestConn(ctx, pgconnector.New("0.0.1", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wire.Stop(context.Background()); closeFn() }) //nolint:errcheck
	reg := &wireRegistry{conns: map[string]sdk.Connector{"postgres": wire}}

	cfg := func(table string) string {
		c := map[string]any{"url": appURL, "table": table, "primary_key": "email", "updated_at_column": "updated_at", "deleted_column": "deleted_at"}
		b, _ := json.Marshal(c)
		return string(b)
	}
	seal := func(id, c string) []byte {
		b, err := box.Seal([]byte(c), []byte(id))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if s.direction == "" {
		s.direction = "two_way"
	}
	if s.mapping == "" {
		s.mapping = defaultMapping
	}
	if s.match == "" {
		s.match = `{"source": "email", "target": "email"}`
	}
	if s.conflict == "" {
		s.conflict = "source_wins"
	}
	if s.deletes == "" {
		s.deletes = "ignore"
	}
	if s.threshold == 0 {
		s.threshold = 10
	}
	var writeBack, filter any
	if s.writeBack != "" {
		writeBack = fmt.Sprintf(`{"field": %q}`, s.writeBack)
	}
	if s.filter != "" {
		filter = s.filter
	}
	db.MustExec(`INSERT INTO accounts (id, name) VALUES ('acc_a', 'A'), ('acc_b', 'B')`)
	db.MustExec(`INSERT INTO connections (id, account_id, app, name, config_enc) VALUES ('con_src', 'acc_a', 'postgres', 'people', $1), ('con_dst', 'acc_a', 'postgres', 'contacts', $2)`,
		seal("con_src", cfg("people")), seal("con_dst", cfg("contacts")))
	db.MustExec(`INSERT INTO workflows (id, account_id, name, source_connection_id, source_object, target_connection_id, target_object,
		direction, mapping, match, conflict, deletes, write_back, filter, delete_threshold_pct, interval_seconds)
		VALUES ('wf_2', 'acc_a', 'two-way', 'con_src', 'people', 'con_dst', 'contacts', $1, $2, $3, $4, $5, $6, $7, $8, 900)`,
		s.direction, s.mapping, s.match, s.conflict, s.deletes, writeBack, filter, s.threshold)
	return &twoWay{
		t: t, db: db, app: app, wfID: "wf_2",
		exec: engine.NewExecutor(db, reg, box, hclog.NewNullLogger(), engine.Options{HostID: "h1", BatchSize: 100}),
	}
}

type runResult struct {
	Status       string  `db:"status"`
	Read         int64   `db:"read_count"`
	Created      int64   `db:"created_count"`
	Updated      int64   `db:"updated_count"`
	Deleted      int64   `db:"deleted_count"`
	Skipped      int64   `db:"skipped_count"`
	Failed       int64   `db:"failed_count"`
	Matched      int64   `db:"matched_count"`
	Ambiguous    int64   `db:"ambiguous_count"`
	Transactions int64   `db:"transactions"`
	Error        *string `db:"error"`
	Notice       *string `db:"notice"`
	ID           string  `db:"id"`
}

func (w *twoWay) run() runResult {
	w.t.Helper()
	ctx := context.Background()
	id, err := w.exec.Enqueue(ctx, "acc_a", w.wfID, "manual")
	if err != nil {
		w.t.Fatal(err)
	}
	if ran, err := w.exec.RunOnce(ctx); err != nil || !ran {
		w.t.Fatalf("RunOnce = %v, %v", ran, err)
	}
	var r runResult
	if err := w.db.Get(&r, `SELECT id, status, read_count, created_count, updated_count, deleted_count, skipped_count, failed_count,
		matched_count, ambiguous_count, transactions, error, notice FROM runs WHERE id = $1`, id); err != nil {
		w.t.Fatal(err)
	}
	if r.Status == "failed" {
		w.t.Fatalf("run failed: %s", *r.Error)
	}
	return r
}

func (w *twoWay) count(table, where string) int {
	w.t.Helper()
	var n int
	if err := w.app.Get(&n, `SELECT count(*) FROM `+table+` WHERE `+where); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *twoWay) value(q string, args ...any) string {
	w.t.Helper()
	var s *string
	if err := w.app.Get(&s, q, args...); err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

func seedPeople(t *testing.T, app *sqlx.DB, from, to int) {
	t.Helper()
	app.MustExec(`INSERT INTO people (email, first_name, last_name, phone)
		SELECT 'p' || i || '@example.com', 'First' || i, 'Last' || i, '+1-555-' || i FROM generate_series($1::int, $2::int) i`, from, to)
}

func seedContacts(t *testing.T, app *sqlx.DB, from, to int) {
	t.Helper()
	app.MustExec(`INSERT INTO contacts (email, firstname, lastname)
		SELECT 'p' || i || '@example.com', 'First' || i, 'Last' || i FROM generate_series($1::int, $2::int) i`, from, to)
}

func TestTwoWayHistoricalSyncThenEditsFlowOnceEachWay(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{})
	seedPeople(t, w.app, 1, 50)    // people 1..50
	seedContacts(t, w.app, 31, 70) // contacts 31..70: 31..50 on both sides

	r := w.run()
	if r.Matched != 20 || r.Created != 50 || r.Failed != 0 || r.Ambiguous != 0 {
		t.Fatalf("historical sync = %+v, want 20 matched and 50 created (30 contacts + 20 people)", r)
	}
	if n := w.count("people", "true"); n != 70 {
		t.Fatalf("people holds %d rows, want 70", n)
	}
	if n := w.count("contacts", "true"); n != 70 {
		t.Fatalf("contacts holds %d rows, want 70", n)
	}
	// The matched contacts had no phone: the people's phones filled them;
	// the people created from contacts have none, and nothing was blanked.
	if got := w.value(`SELECT phone FROM contacts WHERE email = 'p40@example.com'`); got != "+1-555-40" {
		t.Fatalf("matched contact's phone = %s, want the person's", got)
	}
	if got := w.value(`SELECT phone FROM people WHERE email = 'p40@example.com'`); got != "+1-555-40" {
		t.Fatalf("person's phone = %s after sync, want it kept", got)
	}

	// Nothing changed: echoes of the first run's writes cost nothing.
	r = w.run()
	if r.Transactions != 0 {
		t.Fatalf("idle run = %+v, want no transactions (echoes must be skipped)", r)
	}

	// An edit on the source reaches the target once.
	w.app.MustExec(`UPDATE people SET first_name = 'Ann', updated_at = clock_timestamp() WHERE email = 'p7@example.com'`)
	r = w.run()
	if r.Updated != 1 || r.Transactions != 1 {
		t.Fatalf("run after a source edit = %+v, want exactly one update", r)
	}
	if got := w.value(`SELECT firstname FROM contacts WHERE email = 'p7@example.com'`); got != "Ann" {
		t.Fatalf("contact firstname = %s, want Ann", got)
	}
	if r = w.run(); r.Transactions != 0 {
		t.Fatalf("run after the edit synced = %+v, want no transactions: it must not bounce back", r)
	}

	// An edit on the target reaches the source once.
	w.app.MustExec(`UPDATE contacts SET lastname = 'Lee', updated_at = clock_timestamp() WHERE email = 'p60@example.com'`)
	r = w.run()
	if r.Updated != 1 || r.Transactions != 1 {
		t.Fatalf("run after a target edit = %+v, want exactly one update", r)
	}
	if got := w.value(`SELECT last_name FROM people WHERE email = 'p60@example.com'`); got != "Lee" {
		t.Fatalf("person last_name = %s, want Lee", got)
	}
	if r = w.run(); r.Transactions != 0 {
		t.Fatalf("run after the edit synced = %+v, want no transactions", r)
	}

	// A new record on each side is created on the other once.
	w.app.MustExec(`INSERT INTO people (email, first_name) VALUES ('new.person@example.com', 'Neo')`)
	w.app.MustExec(`INSERT INTO contacts (email, firstname) VALUES ('new.contact@example.com', 'Trinity')`)
	if r = w.run(); r.Created != 2 || r.Transactions != 2 {
		t.Fatalf("run after two inserts = %+v, want 2 created", r)
	}
	if r = w.run(); r.Transactions != 0 {
		t.Fatalf("idle run = %+v, want no transactions", r)
	}
}

func TestTwoWayConflictPolicies(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		policy    string
		srcAgo    int    // how many microseconds ago each side changed (the
		tgtAgo    int    // connector holds back rows dated in the future)
		wantFirst string // first name both sides end with
	}{
		"source wins":                {policy: "source_wins", srcAgo: 300, tgtAgo: 100, wantFirst: "FromSource"},
		"target wins":                {policy: "target_wins", srcAgo: 100, tgtAgo: 300, wantFirst: "FromTarget"},
		"newest wins: target newer":  {policy: "newest_wins", srcAgo: 300, tgtAgo: 100, wantFirst: "FromTarget"},
		"newest wins: source newer":  {policy: "newest_wins", srcAgo: 100, tgtAgo: 300, wantFirst: "FromSource"},
		"newest wins: tie -> source": {policy: "newest_wins", srcAgo: 200, tgtAgo: 200, wantFirst: "FromSource"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := setupTwoWay(t, wfSettings{conflict: tc.policy})
			seedPeople(t, w.app, 1, 5)
			w.run()
			var now string
			if err := w.app.Get(&now, `SELECT clock_timestamp()::text`); err != nil {
				t.Fatal(err)
			}
			w.app.MustExec(`UPDATE people SET first_name = 'FromSource', updated_at = $1::timestamptz - make_interval(secs => $2::float8 / 1e6) WHERE email = 'p3@example.com'`, now, tc.srcAgo)
			w.app.MustExec(`UPDATE contacts SET firstname = 'FromTarget', updated_at = $1::timestamptz - make_interval(secs => $2::float8 / 1e6) WHERE email = 'p3@example.com'`, now, tc.tgtAgo)
			r := w.run()
			if r.Transactions != 1 {
				t.Fatalf("conflict run = %+v, want exactly one write (the winner's)", r)
			}
			src := w.value(`SELECT first_name FROM people WHERE email = 'p3@example.com'`)
			dst := w.value(`SELECT firstname FROM contacts WHERE email = 'p3@example.com'`)
			if src != tc.wantFirst || dst != tc.wantFirst {
				t.Fatalf("after conflict: source %q, target %q; want both %q", src, dst, tc.wantFirst)
			}
			var conflicts int
			if err := w.db.Get(&conflicts, `SELECT count(*) FROM run_records WHERE run_id = $1 AND status = 'conflict'`, r.ID); err != nil {
				t.Fatal(err)
			}
			if conflicts != 1 {
				t.Fatalf("%d conflicts recorded, want 1", conflicts)
			}
			if r = w.run(); r.Transactions != 0 {
				t.Fatalf("run after the conflict = %+v, want nothing to bounce", r)
			}
		})
	}
}

func TestTwoWayAmbiguousKeysAreLeftAlone(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{})
	seedPeople(t, w.app, 1, 3)
	// Two people share one key once trimmed and lowercased; one contact has it.
	w.app.MustExec(`INSERT INTO people (email, first_name) VALUES ('Dup@Example.com', 'A'), (' dup@example.com', 'B')`)
	w.app.MustExec(`INSERT INTO contacts (email, firstname) VALUES ('dup@example.com', 'C')`)
	r := w.run()
	if r.Ambiguous == 0 || r.Created != 3 {
		t.Fatalf("run = %+v, want the dup key reported ambiguous and the 3 others created", r)
	}
	if n := w.count("contacts", "lower(trim(email)) = 'dup@example.com'"); n != 1 {
		t.Fatalf("%d contacts with the ambiguous key, want the original 1 untouched", n)
	}
	if got := w.value(`SELECT firstname FROM contacts WHERE email = 'dup@example.com'`); got != "C" {
		t.Fatalf("ambiguous contact changed to %q", got)
	}
	var n int
	if err := w.db.Get(&n, `SELECT count(*) FROM run_records WHERE run_id = $1 AND status = 'ambiguous'`, r.ID); err != nil || n == 0 {
		t.Fatalf("ambiguous records not reported in the run: %d, %v", n, err)
	}
}

func TestRejectedRecordDoesNotStopItsBatchAndCanBeRetried(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{})
	seedPeople(t, w.app, 1, 20)
	w.app.MustExec(`UPDATE people SET first_name = repeat('x', 40) WHERE email = 'p5@example.com'`) // violates the target's CHECK
	r := w.run()
	if r.Status != "partial" || r.Created != 19 || r.Failed != 1 {
		t.Fatalf("run = %+v, want partial with 19 created and 1 failed", r)
	}
	var msg string
	if err := w.db.Get(&msg, `SELECT message FROM run_records WHERE run_id = $1 AND status = 'rejected' AND record_id = 'p5@example.com'`, r.ID); err != nil {
		t.Fatalf("rejected record not kept with its error: %v", err)
	}
	if !strings.Contains(msg, "check") {
		t.Fatalf("rejection message %q does not carry the app's reason", msg)
	}
	// Fix the data in the target's favour, then retry the failed record.
	w.app.MustExec(`ALTER TABLE contacts DROP CONSTRAINT contacts_firstname_check`)
	newRun, n, err := w.exec.RetryFailed(context.Background(), "acc_a", r.ID)
	if err != nil || n != 1 {
		t.Fatalf("RetryFailed = %s, %d, %v; want 1 record queued", newRun, n, err)
	}
	if _, _, err := w.exec.RetryFailed(context.Background(), "acc_b", r.ID); err == nil {
		t.Fatalf("another account retried this account's run")
	}
	if ran, err := w.exec.RunOnce(context.Background()); err != nil || !ran {
		t.Fatalf("retry run did not run: %v", err)
	}
	if n := w.count("contacts", "true"); n != 20 {
		t.Fatalf("contacts holds %d rows after the retry, want 20", n)
	}
}

func TestOneWayWriteBackStoresTheTargetID(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{direction: "one_way", writeBack: "crm_id"})
	seedPeople(t, w.app, 1, 10)
	r := w.run()
	if r.Created != 10 {
		t.Fatalf("run = %+v, want 10 created", r)
	}
	if n := w.count("people", "crm_id = email"); n != 10 {
		t.Fatalf("%d people carry the target id in crm_id, want 10", n)
	}
	// The write-back is Synchron's own change: it does not come back as an update.
	if r = w.run(); r.Transactions != 0 {
		t.Fatalf("run after write-back = %+v, want no transactions", r)
	}
}

func TestPreviewWritesNothingAndPredictsTheRun(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{})
	seedPeople(t, w.app, 1, 12)
	seedContacts(t, w.app, 10, 15)
	p, err := w.exec.Preview(context.Background(), "acc_a", w.wfID)
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	if n := w.count("contacts", "true"); n != 6 {
		t.Fatalf("preview wrote to the target: %d contacts, want 6", n)
	}
	var links, runs, staged int
	w.db.Get(&links, `SELECT count(*) FROM links`)      //nolint:errcheck
	w.db.Get(&runs, `SELECT count(*) FROM runs`)        //nolint:errcheck
	w.db.Get(&staged, `SELECT count(*) FROM run_stage`) //nolint:errcheck
	if links+runs+staged != 0 {
		t.Fatalf("preview left state behind: %d links, %d runs, %d staged rows", links, runs, staged)
	}
	if _, err := w.exec.Preview(context.Background(), "acc_b", w.wfID); err == nil {
		t.Fatalf("another account previewed this account's workflow")
	}
	r := w.run()
	if p.Matched != r.Matched || p.ToTarget.Created+p.ToSource.Created != r.Created || p.Transactions != r.Transactions {
		t.Fatalf("preview %+v does not predict the run %+v", p, r)
	}
	if p.Matched != 3 || p.ToTarget.Created != 9 || p.ToSource.Created != 3 {
		t.Fatalf("preview = %+v, want 3 matched, 9 created in the target and 3 in the source", p)
	}
}

func TestDeletePolicies(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		deletes       string
		threshold     int
		wantContacts  int // contacts left alive after deleting 2 of 20 people
		wantPending   int
		wantSafetyHit bool
	}{
		"ignore":                  {deletes: "ignore", threshold: 50, wantContacts: 20},
		"propagate":               {deletes: "propagate", threshold: 50, wantContacts: 18},
		"approve":                 {deletes: "approve", threshold: 50, wantContacts: 20, wantPending: 2},
		"propagate over the stop": {deletes: "propagate", threshold: 5, wantContacts: 20, wantPending: 2, wantSafetyHit: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := setupTwoWay(t, wfSettings{deletes: tc.deletes, threshold: tc.threshold})
			seedPeople(t, w.app, 1, 20)
			if r := w.run(); r.Created != 20 {
				t.Fatalf("first run = %+v", r)
			}
			w.app.MustExec(`UPDATE people SET deleted_at = now(), updated_at = clock_timestamp() WHERE email IN ('p1@example.com', 'p2@example.com')`)
			r := w.run()
			if got := w.count("contacts", "deleted_at IS NULL"); got != tc.wantContacts {
				t.Fatalf("%d live contacts, want %d (run %+v)", got, tc.wantContacts, r)
			}
			var pending int
			w.db.Get(&pending, `SELECT count(*) FROM pending_deletes WHERE status = 'pending'`) //nolint:errcheck
			if pending != tc.wantPending {
				t.Fatalf("%d deletions wait for approval, want %d", pending, tc.wantPending)
			}
			if hit := r.Notice != nil && strings.Contains(*r.Notice, "safety stop"); hit != tc.wantSafetyHit {
				t.Fatalf("safety stop notice = %v, want %v", r.Notice, tc.wantSafetyHit)
			}
			if tc.wantPending > 0 {
				// Approve them: the next run deletes them, once.
				w.db.MustExec(`UPDATE pending_deletes SET status = 'approved'`)
				if r = w.run(); r.Deleted != 2 {
					t.Fatalf("run after approval = %+v, want 2 deleted", r)
				}
				if got := w.count("contacts", "deleted_at IS NULL"); got != 18 {
					t.Fatalf("%d live contacts after approval, want 18", got)
				}
			}
			if r = w.run(); r.Transactions != 0 {
				t.Fatalf("run after deletes = %+v, want nothing more", r)
			}
		})
	}
}

func TestFilterSelectsWhichRecordsSync(t *testing.T) {
	t.Parallel()
	w := setupTwoWay(t, wfSettings{filter: `{"all": [{"side": "source", "field": "last_name", "op": "ne", "value": "Skip"}]}`})
	seedPeople(t, w.app, 1, 10)
	w.app.MustExec(`UPDATE people SET last_name = 'Skip' WHERE email IN ('p1@example.com', 'p2@example.com', 'p3@example.com')`)
	r := w.run()
	if r.Created != 7 {
		t.Fatalf("run = %+v, want the 7 records that pass the filter created", r)
	}
	if n := w.count("contacts", "lastname = 'Skip'"); n != 0 {
		t.Fatalf("%d filtered-out records reached the target", n)
	}
}

func TestMatchedPairTakesEachSidesMissingValues(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"source_wins", "target_wins"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			w := setupTwoWay(t, wfSettings{conflict: policy})
			// The person has a first name the contact lacks; the contact has
			// a phone the person lacks; their last names differ.
			w.app.MustExec(`INSERT INTO people (email, first_name, last_name) VALUES ('x@example.com', 'Ann', 'Source')`)
			w.app.MustExec(`INSERT INTO contacts (email, lastname, phone) VALUES ('x@example.com', 'Target', '+1-555-0100')`)
			r := w.run()
			if r.Matched != 1 {
				t.Fatalf("run = %+v, want the pair matched", r)
			}
			wantLast := map[string]string{"source_wins": "Source", "target_wins": "Target"}[policy]
			for _, q := range []struct{ query, want string }{
				{`SELECT phone FROM people WHERE email = 'x@example.com'`, "+1-555-0100"},
				{`SELECT firstname FROM contacts WHERE email = 'x@example.com'`, "Ann"},
				{`SELECT last_name FROM people WHERE email = 'x@example.com'`, wantLast},
				{`SELECT lastname FROM contacts WHERE email = 'x@example.com'`, wantLast},
			} {
				if got := w.value(q.query); got != q.want {
					t.Fatalf("%s = %q, want %q", q.query, got, q.want)
				}
			}
			if r = w.run(); r.Transactions != 0 {
				t.Fatalf("run after the match = %+v, want no transactions", r)
			}
		})
	}
}
