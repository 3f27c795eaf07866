package pgconnector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/synchron-io/synchron/sdk"
)

// Batch sizes of Read.
const (
	DefaultBatchSize = 1000
	MaxBatchSize     = 10_000
)

// negInfinity is the cursor position of rows whose updated-at is NULL or
// -infinity: they sort first.
const negInfinity = "-infinity"

// cursor is a read checkpoint: the position of the last record read. U is
// the record's updated-at as PostgreSQL prints it (full precision, with the
// offset for timestamptz; "-infinity" for NULL), absent without
// updated_at_column; K is its key as text.
type cursor struct {
	U *string `json:"u,omitempty"`
	K *string `json:"k,omitempty"`
}

// parseCursor parses a checkpoint and checks that it fits the config.
func parseCursor(raw []byte, cfg Config) (cursor, error) {
	var c cursor
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf(`want {"u": "<timestamp>", "k": "<key>"}: %w`, err)
	}
	if c.K == nil {
		return c, errors.New(`no key ("k")`)
	}
	switch {
	case cfg.Incremental() && c.U == nil:
		return c, errors.New("the cursor comes from a full read (no updated_at_column) but the config now sets updated_at_column: reset the sync's cursor")
	case !cfg.Incremental() && c.U != nil:
		return c, errors.New("the cursor comes from an incremental read but the config no longer sets updated_at_column: reset the sync's cursor")
	}
	return c, nil
}

func (c cursor) encode() []byte {
	b, _ := json.Marshal(c) // strings only: cannot fail
	return b
}

// Read implements sdk.Connector. Records come in key order (without
// updated_at_column) or in (updated-at, key) order, NULL updated-at first,
// one batch per page of a keyset pagination. Each batch's checkpoint is the
// position of its last record. With deleted_column, soft-deleted rows are
// records with Deleted set (and their fields). Config, object and cursor
// problems are reported as a batch of diagnostics.
func (c *Connector) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	cfg, diags := ParseConfig(req.Config)
	if !diags.HasError() && req.Object != cfg.Table {
		diags = append(diags, sdk.Errorf("", fmt.Sprintf("unknown object %q", req.Object), fmt.Sprintf("this config reads the object %q (its table)", cfg.Table)))
	}
	cur, err := parseCursor(req.Cursor, cfg)
	if err != nil && !diags.HasError() {
		diags = append(diags, sdk.Errorf("", "invalid cursor", err.Error()))
	}
	if diags.HasError() {
		return emitDiags(ctx, sink, cfg.Table, diags)
	}

	s, diags, err := c.open(ctx, cfg)
	defer c.close(s, false)
	if err != nil {
		if d, permanent := connProblem(err, cfg.URL); permanent {
			return emitDiags(ctx, sink, cfg.Table, sdk.Diagnostics{d})
		}
		return fmt.Errorf("postgres: read %s: %w", cfg.Table, err)
	}
	if diags.HasError() {
		return emitDiags(ctx, sink, cfg.Table, diags)
	}
	bs := req.BatchSize
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	bs = min(bs, MaxBatchSize)
	r := &reader{s: s, sink: sink, cur: cur, limit: bs}
	if err := r.run(ctx); err != nil {
		var bad *badCursorError
		if errors.As(err, &bad) {
			return emitDiags(ctx, sink, cfg.Table, sdk.Diagnostics{sdk.Errorf("", "invalid cursor", redactURLText(bad.err.Error(), cfg.URL))})
		}
		return fmt.Errorf("postgres: read %s: %w", cfg.Table, redactErr(err, cfg.URL))
	}
	return nil
}

func emitDiags(ctx context.Context, sink sdk.ReadSink, table string, diags sdk.Diagnostics) error {
	if err := sink.Emit(ctx, sdk.ReadBatch{Diagnostics: diags}); err != nil {
		return fmt.Errorf("postgres: read %s: %w", table, err)
	}
	return nil
}

// badCursorError is a cursor PostgreSQL could not cast back to the column
// types.
type badCursorError struct{ err error }

func (e *badCursorError) Error() string { return "invalid cursor: " + e.err.Error() }
func (e *badCursorError) Unwrap() error { return e.err }

// reader pages through the table.
type reader struct {
	s     *session
	sink  sdk.ReadSink
	cur   cursor
	limit int
	// hi is the exclusive upper bound of updated-at for this read (now minus
	// the read lag, taken once when the read starts), as timestamptz text.
	hi string
}

// phase of an incremental read: first the rows whose updated-at is NULL or
// -infinity, in key order; then the others in (updated-at, key) order. Both
// together are the order of (COALESCE(u, '-infinity'), key), but each phase
// can use a plain index on (u, key).
type phase int

const (
	phaseNull phase = iota
	phaseTimed
)

func (r *reader) run(ctx context.Context) error {
	t := r.s.table
	if t.updatedAt == nil {
		return r.loop(ctx, phaseTimed)
	}
	if err := r.s.db.QueryRowContext(ctx,
		`SELECT (now() - make_interval(secs => $1))::text`, r.s.cfg.ReadLagSeconds).Scan(&r.hi); err != nil {
		return fmt.Errorf("read the clock: %w", err)
	}
	if r.cur.U == nil || *r.cur.U == negInfinity {
		if err := r.loop(ctx, phaseNull); err != nil {
			return err
		}
	}
	return r.loop(ctx, phaseTimed)
}

// loop reads the pages of one phase until a page is short.
func (r *reader) loop(ctx context.Context, ph phase) error {
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		query, args := r.query(ph)
		recs, err := r.page(ctx, query, args)
		if err != nil {
			if first && r.cur.K != nil {
				if pe := pq.As(err); pe != nil && pe.Code.Class() == pqerror.ClassDataException {
					return &badCursorError{err: err}
				}
			}
			return err
		}
		first = false
		if len(recs) > 0 {
			if err := r.sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: r.cur.encode()}); err != nil {
				return err
			}
		}
		if len(recs) < r.limit {
			return nil
		}
	}
}

// query builds the next page's statement from the cursor.
func (r *reader) query(ph phase) (string, []any) {
	t := r.s.table
	pk := "r." + quoteIdent(t.pk.name)
	var b strings.Builder
	b.WriteString("SELECT row_to_json(r.*)::text, ")
	b.WriteString(pk)
	b.WriteString("::text")
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if t.deleted != nil {
		b.WriteString(", ")
		b.WriteString(t.deletedSQL("r"))
	}
	if t.updatedAt == nil {
		fmt.Fprintf(&b, " FROM %s AS r WHERE %s IS NOT NULL", t.qname, pk)
		if r.cur.K != nil {
			fmt.Fprintf(&b, " AND %s > %s::text::%s", pk, arg(*r.cur.K), t.pk.sqlType)
		}
		fmt.Fprintf(&b, " ORDER BY %s LIMIT %d", pk, r.limit)
		return b.String(), args
	}

	u := "r." + quoteIdent(t.updatedAt.name)
	fmt.Fprintf(&b, ", COALESCE(%[1]s, '-infinity')::text, CASE WHEN pg_catalog.isfinite(%[1]s) THEN (extract(epoch FROM %[1]s::timestamptz) * 1000000)::int8 END", u)
	fmt.Fprintf(&b, " FROM %s AS r WHERE %s IS NOT NULL", t.qname, pk)
	switch {
	case ph == phaseNull:
		fmt.Fprintf(&b, " AND (%[1]s IS NULL OR %[1]s = '-infinity')", u)
		if r.cur.K != nil {
			fmt.Fprintf(&b, " AND %s > %s::text::%s", pk, arg(*r.cur.K), t.pk.sqlType)
		}
		fmt.Fprintf(&b, " ORDER BY %s LIMIT %d", pk, r.limit)
		return b.String(), args
	case r.cur.U == nil || *r.cur.U == negInfinity:
		// The NULL phase is done: every row left has a real updated-at.
		fmt.Fprintf(&b, " AND %s > '-infinity'", u)
	default:
		fmt.Fprintf(&b, " AND (%s, %s) > (%s::text::%s, %s::text::%s)",
			u, pk, arg(*r.cur.U), t.updatedAt.sqlType, arg(*r.cur.K), t.pk.sqlType)
	}
	fmt.Fprintf(&b, " AND %s < %s::timestamptz ORDER BY %s, %s LIMIT %d", u, arg(r.hi), u, pk, r.limit)
	return b.String(), args
}

// page runs one page's query and moves the cursor to its last record.
func (r *reader) page(ctx context.Context, query string, args []any) ([]sdk.Record, error) {
	rows, err := r.s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	incremental := r.s.table.updatedAt != nil
	recs := make([]sdk.Record, 0, r.limit)
	var (
		fields  []byte
		key, u  string
		micros  sql.NullInt64
		deleted bool
	)
	// The columns of query: fields, key, [deleted], [updated-at, micros].
	dest := []any{&fields, &key}
	if r.s.table.deleted != nil {
		dest = append(dest, &deleted)
	}
	if incremental {
		dest = append(dest, &u, &micros)
	}
	for rows.Next() {
		fields = nil // a fresh slice per row: the record keeps it
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		rec := sdk.Record{ID: key, Fields: fields, Deleted: deleted}
		if micros.Valid {
			rec.UpdatedAt = time.UnixMicro(micros.Int64).UTC()
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(recs) > 0 {
		k := key
		r.cur.K = &k
		if incremental {
			uu := u
			r.cur.U = &uu
		}
	}
	return recs, nil
}
