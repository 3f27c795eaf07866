package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/store"
)

// link inserts a link of a workflow, created at the given offset from b.now.
func (b *testBundle) link(t *testing.T, accountID, workflowID, sourceID, targetID string, age time.Duration) string {
	t.Helper()
	id := store.NewID(store.PrefixLink)
	if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO links (id, account_id, workflow_id, source_id, target_id,
			source_hash, target_hash, source_values, target_values, created_at)
		VALUES ($1, $2, $3, $4, $5, 'h1', 'h2', '{"email": "a@example.com"}', '{"mail": "a@example.com"}', $6)`,
		id, accountID, workflowID, sourceID, targetID, b.now.Add(-age)); err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *testBundle) pendingDelete(t *testing.T, accountID, workflowID, linkID, side, status string, age time.Duration) string {
	t.Helper()
	id := store.NewID(store.PrefixPendingDelete)
	if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO pending_deletes (id, account_id, workflow_id, link_id, side, record_id, status, created_at)
		VALUES ($1, $2, $3, $4, $5, 'r-' || $4, $6, $7)`, id, accountID, workflowID, linkID, side, status, b.now.Add(-age)); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLinksAndHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	l1 := b.link(t, acc.ID, w.ID, "s1", "t1", 3*time.Minute)
	l2 := b.link(t, acc.ID, w.ID, "s2", "t2", 2*time.Minute)
	l3 := b.link(t, acc.ID, w.ID, "s3", "t3", time.Minute)
	for i := range 5 {
		if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO link_history (account_id, link_id, run_id, direction, action, values, note)
			VALUES ($1, $2, NULL, 'to_target', $3, '{}', '')`, acc.ID, l1, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}

	got, err := b.store.GetLink(b.ctx, acc.ID, w.ID, l1)
	if err != nil || got.SourceID != "s1" || got.TargetID != "t1" || string(got.TargetValues) != `{"mail": "a@example.com"}` {
		t.Fatalf("GetLink = %+v, %v", got, err)
	}
	var ids []string
	cursor := ""
	for {
		ls, next, err := b.store.ListLinks(b.ctx, acc.ID, w.ID, store.LinkFilter{}, store.ListOptions{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if strings.Join(ids, ",") != strings.Join([]string{l3, l2, l1}, ",") {
		t.Fatalf("links = %v, want newest first", ids)
	}
	for f, want := range map[store.LinkFilter]string{{SourceID: "s2"}: l2, {TargetID: "t3"}: l3, {SourceID: "s2", TargetID: "t3"}: ""} {
		ls, _, err := b.store.ListLinks(b.ctx, acc.ID, w.ID, f, store.ListOptions{})
		if err != nil || (want == "" && len(ls) != 0) || (want != "" && (len(ls) != 1 || ls[0].ID != want)) {
			t.Fatalf("ListLinks(%+v) = %v, %v; want %q", f, ls, err, want)
		}
	}

	var actions []string
	cursor = ""
	for {
		es, next, err := b.store.ListLinkHistory(b.ctx, acc.ID, l1, store.ListOptions{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			actions = append(actions, e.Action)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if strings.Join(actions, ",") != "a4,a3,a2,a1,a0" {
		t.Fatalf("history = %v, want newest first", actions)
	}

	// Another account sees nothing.
	if _, err := b.store.GetLink(b.ctx, other.ID, w.ID, l1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetLink of another account: %v", err)
	}
	if ls, _, err := b.store.ListLinks(b.ctx, other.ID, w.ID, store.LinkFilter{}, store.ListOptions{}); err != nil || len(ls) != 0 {
		t.Fatalf("ListLinks of another account: %v, %v", ls, err)
	}
	if es, _, err := b.store.ListLinkHistory(b.ctx, other.ID, l1, store.ListOptions{}); err != nil || len(es) != 0 {
		t.Fatalf("ListLinkHistory of another account: %v, %v", es, err)
	}
}

func TestPendingDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	w2 := b.workflow(t, acc.ID, c.ID, c.ID)
	l1 := b.link(t, acc.ID, w.ID, "s1", "t1", 0)
	l2 := b.link(t, acc.ID, w.ID, "s2", "t2", 0)
	l3 := b.link(t, acc.ID, w2.ID, "s3", "t3", 0)
	d1 := b.pendingDelete(t, acc.ID, w.ID, l1, "target", store.DeletePending, 2*time.Minute)
	d2 := b.pendingDelete(t, acc.ID, w.ID, l2, "source", store.DeletePending, time.Minute)
	done := b.pendingDelete(t, acc.ID, w.ID, l2, "target", store.DeleteDone, 3*time.Minute)
	elsewhere := b.pendingDelete(t, acc.ID, w2.ID, l3, "target", store.DeletePending, 0)

	ds, _, err := b.store.ListPendingDeletes(b.ctx, acc.ID, w.ID, store.DeletePending, store.ListOptions{})
	if err != nil || len(ds) != 2 || ds[0].ID != d2 || ds[1].ID != d1 {
		t.Fatalf("pending = %+v, %v", ds, err)
	}
	if all, _, err := b.store.ListPendingDeletes(b.ctx, acc.ID, w.ID, "", store.ListOptions{}); err != nil || len(all) != 3 {
		t.Fatalf("all = %+v, %v", all, err)
	}

	// Other accounts can neither see nor decide.
	if _, err := b.store.DecidePendingDelete(b.ctx, other.ID, w.ID, d1, store.DeleteApproved, b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("decide by another account: %v", err)
	}
	if n, err := b.store.DecideAllPendingDeletes(b.ctx, other.ID, w.ID, store.DeleteApproved, b.now); err != nil || n != 0 {
		t.Fatalf("decide all by another account: %d, %v", n, err)
	}
	if l, _, err := b.store.ListPendingDeletes(b.ctx, other.ID, w.ID, "", store.ListOptions{}); err != nil || len(l) != 0 {
		t.Fatalf("list by another account: %v, %v", l, err)
	}
	// A delete of another workflow is not found through this one.
	if _, err := b.store.DecidePendingDelete(b.ctx, acc.ID, w.ID, elsewhere, store.DeleteApproved, b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("decide through the wrong workflow: %v", err)
	}

	d, err := b.store.DecidePendingDelete(b.ctx, acc.ID, w.ID, d1, store.DeleteApproved, b.now)
	if err != nil || d.Status != store.DeleteApproved || d.DecidedAt == nil || !d.DecidedAt.Equal(b.now) {
		t.Fatalf("approve = %+v, %v", d, err)
	}
	cur, err := b.store.DecidePendingDelete(b.ctx, acc.ID, w.ID, d1, store.DeleteDiscarded, b.now)
	if !errors.Is(err, store.ErrConflict) || cur.Status != store.DeleteApproved {
		t.Fatalf("discard after approve = %+v, %v", cur, err)
	}
	if _, err := b.store.DecidePendingDelete(b.ctx, acc.ID, w.ID, done, store.DeleteApproved, b.now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve a done delete: %v", err)
	}
	if _, err := b.store.DecidePendingDelete(b.ctx, acc.ID, w.ID, d2, store.DeleteDone, b.now); err == nil {
		t.Fatal("a user decision of done was accepted")
	}

	n, err := b.store.DecideAllPendingDeletes(b.ctx, acc.ID, w.ID, store.DeleteDiscarded, b.now)
	if err != nil || n != 1 {
		t.Fatalf("discard all = %d, %v", n, err)
	}
	for id, want := range map[string]string{d1: store.DeleteApproved, d2: store.DeleteDiscarded, done: store.DeleteDone} {
		if d, err := b.store.GetPendingDelete(b.ctx, acc.ID, w.ID, id); err != nil || d.Status != want {
			t.Fatalf("%s = %+v, %v; want %s", id, d, err, want)
		}
	}
	if d, err := b.store.GetPendingDelete(b.ctx, acc.ID, w2.ID, elsewhere); err != nil || d.Status != store.DeletePending {
		t.Fatalf("the other workflow's delete = %+v, %v", d, err)
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	var ids []string
	for i := range 3 {
		n, err := b.store.CreateNotification(b.ctx, store.Notification{AccountID: acc.ID, Kind: "upgrade_advised",
			Message: fmt.Sprint("notice ", i), CreatedAt: b.now.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.ID)
	}
	if _, err := b.store.CreateNotification(b.ctx, store.Notification{AccountID: "acc_nope", Kind: "x", Message: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("notification of no account: %v", err)
	}
	if _, err := b.store.MarkNotificationRead(b.ctx, other.ID, ids[1], b.now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read by another account: %v", err)
	}
	n, err := b.store.MarkNotificationRead(b.ctx, acc.ID, ids[1], b.now)
	if err != nil || n.ReadAt == nil || !n.ReadAt.Equal(b.now) {
		t.Fatalf("read = %+v, %v", n, err)
	}
	if again, err := b.store.MarkNotificationRead(b.ctx, acc.ID, ids[1], b.now.Add(time.Hour)); err != nil || !again.ReadAt.Equal(b.now) {
		t.Fatalf("read twice = %+v, %v", again, err)
	}
	all, _, err := b.store.ListNotifications(b.ctx, acc.ID, false, store.ListOptions{})
	if err != nil || len(all) != 3 || all[0].ID != ids[2] || all[2].ID != ids[0] {
		t.Fatalf("all = %+v, %v", all, err)
	}
	unread, _, err := b.store.ListNotifications(b.ctx, acc.ID, true, store.ListOptions{})
	if err != nil || len(unread) != 2 || unread[0].ID != ids[2] || unread[1].ID != ids[0] {
		t.Fatalf("unread = %+v, %v", unread, err)
	}
	if l, _, err := b.store.ListNotifications(b.ctx, other.ID, false, store.ListOptions{}); err != nil || len(l) != 0 {
		t.Fatalf("another account's list = %+v, %v", l, err)
	}
}

func TestCountRunRecordsAndTwoWayColumns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "a@example.com")
	other, _ := b.signup(t, "b@example.com")
	c := b.connection(t, acc.ID)
	w := b.workflow(t, acc.ID, c.ID, c.ID)
	runID := b.run(t, acc.ID, w.ID, store.RunPartial)
	for _, st := range []string{"failed", "rejected", "retryable", "ambiguous", "conflict"} {
		if _, err := b.store.DB().ExecContext(b.ctx, `INSERT INTO run_records (run_id, account_id, record_id, status, side, link_id)
			VALUES ($1, $2, $3, $3, 'target', 'lnk_x')`, runID, acc.ID, st); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.store.CountRunRecords(b.ctx, acc.ID, runID, store.RetryableRecordStatuses...); err != nil || n != 3 {
		t.Fatalf("failed records = %d, %v", n, err)
	}
	if n, err := b.store.CountRunRecords(b.ctx, other.ID, runID, store.RetryableRecordStatuses...); err != nil || n != 0 {
		t.Fatalf("another account's count = %d, %v", n, err)
	}
	rs, _, err := b.store.ListRunRecords(b.ctx, acc.ID, runID, store.ListOptions{})
	if err != nil || len(rs) != 5 || rs[4].Status != "conflict" || rs[4].Side != "target" || rs[4].LinkID != "lnk_x" {
		t.Fatalf("records = %+v, %v", rs, err)
	}
	if _, err := b.store.DB().ExecContext(b.ctx, `UPDATE runs SET matched_count = 4, ambiguous_count = 2, notice = 'stopped' WHERE id = $1`, runID); err != nil {
		t.Fatal(err)
	}
	r, err := b.store.GetRun(b.ctx, acc.ID, runID)
	if err != nil || r.MatchedCount != 4 || r.AmbiguousCount != 2 || r.Notice != "stopped" {
		t.Fatalf("run = %+v, %v", r, err)
	}

	w.Filter = []byte(`{"all": []}`)
	w.DeleteThresholdPct = 12.5
	w.Direction = store.DirectionTwoWay
	u, err := b.store.UpdateWorkflow(b.ctx, w, b.now)
	if err != nil || string(u.Filter) != `{"all": []}` || u.DeleteThresholdPct != 12.5 {
		t.Fatalf("updated = %+v, %v", u, err)
	}
}
