package engine

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

// This file holds the linked sync: the engine of two-way workflows (and of
// one-way workflows that match, write back or propagate deletes). A run
//
//  1. stages the changes read from each side since its checkpoint (and the
//     records due for a retry) in run_stage, so memory stays flat;
//  2. plans and writes the source side's changes, then the target side's,
//     chunk by chunk, against the link table: linked records are updated,
//     echoes of Synchron's own writes are skipped, unlinked records are
//     matched by key or created, conflicts are settled by the policy;
//  3. settles deletions (ignore, propagate with a safety stop, or approve);
//  4. commits both checkpoints and clears the stage.
//
// Each chunk's writes are committed (links, history, counts, failures) before
// the next chunk: a run that dies is resumed by re-reading from the
// checkpoints, and the link hashes make that replay write nothing twice.

// Conflict policies.
const (
	ConflictSourceWins = "source_wins"
	ConflictTargetWins = "target_wins"
	ConflictNewestWins = "newest_wins"
)

// Delete policies.
const (
	DeletesIgnore    = "ignore"
	DeletesPropagate = "propagate"
	DeletesApprove   = "approve"
)

const chunkSize = 500

// sideConn is one side of a workflow during a run.
type sideConn struct {
	side   Side
	connID string
	conn   sdk.Connector
	config json.RawMessage
	object string
	cursor []byte
	// set by stage
	next          []byte
	updatedConfig json.RawMessage
	// save stores credentials the connector refreshed on the connection
	// (nil: nothing to save them to, as in tests).
	save func(ctx context.Context, config json.RawMessage) error
}

// adopt takes credentials the connector refreshed: the next calls use them,
// and they are saved on the connection at once. A rotated refresh token
// (Sage) works once: kept only in memory until the run ends, it would be
// lost with a failed run or a dead host, and the connection with it.
func (s *sideConn) adopt(ctx context.Context, config json.RawMessage) error {
	if len(config) == 0 {
		return nil
	}
	s.updatedConfig, s.config = config, config
	if s.save == nil {
		return nil
	}
	if err := s.save(ctx, config); err != nil {
		return fmt.Errorf("save the %s connection's refreshed credentials: %w", s.side, err)
	}
	return nil
}

// linkJob is one attempt of a linked run, or a preview when dry.
type linkJob struct {
	db             *sqlx.DB
	log            hclog.Logger
	runID          string
	accountID      string
	wfID           string
	twoWay         bool
	mapper         *mapping.Mapper
	match          *mapping.Match
	filter         *mapping.Filter
	conflict       string
	deletes        string
	writeBackField string
	threshold      float64 // percent
	sides          map[Side]*sideConn
	batchSize      int
	retry          RetryPolicy
	dry            bool
	preview        *Preview
	// lease: when set, every chunk commit checks and renews the run's lease.
	lease func(ctx context.Context, tx *sqlx.Tx, c Counts, matched, ambiguous int64) error

	deletions []deletion
	notice    string
	// lookups resolves the mapping's lookup rules (nil: none).
	lookups *lookups
	// lookupCreated counts the records the lookups of the chunk being
	// written created (transactions, added to the chunk's counts).
	lookupCreated int64
}

type deletion struct {
	side     Side // the side the record was deleted on
	recordID string
	linkID   string
	otherID  string
}

func mside(s Side) mapping.Side {
	if s == SideSource {
		return mapping.SideSource
	}
	return mapping.SideTarget
}

// run executes the job: stage, both passes, deletes, final commit.
func (j *linkJob) run(ctx context.Context) error {
	if err := j.clearStage(ctx); err != nil {
		return err
	}
	order := []Side{SideSource}
	if j.twoWay {
		order = append(order, SideTarget)
	}
	for _, s := range order {
		if err := j.stage(ctx, j.sides[s]); err != nil {
			return err
		}
	}
	if err := j.stageRetries(ctx); err != nil {
		return err
	}
	if err := j.countRead(ctx); err != nil {
		return err
	}
	// The stage just grew from nothing: without fresh statistics the
	// planner joins it as if it were empty (nested loops over seq scans).
	if _, err := j.db.ExecContext(ctx, `ANALYZE run_stage`); err != nil {
		return fmt.Errorf("analyze stage: %w", err)
	}
	for _, s := range order {
		if err := j.pass(ctx, s); err != nil {
			return err
		}
	}
	if err := j.settleDeletes(ctx); err != nil {
		return err
	}
	if j.dry {
		return j.clearStage(ctx)
	}
	return j.finish(ctx)
}

func (j *linkJob) clearStage(ctx context.Context) error {
	if _, err := j.db.ExecContext(ctx, `DELETE FROM run_stage WHERE run_id = $1`, j.runID); err != nil {
		return fmt.Errorf("clear stage: %w", err)
	}
	return nil
}

// countRead adds the records staged from each side to the run's (or the
// preview's) read counts.
func (j *linkJob) countRead(ctx context.Context) error {
	var per []struct {
		Side string `db:"side"`
		N    int64  `db:"n"`
	}
	if err := j.db.SelectContext(ctx, &per, `SELECT side, count(*) AS n FROM run_stage WHERE run_id = $1 GROUP BY side`, j.runID); err != nil {
		return fmt.Errorf("count staged records: %w", err)
	}
	var total int64
	for _, p := range per {
		total += p.N
		if j.preview != nil {
			if Side(p.Side) == SideSource {
				j.preview.ToTarget.Read += p.N
			} else {
				j.preview.ToSource.Read += p.N
			}
		}
	}
	if j.dry || total == 0 {
		return nil
	}
	tx, err := j.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin read count: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := j.lease(ctx, tx, Counts{Read: total}, 0, 0); err != nil {
		return err
	}
	return tx.Commit()
}

// stagedRecord is a record about to be staged.
type stagedRecord struct {
	id       string
	fields   json.RawMessage
	modified time.Time
	deleted  bool
	key      string
	hash     string
}

func (j *linkJob) toStaged(side Side, r sdk.Record) (stagedRecord, error) {
	fields := r.Fields
	if len(bytes.TrimSpace(fields)) == 0 || bytes.Equal(bytes.TrimSpace(fields), []byte("null")) {
		fields = json.RawMessage(`{}`)
	}
	st := stagedRecord{id: r.ID, fields: fields, modified: r.UpdatedAt, deleted: r.Deleted}
	h, err := j.mapper.Hash(mside(side), fields)
	if err != nil {
		return st, fmt.Errorf("record %s of the %s: %w", r.ID, side, err)
	}
	st.hash = h
	if j.match != nil {
		if k, ok := j.match.Key(mside(side), fields); ok {
			st.key = k
		}
	}
	return st, nil
}

// insertStage writes staged records; retry rows never replace a fresh read.
func (j *linkJob) insertStage(ctx context.Context, side Side, recs []stagedRecord, retry bool) error {
	if len(recs) == 0 {
		return nil
	}
	// A record read twice in one batch keeps its last version.
	seen := make(map[string]int, len(recs))
	uniq := recs[:0:0]
	for _, r := range recs {
		if i, ok := seen[r.id]; ok {
			uniq[i] = r
			continue
		}
		seen[r.id] = len(uniq)
		uniq = append(uniq, r)
	}
	ids := make([]string, len(uniq))
	fields := make([]string, len(uniq))
	mods := make([]string, len(uniq))
	dels := make([]bool, len(uniq))
	keys := make([]string, len(uniq))
	hashes := make([]string, len(uniq))
	for i, r := range uniq {
		ids[i], fields[i], dels[i], keys[i], hashes[i] = r.id, string(r.fields), r.deleted, r.key, r.hash
		if !r.modified.IsZero() {
			mods[i] = r.modified.UTC().Format(time.RFC3339Nano)
		}
	}
	onConflict := `ON CONFLICT (run_id, side, record_id) DO UPDATE SET fields = EXCLUDED.fields,
		modified_at = EXCLUDED.modified_at, deleted = EXCLUDED.deleted, match_key = EXCLUDED.match_key,
		hash = EXCLUDED.hash, retry = false, done = false`
	if retry {
		onConflict = `ON CONFLICT (run_id, side, record_id) DO NOTHING`
	}
	_, err := j.db.ExecContext(ctx, `
		INSERT INTO run_stage (run_id, side, record_id, fields, modified_at, deleted, match_key, hash, retry)
		SELECT $1, $2, u.id, u.f::jsonb, NULLIF(u.m, '')::timestamptz, u.d, NULLIF(u.k, ''), u.h, $9
		FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[]) AS u(id, f, m, d, k, h)
		`+onConflict,
		j.runID, string(side), pq.Array(ids), pq.Array(fields), pq.Array(mods), pq.Array(dels), pq.Array(keys), pq.Array(hashes), retry)
	if err != nil {
		return fmt.Errorf("stage %d %s records: %w", len(uniq), side, err)
	}
	return nil
}

// stage reads one side's changes since its checkpoint into run_stage.
func (j *linkJob) stage(ctx context.Context, s *sideConn) error {
	s.next = s.cursor
	err := s.conn.Read(ctx, sdk.ReadRequest{Config: s.config, Object: s.object, Cursor: s.cursor, BatchSize: j.batchSize},
		sdk.ReadSinkFunc(func(ctx context.Context, b sdk.ReadBatch) error {
			// First: a failed batch may still hand over rotated tokens.
			if err := s.adopt(ctx, b.UpdatedConfig); err != nil {
				return err
			}
			if b.Diagnostics.HasError() {
				return fmt.Errorf("%s: %s", s.side, b.Diagnostics.Error())
			}
			recs := make([]stagedRecord, 0, len(b.Records))
			for _, r := range b.Records {
				st, err := j.toStaged(s.side, r)
				if err != nil {
					return err
				}
				recs = append(recs, st)
			}
			if err := j.insertStage(ctx, s.side, recs, false); err != nil {
				return err
			}
			if b.Checkpoint != nil {
				s.next = b.Checkpoint
			}
			return nil
		}))
	if err != nil {
		return fmt.Errorf("read %s %s: %w", s.side, s.object, err)
	}
	return nil
}

// stageRetries stages the records of the retry queue that are due.
func (j *linkJob) stageRetries(ctx context.Context) error {
	var rows []struct {
		Side     string          `db:"side"`
		RecordID string          `db:"record_id"`
		Fields   json.RawMessage `db:"fields"`
		Modified sql.NullTime    `db:"modified_at"`
		Deleted  bool            `db:"deleted"`
	}
	if err := j.db.SelectContext(ctx, &rows, `
		SELECT side, record_id, fields, modified_at, deleted FROM retry_queue
		WHERE workflow_id = $1 AND account_id = $2 AND kind = 'retryable' AND next_retry_at <= now()
		ORDER BY next_retry_at LIMIT 10000`, j.wfID, j.accountID); err != nil {
		return fmt.Errorf("load retry queue: %w", err)
	}
	bySide := map[Side][]stagedRecord{}
	for _, r := range rows {
		side := Side(r.Side)
		if side == SideTarget && !j.twoWay {
			continue
		}
		st, err := j.toStaged(side, sdk.Record{ID: r.RecordID, Fields: r.Fields, UpdatedAt: r.Modified.Time, Deleted: r.Deleted})
		if err != nil {
			return err
		}
		bySide[side] = append(bySide[side], st)
	}
	for side, recs := range bySide {
		if err := j.insertStage(ctx, side, recs, true); err != nil {
			return err
		}
	}
	return nil
}

// row is a staged record joined with its link and the other side's staged
// change of the same link.
type row struct {
	RecordID     string          `db:"record_id"`
	Fields       json.RawMessage `db:"fields"`
	Modified     sql.NullTime    `db:"modified_at"`
	Deleted      bool            `db:"deleted"`
	Key          sql.NullString  `db:"match_key"`
	Hash         string          `db:"hash"`
	Retry        bool            `db:"retry"`
	LinkID       sql.NullString  `db:"link_id"`
	OtherID      sql.NullString  `db:"other_id"`
	MyHash       sql.NullString  `db:"my_hash"`
	OtherHash    sql.NullString  `db:"other_hash"`
	MyValues     []byte          `db:"my_values"`
	OtherValues  []byte          `db:"other_values"`
	MyDeleted    sql.NullBool    `db:"my_deleted"`
	OtherDeleted sql.NullBool    `db:"other_deleted"`
	OFields      []byte          `db:"o_fields"`
	OModified    sql.NullTime    `db:"o_modified_at"`
	ODeleted     sql.NullBool    `db:"o_deleted"`
	OHash        sql.NullString  `db:"o_hash"`
}

// candidate is an unlinked staged record of the other side.
type candidate struct {
	RecordID string          `db:"record_id"`
	Fields   json.RawMessage `db:"fields"`
	Modified sql.NullTime    `db:"modified_at"`
	Key      string          `db:"match_key"`
	Hash     string          `db:"hash"`
}

// op is the plan for one staged record.
type op struct {
	r        *row
	kind     ActionKind
	conflict bool
	note     string
	// the link to create or update
	linkID  string
	otherID string
	// write to the other side (nil: nothing to write)
	write *sdk.WriteRecord
	// writeMine brings a matched record of this side the values it lacks
	// from the other side (nil: nothing to write)
	writeMine  *sdk.WriteRecord
	resultMine *sdk.WriteResult
	mapped     json.RawMessage
	// link state after the op, from the side being passed (my) and the other
	myValues    json.RawMessage
	myHash      string
	otherValues json.RawMessage
	otherHash   string
	myKey       string
	otherKey    string
	otherMod    sql.NullTime
	// other-side staged records this op settles
	settle []string
	// outcome
	result *sdk.WriteResult
	failed string // failure status: rejected, retryable, ambiguous
}

// pass plans and writes the staged changes of one side, chunk by chunk.
func (j *linkJob) pass(ctx context.Context, my Side) error {
	other := my.Other()
	q := fmt.Sprintf(`
		SELECT s.record_id, s.fields, s.modified_at, s.deleted, s.match_key, s.hash, s.retry,
			l.id AS link_id, l.%[2]s_id AS other_id, l.%[1]s_hash AS my_hash, l.%[2]s_hash AS other_hash,
			l.%[1]s_values AS my_values, l.%[2]s_values AS other_values,
			l.%[1]s_deleted AS my_deleted, l.%[2]s_deleted AS other_deleted,
			o.fields AS o_fields, o.modified_at AS o_modified_at, o.deleted AS o_deleted, o.hash AS o_hash
		FROM run_stage s
		LEFT JOIN links l ON l.workflow_id = $2 AND l.%[1]s_id = s.record_id
		LEFT JOIN run_stage o ON o.run_id = s.run_id AND o.side = '%[2]s' AND o.record_id = l.%[2]s_id AND NOT o.done
		WHERE s.run_id = $1 AND s.side = '%[1]s' AND NOT s.done AND s.record_id > $3
		ORDER BY s.record_id
		LIMIT $4`, my, other)
	after := ""
	for {
		var rows []row
		if err := j.db.SelectContext(ctx, &rows, q, j.runID, j.wfID, after, chunkSize); err != nil {
			return fmt.Errorf("load staged %s records: %w", my, err)
		}
		if len(rows) == 0 {
			return nil
		}
		after = rows[len(rows)-1].RecordID
		if err := j.chunk(ctx, my, rows); err != nil {
			return err
		}
	}
}

// chunk plans, writes and commits one chunk of staged records of side my.
func (j *linkJob) chunk(ctx context.Context, my Side, rows []row) error {
	other := my.Other()
	cands, dupMine, linkedOther, err := j.lookupCandidates(ctx, my, rows)
	if err != nil {
		return err
	}
	ops := make([]*op, 0, len(rows))
	var settled []string
	for i := range rows {
		o, err := j.plan(my, &rows[i], cands, dupMine, linkedOther)
		if err != nil {
			return err
		}
		if o == nil {
			continue
		}
		ops = append(ops, o)
		settled = append(settled, o.settle...)
	}

	var writes []sdk.WriteRecord
	byRef := map[string]*op{}
	for i, o := range ops {
		if o.write == nil {
			continue
		}
		o.write.Ref = strconv.Itoa(i)
		byRef[o.write.Ref] = o
		writes = append(writes, *o.write)
	}
	if j.dry {
		for _, o := range ops {
			j.account(my, o, true)
		}
		if my == SideSource && j.lookups != nil && j.preview != nil && len(writes) > 0 {
			n, err := j.lookups.wouldCreate(ctx, writes)
			if err != nil {
				return err
			}
			j.preview.LookupCreates += n
			j.preview.ToTarget.Created += n
			j.preview.Transactions += n
		}
		return j.markDone(ctx, my, rows, settled)
	}
	if my == SideSource && j.lookups != nil && len(writes) > 0 {
		if writes, err = j.resolveLookups(ctx, writes, byRef); err != nil {
			return err
		}
		j.lookupCreated += j.lookups.takeCreated()
	}
	if err := j.journalCreates(ctx, other, writes, byRef); err != nil {
		return err
	}
	if len(writes) > 0 {
		results, err := writeWithRetry(ctx, j.sides[other], writes, j.retry)
		if err != nil && !errors.Is(err, ErrRetriesExhausted) {
			return err
		}
		for ref, res := range results {
			res := res
			byRef[ref].result = &res
		}
		for _, w := range writes {
			o := byRef[w.Ref]
			switch {
			case o.result == nil:
				o.failed, o.note = "retryable", "the app kept answering retryable errors"
			case o.result.Status == sdk.WriteRejected:
				o.failed, o.note = "rejected", o.result.Message
			case o.result.Status == sdk.WriteRetryable:
				o.failed, o.note = "retryable", o.result.Message
			}
		}
	}
	if err := j.writeMatchedMine(ctx, my, ops); err != nil {
		return err
	}
	if err := j.writeBack(ctx, my, ops); err != nil {
		return err
	}
	return j.commitChunk(ctx, my, rows, ops, settled)
}

// journalCreates records the creates of a chunk before they are sent
// (pending_creates), and marks those an earlier attempt already sent with
// MayExistSince: their outcome is unknown (the host died, or the app kept
// answering retryable errors), and the connector looks for the record
// before creating it again. commitChunk removes the rows of the creates
// whose outcome it records.
func (j *linkJob) journalCreates(ctx context.Context, to Side, writes []sdk.WriteRecord, byRef map[string]*op) error {
	var ids []string
	for _, w := range writes {
		if o := byRef[w.Ref]; o.kind == ActCreate && w.ID == "" && !w.Delete {
			ids = append(ids, o.r.RecordID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var earlier []struct {
		RecordID  string    `db:"record_id"`
		StartedAt time.Time `db:"started_at"`
	}
	if err := j.db.SelectContext(ctx, &earlier, `
		WITH ins AS (
			INSERT INTO pending_creates (account_id, workflow_id, side, record_id)
			SELECT $1, $2, $3, unnest($4::text[])
			ON CONFLICT (workflow_id, side, record_id) DO NOTHING
			RETURNING record_id)
		SELECT record_id, started_at FROM pending_creates
		WHERE workflow_id = $2 AND side = $3 AND record_id = ANY($4) AND record_id NOT IN (SELECT record_id FROM ins)`,
		j.accountID, j.wfID, string(to), pq.Array(ids)); err != nil {
		return fmt.Errorf("journal creates: %w", err)
	}
	if len(earlier) == 0 {
		return nil
	}
	since := make(map[string]time.Time, len(earlier))
	for _, e := range earlier {
		since[e.RecordID] = e.StartedAt
	}
	for i, w := range writes {
		if o := byRef[w.Ref]; o.kind == ActCreate {
			if t, ok := since[o.r.RecordID]; ok {
				writes[i].MayExistSince = t
			}
		}
	}
	return nil
}

// resolveLookups resolves the lookup rules of the writes to the target; the
// writes whose lookup fails are left out and their ops fail: retryable (a
// later run retries them) when the app kept answering retryable errors,
// rejected (kept for a retry the user asks for) otherwise.
func (j *linkJob) resolveLookups(ctx context.Context, writes []sdk.WriteRecord, byRef map[string]*op) ([]sdk.WriteRecord, error) {
	sources := make(map[string]json.RawMessage, len(writes))
	for _, w := range writes {
		sources[w.Ref] = byRef[w.Ref].r.Fields
	}
	failed, err := j.lookups.resolve(ctx, writes, sources)
	if err != nil {
		return nil, err
	}
	kept := writes[:0]
	for _, w := range writes {
		o := byRef[w.Ref]
		if f, bad := failed[w.Ref]; bad {
			o.failed, o.note = "rejected", f.msg
			if f.retryable {
				o.failed = "retryable" // retried by later runs, with backoff
			}
			continue
		}
		o.write.Fields, o.mapped = w.Fields, w.Fields
		kept = append(kept, w)
	}
	return kept, nil
}

// lookupCandidates finds, for the matching keys of the chunk's unlinked
// records: the other side's unlinked staged records, how many unlinked staged
// records of this side share each key, and how many links the other side
// already has with each key.
func (j *linkJob) lookupCandidates(ctx context.Context, my Side, rows []row) (map[string][]candidate, map[string]int, map[string]int, error) {
	var keys []string
	for _, r := range rows {
		if !r.LinkID.Valid && r.Key.Valid && !r.Deleted {
			keys = append(keys, r.Key.String)
		}
	}
	cands := map[string][]candidate{}
	dup := map[string]int{}
	linked := map[string]int{}
	if len(keys) == 0 || j.match == nil {
		return cands, dup, linked, nil
	}
	other := my.Other()
	var cs []candidate
	if err := j.db.SelectContext(ctx, &cs, fmt.Sprintf(`
		SELECT s.record_id, s.fields, s.modified_at, s.match_key, s.hash FROM run_stage s
		WHERE s.run_id = $1 AND s.side = '%[2]s' AND s.match_key = ANY($3) AND NOT s.done AND NOT s.deleted
		AND NOT EXISTS (SELECT 1 FROM links l WHERE l.workflow_id = $2 AND l.%[2]s_id = s.record_id)`, my, other),
		j.runID, j.wfID, pq.Array(keys)); err != nil {
		return nil, nil, nil, fmt.Errorf("match candidates: %w", err)
	}
	for _, c := range cs {
		cands[c.Key] = append(cands[c.Key], c)
	}
	var counts []struct {
		Key string `db:"k"`
		N   int    `db:"n"`
	}
	if err := j.db.SelectContext(ctx, &counts, fmt.Sprintf(`
		SELECT s.match_key AS k, count(*) AS n FROM run_stage s
		WHERE s.run_id = $1 AND s.side = '%[1]s' AND s.match_key = ANY($3) AND NOT s.done AND NOT s.deleted
		AND NOT EXISTS (SELECT 1 FROM links l WHERE l.workflow_id = $2 AND l.%[1]s_id = s.record_id)
		GROUP BY s.match_key`, my), j.runID, j.wfID, pq.Array(keys)); err != nil {
		return nil, nil, nil, fmt.Errorf("count duplicate keys: %w", err)
	}
	for _, c := range counts {
		dup[c.Key] = c.N
	}
	counts = counts[:0]
	if err := j.db.SelectContext(ctx, &counts, fmt.Sprintf(`
		SELECT %[1]s_key AS k, count(*) AS n FROM links
		WHERE workflow_id = $1 AND %[1]s_key = ANY($2) AND NOT %[1]s_deleted GROUP BY %[1]s_key`, other),
		j.wfID, pq.Array(keys)); err != nil {
		return nil, nil, nil, fmt.Errorf("count linked keys: %w", err)
	}
	for _, c := range counts {
		linked[c.Key] = c.N
	}
	return cands, dup, linked, nil
}

// winner settles a conflict between this side's change and the other's.
func (j *linkJob) winner(my Side, myMod, otherMod sql.NullTime) Side {
	switch j.conflict {
	case ConflictTargetWins:
		return SideTarget
	case ConflictNewestWins:
		srcMod, tgtMod := myMod, otherMod
		if my == SideTarget {
			srcMod, tgtMod = otherMod, myMod
		}
		if tgtMod.Valid && (!srcMod.Valid || tgtMod.Time.After(srcMod.Time)) {
			return SideTarget
		}
		return SideSource // ties go to the source: deterministic
	default:
		return SideSource
	}
}

// plan decides what to do with one staged record of side my.
func (j *linkJob) plan(my Side, r *row, cands map[string][]candidate, dupMine, linkedOther map[string]int) (*op, error) {
	other := my.Other()
	ms, mo := mside(my), mside(other)
	o := &op{r: r, kind: ActSkip, myHash: r.Hash, myKey: r.Key.String}
	if r.LinkID.Valid {
		o.linkID, o.otherID = r.LinkID.String, r.OtherID.String
	}

	if r.Deleted {
		if r.LinkID.Valid && !r.MyDeleted.Bool && !r.OtherDeleted.Bool {
			j.deletions = append(j.deletions, deletion{side: my, recordID: r.RecordID, linkID: r.LinkID.String, otherID: r.OtherID.String})
		}
		o.note = "deleted"
		return o, nil
	}
	if !j.filter.Match(ms, r.Fields) {
		o.note = "filtered out"
		return o, nil
	}
	myValues, err := j.mapper.Project(ms, r.Fields)
	if err != nil {
		return nil, fmt.Errorf("project %s record %s: %w", my, r.RecordID, err)
	}
	o.myValues = myValues

	if r.LinkID.Valid {
		o.otherValues, o.otherHash = r.OtherValues, r.OtherHash.String
		if r.OtherDeleted.Bool {
			o.note = "the linked record was deleted"
			return o, nil
		}
		if r.Hash == r.MyHash.String {
			o.note = "unchanged since Synchron last synced it"
			return o, nil
		}
		mapped, newHash, err := j.mapInto(my, r.Fields, r.OtherValues)
		if err != nil {
			return nil, err
		}
		meaningful := newHash != r.OtherHash.String
		if r.OHash.Valid && r.OHash.String != r.OtherHash.String && !r.ODeleted.Bool {
			// The other side changed too since the last sync.
			_, backHash, err := j.mapInto(other, r.OFields, r.MyValues)
			if err != nil {
				return nil, err
			}
			otherMeaningful := j.twoWay && backHash != r.MyHash.String
			switch {
			case !meaningful:
				// This change does not reach the other side: let the other side's pass handle its change.
				o.note = "change does not touch mapped fields of the other side"
				return o, nil
			case !otherMeaningful:
				o.settle = append(o.settle, r.OtherID.String)
			case j.winner(my, r.Modified, r.OModified) == my:
				o.conflict, o.note = true, fmt.Sprintf("both sides changed: %s wins (%s)", my, j.conflict)
				o.settle = append(o.settle, r.OtherID.String)
			default:
				o.conflict, o.note = true, fmt.Sprintf("both sides changed: %s wins (%s)", other, j.conflict)
				o.kind = ActConflict
				o.myHash = r.MyHash.String // keep: the other side's write will overwrite this record
				o.myValues = r.MyValues
				return o, nil
			}
		}
		if !meaningful {
			o.note = "change does not touch mapped fields of the other side"
			return o, nil
		}
		o.kind = ActUpdate
		o.mapped = mapped
		o.write = &sdk.WriteRecord{ID: r.OtherID.String, Fields: mapped}
		return o, nil
	}

	// Unlinked: match by key, or create.
	if j.match != nil && r.Key.Valid {
		k := r.Key.String
		cs := cands[k]
		switch {
		case dupMine[k] > 1 || len(cs) > 1 || linkedOther[k] > 0:
			o.kind, o.failed = ActAmbiguous, "ambiguous"
			o.note = fmt.Sprintf("matching key %q matches %d %s records and %d %s records (%d already linked): left alone", k, dupMine[k], my, len(cs)+linkedOther[k], other, linkedOther[k])
			for _, c := range cs {
				o.settle = append(o.settle, c.RecordID)
			}
			return o, nil
		case len(cs) == 1:
			c := cs[0]
			o.otherID, o.otherKey, o.otherMod = c.RecordID, c.Key, c.Modified
			o.settle = append(o.settle, c.RecordID)
			otherValues, err := j.mapper.Project(mo, c.Fields)
			if err != nil {
				return nil, err
			}
			o.otherValues, o.otherHash = otherValues, c.Hash
			// Merge the pair field by field: the winner's non-empty values,
			// and the loser's where the winner has none (an empty value never
			// overwrites a filled one); then write each side what it lacks.
			winner := my
			if j.twoWay {
				winner = j.winner(my, r.Modified, c.Modified)
			}
			var toOther, toMine json.RawMessage
			var newOther, newMine json.RawMessage
			if winner == my {
				if toOther, newOther, err = j.mergeInto(my, r.Fields, otherValues); err != nil {
					return nil, err
				}
				if j.twoWay {
					if toMine, newMine, err = j.mergeInto(other, newOther, myValues); err != nil {
						return nil, err
					}
				}
			} else {
				if toMine, newMine, err = j.mergeInto(other, c.Fields, myValues); err != nil {
					return nil, err
				}
				if toOther, newOther, err = j.mergeInto(my, newMine, otherValues); err != nil {
					return nil, err
				}
			}
			if newMine == nil {
				newMine = myValues
			}
			otherHash, err := j.mapper.Hash(mo, newOther)
			if err != nil {
				return nil, err
			}
			mineHash, err := j.mapper.Hash(ms, newMine)
			if err != nil {
				return nil, err
			}
			o.kind = ActMatch
			o.note = "matched by key"
			if otherHash != c.Hash {
				o.note += "; " + string(other) + " updated"
				o.mapped = toOther
				o.write = &sdk.WriteRecord{ID: c.RecordID, Fields: toOther}
			}
			if j.twoWay && mineHash != r.Hash {
				o.note += "; " + string(my) + " updated"
				o.writeMine = &sdk.WriteRecord{ID: r.RecordID, Fields: toMine}
				o.myValues, o.myHash = newMine, mineHash
			}
			if o.write == nil && o.writeMine == nil {
				o.note += "; already equal"
			}
			return o, nil
		}
	}
	mapped, err := j.mapper.Map(ms, r.Fields, nil)
	if err != nil {
		return nil, fmt.Errorf("map %s record %s: %w", my, r.RecordID, err)
	}
	o.kind = ActCreate
	o.mapped = mapped
	o.write = &sdk.WriteRecord{Fields: mapped}
	return o, nil
}

// mapInto maps a record of side from onto the other side's last known
// values, and returns the mapped fields and the hash of the other side's
// values after the write.
func (j *linkJob) mapInto(from Side, fields, otherValues json.RawMessage) (json.RawMessage, string, error) {
	mapped, err := j.mapper.Map(mside(from), fields, otherValues)
	if err != nil {
		return nil, "", fmt.Errorf("map %s record: %w", from, err)
	}
	merged, err := mergeObjects(otherValues, mapped)
	if err != nil {
		return nil, "", err
	}
	h, err := j.mapper.Hash(mside(from.Other()), merged)
	if err != nil {
		return nil, "", err
	}
	return mapped, h, nil
}

// mergeInto maps a record of side from onto the other side's values and
// returns the fields to write there and the other side's values after it.
func (j *linkJob) mergeInto(from Side, fields, otherValues json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	mapped, err := j.mapper.Map(mside(from), fields, otherValues)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s record: %w", from, err)
	}
	merged, err := mergeObjects(otherValues, mapped)
	if err != nil {
		return nil, nil, err
	}
	projected, err := j.mapper.Project(mside(from.Other()), merged)
	if err != nil {
		return nil, nil, err
	}
	return mapped, projected, nil
}

// mergeObjects returns base with the members of over set on it.
func mergeObjects(base, over json.RawMessage) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(base) > 0 {
		if err := json.Unmarshal(base, &m); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if m == nil {
			m = map[string]json.RawMessage{}
		}
	}
	if len(over) > 0 {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(over, &o); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		for k, v := range o {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// writeWithRetry writes records to one side, retrying retryable results with
// backoff. It returns the final result of each record by Ref; records still
// retryable at the end are missing from the map and the error is
// ErrRetriesExhausted.
func writeWithRetry(ctx context.Context, s *sideConn, records []sdk.WriteRecord, policy RetryPolicy) (map[string]sdk.WriteResult, error) {
	if policy.MaxAttempts <= 0 {
		policy = DefaultRetryPolicy()
	}
	out := make(map[string]sdk.WriteResult, len(records))
	pending := records
	delay := policy.BaseDelay
	firstSent := time.Now()
	for attempt := 1; len(pending) > 0; attempt++ {
		resp, err := s.conn.Write(ctx, sdk.WriteRequest{Config: s.config, Object: s.object, Records: pending})
		if err != nil {
			return out, fmt.Errorf("write %s %s: %w", s.side, s.object, err)
		}
		if err := s.adopt(ctx, resp.UpdatedConfig); err != nil {
			return out, err
		}
		if len(resp.Results) != len(pending) {
			return out, fmt.Errorf("write %s %s: connector answered %d results for %d records: %s", s.side, s.object, len(resp.Results), len(pending), resp.Diagnostics.Error())
		}
		var retry []sdk.WriteRecord
		var wait time.Duration
		for i, res := range resp.Results {
			if res.Ref != pending[i].Ref {
				return out, fmt.Errorf("write %s %s: result %d has ref %q, want %q", s.side, s.object, i, res.Ref, pending[i].Ref)
			}
			if res.Status == sdk.WriteRetryable {
				again := pending[i]
				if again.ID == "" && !again.Delete && again.MayExistSince.IsZero() {
					// A create answered retryable may have been applied all
					// the same (a 5xx after the app stored it): sent again,
					// the connector looks for it first.
					again.MayExistSince = firstSent
				}
				retry = append(retry, again)
				wait = max(wait, res.RetryAfter)
				out[res.Ref] = res
				continue
			}
			out[res.Ref] = res
		}
		pending = retry
		if len(pending) == 0 {
			return out, nil
		}
		if attempt >= policy.MaxAttempts {
			return out, fmt.Errorf("write %s: %d records after %d attempts: %w", s.object, len(pending), attempt, ErrRetriesExhausted)
		}
		wait = max(wait, delay)
		delay = min(delay*2, policy.MaxDelay)
		if err := sleep(ctx, wait); err != nil {
			return out, err
		}
	}
	return out, nil
}

// writeMatchedMine writes to this side's matched records the values they
// lack from the other side. A failure is reported with the record; the link
// then keeps this side's values as they are, so nothing is hidden.
func (j *linkJob) writeMatchedMine(ctx context.Context, my Side, ops []*op) error {
	var recs []sdk.WriteRecord
	byRef := map[string]*op{}
	for i, o := range ops {
		if o.writeMine == nil || (o.write != nil && (o.result == nil || o.result.Status != sdk.WriteOK)) {
			continue
		}
		o.writeMine.Ref = strconv.Itoa(i)
		byRef[o.writeMine.Ref] = o
		recs = append(recs, *o.writeMine)
	}
	if len(recs) == 0 {
		return nil
	}
	results, err := writeWithRetry(ctx, j.sides[my], recs, j.retry)
	if err != nil && !errors.Is(err, ErrRetriesExhausted) {
		return err
	}
	for _, rec := range recs {
		o := byRef[rec.Ref]
		if res, ok := results[rec.Ref]; ok {
			o.resultMine = &res
		}
		if o.resultMine == nil || o.resultMine.Status != sdk.WriteOK {
			msg := "the app kept answering retryable errors"
			if o.resultMine != nil {
				msg = o.resultMine.Message
			}
			o.note += "; writing the " + string(my) + " record failed: " + msg
			o.myValues, o.myHash = nil, o.r.Hash
			if v, err := j.mapper.Project(mside(my), o.r.Fields); err == nil {
				o.myValues = v
			}
			continue
		}
		if len(o.resultMine.Fields) > 0 {
			if v, err := j.mapper.Project(mside(my), o.resultMine.Fields); err == nil {
				if h, err := j.mapper.Hash(mside(my), v); err == nil {
					o.myValues, o.myHash = v, h
				}
			}
		}
	}
	return nil
}

// writeBack writes the target ids of records created from the source back to
// a field of the source record, when the workflow asks for it.
func (j *linkJob) writeBack(ctx context.Context, my Side, ops []*op) error {
	if j.writeBackField == "" || my != SideSource {
		return nil
	}
	var recs []sdk.WriteRecord
	byRef := map[string]*op{}
	for i, o := range ops {
		if o.kind != ActCreate || o.result == nil || o.result.Status != sdk.WriteOK || o.result.ID == "" {
			continue
		}
		fields, _ := json.Marshal(map[string]string{j.writeBackField: o.result.ID})
		ref := strconv.Itoa(i)
		byRef[ref] = o
		recs = append(recs, sdk.WriteRecord{Ref: ref, ID: o.r.RecordID, Fields: fields})
	}
	if len(recs) == 0 {
		return nil
	}
	results, err := writeWithRetry(ctx, j.sides[SideSource], recs, j.retry)
	if err != nil && !errors.Is(err, ErrRetriesExhausted) {
		return err
	}
	for _, rec := range recs {
		res, ok := results[rec.Ref]
		if !ok || res.Status != sdk.WriteOK {
			msg := "the app kept answering retryable errors"
			if ok {
				msg = res.Message
			}
			byRef[rec.Ref].note += "; write-back failed: " + msg
		}
	}
	return nil
}

// account adds an op's outcome to the preview or the run counts.
func (j *linkJob) account(my Side, o *op, dry bool) (c Counts, matched, ambiguous int64) {
	ok := dry || (o.failed == "" && (o.write == nil || (o.result != nil && o.result.Status == sdk.WriteOK)))
	action := sdk.ActionUnchanged
	if o.result != nil {
		action = o.result.Action
	}
	switch {
	case o.failed == "ambiguous":
		ambiguous = 1
	case !ok:
		c.Failed = 1
	case o.write == nil:
		c.Skipped = 1
		if o.kind == ActMatch {
			matched = 1
		}
	case dry && o.kind == ActCreate:
		c.Created = 1
	case dry:
		c.Updated = 1
	case action == sdk.ActionCreated:
		c.Created = 1
	case action == sdk.ActionUpdated:
		c.Updated = 1
	case action == sdk.ActionDeleted:
		c.Deleted = 1
	default:
		c.Skipped = 1
	}
	if o.kind == ActMatch && o.write != nil && ok {
		matched = 1
	}
	mineOK := o.writeMine != nil && (dry || (o.resultMine != nil && o.resultMine.Status == sdk.WriteOK))
	if mineOK {
		c.Updated++
		if o.write == nil {
			c.Skipped = 0 // the write to this side is the outcome
		}
	}
	if j.preview != nil {
		p := j.preview
		dir := &p.ToTarget
		if my == SideTarget {
			dir = &p.ToSource
		}
		if mineOK {
			// The update of this side's record flows the other way.
			back := &p.ToSource
			if my == SideTarget {
				back = &p.ToTarget
			}
			back.Updated++
			c.Updated--
		}
		*dir = dir.Add(c)
		if mineOK {
			c.Updated++
		}
		p.Matched += matched
		p.Ambiguous += ambiguous
		if o.conflict {
			p.Conflicts++
		}
		p.Transactions += c.Transactions()
		if len(p.Actions) < 100 && (o.write != nil || o.kind == ActAmbiguous || o.kind == ActConflict || o.kind == ActMatch) {
			a := PlannedAction{Kind: o.kind, Note: o.note, Direction: ToTarget}
			if my == SideTarget {
				a.Direction = ToSource
			}
			a.SourceID, a.TargetID = o.r.RecordID, o.otherID
			if my == SideTarget {
				a.SourceID, a.TargetID = o.otherID, o.r.RecordID
			}
			p.Actions = append(p.Actions, a)
		}
	}
	return c, matched, ambiguous
}

func (j *linkJob) markDone(ctx context.Context, my Side, rows []row, settled []string) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.RecordID
	}
	if _, err := j.db.ExecContext(ctx, `UPDATE run_stage SET done = true WHERE run_id = $1 AND side = $2 AND record_id = ANY($3)`,
		j.runID, string(my), pq.Array(ids)); err != nil {
		return fmt.Errorf("mark staged records done: %w", err)
	}
	if len(settled) > 0 {
		if _, err := j.db.ExecContext(ctx, `UPDATE run_stage SET done = true WHERE run_id = $1 AND side = $2 AND record_id = ANY($3)`,
			j.runID, string(my.Other()), pq.Array(settled)); err != nil {
			return fmt.Errorf("mark settled records done: %w", err)
		}
	}
	return nil
}

// linkState is a link row as a chunk commit writes it.
type linkState struct {
	myValues, otherValues json.RawMessage
	myHash, otherHash     string
	myKey, otherKey       string
}

// after computes the link state once op has been applied.
func (j *linkJob) after(my Side, o *op) (linkState, error) {
	st := linkState{myValues: o.myValues, otherValues: o.otherValues, myHash: o.myHash, otherHash: o.otherHash, myKey: o.myKey, otherKey: o.otherKey}
	if o.write == nil || o.result == nil || o.result.Status != sdk.WriteOK {
		return st, nil
	}
	other := mside(my.Other())
	var values json.RawMessage
	var err error
	if len(o.result.Fields) > 0 {
		// What the app stored, defaults and normalisation included.
		values, err = j.mapper.Project(other, o.result.Fields)
	} else {
		values, err = mergeObjects(o.otherValues, o.mapped)
		if err == nil {
			values, err = j.mapper.Project(other, values)
		}
	}
	if err != nil {
		return st, fmt.Errorf("link values: %w", err)
	}
	st.otherValues = values
	if st.otherHash, err = j.mapper.Hash(other, values); err != nil {
		return st, err
	}
	if j.match != nil {
		if k, ok := j.match.Key(other, values); ok {
			st.otherKey = k
		}
	}
	return st, nil
}

// commitChunk records a chunk's outcome in one transaction: run counts (and
// the lease), links, history, failures, the retry queue, and the staged
// records it settled. Each kind of row is written with one statement.
func (j *linkJob) commitChunk(ctx context.Context, my Side, rows []row, ops []*op, settled []string) error {
	other := my.Other()
	tx, err := j.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin chunk: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	// Links: new ones, then updates.
	var nl struct {
		ids, src, tgt, srcHash, tgtHash, srcVals, tgtVals, srcKey, tgtKey, srcMod, tgtMod []string
		ops                                                                               []*op
	}
	var ul struct {
		ids, myHash, myVals, otherHash, otherVals, myMod, otherKey []string
	}
	for _, o := range ops {
		st, err := j.after(my, o)
		if err != nil {
			return err
		}
		okWrite := o.write != nil && o.result != nil && o.result.Status == sdk.WriteOK
		switch {
		case o.kind == ActCreate && okWrite, o.kind == ActMatch && (okWrite || o.write == nil) && o.failed == "":
			otherID := o.otherID
			if o.kind == ActCreate {
				otherID = o.result.ID
			}
			o.linkID, o.otherID = "lnk_"+randomID(), otherID
			srcID, tgtID := o.r.RecordID, otherID
			srcVals, tgtVals, srcHash, tgtHash, srcKey, tgtKey := st.myValues, st.otherValues, st.myHash, st.otherHash, st.myKey, st.otherKey
			srcMod, tgtMod := o.r.Modified, o.otherMod
			if my == SideTarget {
				srcID, tgtID = tgtID, srcID
				srcVals, tgtVals, srcHash, tgtHash, srcKey, tgtKey = tgtVals, srcVals, tgtHash, srcHash, tgtKey, srcKey
				srcMod, tgtMod = tgtMod, srcMod
			}
			nl.ids = append(nl.ids, o.linkID)
			nl.src, nl.tgt = append(nl.src, srcID), append(nl.tgt, tgtID)
			nl.srcHash, nl.tgtHash = append(nl.srcHash, srcHash), append(nl.tgtHash, tgtHash)
			nl.srcVals, nl.tgtVals = append(nl.srcVals, string(jsonOrEmpty(srcVals))), append(nl.tgtVals, string(jsonOrEmpty(tgtVals)))
			nl.srcKey, nl.tgtKey = append(nl.srcKey, srcKey), append(nl.tgtKey, tgtKey)
			nl.srcMod, nl.tgtMod = append(nl.srcMod, timeText(srcMod)), append(nl.tgtMod, timeText(tgtMod))
			nl.ops = append(nl.ops, o)
		case o.linkID != "" && (o.kind == ActUpdate && okWrite || o.kind == ActSkip && o.myValues != nil || o.kind == ActConflict):
			ul.ids = append(ul.ids, o.linkID)
			ul.myHash, ul.myVals = append(ul.myHash, st.myHash), append(ul.myVals, string(jsonOrEmpty(st.myValues)))
			ul.otherHash, ul.otherVals = append(ul.otherHash, st.otherHash), append(ul.otherVals, string(jsonOrEmpty(st.otherValues)))
			ul.myMod, ul.otherKey = append(ul.myMod, timeText(o.r.Modified)), append(ul.otherKey, st.otherKey)
		}
	}
	if len(nl.ids) > 0 {
		var created []string
		if err := tx.SelectContext(ctx, &created, `
			INSERT INTO links (id, account_id, workflow_id, source_id, target_id, source_hash, target_hash,
				source_values, target_values, source_key, target_key, source_modified_at, target_modified_at)
			SELECT u.id, $1, $2, u.s, u.t, u.sh, u.th, u.sv::jsonb, u.tv::jsonb, NULLIF(u.sk, ''), NULLIF(u.tk, ''),
				NULLIF(u.sm, '')::timestamptz, NULLIF(u.tm, '')::timestamptz
			FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
				$10::text[], $11::text[], $12::text[], $13::text[]) AS u(id, s, t, sh, th, sv, tv, sk, tk, sm, tm)
			ON CONFLICT DO NOTHING
			RETURNING id`, j.accountID, j.wfID, pq.Array(nl.ids), pq.Array(nl.src), pq.Array(nl.tgt), pq.Array(nl.srcHash),
			pq.Array(nl.tgtHash), pq.Array(nl.srcVals), pq.Array(nl.tgtVals), pq.Array(nl.srcKey), pq.Array(nl.tgtKey),
			pq.Array(nl.srcMod), pq.Array(nl.tgtMod)); err != nil {
			return fmt.Errorf("create links: %w", err)
		}
		ok := make(map[string]bool, len(created))
		for _, id := range created {
			ok[id] = true
		}
		for _, o := range nl.ops {
			if !ok[o.linkID] {
				// Two records written into one (an upsert by a natural key):
				// report it, never link one record twice.
				o.failed = "conflict"
				o.note = fmt.Sprintf("the %s answered id %s, which is already linked to another record: not linked twice", other, o.otherID)
				o.linkID = ""
			}
		}
	}
	if len(ul.ids) > 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`
			UPDATE links l SET %[1]s_hash = u.mh, %[1]s_values = u.mv::jsonb, %[2]s_hash = u.oh, %[2]s_values = u.ov::jsonb,
				%[1]s_modified_at = COALESCE(NULLIF(u.mm, '')::timestamptz, l.%[1]s_modified_at),
				%[2]s_key = COALESCE(NULLIF(u.ok, ''), l.%[2]s_key), updated_at = now()
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(id, mh, mv, oh, ov, mm, ok)
			WHERE l.id = u.id AND l.account_id = $1`, my, other),
			j.accountID, pq.Array(ul.ids), pq.Array(ul.myHash), pq.Array(ul.myVals), pq.Array(ul.otherHash),
			pq.Array(ul.otherVals), pq.Array(ul.myMod), pq.Array(ul.otherKey)); err != nil {
			return fmt.Errorf("update links: %w", err)
		}
	}

	// Counts, history, outcomes and the retry queue.
	var total Counts
	var matched, ambiguous int64
	var hist struct{ link, dir, action, values, note []string }
	var rec struct{ id, dir, status, msg, link []string }
	var rq struct{ id, fields, mod, msg, kind []string }
	var rqDel []string
	dir := ToTarget
	if my == SideTarget {
		dir = ToSource
	}
	// Records the lookups created in the target app are transactions too.
	total.Created += j.lookupCreated
	j.lookupCreated = 0
	for _, o := range ops {
		c, m, a := j.account(my, o, false)
		total, matched, ambiguous = total.Add(c), matched+m, ambiguous+a
		if o.linkID != "" && (o.write != nil || o.conflict || o.kind == ActMatch) {
			action := string(o.kind)
			if o.result != nil && o.result.Status == sdk.WriteOK && o.kind != ActMatch {
				action = o.result.Action.String()
			}
			if o.failed != "" {
				action = "failed"
			}
			hist.link, hist.dir, hist.action = append(hist.link, o.linkID), append(hist.dir, string(dir)), append(hist.action, action)
			hist.values, hist.note = append(hist.values, string(jsonOrEmpty(o.mapped))), append(hist.note, truncate(o.note, 2000))
		}
		if o.failed != "" || o.conflict {
			status := o.failed
			if status == "" {
				status = "conflict"
			}
			rec.id, rec.dir, rec.status = append(rec.id, o.r.RecordID), append(rec.dir, string(dir)), append(rec.status, status)
			rec.msg, rec.link = append(rec.msg, truncate(o.note, 2000)), append(rec.link, o.linkID)
		}
		switch o.failed {
		case "rejected", "retryable":
			rq.id, rq.fields, rq.mod = append(rq.id, o.r.RecordID), append(rq.fields, string(jsonOrEmpty(o.r.Fields))), append(rq.mod, timeText(o.r.Modified))
			rq.msg, rq.kind = append(rq.msg, truncate(o.note, 2000)), append(rq.kind, o.failed)
		case "":
			if o.r.Retry || o.write != nil {
				rqDel = append(rqDel, o.r.RecordID)
			}
		}
	}
	if len(hist.link) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO link_history (account_id, link_id, run_id, direction, action, values, note)
			SELECT $1, u.l, $2, u.d, u.a, u.v::jsonb, u.n FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(l, d, a, v, n)`,
			j.accountID, j.runID, pq.Array(hist.link), pq.Array(hist.dir), pq.Array(hist.action), pq.Array(hist.values), pq.Array(hist.note)); err != nil {
			return fmt.Errorf("link history: %w", err)
		}
	}
	if len(rec.id) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_records (run_id, account_id, record_id, direction, status, message, side, link_id)
			SELECT $1, $2, u.r, u.d, u.s, u.m, $3, NULLIF(u.l, '') FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(r, d, s, m, l)`,
			j.runID, j.accountID, string(my), pq.Array(rec.id), pq.Array(rec.dir), pq.Array(rec.status), pq.Array(rec.msg), pq.Array(rec.link)); err != nil {
			return fmt.Errorf("record outcomes: %w", err)
		}
	}
	if len(rq.id) > 0 {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO retry_queue (account_id, workflow_id, side, record_id, fields, modified_at, deleted, run_id, attempts, next_retry_at, last_error, kind)
			SELECT $1, $2, $3, u.r, u.f::jsonb, NULLIF(u.m, '')::timestamptz, false, $4, 1, now() + interval '1 minute', u.e, u.k
			FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) AS u(r, f, m, e, k)
			ON CONFLICT (workflow_id, side, record_id) DO UPDATE SET fields = EXCLUDED.fields, modified_at = EXCLUDED.modified_at,
				run_id = EXCLUDED.run_id, attempts = retry_queue.attempts + 1,
				next_retry_at = now() + least(interval '1 minute' * power(2, retry_queue.attempts), interval '1 day'),
				last_error = EXCLUDED.last_error, kind = EXCLUDED.kind, updated_at = now()`,
			j.accountID, j.wfID, string(my), j.runID, pq.Array(rq.id), pq.Array(rq.fields), pq.Array(rq.mod), pq.Array(rq.msg), pq.Array(rq.kind)); err != nil {
			return fmt.Errorf("queue records for retry: %w", err)
		}
	}
	if len(rqDel) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM retry_queue WHERE workflow_id = $1 AND side = $2 AND record_id = ANY($3)`,
			j.wfID, string(my), pq.Array(rqDel)); err != nil {
			return fmt.Errorf("clear retried records: %w", err)
		}
	}
	if err := j.lease(ctx, tx, total, matched, ambiguous); err != nil {
		return err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.RecordID
	}
	if _, err := tx.ExecContext(ctx, `UPDATE run_stage SET done = true WHERE run_id = $1 AND side = $2 AND record_id = ANY($3)`,
		j.runID, string(my), pq.Array(ids)); err != nil {
		return fmt.Errorf("mark staged records done: %w", err)
	}
	if len(settled) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE run_stage SET done = true WHERE run_id = $1 AND side = $2 AND record_id = ANY($3)`,
			j.runID, string(other), pq.Array(settled)); err != nil {
			return fmt.Errorf("mark settled records done: %w", err)
		}
	}
	// Creates the app answered created (now linked) leave the journal
	// (journalCreates). Refused and retryable ones stay: a connector also
	// refuses a create it cannot tell apart from records already there, and
	// the app may have created a retryable one all the same.
	var known []string
	for _, o := range ops {
		if o.kind == ActCreate && o.write != nil && o.result != nil && o.result.Status == sdk.WriteOK {
			known = append(known, o.r.RecordID)
		}
	}
	if len(known) > 0 && !j.dry {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_creates WHERE workflow_id = $1 AND side = $2 AND record_id = ANY($3)`,
			j.wfID, string(other), pq.Array(known)); err != nil {
			return fmt.Errorf("clear the create journal: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit chunk: %w", err)
	}
	return nil
}

func timeText(t sql.NullTime) string {
	if !t.Valid {
		return ""
	}
	return t.Time.UTC().Format(time.RFC3339Nano)
}

func jsonOrEmpty(v json.RawMessage) []byte {
	if len(v) == 0 {
		return []byte("{}")
	}
	return v
}

// settleDeletes applies the workflow's delete policy to the deletions staged
// in this run, and executes the deletions a user approved.
func (j *linkJob) settleDeletes(ctx context.Context) error {
	var approved []struct {
		ID       string `db:"id"`
		LinkID   string `db:"link_id"`
		Side     string `db:"side"`
		RecordID string `db:"record_id"`
	}
	if err := j.db.SelectContext(ctx, &approved, `SELECT id, link_id, side, record_id FROM pending_deletes
		WHERE workflow_id = $1 AND account_id = $2 AND status = 'approved' ORDER BY created_at LIMIT 10000`, j.wfID, j.accountID); err != nil {
		return fmt.Errorf("load approved deletions: %w", err)
	}
	if len(j.deletions) == 0 && len(approved) == 0 {
		return nil
	}
	var total int
	if err := j.db.GetContext(ctx, &total, `SELECT count(*) FROM links WHERE workflow_id = $1 AND NOT source_deleted AND NOT target_deleted`, j.wfID); err != nil {
		return fmt.Errorf("count links: %w", err)
	}

	policy := j.deletes
	if policy == DeletesPropagate && total > 0 && float64(len(j.deletions))*100 > j.threshold*float64(total) {
		j.notice = fmt.Sprintf("delete safety stop: this run would delete %d of %d linked records (more than %.0f%%); nothing was deleted and the deletions wait for approval", len(j.deletions), total, j.threshold)
		if j.preview != nil {
			j.preview.DeleteSafetyStop = true
		}
		policy = DeletesApprove
	}

	type del struct {
		pendingID string
		linkID    string
		side      Side // the side to delete on
		recordID  string
		origin    Side
	}
	var toDelete []del
	for _, a := range approved {
		toDelete = append(toDelete, del{pendingID: a.ID, linkID: a.LinkID, side: Side(a.Side), recordID: a.RecordID})
	}
	if j.dry {
		p := j.preview
		switch policy {
		case DeletesApprove:
			p.QueuedDeletes += int64(len(j.deletions))
		case DeletesPropagate:
			for _, d := range j.deletions {
				toDelete = append(toDelete, del{side: d.side.Other()})
			}
		}
		for _, d := range toDelete {
			dir := &p.ToTarget
			if d.side == SideSource {
				dir = &p.ToSource
			}
			dir.Deleted++
			p.Transactions++
		}
		return nil
	}

	tx, err := j.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin deletes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, d := range j.deletions {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE links SET %s_deleted = true, updated_at = now() WHERE id = $1 AND account_id = $2`, d.side),
			d.linkID, j.accountID); err != nil {
			return fmt.Errorf("mark link deleted: %w", err)
		}
		switch policy {
		case DeletesApprove:
			if _, err := tx.ExecContext(ctx, `INSERT INTO pending_deletes (id, account_id, workflow_id, link_id, side, record_id, message)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, "del_"+randomID(), j.accountID, j.wfID, d.linkID,
				string(d.side.Other()), d.otherID, fmt.Sprintf("deleted in the %s (record %s)", d.side, d.recordID)); err != nil {
				return fmt.Errorf("queue deletion: %w", err)
			}
		case DeletesPropagate:
			toDelete = append(toDelete, del{linkID: d.linkID, side: d.side.Other(), recordID: d.otherID, origin: d.side})
		}
	}
	if j.notice != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO notifications (id, account_id, kind, message, workflow_id) VALUES ($1, $2, 'delete_safety_stop', $3, $4)`,
			"ntf_"+randomID(), j.accountID, j.notice, j.wfID); err != nil {
			return fmt.Errorf("notify safety stop: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit deletes: %w", err)
	}

	// Write the deletions, one batch per side.
	var counts Counts
	for _, side := range []Side{SideSource, SideTarget} {
		var recs []sdk.WriteRecord
		var batch []del
		for _, d := range toDelete {
			if d.side == side {
				recs = append(recs, sdk.WriteRecord{Ref: strconv.Itoa(len(recs)), ID: d.recordID, Delete: true})
				batch = append(batch, d)
			}
		}
		if len(recs) == 0 {
			continue
		}
		results, err := writeWithRetry(ctx, j.sides[side], recs, j.retry)
		if err != nil && !errors.Is(err, ErrRetriesExhausted) {
			return err
		}
		tx, err := j.db.BeginTxx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin delete results: %w", err)
		}
		for i, d := range batch {
			res, ok := results[strconv.Itoa(i)]
			okDel := ok && res.Status == sdk.WriteOK
			msg := "the app kept answering retryable errors"
			if ok && !okDel {
				msg = res.Message
			}
			if okDel {
				if res.Action == sdk.ActionDeleted {
					counts.Deleted++
				} else {
					counts.Skipped++
				}
				if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE links SET %s_deleted = true, updated_at = now() WHERE id = $1 AND account_id = $2`, side),
					d.linkID, j.accountID); err != nil {
					tx.Rollback() //nolint:errcheck
					return fmt.Errorf("mark link deleted: %w", err)
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO link_history (account_id, link_id, run_id, direction, action, note)
					VALUES ($1, $2, $3, $4, 'deleted', $5)`, j.accountID, d.linkID, j.runID, "to_"+string(side), "deleted "+d.recordID); err != nil {
					tx.Rollback() //nolint:errcheck
					return fmt.Errorf("link history: %w", err)
				}
			} else {
				counts.Failed++
				if _, err := tx.ExecContext(ctx, `INSERT INTO run_records (run_id, account_id, record_id, direction, status, message, side, link_id)
					VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7)`, j.runID, j.accountID, d.recordID, "to_"+string(side), "delete: "+truncate(msg, 2000), string(side), d.linkID); err != nil {
					tx.Rollback() //nolint:errcheck
					return fmt.Errorf("record failed delete: %w", err)
				}
			}
			if d.pendingID != "" {
				status := "done"
				if !okDel {
					status = "failed"
				}
				if _, err := tx.ExecContext(ctx, `UPDATE pending_deletes SET status = $3, message = $4, decided_at = COALESCE(decided_at, now())
					WHERE id = $1 AND account_id = $2`, d.pendingID, j.accountID, status, truncate(msg, 2000)); err != nil {
					tx.Rollback() //nolint:errcheck
					return fmt.Errorf("settle approved deletion: %w", err)
				}
			}
		}
		if err := j.lease(ctx, tx, counts, 0, 0); err != nil {
			tx.Rollback() //nolint:errcheck
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit delete results: %w", err)
		}
		counts = Counts{}
	}
	return nil
}

// finish commits both checkpoints and refreshed credentials, and clears the
// stage: every staged change has been written or recorded by now.
func (j *linkJob) finish(ctx context.Context) error {
	tx, err := j.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin finish: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := j.lease(ctx, tx, Counts{}, 0, 0); err != nil {
		return err
	}
	src := j.sides[SideSource]
	tgtCursor := []byte(nil)
	if t := j.sides[SideTarget]; t != nil && j.twoWay {
		tgtCursor = t.next
	}
	if _, err := tx.ExecContext(ctx, `UPDATE workflows SET cursor = $3, target_cursor = CASE WHEN $5 THEN $4 ELSE target_cursor END, updated_at = now()
		WHERE id = $1 AND account_id = $2`, j.wfID, j.accountID, src.next, tgtCursor, j.twoWay); err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	if j.notice != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET notice = $2 WHERE id = $1`, j.runID, j.notice); err != nil {
			return fmt.Errorf("save notice: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM run_stage WHERE run_id = $1`, j.runID); err != nil {
		return fmt.Errorf("clear stage: %w", err)
	}
	// A create journaled a week ago whose record is not waiting for a retry
	// (deleted, filtered out since) is forgotten.
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_creates p WHERE p.workflow_id = $1 AND p.started_at < now() - interval '7 days'
		AND NOT EXISTS (SELECT 1 FROM retry_queue r WHERE r.workflow_id = p.workflow_id AND r.side <> p.side AND r.record_id = p.record_id)`, j.wfID); err != nil {
		return fmt.Errorf("prune the create journal: %w", err)
	}
	return tx.Commit()
}
