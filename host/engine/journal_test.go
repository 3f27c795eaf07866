package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/synchron-io/synchron/sdk"
)

// lostAnswers is a target that applies the first Write and then loses its
// answer (as when the host dies after sending), and records what every
// Write asked.
type lostAnswers struct {
	sdk.Connector
	mu    sync.Mutex
	calls [][]sdk.WriteRecord
}

func (l *lostAnswers) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	l.mu.Lock()
	l.calls = append(l.calls, append([]sdk.WriteRecord(nil), req.Records...))
	first := len(l.calls) == 1
	l.mu.Unlock()
	resp, err := l.Connector.Write(ctx, req)
	if first && err == nil {
		return nil, errors.New("connection reset after the request was sent")
	}
	return resp, err
}

// A linked run journals its creates before sending them: when their outcome
// is lost, the next run sends them again marked MayExistSince (the time of
// the first attempt), so that the connector looks before creating; once
// answered, the journal is empty.
func TestCreatesWithALostOutcomeAreMarkedMayExist(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 30)
	ctx := context.Background()
	target := &lostAnswers{Connector: b.target}
	b.serve(t, "mem", target)
	// Matching makes the workflow linked (one-way with links).
	b.db.MustExec(`UPDATE workflows SET match = '{"source": "email", "target": "email"}' WHERE id = $1`, b.wfID)
	e := b.executor("h1")
	run := func() runRow {
		t.Helper()
		id, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return b.run(t, id)
	}
	if r := run(); r.Status != "failed" {
		t.Fatalf("first run = %+v, want failed (the answer was lost)", r)
	}
	var journaled int
	if err := b.db.Get(&journaled, `SELECT count(*) FROM pending_creates WHERE workflow_id = $1 AND side = 'target'`, b.wfID); err != nil {
		t.Fatal(err)
	}
	if journaled != 30 {
		t.Fatalf("%d creates journaled after the lost answer, want 30", journaled)
	}
	if r := run(); r.Status != "succeeded" {
		t.Fatalf("second run = %+v (error %v), want succeeded", r, deref(r.Error))
	}
	target.mu.Lock()
	calls := target.calls
	target.mu.Unlock()
	if len(calls) < 2 {
		t.Fatalf("%d writes, want at least 2", len(calls))
	}
	marked := 0
	for _, w := range calls[len(calls)-1] {
		if !w.MayExistSince.IsZero() {
			marked++
		}
	}
	for _, w := range calls[0] {
		if !w.MayExistSince.IsZero() {
			t.Fatalf("first attempt's create %s marked MayExistSince", w.Ref)
		}
	}
	if marked != len(calls[len(calls)-1]) || marked == 0 {
		t.Fatalf("%d of %d creates of the second run marked MayExistSince, want all", marked, len(calls[len(calls)-1]))
	}
	if err := b.db.Get(&journaled, `SELECT count(*) FROM pending_creates WHERE workflow_id = $1`, b.wfID); err != nil {
		t.Fatal(err)
	}
	if journaled != 0 {
		t.Fatalf("%d creates still journaled after they were answered, want 0", journaled)
	}
}

// retryableOnce applies the first Write but answers every record of it
// retryable (a 5xx after the app stored them), then answers normally.
type retryableOnce struct {
	sdk.Connector
	mu    sync.Mutex
	calls [][]sdk.WriteRecord
}

func (r *retryableOnce) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	r.mu.Lock()
	r.calls = append(r.calls, append([]sdk.WriteRecord(nil), req.Records...))
	first := len(r.calls) == 1
	r.mu.Unlock()
	resp, err := r.Connector.Write(ctx, req)
	if first && err == nil {
		for i := range resp.Results {
			resp.Results[i] = sdk.WriteResult{Ref: resp.Results[i].Ref, Status: sdk.WriteRetryable, Message: "HTTP 502"}
		}
	}
	return resp, err
}

// A create answered retryable is sent again within the same run marked
// MayExistSince (the app may have stored it before failing).
func TestRetriedCreatesAreMarkedMayExist(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 10)
	target := &retryableOnce{Connector: b.target}
	b.serve(t, "mem", target)
	b.db.MustExec(`UPDATE workflows SET match = '{"source": "email", "target": "email"}' WHERE id = $1`, b.wfID)
	e := b.executor("h1")
	if r := b.runOnce(t, e); r.Status != "succeeded" {
		t.Fatalf("run = %+v (error %v)", r, deref(r.Error))
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.calls) != 2 {
		t.Fatalf("%d writes, want the first and its retry", len(target.calls))
	}
	for _, w := range target.calls[1] {
		if w.MayExistSince.IsZero() {
			t.Fatalf("retried create %s not marked MayExistSince", w.Ref)
		}
	}
}

// rejectAll refuses every record, as a connector refuses a MayExistSince
// create that matches several records.
type rejectAll struct{ sdk.Connector }

func (rejectAll) Write(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	resp := &sdk.WriteResponse{}
	for _, r := range req.Records {
		resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "2 records match: c1, c2"})
	}
	return resp, nil
}

// A refused create stays in the journal: the app may hold records the
// connector could not tell apart, and the next attempt must look again.
func TestRefusedCreatesStayJournaled(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 5)
	ctx := context.Background()
	b.serve(t, "mem", rejectAll{b.target})
	b.db.MustExec(`UPDATE workflows SET match = '{"source": "email", "target": "email"}' WHERE id = $1`, b.wfID)
	e := b.executor("h1")
	if _, err := e.Enqueue(ctx, "acc_a", b.wfID, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.db.Get(&n, `SELECT count(*) FROM pending_creates WHERE workflow_id = $1`, b.wfID); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("%d refused creates journaled, want 5", n)
	}
}
