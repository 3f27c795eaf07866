// Package engine owns the execution of workflow runs: streaming a source
// connector's batches through the field mapping into a target connector,
// counting outcomes, and advancing the source checkpoint only after the
// writes before it are committed. Executor runs queued runs from PostgreSQL
// under a lease, so any number of hosts share the work.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

// Counts are the outcomes of a run (or of one batch of it).
type Counts struct {
	Read    int64 `json:"read"`
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	Deleted int64 `json:"deleted"`
	Skipped int64 `json:"skipped"`
	Failed  int64 `json:"failed"`
}

// Transactions is the number of records created, updated or deleted in the
// target: what the customer's quota counts.
func (c Counts) Transactions() int64 { return c.Created + c.Updated + c.Deleted }

// Add returns c + d.
func (c Counts) Add(d Counts) Counts {
	return Counts{
		Read: c.Read + d.Read, Created: c.Created + d.Created, Updated: c.Updated + d.Updated,
		Deleted: c.Deleted + d.Deleted, Skipped: c.Skipped + d.Skipped, Failed: c.Failed + d.Failed,
	}
}

// Failure is one record that could not be written. Record is the record as
// read, kept so a retry needs no read by id.
type Failure struct {
	RecordID string
	Status   string // "rejected"
	Message  string
	Record   sdk.Record
}

// Progress is what one committed batch changed. Commit must persist all of it
// atomically: the checkpoint may only move together with the counts and
// failures of the records before it.
type Progress struct {
	Counts     Counts
	Failures   []Failure
	Checkpoint []byte // nil: the checkpoint does not move
	// Retried lists the ids of retried records that were written this time.
	Retried []string
	// SourceConfig / TargetConfig are credentials a connector refreshed
	// (nil: unchanged). The executor saves them earlier, through
	// Job.SaveConfig, as soon as the connector hands them over.
	SourceConfig json.RawMessage
	TargetConfig json.RawMessage
}

// RetryPolicy bounds the retries of retryable write results inside a run.
type RetryPolicy struct {
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
}

// DefaultRetryPolicy returns the policy that retries a batch's retryable records 6 times, from 200ms
// doubling up to 30s, honouring the app's Retry-After when longer.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 6, BaseDelay: 200 * time.Millisecond, MaxDelay: 30 * time.Second}
}

// ErrRetriesExhausted means some records stayed retryable after every retry;
// the run stops without moving the checkpoint past them, so a later run
// writes them again.
var ErrRetriesExhausted = errors.New("target kept answering retryable errors")

// Job is one pass of a one-way sync.
type Job struct {
	Source       sdk.Connector
	SourceConfig json.RawMessage
	SourceObject string
	Target       sdk.Connector
	TargetConfig json.RawMessage
	TargetObject string
	Mapper       *mapping.Mapper
	// Cursor is the committed checkpoint to resume from (nil: from the start).
	Cursor []byte
	// Retries are records that failed in earlier runs, written first.
	Retries   []sdk.Record
	BatchSize int
	Retry     RetryPolicy
	// Commit persists one batch's progress; it is called after the batch's
	// writes have been answered and before the next batch is written.
	Commit func(ctx context.Context, p Progress) error
	// SaveConfig stores credentials a connector refreshed on the side's
	// connection, as soon as the connector hands them over (nil: not saved
	// before the batch's Commit).
	SaveConfig func(ctx context.Context, side Side, config json.RawMessage) error
	// lookups resolves the mapping's lookup rules (nil: none); its target
	// is the connection written to.
	lookups *lookups
}

// Sync streams the source from job.Cursor to its end through the mapping
// into the target and returns the counts of what it committed. The source is
// read one batch ahead of the writes, so memory stays flat whatever the size.
func Sync(ctx context.Context, job Job) (Counts, error) {
	if job.Retry.MaxAttempts <= 0 {
		job.Retry = DefaultRetryPolicy()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The reader goroutine also maps each batch, so reading and mapping the
	// next batch overlap with writing the current one.
	batches := make(chan *prepared, 1)
	readDone := make(chan error, 1)
	go func() {
		defer close(batches)
		if len(job.Retries) > 0 {
			pb := prepare(job.Mapper, sdk.ReadBatch{Records: job.Retries})
			pb.retry = true
			select {
			case batches <- pb:
			case <-ctx.Done():
				readDone <- ctx.Err()
				return
			}
		}
		readDone <- job.Source.Read(ctx, sdk.ReadRequest{
			Config: job.SourceConfig, Object: job.SourceObject, Cursor: job.Cursor, BatchSize: job.BatchSize,
		}, sdk.ReadSinkFunc(func(ctx context.Context, b sdk.ReadBatch) error {
			if len(b.UpdatedConfig) > 0 && job.SaveConfig != nil {
				if err := job.SaveConfig(ctx, SideSource, b.UpdatedConfig); err != nil {
					return fmt.Errorf("save the source connection's refreshed credentials: %w", err)
				}
			}
			select {
			case batches <- prepare(job.Mapper, b):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}))
	}()

	target := &sideConn{side: SideTarget, conn: job.Target, config: job.TargetConfig, object: job.TargetObject}
	if job.lookups != nil {
		target = job.lookups.target
	}
	if job.SaveConfig != nil && target.save == nil {
		target.save = func(ctx context.Context, cfg json.RawMessage) error { return job.SaveConfig(ctx, SideTarget, cfg) }
	}
	var total Counts
	var failErr error
	for pb := range batches {
		if failErr != nil {
			continue // drain so the reader can finish
		}
		err := writeBatch(ctx, job, target, pb)
		if err == nil {
			err = job.Commit(ctx, pb.progress)
			if err != nil {
				err = fmt.Errorf("commit batch: %w", err)
			}
		}
		if err != nil {
			failErr = err
			cancel()
			continue
		}
		total = total.Add(pb.progress.Counts)
	}
	readErr := <-readDone
	if failErr != nil {
		return total, failErr
	}
	if readErr != nil {
		return total, fmt.Errorf("read %s: %w", job.SourceObject, readErr)
	}
	return total, nil
}

// prepared is one source batch mapped and ready to write.
type prepared struct {
	progress Progress
	records  []sdk.WriteRecord
	recs     map[string]sdk.Record // ref -> source record
	err      error                 // the source reported an error with this batch
	retry    bool                  // the batch holds retried records
}

// prepare maps one source batch into write records.
func prepare(m *mapping.Mapper, b sdk.ReadBatch) *prepared {
	pb := &prepared{
		progress: Progress{Checkpoint: b.Checkpoint, SourceConfig: b.UpdatedConfig},
		records:  make([]sdk.WriteRecord, 0, len(b.Records)),
		recs:     make(map[string]sdk.Record, len(b.Records)),
	}
	if b.Diagnostics.HasError() {
		pb.err = fmt.Errorf("source: %s", b.Diagnostics.Error())
		return pb
	}
	p := &pb.progress
	p.Counts.Read = int64(len(b.Records))
	for i, r := range b.Records {
		if r.Deleted {
			// One-way deletes need the link table to know the target's id;
			// until a workflow asks for them they are skipped.
			p.Counts.Skipped++
			continue
		}
		fields, err := m.Apply(r.Fields)
		if err != nil {
			p.Counts.Failed++
			p.Failures = append(p.Failures, Failure{RecordID: r.ID, Status: "rejected", Message: err.Error(), Record: r})
			continue
		}
		ref := strconv.Itoa(i)
		pb.recs[ref] = r
		pb.records = append(pb.records, sdk.WriteRecord{Ref: ref, Fields: fields})
	}
	return pb
}

// writeBatch writes a prepared batch to the target, retrying retryable
// results, and adds the outcomes to its progress. Records still retryable
// after every retry fail the batch (ErrRetriesExhausted): it is not
// committed, so the next attempt or run writes it again.
func writeBatch(ctx context.Context, job Job, target *sideConn, pb *prepared) error {
	if pb.err != nil {
		return pb.err
	}
	if len(pb.records) == 0 {
		return nil
	}
	p := &pb.progress
	if job.lookups != nil {
		if err := resolveBatch(ctx, job.lookups, pb); err != nil {
			return err
		}
		if len(pb.records) == 0 {
			p.TargetConfig = target.updatedConfig
			return nil
		}
	}
	results, err := writeWithRetry(ctx, target, pb.records, job.Retry)
	p.TargetConfig = target.updatedConfig
	if err != nil {
		return err
	}
	for _, rec := range pb.records {
		res := results[rec.Ref]
		switch res.Status {
		case sdk.WriteOK:
			if pb.retry {
				p.Retried = append(p.Retried, pb.recs[rec.Ref].ID)
			}
			switch res.Action {
			case sdk.ActionCreated:
				p.Counts.Created++
			case sdk.ActionUpdated:
				p.Counts.Updated++
			case sdk.ActionDeleted:
				p.Counts.Deleted++
			default:
				p.Counts.Skipped++
			}
		default:
			msg := res.Message
			if msg == "" {
				msg = "rejected by the target without a message"
			}
			r := pb.recs[rec.Ref]
			p.Counts.Failed++
			p.Failures = append(p.Failures, Failure{RecordID: r.ID, Status: "rejected", Message: msg, Record: r})
		}
	}
	return nil
}

// resolveBatch resolves the lookups of a prepared batch; records whose
// lookup fails are failures, retryable (retried by later runs) when the app
// kept answering retryable errors.
func resolveBatch(ctx context.Context, l *lookups, pb *prepared) error {
	sources := make(map[string]json.RawMessage, len(pb.records))
	for _, w := range pb.records {
		sources[w.Ref] = pb.recs[w.Ref].Fields
	}
	failed, err := l.resolve(ctx, pb.records, sources)
	if err != nil {
		return err
	}
	p := &pb.progress
	// Records the lookups created in the target app are transactions too.
	p.Counts.Created += l.takeCreated()
	kept := pb.records[:0]
	for _, w := range pb.records {
		if f, bad := failed[w.Ref]; bad {
			r := pb.recs[w.Ref]
			status := "rejected"
			if f.retryable {
				status = "retryable"
			}
			p.Counts.Failed++
			p.Failures = append(p.Failures, Failure{RecordID: r.ID, Status: status, Message: f.msg, Record: r})
			continue
		}
		kept = append(kept, w)
	}
	pb.records = kept
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
