package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/sdk/testdb"
)

type testBundle struct {
	ctx   context.Context
	store *store.Store
	now   time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := store.Open(ctx, testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return &testBundle{ctx: ctx, store: s, now: time.Now().UTC().Truncate(time.Microsecond)}
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// signup creates an account with its user; the session token is "tok-<email>".
func (b *testBundle) signup(t *testing.T, email string) (store.Account, store.User) {
	t.Helper()
	acc, usr, _, err := b.store.Signup(b.ctx, store.SignupParams{
		AccountName: "Acme", Email: email, Name: "Ann", PasswordHash: "x",
		TrialEndsAt: b.now.Add(store.TrialPeriod), SessionHash: hashOf("tok-" + email), SessionExpiresAt: b.now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return acc, usr
}

func (b *testBundle) connection(t *testing.T, accountID string) store.Connection {
	t.Helper()
	c, err := b.store.CreateConnection(b.ctx, store.Connection{
		ID: store.NewID(store.PrefixConnection), AccountID: accountID, App: "sample", Name: "Sample", ConfigEnc: []byte("sealed"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (b *testBundle) workflow(t *testing.T, accountID, src, dst string) store.Workflow {
	t.Helper()
	next := b.now
	w, err := b.store.CreateWorkflow(b.ctx, store.Workflow{
		AccountID: accountID, Name: "wf", SourceConnectionID: src, SourceObject: "contacts",
		TargetConnectionID: dst, TargetObject: "people", Direction: store.DirectionOneWay,
		Mapping: json.RawMessage(`[{"source":"email","target":"email"}]`), Conflict: store.ConflictSourceWins,
		Deletes: store.DeletesIgnore, IntervalSeconds: 900, Status: store.WorkflowActive, NextRunAt: &next,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (b *testBundle) run(t *testing.T, accountID, workflowID, status string) string {
	t.Helper()
	id := store.NewID(store.PrefixRun)
	if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO runs (id, account_id, workflow_id, status, trigger) VALUES ($1, $2, $3, $4, 'manual')`,
		id, accountID, workflowID, status); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMigrateConcurrentlyAndTwice(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			errs[i] = s.Migrate(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().GetContext(ctx, &n, `SELECT count(*) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("schema_migrations has %d rows, want one per file (%d)", n, len(files))
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := store.NewID(store.PrefixWorkflow)
		rest, ok := strings.CutPrefix(id, "wf_")
		if !ok || len(rest) != 20 || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestSignupAndAuthenticate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, usr := b.signup(t, "ann@example.com")
	if acc.Plan != store.PlanIndividual || acc.Status != store.AccountTrialing || acc.TrialEndsAt == nil {
		t.Fatalf("account = %+v", acc)
	}
	if usr.Role != store.RoleAdmin || !usr.IsPrimary || usr.AccountID != acc.ID {
		t.Fatalf("user = %+v", usr)
	}
	if _, _, _, err := b.store.Signup(b.ctx, store.SignupParams{AccountName: "x", Email: "ann@example.com", Name: "x", PasswordHash: "x",
		SessionHash: hashOf("other"), SessionExpiresAt: b.now}); !errors.Is(err, store.ErrEmailTaken) {
		t.Fatalf("second signup: %v, want ErrEmailTaken", err)
	}
	p, err := b.store.Authenticate(b.ctx, hashOf("tok-ann@example.com"), b.now)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.ID != usr.ID || p.Account.ID != acc.ID || p.Token.Kind != store.TokenSession || p.Token.LastUsedAt == nil {
		t.Fatalf("principal = %+v", p)
	}
	if _, err := b.store.Authenticate(b.ctx, hashOf("tok-ann@example.com"), b.now.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := b.store.Authenticate(b.ctx, hashOf("nope"), b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	if err := b.store.RevokeToken(b.ctx, acc.ID, usr.ID, p.Token.ID, b.now); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Authenticate(b.ctx, hashOf("tok-ann@example.com"), b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := b.store.RevokeToken(b.ctx, acc.ID, usr.ID, p.Token.ID, b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
}

func TestTokensAreScopedToTheirUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, usr := b.signup(t, "a@example.com")
	other, otherUsr := b.signup(t, "b@example.com")
	if _, err := b.store.CreateToken(b.ctx, store.NewTokenParams{AccountID: other.ID, UserID: usr.ID, Kind: store.TokenAPI, Hash: hashOf("x")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token for a user of another account: %v", err)
	}
	tok, err := b.store.CreateToken(b.ctx, store.NewTokenParams{AccountID: acc.ID, UserID: usr.ID, Kind: store.TokenAPI, Name: "ci", Hash: hashOf("x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.RevokeToken(b.ctx, other.ID, otherUsr.ID, tok.ID, b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke another account's token: %v", err)
	}
	list, _, err := b.store.ListTokens(b.ctx, acc.ID, usr.ID, store.TokenAPI, store.ListOptions{})
	if err != nil || len(list) != 1 || list[0].ID != tok.ID {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
}

func TestLoginBlockedUntil(t *testing.T) {
	t.Parallel()
	b := setup(t)
	perEmail := store.LoginLimit{Max: 3, Window: 15 * time.Minute}
	perIP := store.LoginLimit{Max: 5, Window: 15 * time.Minute}
	at := func(m int) time.Time { return b.now.Add(time.Duration(m) * time.Minute) }
	for i, m := range []int{0, 1, 2} {
		until, err := b.store.LoginBlockedUntil(b.ctx, "a@x", "1.1.1.1", perEmail, perIP, at(m))
		if err != nil || !until.IsZero() {
			t.Fatalf("before failure %d: blocked until %v, %v", i, until, err)
		}
		if err := b.store.RecordLoginFailure(b.ctx, "a@x", "1.1.1.1", at(m)); err != nil {
			t.Fatal(err)
		}
	}
	until, err := b.store.LoginBlockedUntil(b.ctx, "a@x", "1.1.1.1", perEmail, perIP, at(3))
	if err != nil || !until.Equal(at(15)) {
		t.Fatalf("after 3 failures: blocked until %v, %v; want %v", until, err, at(15))
	}
	// Another email from the same IP is not blocked yet...
	if until, _ := b.store.LoginBlockedUntil(b.ctx, "b@x", "1.1.1.1", perEmail, perIP, at(3)); !until.IsZero() {
		t.Fatalf("other email blocked until %v", until)
	}
	// ...until the IP reaches its own limit.
	for _, m := range []int{3, 4} {
		if err := b.store.RecordLoginFailure(b.ctx, "b@x", "1.1.1.1", at(m)); err != nil {
			t.Fatal(err)
		}
	}
	if until, _ := b.store.LoginBlockedUntil(b.ctx, "c@x", "1.1.1.1", perEmail, perIP, at(5)); !until.Equal(at(15)) {
		t.Fatalf("ip blocked until %v, want %v", until, at(15))
	}
	// The window slides: once the oldest failure is 15 minutes old, a try is allowed.
	if until, _ := b.store.LoginBlockedUntil(b.ctx, "a@x", "2.2.2.2", perEmail, perIP, at(15)); !until.IsZero() {
		t.Fatalf("after the window: blocked until %v", until)
	}
	if err := b.store.ClearLoginFailures(b.ctx, "a@x"); err != nil {
		t.Fatal(err)
	}
	if until, _ := b.store.LoginBlockedUntil(b.ctx, "a@x", "2.2.2.2", perEmail, perIP, at(4)); !until.IsZero() {
		t.Fatalf("after clear: blocked until %v", until)
	}
}

func TestAccountScoping(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	c1 := b.connection(t, acc.ID)
	c2 := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c1.ID, c2.ID)
	runID := b.run(t, acc.ID, w.ID, store.RunSucceeded)

	// A workflow cannot use another account's connections.
	foreign := b.connection(t, other.ID)
	if _, err := b.store.CreateWorkflow(b.ctx, store.Workflow{AccountID: other.ID, Name: "x", SourceConnectionID: foreign.ID,
		SourceObject: "a", TargetConnectionID: c2.ID, TargetObject: "b", Direction: "one_way", Mapping: json.RawMessage(`[]`),
		Conflict: "source_wins", Deletes: "ignore", IntervalSeconds: 60, Status: "active"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("workflow with a foreign connection: %v", err)
	}

	name := "hijacked"
	checks := map[string]func() error{
		"GetConnection": func() error { _, err := b.store.GetConnection(b.ctx, other.ID, c1.ID); return err },
		"UpdateConnection": func() error {
			_, err := b.store.UpdateConnection(b.ctx, other.ID, c1.ID, store.ConnectionUpdate{Name: &name}, b.now)
			return err
		},
		"SetConnectionCheck": func() error {
			_, err := b.store.SetConnectionCheck(b.ctx, other.ID, c1.ID, store.ConnectionCheck{CheckedConfigEnc: c1.ConfigEnc, Status: "ok", At: b.now})
			return err
		},
		"DeleteConnection": func() error { return b.store.DeleteConnection(b.ctx, other.ID, c1.ID) },
		"GetWorkflow":      func() error { _, err := b.store.GetWorkflow(b.ctx, other.ID, w.ID); return err },
		"UpdateWorkflow": func() error {
			w2 := w
			w2.AccountID = other.ID
			w2.Name = name
			_, err := b.store.UpdateWorkflow(b.ctx, w2, b.now)
			return err
		},
		"SetWorkflowStatus": func() error {
			_, err := b.store.SetWorkflowStatus(b.ctx, other.ID, w.ID, store.WorkflowPaused, nil, b.now)
			return err
		},
		"DeleteWorkflow": func() error { return b.store.DeleteWorkflow(b.ctx, other.ID, w.ID) },
		"GetRun":         func() error { _, err := b.store.GetRun(b.ctx, other.ID, runID); return err },
	}
	for name, fn := range checks {
		if err := fn(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with another account: %v, want ErrNotFound", name, err)
		}
	}
	lists := map[string]func() (int, error){
		"ListConnections": func() (int, error) {
			l, _, err := b.store.ListConnections(b.ctx, other.ID, store.ListOptions{})
			return len(l), err
		},
		"ListWorkflows": func() (int, error) {
			l, _, err := b.store.ListWorkflows(b.ctx, other.ID, store.ListOptions{})
			return len(l), err
		},
		"ListRuns": func() (int, error) {
			l, _, err := b.store.ListRuns(b.ctx, other.ID, w.ID, store.ListOptions{})
			return len(l), err
		},
		"ListRunRecords": func() (int, error) {
			l, _, err := b.store.ListRunRecords(b.ctx, other.ID, runID, store.ListOptions{})
			return len(l), err
		},
	}
	for name, fn := range lists {
		n, err := fn()
		if err != nil || (name == "ListConnections" && n != 1) || (name != "ListConnections" && n != 0) {
			t.Errorf("%s with another account: %d rows, %v", name, n, err)
		}
	}
	// Nothing changed.
	got, err := b.store.GetWorkflow(b.ctx, acc.ID, w.ID)
	if err != nil || got.Name != "wf" || got.Status != store.WorkflowActive {
		t.Fatalf("workflow after foreign attempts: %+v, %v", got, err)
	}
	gotC, err := b.store.GetConnection(b.ctx, acc.ID, c1.ID)
	if err != nil || gotC.Name != "Sample" || gotC.Status != store.ConnectionUnchecked {
		t.Fatalf("connection after foreign attempts: %+v, %v", gotC, err)
	}
}

func TestDeleteConnectionInUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	c1 := b.connection(t, acc.ID)
	c2 := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c1.ID, c2.ID)
	var inUse *store.ConnectionInUseError
	if err := b.store.DeleteConnection(b.ctx, acc.ID, c2.ID); !errors.As(err, &inUse) {
		t.Fatalf("delete used connection: %v", err)
	}
	if len(inUse.Workflows) != 1 || inUse.Workflows[0].ID != w.ID || !strings.Contains(inUse.Error(), w.ID) {
		t.Fatalf("in use error = %v", inUse)
	}
	b.run(t, acc.ID, w.ID, store.RunSucceeded)
	if err := b.store.DeleteWorkflow(b.ctx, acc.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.store.DeleteConnection(b.ctx, acc.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.store.DeleteConnection(b.ctx, acc.ID, c2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestConnectionCheckConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	c := b.connection(t, acc.ID)
	if _, err := b.store.UpdateConnection(b.ctx, acc.ID, c.ID, store.ConnectionUpdate{ConfigEnc: []byte("new")}, b.now); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.SetConnectionCheck(b.ctx, acc.ID, c.ID, store.ConnectionCheck{CheckedConfigEnc: c.ConfigEnc, Status: "ok", At: b.now}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("check of an old config: %v, want ErrConflict", err)
	}
	got, err := b.store.SetConnectionCheck(b.ctx, acc.ID, c.ID, store.ConnectionCheck{CheckedConfigEnc: []byte("new"), Status: "error", Message: "bad key", At: b.now, NewConfigEnc: []byte("newer")})
	if err != nil || got.Status != "error" || got.StatusMessage != "bad key" || string(got.ConfigEnc) != "newer" {
		t.Fatalf("check = %+v, %v", got, err)
	}
}

func TestUpdateWorkflowConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	// The engine moving the cursor is not an edit.
	if _, err := b.store.DB().ExecContext(b.ctx, `UPDATE workflows SET cursor = 'x', updated_at = now() WHERE id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	w.Name = "renamed"
	w2, err := b.store.UpdateWorkflow(b.ctx, w, b.now.Add(time.Second))
	if err != nil || w2.Name != "renamed" || w2.Version != w.Version+1 || string(w2.Cursor) != "x" {
		t.Fatalf("update: %+v, %v", w2, err)
	}
	w.Name = "stale"
	if _, err := b.store.UpdateWorkflow(b.ctx, w, b.now.Add(2*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	want := map[string]bool{}
	for range 7 {
		want[b.connection(t, acc.ID).ID] = true
	}
	got := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		cs, next, err := b.store.ListConnections(b.ctx, acc.ID, store.ListOptions{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for i, c := range cs {
			if got[c.ID] {
				t.Fatalf("%s listed twice", c.ID)
			}
			got[c.ID] = true
			if i > 0 && c.CreatedAt.After(cs[i-1].CreatedAt) {
				t.Fatal("not newest first")
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 3 || len(got) != len(want) {
		t.Fatalf("%d pages, %d items; want 3 pages, %d items", pages, len(got), len(want))
	}
	if _, _, err := b.store.ListConnections(b.ctx, acc.ID, store.ListOptions{Cursor: "!!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestRunRecordsPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	runID := b.run(t, acc.ID, w.ID, store.RunPartial)
	for i := range 5 {
		if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO run_records (run_id, account_id, record_id, status, message) VALUES ($1, $2, $3, 'rejected', 'no')`,
			runID, acc.ID, fmt.Sprint("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	cursor := ""
	for {
		rs, next, err := b.store.ListRunRecords(b.ctx, acc.ID, runID, store.ListOptions{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			ids = append(ids, r.RecordID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(ids, ",") != "r0,r1,r2,r3,r4" {
		t.Fatalf("records = %v", ids)
	}
}

func TestOneActiveRunPerWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	b.run(t, acc.ID, w.ID, store.RunQueued)
	if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO runs (id, account_id, workflow_id, status, trigger) VALUES ($1, $2, $3, 'running', 'manual')`,
		store.NewID(store.PrefixRun), acc.ID, w.ID); err == nil {
		t.Fatal("a second active run was accepted")
	}
	b.run(t, acc.ID, w.ID, store.RunFailed)
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	h := hashOf("body")
	_, reserved, err := b.store.ReserveIdempotencyKey(b.ctx, acc.ID, "k1", "POST", "/v1/connections", h, b.now.Add(-time.Hour))
	if err != nil || !reserved {
		t.Fatalf("first reserve: %v, %v", reserved, err)
	}
	k, reserved, err := b.store.ReserveIdempotencyKey(b.ctx, acc.ID, "k1", "POST", "/v1/connections", h, b.now.Add(-time.Hour))
	if err != nil || reserved || k.Status != 0 {
		t.Fatalf("reserve in flight: %+v, %v, %v", k, reserved, err)
	}
	// Keys are per account.
	if _, reserved, err := b.store.ReserveIdempotencyKey(b.ctx, other.ID, "k1", "POST", "/v1/connections", h, b.now.Add(-time.Hour)); err != nil || !reserved {
		t.Fatalf("other account reserve: %v, %v", reserved, err)
	}
	if err := b.store.CompleteIdempotencyKey(b.ctx, acc.ID, "k1", 201, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	k, reserved, err = b.store.ReserveIdempotencyKey(b.ctx, acc.ID, "k1", "POST", "/v1/connections", h, b.now.Add(-time.Hour))
	if err != nil || reserved || k.Status != 201 || string(k.Body) != "answer" || k.Path != "/v1/connections" {
		t.Fatalf("replay: %+v, %v, %v", k, reserved, err)
	}
	// Released keys can be used again; expired keys are forgotten.
	if err := b.store.ReleaseIdempotencyKey(b.ctx, other.ID, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, reserved, _ := b.store.ReserveIdempotencyKey(b.ctx, other.ID, "k1", "POST", "/x", h, b.now.Add(-time.Hour)); !reserved {
		t.Fatal("released key not reusable")
	}
	if _, reserved, _ := b.store.ReserveIdempotencyKey(b.ctx, acc.ID, "k1", "POST", "/x", h, time.Now().Add(time.Hour)); !reserved {
		t.Fatal("expired key not reusable")
	}
}

func TestPlans(t *testing.T) {
	t.Parallel()
	want := map[string]int{"individual": 900, "team": 300, "enterprise": 60}
	for name, secs := range want {
		p, ok := store.PlanByName(name)
		if !ok || p.MinIntervalSeconds != secs {
			t.Errorf("plan %s = %+v, %v", name, p, ok)
		}
	}
	if _, ok := store.PlanByName("gold"); ok {
		t.Error("unknown plan found")
	}
}
