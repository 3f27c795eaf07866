package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/store"
)

func TestWebhookEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "hooks@example.com")
	other, _ := b.signup(t, "other@example.com")
	c := b.connection(t, acc.ID)
	oc := b.connection(t, other.ID)

	got, err := b.store.GetConnectionByID(b.ctx, c.ID)
	if err != nil || got.AccountID != acc.ID {
		t.Fatalf("GetConnectionByID = %+v, %v", got, err)
	}
	if _, err := b.store.GetConnectionByID(b.ctx, "con_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing connection: %v", err)
	}

	for i := range 3 {
		e, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{
			AccountID: acc.ID, ConnectionID: c.ID, ReceivedAt: b.now.Add(time.Duration(i) * time.Second),
			Verified: i != 1, Summary: fmt.Sprintf("event %d", i), Changes: i,
		})
		if err != nil || e.ID == "" || e.Summary != fmt.Sprintf("event %d", i) {
			t.Fatalf("record %d = %+v, %v", i, e, err)
		}
	}
	// An event cannot name a connection of another account.
	if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: oc.ID}); err == nil {
		t.Fatal("event recorded for another account's connection")
	}
	page, next, err := b.store.ListWebhookEvents(b.ctx, acc.ID, c.ID, store.ListOptions{Limit: 2})
	if err != nil || len(page) != 2 || next == "" || page[0].Summary != "event 2" || page[1].Verified {
		t.Fatalf("page 1 = %+v %q %v", page, next, err)
	}
	page, next, err = b.store.ListWebhookEvents(b.ctx, acc.ID, c.ID, store.ListOptions{Limit: 2, Cursor: next})
	if err != nil || len(page) != 1 || next != "" || page[0].Summary != "event 0" {
		t.Fatalf("page 2 = %+v %q %v", page, next, err)
	}
	if page, _, err := b.store.ListWebhookEvents(b.ctx, other.ID, c.ID, store.ListOptions{}); err != nil || len(page) != 0 {
		t.Fatalf("another account lists %d events, %v", len(page), err)
	}
}

func TestWebhookWorkflows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "wf-hooks@example.com")
	c, d := b.connection(t, acc.ID), b.connection(t, acc.ID)
	reads := b.workflow(t, acc.ID, c.ID, d.ID)
	b.workflow(t, acc.ID, d.ID, c.ID) // one-way into c: not triggered
	paused := b.workflow(t, acc.ID, c.ID, d.ID)
	if _, err := b.store.SetWorkflowStatus(b.ctx, acc.ID, paused.ID, store.WorkflowPaused, nil, b.now); err != nil {
		t.Fatal(err)
	}
	twoWay := b.workflow(t, acc.ID, d.ID, c.ID)
	if _, err := b.store.DB().ExecContext(b.ctx, `UPDATE workflows SET direction = 'two_way' WHERE id = $1`, twoWay.ID); err != nil {
		t.Fatal(err)
	}
	ws, err := b.store.WebhookWorkflows(b.ctx, acc.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range ws {
		got[w.ID] = w.ObjectOn(c.ID)
	}
	if len(got) != 2 || got[reads.ID] != "contacts" || got[twoWay.ID] != "people" {
		t.Fatalf("triggered = %v, want %s (contacts) and %s (people)", got, reads.ID, twoWay.ID)
	}
	other, _ := b.signup(t, "wf-other@example.com")
	if ws, err := b.store.WebhookWorkflows(b.ctx, other.ID, c.ID); err != nil || len(ws) != 0 {
		t.Fatalf("another account: %v, %v", ws, err)
	}
}

// Events older than the retention, and beyond the newest WebhookEventsKept
// of a connection, are dropped when an event is recorded; other
// connections keep theirs.
func TestWebhookEventsRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "hook-retention@example.com")
	c := b.connection(t, acc.ID)
	other := b.connection(t, acc.ID)
	record := func(conn string, at time.Time, summary string) {
		t.Helper()
		if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: conn, ReceivedAt: at, Summary: summary}); err != nil {
			t.Fatal(err)
		}
	}
	all := func(conn string) []store.WebhookEvent {
		t.Helper()
		var out []store.WebhookEvent
		opts := store.ListOptions{Limit: 500}
		for {
			page, next, err := b.store.ListWebhookEvents(b.ctx, acc.ID, conn, opts)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page...)
			if next == "" {
				return out
			}
			opts.Cursor = next
		}
	}
	record(other.ID, b.now.Add(-2*time.Hour), "other")
	record(c.ID, b.now.Add(-store.WebhookEventRetention-time.Hour), "old")
	record(c.ID, b.now.Add(-time.Hour), "recent")
	if got := all(c.ID); len(got) != 1 || got[0].Summary != "recent" {
		t.Fatalf("events after the retention prune = %+v, want only the recent one", got)
	}
	start := b.now.Add(-time.Minute)
	for i := range store.WebhookEventsKept + 5 {
		record(c.ID, start.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("flood %04d", i))
	}
	got := all(c.ID)
	if len(got) != store.WebhookEventsKept {
		t.Fatalf("%d events kept, want %d", len(got), store.WebhookEventsKept)
	}
	if newest, oldest := got[0].Summary, got[len(got)-1].Summary; newest != fmt.Sprintf("flood %04d", store.WebhookEventsKept+4) || oldest != "flood 0005" {
		t.Errorf("kept events from %q to %q, want the newest %d", oldest, newest, store.WebhookEventsKept)
	}
	if got := all(other.ID); len(got) != 1 {
		t.Errorf("the other connection has %d events, want its 1 untouched", len(got))
	}
}

// The cap on a connection's events does not count processed deliveries: a
// flood of forged deliveries (refused, unverified) cannot push out the id of
// a processed one, whose redelivery is still refused as a duplicate.
func TestWebhookFloodKeepsProcessedDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "hook-flood@example.com")
	c := b.connection(t, acc.ID)
	start := b.now.Add(-time.Hour)
	if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: c.ID, ReceivedAt: start,
		Verified: true, DeliveryID: "processed", Summary: "processed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: c.ID, ReceivedAt: start.Add(time.Millisecond),
		Verified: true, DeliveryID: "failed", Error: "runs not queued: try again"}); err != nil {
		t.Fatal(err)
	}
	for i := range store.WebhookEventsKept + 5 {
		if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: c.ID,
			ReceivedAt: start.Add(time.Duration(i+2) * time.Millisecond), DeliveryID: fmt.Sprintf("forged %04d", i),
			Error: "signature does not verify"}); err != nil {
			t.Fatal(err)
		}
	}
	if done, err := b.store.WebhookDelivered(b.ctx, c.ID, "processed"); err != nil || !done {
		t.Fatalf("after the flood: delivered = %v, %v, want true (the processed delivery is kept)", done, err)
	}
	if _, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: c.ID, ReceivedAt: b.now,
		Verified: true, DeliveryID: "processed"}); !errors.Is(err, store.ErrDuplicateDelivery) {
		t.Fatalf("redelivery after the flood = %v, want ErrDuplicateDelivery", err)
	}
	var n, failed int
	if err := b.store.DB().GetContext(b.ctx, &n, `SELECT count(*) FROM webhook_events WHERE connection_id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.store.DB().GetContext(b.ctx, &failed, `SELECT count(*) FROM webhook_events WHERE connection_id = $1 AND delivery_id = 'failed'`, c.ID); err != nil {
		t.Fatal(err)
	}
	if n != store.WebhookEventsKept+1 || failed != 0 {
		t.Fatalf("%d events kept (the older failed one: %d), want the processed delivery and the newest %d others", n, failed, store.WebhookEventsKept)
	}
}

// A processed delivery's id is remembered for the connection: a second
// processed record of it is refused (ErrDuplicateDelivery) and
// WebhookDelivered says so; a failed one does not count.
func TestWebhookDeliveryIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acc, _ := b.signup(t, "hook-delivery@example.com")
	c := b.connection(t, acc.ID)
	other := b.connection(t, acc.ID)
	rec := func(conn, delivery, errText string) error {
		_, err := b.store.RecordWebhookEvent(b.ctx, store.WebhookEvent{AccountID: acc.ID, ConnectionID: conn, ReceivedAt: b.now, Verified: true, DeliveryID: delivery, Error: errText})
		return err
	}
	if err := rec(c.ID, "d1", "runs not queued: try again"); err != nil {
		t.Fatal(err)
	}
	if done, err := b.store.WebhookDelivered(b.ctx, c.ID, "d1"); err != nil || done {
		t.Fatalf("after a failed d1: delivered = %v, %v, want false", done, err)
	}
	if err := rec(c.ID, "d1", ""); err != nil {
		t.Fatal(err)
	}
	if done, err := b.store.WebhookDelivered(b.ctx, c.ID, "d1"); err != nil || !done {
		t.Fatalf("after a processed d1: delivered = %v, %v, want true", done, err)
	}
	if err := rec(c.ID, "d1", ""); !errors.Is(err, store.ErrDuplicateDelivery) {
		t.Fatalf("second processed d1 = %v, want ErrDuplicateDelivery", err)
	}
	if err := rec(other.ID, "d1", ""); err != nil {
		t.Fatalf("d1 on another connection = %v, want it recorded", err)
	}
	if done, _ := b.store.WebhookDelivered(b.ctx, c.ID, ""); done {
		t.Error("a delivery without id counts as delivered")
	}
}
