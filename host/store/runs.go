package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Run statuses and triggers.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunPartial   = "partial"
	RunFailed    = "failed"

	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerWebhook  = "webhook"
	TriggerRetry    = "retry"
)

// Run is one execution of a workflow.
type Run struct {
	ID           string `db:"id"`
	AccountID    string `db:"account_id"`
	WorkflowID   string `db:"workflow_id"`
	Status       string `db:"status"`
	Trigger      string `db:"trigger"`
	ReadCount    int64  `db:"read_count"`
	CreatedCount int64  `db:"created_count"`
	UpdatedCount int64  `db:"updated_count"`
	DeletedCount int64  `db:"deleted_count"`
	SkippedCount int64  `db:"skipped_count"`
	FailedCount  int64  `db:"failed_count"`
	// MatchedCount counts records linked by the matching key; AmbiguousCount
	// those left alone because the key matched several records.
	MatchedCount   int64 `db:"matched_count"`
	AmbiguousCount int64 `db:"ambiguous_count"`
	// Notice tells the user something the run decided ("" for none), such as
	// a delete safety stop.
	Notice            string          `db:"notice"`
	Transactions      int64           `db:"transactions"`
	ConnectorVersions json.RawMessage `db:"connector_versions"`
	Error             string          `db:"error"`
	Attempts          int             `db:"attempts"`
	CreatedAt         time.Time       `db:"created_at"`
	StartedAt         *time.Time      `db:"started_at"`
	FinishedAt        *time.Time      `db:"finished_at"`
}

const runColumns = `id, account_id, workflow_id, status, trigger, read_count, created_count, updated_count,
	deleted_count, skipped_count, failed_count, matched_count, ambiguous_count, COALESCE(notice, '') AS notice,
	transactions, connector_versions, COALESCE(error, '') AS error, attempts, created_at, started_at, finished_at`

// GetRun returns a run of the account.
func (s *Store) GetRun(ctx context.Context, accountID, id string) (Run, error) {
	var r Run
	err := s.db.GetContext(ctx, &r, `SELECT `+runColumns+` FROM runs WHERE account_id = $1 AND id = $2`, accountID, id)
	if err != nil {
		return Run{}, fmt.Errorf("store: get run: %w", notFound(err))
	}
	return r, nil
}

// ListRuns lists the runs of a workflow of the account, newest first.
func (s *Store) ListRuns(ctx context.Context, accountID, workflowID string, opts ListOptions) ([]Run, string, error) {
	return listNewest(ctx, s.db, opts, "runs", func(r Run) (time.Time, string) { return r.CreatedAt, r.ID },
		`SELECT `+runColumns+` FROM runs
		WHERE account_id = $1 AND workflow_id = $2 AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::text))
		ORDER BY created_at DESC, id DESC LIMIT $5`,
		accountID, workflowID)
}

// Run record statuses.
const (
	RecordFailed    = "failed"
	RecordRejected  = "rejected"
	RecordRetryable = "retryable"
	RecordAmbiguous = "ambiguous"
	RecordConflict  = "conflict"
)

// RetryableRecordStatuses are the statuses of the records a user may retry:
// those whose write failed.
var RetryableRecordStatuses = []string{RecordFailed, RecordRejected, RecordRetryable}

// RunRecord is the outcome of one record of a run that did not simply
// succeed.
type RunRecord struct {
	ID        int64  `db:"id"`
	RunID     string `db:"run_id"`
	AccountID string `db:"account_id"`
	RecordID  string `db:"record_id"`
	Direction string `db:"direction"`
	// Side is the side the record was read from: source or target.
	Side string `db:"side"`
	// LinkID is the link of the record ("" when it has none yet).
	LinkID    string    `db:"link_id"`
	Status    string    `db:"status"`
	Message   string    `db:"message"`
	CreatedAt time.Time `db:"created_at"`
}

// ListRunRecords lists the records of a run of the account, in the order
// they were recorded.
func (s *Store) ListRunRecords(ctx context.Context, accountID, runID string, opts ListOptions) ([]RunRecord, string, error) {
	after, ok, err := decodeSeqCursor(opts.Cursor)
	if err != nil {
		return nil, "", err
	}
	var afterArg any
	if ok {
		afterArg = after
	}
	limit := opts.limit()
	var rs []RunRecord
	err = s.db.SelectContext(ctx, &rs, `SELECT id, run_id, account_id, record_id, direction, side,
			COALESCE(link_id, '') AS link_id, status, message, created_at
		FROM run_records WHERE account_id = $1 AND run_id = $2 AND ($3::bigint IS NULL OR id > $3)
		ORDER BY id LIMIT $4`, accountID, runID, afterArg, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("store: list run records: %w", err)
	}
	rs, next := page(rs, limit, func(r RunRecord) string { return encodeSeqCursor(r.ID) })
	return rs, next, nil
}

// CountRunRecords counts the records of a run of the account whose status is
// one of statuses.
func (s *Store) CountRunRecords(ctx context.Context, accountID, runID string, statuses ...string) (int64, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM run_records
		WHERE account_id = $1 AND run_id = $2 AND status = ANY($3)`, accountID, runID, pq.StringArray(statuses))
	if err != nil {
		return 0, fmt.Errorf("store: count run records: %w", err)
	}
	return n, nil
}
