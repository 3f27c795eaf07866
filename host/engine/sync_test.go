package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/engine"
	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
)

// memTarget is a write-capable in-memory app. It rejects records whose email
// contains "reject" and answers retryable for the first retryFirst writes.
type memTarget struct {
	mu         sync.Mutex
	rows       map[string]string // email -> fields JSON
	writes     int
	retryFirst int
	rejectOn   string
}

func newMemTarget() *memTarget { return &memTarget{rows: map[string]string{}} }

func (m *memTarget) Spec(context.Context) (*sdk.Spec, error) {
	return &sdk.Spec{Name: "mem", Version: "0.0.1", ConfigSchema: json.RawMessage(`{"type":"object"}`), ProtocolVersion: sdk.ProtocolVersion}, nil
}
func (m *memTarget) Check(context.Context, sdk.CheckRequest) (*sdk.CheckResponse, error) {
	return &sdk.CheckResponse{}, nil
}
func (m *memTarget) Discover(context.Context, sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	return &sdk.DiscoverResponse{}, nil
}
func (m *memTarget) Read(context.Context, sdk.ReadRequest, sdk.ReadSink) error {
	return errors.New("mem: not readable")
}
func (m *memTarget) HandleWebhook(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{}, nil
}
func (m *memTarget) Stop(context.Context) error { return nil }

func (m *memTarget) Write(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	resp := &sdk.WriteResponse{}
	for _, r := range req.Records {
		var f struct {
			Email string `json:"email"`
		}
		if err := json.Unmarshal(r.Fields, &f); err != nil || f.Email == "" {
			resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "email is required"})
			continue
		}
		if m.writes <= m.retryFirst {
			resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRetryable, RetryAfter: time.Millisecond, Message: "429"})
			continue
		}
		if m.rejectOn != "" && strings.Contains(f.Email, m.rejectOn) {
			resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteRejected, Message: "invalid email " + f.Email})
			continue
		}
		action := sdk.ActionCreated
		if old, ok := m.rows[f.Email]; ok {
			action = sdk.ActionUpdated
			if old == string(r.Fields) {
				action = sdk.ActionUnchanged
			}
		}
		m.rows[f.Email] = string(r.Fields)
		resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteOK, Action: action, ID: f.Email})
	}
	return resp, nil
}

func (m *memTarget) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

type testBundle struct {
	source  sdk.Connector
	target  *memTarget
	wire    sdk.Connector // target over gRPC
	mapper  *mapping.Mapper
	commits []engine.Progress
}

func setup(t *testing.T, target *memTarget) *testBundle {
	t.Helper()
	ctx := context.Background()
	src, closeSrc, err := sdk.ServeTestConn(ctx, sample.New("0.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeSrc)
	dst, closeDst, err := sdk.ServeTestConn(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDst)
	m, err := mapping.NewMapper([]mapping.Rule{
		{Source: "email", Target: "email", Transform: "lower"},
		{Source: "first_name", Target: "first_name"},
		{Source: "id", Target: "source_id"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{source: src, target: target, wire: dst, mapper: m}
}

func (b *testBundle) job(count int, cursor []byte) engine.Job {
	return engine.Job{
		Source: b.source, SourceConfig: json.RawMessage(fmt.Sprintf(`{"count": %d}`, count)), SourceObject: "contacts",
		Target: b.wire, TargetConfig: json.RawMessage(`{}`), TargetObject: "people",
		Mapper: b.mapper, Cursor: cursor, BatchSize: 100,
		Retry: engine.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		Commit: func(_ context.Context, p engine.Progress) error {
			b.commits = append(b.commits, p)
			return nil
		},
	}
}

func TestSyncWritesEveryRecordAndCommitsEachBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, newMemTarget())
	counts, err := engine.Sync(context.Background(), b.job(250, nil))
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	want := engine.Counts{Read: 250, Created: 250}
	if counts != want {
		t.Fatalf("counts = %+v, want %+v", counts, want)
	}
	if got := b.target.count(); got != 250 {
		t.Fatalf("target holds %d records, want 250", got)
	}
	if len(b.commits) != 3 {
		t.Fatalf("%d commits, want 3 (batches of 100)", len(b.commits))
	}
	for i, c := range b.commits {
		if c.Checkpoint == nil {
			t.Fatalf("commit %d has no checkpoint", i)
		}
	}

	// Resume from the first committed checkpoint: only the records after it move.
	b2 := setup(t, newMemTarget())
	counts, err = engine.Sync(context.Background(), b2.job(250, b.commits[0].Checkpoint))
	if err != nil {
		t.Fatalf("resumed Sync: %v", err)
	}
	if counts.Read != 150 || counts.Created != 150 {
		t.Fatalf("resumed counts = %+v, want 150 read and created", counts)
	}

	// A second full pass over the same target changes nothing.
	b.commits = nil
	counts, err = engine.Sync(context.Background(), b.job(250, nil))
	if err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if counts.Skipped != 250 || counts.Transactions() != 0 {
		t.Fatalf("second pass counts = %+v, want 250 skipped and no transactions", counts)
	}
}

func TestSyncRejectedRecordDoesNotStopTheBatch(t *testing.T) {
	t.Parallel()
	target := newMemTarget()
	target.rejectOn = "7@" // every record whose index ends in 7
	b := setup(t, target)
	counts, err := engine.Sync(context.Background(), b.job(100, nil))
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if counts.Failed != 10 || counts.Created != 90 {
		t.Fatalf("counts = %+v, want 10 failed and 90 created", counts)
	}
	var failures []engine.Failure
	for _, c := range b.commits {
		failures = append(failures, c.Failures...)
	}
	if len(failures) != 10 {
		t.Fatalf("%d failures committed, want 10", len(failures))
	}
	for _, f := range failures {
		if !strings.HasPrefix(f.RecordID, "c_") || !strings.Contains(f.Message, "invalid email") {
			t.Fatalf("failure %+v lacks the source id or the target's message", f)
		}
	}
	if b.commits[len(b.commits)-1].Checkpoint == nil {
		t.Fatalf("checkpoint did not advance past the rejected records")
	}
}

func TestSyncRetriesRetryableResults(t *testing.T) {
	t.Parallel()
	target := newMemTarget()
	target.retryFirst = 2
	b := setup(t, target)
	counts, err := engine.Sync(context.Background(), b.job(50, nil))
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if counts.Created != 50 || counts.Failed != 0 {
		t.Fatalf("counts = %+v, want all 50 created after retries", counts)
	}
	if target.writes != 3 {
		t.Fatalf("target saw %d writes, want 3 (2 retryable + 1 ok)", target.writes)
	}
}

func TestSyncStopsWithoutCheckpointWhenRetriesRunOut(t *testing.T) {
	t.Parallel()
	target := newMemTarget()
	target.retryFirst = 1000
	b := setup(t, target)
	_, err := engine.Sync(context.Background(), b.job(250, nil))
	if !errors.Is(err, engine.ErrRetriesExhausted) {
		t.Fatalf("Sync error = %v, want ErrRetriesExhausted", err)
	}
	if len(b.commits) != 0 {
		t.Fatalf("%d batches committed, want none: their records were never written", len(b.commits))
	}
}

func TestSyncStopsWhenCommitFails(t *testing.T) {
	t.Parallel()
	b := setup(t, newMemTarget())
	job := b.job(1000, nil)
	calls := 0
	job.Commit = func(context.Context, engine.Progress) error {
		calls++
		return errors.New("database is gone")
	}
	_, err := engine.Sync(context.Background(), job)
	if err == nil || !strings.Contains(err.Error(), "database is gone") {
		t.Fatalf("Sync error = %v, want the commit error", err)
	}
	if calls != 1 {
		t.Fatalf("commit called %d times, want 1: nothing may be written after a failed commit", calls)
	}
	if got := b.target.count(); got != 100 {
		t.Fatalf("target holds %d records, want only the first batch (100)", got)
	}
}
