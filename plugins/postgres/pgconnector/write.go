package pgconnector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/synchron-io/synchron/sdk"
)

// RetryAfter durations of retryable write results.
const (
	retryConnection    = 2 * time.Second
	retryConflict      = 500 * time.Millisecond // serialization failure, deadlock, lock timeout
	retryOverloaded    = 5 * time.Second        // too many connections, server starting or shutting down
	retryConfiguration = time.Minute            // authentication failed, database missing
)

// errorKind says what a failed statement means for the records it carried.
type errorKind int

const (
	// kindData: PostgreSQL refused the data (bad value, constraint
	// violation, trigger exception...): retrying the same records fails
	// again, so find and reject the offending ones.
	kindData errorKind = iota
	// kindRetry: the statement failed for reasons unrelated to the data
	// (connection, serialization failure, overload): retry the whole batch
	// later.
	kindRetry
)

// classify tells a data error from a transient one, with the delay before a
// retry.
func classify(err error) (errorKind, time.Duration) {
	if pe := pq.As(err); pe != nil {
		switch pe.Code.Class() {
		case pqerror.ClassConnectionException:
			return kindRetry, retryConnection
		case pqerror.ClassTransactionRollback: // serialization failure, deadlock
			return kindRetry, retryConflict
		case pqerror.ClassInsufficientResources, pqerror.ClassOperatorIntervention, pqerror.ClassSystemError:
			if pe.Code == pqerror.QueryCanceled {
				return kindRetry, retryConnection
			}
			return kindRetry, retryOverloaded
		case pqerror.ClassInvalidTransactionState:
			return kindRetry, retryConnection
		case pqerror.ClassInvalidAuthorizationSpecification, pqerror.ClassInvalidCatalogName:
			return kindRetry, retryConfiguration
		}
		switch pe.Code {
		case pqerror.LockNotAvailable, pqerror.ObjectInUse:
			return kindRetry, retryConflict
		case pqerror.UndefinedTable, pqerror.UndefinedColumn:
			// The table changed since it was inspected: a retry inspects it
			// again and reports what is wrong with the records.
			return kindRetry, retryConnection
		}
		return kindData, 0
	}
	// Not a PostgreSQL error: the connection broke (driver.ErrBadConn,
	// io.EOF, a net.Error), a timeout, a driver failure. Nothing says the
	// data is at fault.
	return kindRetry, retryConnection
}

// op is one record of the request, validated.
type op struct {
	idx int
	del bool
	// rawKey is the key as the record gives it (ID, or the key field).
	rawKey string
	// key is the key as PostgreSQL prints it (key::text).
	key string
	// members are the fields of an upsert; raw is the original object
	// (with the key field added when only ID carried it).
	members []member
	raw     []byte
}

// unit is one row of a statement: the records of one key, merged (see
// writer.units). Every record of a unit gets the unit's result.
type unit struct {
	key    string
	del    bool
	fields []byte   // JSON object of the upsert
	cols   []string // sorted columns written, key included
	ops    []*op
}

// writer applies one WriteRequest.
type writer struct {
	s       *session
	tx      *sql.Tx
	careful bool // this attempt isolates refused records
	results []sdk.WriteResult
	// done marks results already final (rejected before or during the
	// transaction); the others become retryable if the transaction fails.
	done []bool
	// unchanged are the upsert units of this attempt that the conditional
	// upsert did not return: their rows are read back (readBack) for the
	// results' Fields.
	unchanged []*unit
}

// Write implements sdk.Connector: deletes, then upserts by key in one
// statement per set of columns, all in one transaction (with deleted_column:
// upserts, then soft deletes). OK results of upserts carry the row as stored.
// See the package docs and docs.md for the exact semantics.
func (c *Connector) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	n := len(req.Records)
	resp := &sdk.WriteResponse{Results: make([]sdk.WriteResult, n)}
	for i, r := range req.Records {
		resp.Results[i].Ref = r.Ref
	}
	cfg, diags := ParseConfig(req.Config)
	if !diags.HasError() && req.Object != cfg.Table {
		diags = append(diags, sdk.Errorf("", fmt.Sprintf("unknown object %q", req.Object), fmt.Sprintf("this config writes the object %q (its table)", cfg.Table)))
	}
	if diags.HasError() {
		resp.Diagnostics = diags
		rejectAll(resp.Results, "invalid config: "+diags.Error())
		return resp, nil
	}
	if n == 0 {
		return resp, nil
	}

	s, diags, err := c.open(ctx, cfg)
	defer c.close(s, false)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres: write %s: %w", cfg.Table, ctx.Err())
		}
		if errors.Is(err, errStopped) {
			return nil, err
		}
		_, after := classify(err)
		if d, permanent := connProblem(err, cfg.URL); permanent {
			resp.Diagnostics = sdk.Diagnostics{d}
		}
		retryAll(resp.Results, nil, redactURLText(err.Error(), cfg.URL), after)
		return resp, nil
	}
	if diags.HasError() {
		resp.Diagnostics = diags
		rejectAll(resp.Results, diags.Error())
		return resp, nil
	}

	w := &writer{s: s, results: resp.Results, done: make([]bool, n)}
	if err := w.run(ctx, req.Records); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres: write %s: %w", cfg.Table, ctx.Err())
		}
		_, after := classify(err)
		msg := redactURLText(err.Error(), cfg.URL)
		c.logger.Warn("write failed, batch retryable", "table", cfg.Table, "records", n, "error", msg)
		retryAll(resp.Results, w.done, msg, after)
		return resp, nil
	}
	rejected, first := 0, ""
	for _, r := range resp.Results {
		if r.Status == sdk.WriteRejected {
			if rejected == 0 {
				first = r.Message
			}
			rejected++
		}
	}
	if rejected > 0 {
		c.logger.Info("write: records rejected", "table", cfg.Table, "records", n, "rejected", rejected, "first", first)
	}
	return resp, nil
}

func rejectAll(results []sdk.WriteResult, msg string) {
	for i := range results {
		results[i].Status = sdk.WriteRejected
		results[i].Action = 0
		results[i].Message = msg
		results[i].Fields = nil
	}
}

// retryAll marks every result not done as retryable.
func retryAll(results []sdk.WriteResult, done []bool, msg string, after time.Duration) {
	for i := range results {
		if done != nil && done[i] {
			continue
		}
		results[i].Status = sdk.WriteRetryable
		results[i].Action = 0
		results[i].RetryAfter = after
		results[i].Message = msg
		results[i].Fields = nil
	}
}

func (w *writer) reject(idx int, msg string) {
	w.results[idx].Status = sdk.WriteRejected
	w.results[idx].Action = 0
	w.results[idx].ID = ""
	w.results[idx].Message = msg
	w.results[idx].Fields = nil
	w.done[idx] = true
}

// ok sets a record's result; fields is the row as stored (nil for deletes).
func (w *writer) ok(o *op, action sdk.WriteAction, key string, msg string, fields json.RawMessage) {
	r := &w.results[o.idx]
	r.Status = sdk.WriteOK
	r.Action = action
	r.ID = key
	r.Message = msg
	r.Fields = fields
}

// run validates the records and applies them in one transaction. An error
// means the transaction failed as a whole (the records not already rejected
// are retryable).
//
// The first attempt runs each statement once, without savepoints. When
// PostgreSQL refuses data, that transaction is rolled back and a second,
// careful attempt isolates the offending records (see bisect); a clean batch
// thus costs no savepoint round trips.
func (w *writer) run(ctx context.Context, records []sdk.WriteRecord) error {
	ops := w.validate(records)
	if len(ops) == 0 {
		return nil
	}
	err := w.attempt(ctx, ops, false)
	if !errors.Is(err, errRefused) {
		return err
	}
	return w.attempt(ctx, ops, true)
}

// errRefused ends a first attempt whose data PostgreSQL refused.
var errRefused = errors.New("postgres refused the data")

// attempt applies ops in one transaction. careful isolates refused records
// with savepoints; otherwise a data error returns errRefused.
func (w *writer) attempt(ctx context.Context, ops []*op, careful bool) error {
	tx, err := w.s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w.tx, w.careful, w.unchanged = tx, careful, w.unchanged[:0]
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op

	if err := w.canonicalize(ctx, ops); err != nil {
		return err
	}
	// Hard deletes run first, so that an upsert after a delete of its key
	// recreates the row. Soft deletes run last: an upsert before the delete
	// of its key is written, then the row is soft-deleted (see units).
	soft := w.s.table.deleted != nil
	deletes, upserts := w.units(ops)
	if len(deletes) > 0 && !soft {
		if err := w.apply(ctx, deletes, w.execDelete); err != nil {
			return err
		}
	}
	for _, group := range groupByColumns(upserts) {
		if err := w.apply(ctx, group, w.execUpsert); err != nil {
			return err
		}
	}
	if err := w.readBack(ctx); err != nil {
		return err
	}
	if len(deletes) > 0 && soft {
		if err := w.apply(ctx, deletes, w.execDelete); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// apply runs a statement on units: bisecting in a careful attempt, else once.
func (w *writer) apply(ctx context.Context, units []*unit, exec func(context.Context, []*unit) error) error {
	if w.careful {
		return bisect(ctx, w.tx, units, exec, w.rejectUnit)
	}
	return refused(ctx, exec(ctx, units))
}

// refused turns a data error into errRefused.
func refused(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if kind, _ := classify(err); kind == kindData && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errRefused, err)
	}
	return err
}

// validate checks each record without the database: a JSON object, known
// columns, a key. It rejects the bad ones and returns the others.
func (w *writer) validate(records []sdk.WriteRecord) []*op {
	t := w.s.table
	pk := t.pk.name
	ops := make([]*op, 0, len(records))
	for i, rec := range records {
		o := &op{idx: i, del: rec.Delete}
		var keyField []byte
		hasFields := len(bytes.TrimSpace(rec.Fields)) > 0 && string(bytes.TrimSpace(rec.Fields)) != "null"
		if hasFields || !rec.Delete {
			members, err := scanObject(rec.Fields, t.intern)
			if err != nil {
				w.reject(i, "fields must be a JSON object of column names to values: "+err.Error())
				continue
			}
			o.members = members
		}
		var unknown []string
		for _, m := range o.members {
			if m.name == pk {
				keyField = m.value // the last one wins, as in PostgreSQL
			}
			if _, ok := t.byName[m.name]; !ok && !rec.Delete {
				unknown = append(unknown, m.name)
			}
		}
		switch {
		case rec.Delete && t.deleted != nil && !t.canUpdate:
			w.reject(i, fmt.Sprintf("the user in url may not UPDATE table %s (deletes set deleted_column %q)", t.qname, t.deleted.name))
			continue
		case rec.Delete && t.deleted == nil && !t.canDelete:
			w.reject(i, fmt.Sprintf("the user in url may not DELETE from table %s", t.qname))
			continue
		case !rec.Delete && !t.canInsert:
			w.reject(i, fmt.Sprintf("the user in url may not INSERT into table %s", t.qname))
			continue
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			w.reject(i, fmt.Sprintf("unknown column %s in table %s (columns: %s)", quoteList(unknown), t.qname, t.columnNames()))
			continue
		}
		var fieldKey string
		if keyField != nil {
			k, err := scalarText(keyField)
			if err != nil {
				w.reject(i, fmt.Sprintf("key field %q: %v", pk, err))
				continue
			}
			fieldKey = k
		}
		switch {
		case rec.ID == "" && keyField == nil:
			w.reject(i, fmt.Sprintf("no key: set the record's ID or its field %q", pk))
			continue
		case rec.ID != "" && keyField != nil && !sameKey(t.pk, rec.ID, fieldKey):
			w.reject(i, fmt.Sprintf("the record's ID %q and its field %q = %s disagree", rec.ID, pk, keyField))
			continue
		case rec.ID != "":
			o.rawKey = rec.ID
		default:
			o.rawKey = fieldKey
		}
		if !rec.Delete {
			o.raw = rec.Fields
			if keyField == nil {
				// Only ID carries the key: add it to the fields.
				quoted, _ := json.Marshal(rec.ID)
				o.members = append(o.members, member{name: pk, value: quoted})
				o.raw = withField(rec.Fields, pk, quoted)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// quoteList quotes names for a message.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// scalarText is the text of a JSON scalar key: a string's value, a number's
// or a boolean's literal.
func scalarText(v []byte) (string, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return "", errors.New("is null")
	case v[0] == '"' && bytes.IndexByte(v, '\\') < 0:
		return string(v[1 : len(v)-1]), nil
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("invalid string: %w", err)
		}
		return s, nil
	case v[0] == '{' || v[0] == '[':
		return "", errors.New("must be a string or a number, not an object or an array")
	}
	return string(v), nil
}

// sameKey reports whether two texts are the same key of column c.
func sameKey(c column, a, b string) bool {
	if a == b {
		return true
	}
	ca, okA := goCanonical(c, a)
	cb, okB := goCanonical(c, b)
	return okA && okB && ca == cb
}

// withField returns the JSON object obj with "name": value added first.
func withField(obj []byte, name string, value []byte) []byte {
	obj = bytes.TrimSpace(obj)
	qname, _ := json.Marshal(name)
	out := make([]byte, 0, len(obj)+len(qname)+len(value)+2)
	out = append(out, '{')
	out = append(out, qname...)
	out = append(out, ':')
	out = append(out, value...)
	rest := bytes.TrimSpace(obj[1:])
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// goCanonical computes key::text in Go for the common key types, so that a
// batch needs no round trip to learn its keys' canonical form. ok is false
// when PostgreSQL must do it (other types, or input Go does not accept).
func goCanonical(c column, s string) (string, bool) {
	switch c.baseOID {
	case oidInt2, oidInt4, oidInt8:
		bits := map[uint32]int{oidInt2: 16, oidInt4: 32, oidInt8: 64}[c.baseOID]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return "", false
		}
		return strconv.FormatInt(n, 10), true
	case oidText, oidVarchar:
		return s, true
	case oidUUID:
		if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", false
		}
		for i := 0; i < len(s); i++ {
			ch := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				continue
			}
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
				return "", false
			}
		}
		return strings.ToLower(s), true
	}
	return "", false
}

// canonicalize sets every op's key to its canonical text: in Go when it
// can, else by PostgreSQL (key::type::text). Keys PostgreSQL cannot cast
// reject their records.
func (w *writer) canonicalize(ctx context.Context, ops []*op) error {
	var rest []*op
	for _, o := range ops {
		if k, ok := goCanonical(w.s.table.pk, o.rawKey); ok {
			o.key = k
		} else {
			rest = append(rest, o)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	query := fmt.Sprintf("SELECT (x::%s)::text FROM unnest($1::text[]) WITH ORDINALITY AS k(x, i) ORDER BY i", w.s.table.pk.sqlType)
	exec := func(ctx context.Context, batch []*op) error {
		keys := make([]string, len(batch))
		for i, o := range batch {
			keys[i] = o.rawKey
		}
		rows, err := w.tx.QueryContext(ctx, query, pq.Array(keys))
		if err != nil {
			return err
		}
		defer rows.Close()
		out := make([]string, 0, len(batch))
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			out = append(out, k)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) != len(batch) {
			return fmt.Errorf("canonical keys: got %d for %d", len(out), len(batch))
		}
		for i, o := range batch {
			o.key = out[i]
		}
		return nil
	}
	if !w.careful {
		return refused(ctx, exec(ctx, rest))
	}
	return bisect(ctx, w.tx, rest, exec, func(o *op, err error) {
		w.reject(o.idx, fmt.Sprintf("invalid key %q for column %q (%s): %s", o.rawKey, w.s.table.pk.name, w.s.table.pk.sqlType, pgMessage(err)))
	})
}

// units groups the ops by key, in the order of the request, so that the
// batch has the effect of applying its records one after the other:
//   - ops after the key's last delete are upserts merged into one (later
//     fields win, fields they do not carry are kept);
//   - the last delete, with the ops before it, is one delete unit.
//
// Deletes run before upserts, so "delete then upsert" recreates the row.
//
// Soft deletes keep the row, so every upsert of the key counts: they are
// merged into one upsert unit, and when the key's last op is a delete, a
// delete unit of the deletes runs after the upserts. When an upsert comes
// last, the deletes before it are superseded and share the upsert's unit
// (which un-deletes the row).
func (w *writer) units(ops []*op) (deletes, upserts []*unit) {
	byKey := make(map[string][]*op, len(ops))
	var order []string
	for _, o := range ops {
		if w.done[o.idx] {
			continue
		}
		if _, seen := byKey[o.key]; !seen {
			order = append(order, o.key)
		}
		byKey[o.key] = append(byKey[o.key], o)
	}
	sort.Strings(order) // one lock order for every writer: fewer deadlocks
	for _, key := range order {
		kops := byKey[key]
		last := -1
		for i, o := range kops {
			if o.del {
				last = i
			}
		}
		if w.s.table.deleted != nil && last >= 0 {
			var ups, dels []*op
			for _, o := range kops {
				if o.del {
					dels = append(dels, o)
				} else {
					ups = append(ups, o)
				}
			}
			switch {
			case last == len(kops)-1:
				if len(ups) > 0 {
					upserts = append(upserts, w.mergeUpserts(key, ups))
				}
				deletes = append(deletes, &unit{key: key, del: true, ops: dels})
			default:
				u := w.mergeUpserts(key, ups)
				u.ops = kops
				upserts = append(upserts, u)
			}
			continue
		}
		if last >= 0 {
			deletes = append(deletes, &unit{key: key, del: true, ops: kops[:last+1]})
		}
		if after := kops[last+1:]; len(after) > 0 {
			upserts = append(upserts, w.mergeUpserts(key, after))
		}
	}
	return deletes, upserts
}

// mergeUpserts merges upserts of one key, later fields winning.
func (w *writer) mergeUpserts(key string, ops []*op) *unit {
	u := &unit{key: key, ops: ops, fields: ops[0].raw}
	members := ops[0].members
	if len(ops) > 1 {
		members = nil
		pos := map[string]int{}
		for _, o := range ops {
			for _, m := range o.members {
				if i, ok := pos[m.name]; ok {
					members[i] = m
					continue
				}
				pos[m.name] = len(members)
				members = append(members, m)
			}
		}
		u.fields = objectOf(members)
	}
	u.cols = make([]string, 0, len(members))
	for _, m := range members {
		if c, _ := w.s.table.column(m.name); !c.generated {
			u.cols = append(u.cols, m.name)
		}
	}
	sort.Strings(u.cols)
	u.cols = slices.Compact(u.cols) // a name repeated in one object
	return u
}

// objectOf builds a JSON object from members.
func objectOf(members []member) []byte {
	out := []byte{'{'}
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(m.name)
		out = append(out, name...)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}')
}

// groupByColumns splits upserts by the set of columns they write: one
// statement per set, so that no record writes a column it does not carry.
func groupByColumns(units []*unit) [][]*unit {
	index := map[string]int{}
	var groups [][]*unit
	for _, u := range units {
		sig := strings.Join(u.cols, "\x00")
		i, ok := index[sig]
		if !ok {
			i = len(groups)
			index[sig] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], u)
	}
	return groups
}

// bisect runs exec on items inside a savepoint. When PostgreSQL refuses the
// data, it rolls back to the savepoint and tries each half on its own, down
// to single items, which are rejected: only the offending items fail, and
// the statements they were part of leave no trace. Any other error stops
// everything (the transaction is lost).
func bisect[T any](ctx context.Context, tx *sql.Tx, items []T, exec func(context.Context, []T) error, reject func(T, error)) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT synchron_batch"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	err := exec(ctx, items)
	if err == nil {
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT synchron_batch"); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		return nil
	}
	if kind, _ := classify(err); kind != kindData || ctx.Err() != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT synchron_batch; RELEASE SAVEPOINT synchron_batch"); err != nil {
		return fmt.Errorf("rollback to savepoint: %w", err)
	}
	if len(items) == 1 {
		reject(items[0], err)
		return nil
	}
	mid := len(items) / 2
	if err := bisect(ctx, tx, items[:mid], exec, reject); err != nil {
		return err
	}
	return bisect(ctx, tx, items[mid:], exec, reject)
}

// pgMessage is PostgreSQL's message for a rejected record, with its detail.
func pgMessage(err error) string {
	if pe := pq.As(err); pe != nil {
		msg := pe.Message
		if pe.Detail != "" {
			msg += " (" + pe.Detail + ")"
		}
		return msg
	}
	return err.Error()
}

func (w *writer) rejectUnit(u *unit, err error) {
	msg := pgMessage(err)
	if len(u.ops) > 1 {
		msg += fmt.Sprintf(" (the %d records of key %q in this batch were applied together)", len(u.ops), u.key)
	}
	for _, o := range u.ops {
		w.reject(o.idx, msg)
		w.results[o.idx].ID = u.key
	}
}

// execDelete deletes the units' keys: DELETE, or with a soft-delete column
//
//	UPDATE t SET deleted = now() | true, updated_at = clock_timestamp()
//	WHERE key IN (...) AND deleted IS NULL | IS NOT TRUE
//	RETURNING key::text
//
// so that a row already soft-deleted keeps its deletion time and its
// updated-at (and answers unchanged).
func (w *writer) execDelete(ctx context.Context, units []*unit) error {
	t := w.s.table
	keys := make([]string, len(units))
	for i, u := range units {
		keys[i] = u.key
	}
	pk := "t." + quoteIdent(t.pk.name)
	query := fmt.Sprintf("DELETE FROM %s AS t WHERE %s IN (SELECT x::%s FROM unnest($1::text[]) AS x) RETURNING %s::text",
		t.qname, pk, t.pk.sqlType, pk)
	if d := t.deleted; d != nil {
		set := quoteIdent(d.name) + " = " + t.deleteValueSQL()
		if u := t.updatedAt; u != nil && !u.generated {
			set += ", " + quoteIdent(u.name) + " = clock_timestamp()"
		}
		query = fmt.Sprintf("UPDATE %s AS t SET %s WHERE %s IN (SELECT x::%s FROM unnest($1::text[]) AS x) AND NOT (%s) RETURNING %s::text",
			t.qname, set, pk, t.pk.sqlType, t.deletedSQL("t"), pk)
	}
	deleted, err := w.returnedRows(ctx, query, len(units), pq.Array(keys))
	if err != nil {
		return err
	}
	for _, u := range units {
		action := sdk.ActionUnchanged // nothing to delete
		if _, ok := deleted[u.key]; ok {
			action = sdk.ActionDeleted
		}
		for i, o := range u.ops {
			msg := ""
			if !o.del || i < len(u.ops)-1 {
				msg = "superseded by a later delete of the same key in this batch"
			}
			w.ok(o, action, u.key, msg, nil)
		}
	}
	return nil
}

// execUpsert upserts units that all write the same columns.
func (w *writer) execUpsert(ctx context.Context, units []*unit) error {
	size := 2
	for _, u := range units {
		size += len(u.fields) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, u := range units {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, u.fields...)
	}
	buf = append(buf, ']')
	returned, err := w.returnedRows(ctx, w.upsertSQL(units[0].cols), len(units), string(buf))
	if err != nil {
		return err
	}
	for _, u := range units {
		action := sdk.ActionUnchanged
		row, ok := returned[u.key]
		switch {
		case !ok:
			w.unchanged = append(w.unchanged, u)
		case row.inserted:
			action = sdk.ActionCreated
		default:
			action = sdk.ActionUpdated
		}
		w.okUpsert(u, action, row.fields)
	}
	return nil
}

// okUpsert sets the results of an upsert unit's records.
func (w *writer) okUpsert(u *unit, action sdk.WriteAction, fields json.RawMessage) {
	for _, o := range u.ops {
		msg := ""
		if o.del {
			msg = "superseded by a later upsert of the same key in this batch"
		}
		w.ok(o, action, u.key, msg, fields)
	}
}

// readBack reads the rows of the unchanged upserts, in one statement, for
// their results' Fields: the conditional upsert does not return them.
func (w *writer) readBack(ctx context.Context) error {
	if len(w.unchanged) == 0 {
		return nil
	}
	t := w.s.table
	keys := make([]string, len(w.unchanged))
	for i, u := range w.unchanged {
		keys[i] = u.key
	}
	pk := "t." + quoteIdent(t.pk.name)
	query := fmt.Sprintf("SELECT %s::text, row_to_json(t.*)::text FROM %s AS t WHERE %s IN (SELECT x::%s FROM unnest($1::text[]) AS x)",
		pk, t.qname, pk, t.pk.sqlType)
	rows, err := w.returnedRows(ctx, query, len(keys), pq.Array(keys))
	if err != nil {
		return fmt.Errorf("read back unchanged rows: %w", err)
	}
	for _, u := range w.unchanged {
		// A row deleted meanwhile by another transaction (possible after
		// ON CONFLICT DO NOTHING, which does not lock it) has no fields.
		w.okUpsert(u, sdk.ActionUnchanged, rows[u.key].fields)
	}
	return nil
}

// upsertSQL is the statement writing cols (sorted, key included) from the
// JSON array $1:
//
//	INSERT INTO t (cols) OVERRIDING SYSTEM VALUE
//	SELECT cols FROM json_populate_recordset(NULL::t, $1) AS r
//	[LEFT JOIN t AS cur ON cur.key = r.key] -- see below
//	ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c, ... [, deleted = NULL]
//	WHERE (t.c::text, ...) IS DISTINCT FROM (EXCLUDED.c::text, ...) [OR t.deleted IS NOT NULL]
//	RETURNING key::text, xmax = 0, row_to_json(t.*)::text
//
// Rows that did not change are not returned. Values are compared as text so
// that every type compares (json has no equality) and any change PostgreSQL
// would store counts. When the table has an updated-at column that the
// records do not carry, it is set to clock_timestamp() on insert and on a
// real change only. When it has a soft-delete column that the records do
// not carry, a soft-deleted row is un-deleted (a change); a new row gets
// the column's default (false for a NOT NULL boolean without one).
func (w *writer) upsertSQL(cols []string) string {
	t := w.s.table
	autoUpdatedAt := ""
	if u := t.updatedAt; u != nil && !u.generated && !contains(cols, u.name) {
		autoUpdatedAt = quoteIdent(u.name)
	}
	undelete := t.deleted != nil && !contains(cols, t.deleted.name)
	var insertCols, selectCols, set, oldVals, newVals []string
	for _, name := range cols {
		q := quoteIdent(name)
		insertCols = append(insertCols, q)
		selectCols = append(selectCols, "r."+q)
		c, _ := t.column(name)
		if name == t.pk.name || c.identityAlways {
			continue // the key never changes; identity ALWAYS only on insert
		}
		set = append(set, q+" = EXCLUDED."+q)
		oldVals = append(oldVals, "t."+q+"::text")
		newVals = append(newVals, "EXCLUDED."+q+"::text")
	}
	if autoUpdatedAt != "" {
		insertCols = append(insertCols, autoUpdatedAt)
		selectCols = append(selectCols, "clock_timestamp()")
	}
	// PostgreSQL checks NOT NULL on the row it tries to insert before it
	// finds the conflict. For a NOT NULL column without a default that the
	// records do not carry, propose the current row's value: an existing row
	// keeps it (the column is not in SET), a new row fails as it should.
	join := ""
	for _, c := range t.columns {
		if undelete && c.name == t.deleted.name {
			if c.notNull && !c.hasDefault { // a boolean: not deleted
				insertCols = append(insertCols, quoteIdent(c.name))
				selectCols = append(selectCols, "false")
			}
			continue
		}
		if c.notNull && !c.hasDefault && !contains(cols, c.name) && (t.updatedAt == nil || c.name != t.updatedAt.name || autoUpdatedAt == "") {
			q := quoteIdent(c.name)
			insertCols = append(insertCols, q)
			selectCols = append(selectCols, "cur."+q)
			join = fmt.Sprintf(" LEFT JOIN %s AS cur ON cur.%s = r.%[2]s", t.qname, quoteIdent(t.pk.name))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM json_populate_recordset(NULL::%s, $1) AS r%s ON CONFLICT (%s) ",
		t.qname, strings.Join(insertCols, ", "), strings.Join(selectCols, ", "), t.qname, join, quoteIdent(t.pk.name))
	var changed []string
	if len(oldVals) > 0 {
		changed = append(changed, fmt.Sprintf("ROW(%s) IS DISTINCT FROM ROW(%s)", strings.Join(oldVals, ", "), strings.Join(newVals, ", ")))
	}
	if undelete {
		set = append(set, quoteIdent(t.deleted.name)+" = "+t.undeleteValueSQL("t"))
		changed = append(changed, t.deletedSQL("t"))
	}
	if len(set) == 0 {
		b.WriteString("DO NOTHING")
	} else {
		if autoUpdatedAt != "" {
			set = append(set, autoUpdatedAt+" = clock_timestamp()")
		}
		fmt.Fprintf(&b, "DO UPDATE SET %s WHERE %s", strings.Join(set, ", "), strings.Join(changed, " OR "))
	}
	fmt.Fprintf(&b, " RETURNING t.%s::text, (t.xmax = 0), row_to_json(t.*)::text", quoteIdent(t.pk.name))
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// returnedRow is a row returned by a write statement.
type returnedRow struct {
	inserted bool
	fields   json.RawMessage // the row as row_to_json renders it
}

// returnedRows runs a statement returning rows of (key text), (key text,
// fields json text) or (key text, inserted bool, fields json text), by key.
// n is the expected number of rows.
func (w *writer) returnedRows(ctx context.Context, query string, n int, args ...any) (map[string]returnedRow, error) {
	rows, err := w.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var (
		key    string
		fields []byte
		row    returnedRow
	)
	var dest []any
	switch len(cols) {
	case 1:
		dest = []any{&key}
	case 2:
		dest = []any{&key, &fields}
	default:
		dest = []any{&key, &row.inserted, &fields}
	}
	out := make(map[string]returnedRow, n)
	for rows.Next() {
		fields = nil // a fresh slice per row: the result keeps it
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row.fields = fields
		out[key] = row
	}
	return out, rows.Err()
}
