package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

// lookups resolves a workflow's lookup rules (see mapping.Lookup) for the
// records written to the target: the value a rule mapped into its target
// field is replaced by the id of the record of Lookup.Object whose
// Lookup.Field has that value, created first when missing.
//
// The records of the object are indexed in lookup_refs by the normalized
// value (trimmed, lower case, like matching keys). The index follows the app
// through incremental reads of the object, from a cursor kept per
// connection, object and field; records the lookups create are added at
// once. A record created in the app whose id was lost (a crash before the
// index was saved) is found by the next incremental read, so it is not
// created twice. Creating is serialized per connection, object and field
// across hosts by a PostgreSQL advisory lock.
type lookups struct {
	db        *sqlx.DB
	accountID string
	target    *sideConn // the target's connection; its config follows refreshes
	rules     []mapping.LookupRule
	batchSize int
	retry     RetryPolicy
	// refreshed: rules whose index was brought up to date in this run
	// (once per run, so that a record whose value changed or that was
	// deleted in the app stops resolving to its old id).
	refreshed map[int]bool
	// created counts the records the lookups created since takeCreated:
	// records created in the target app, so transactions of the run.
	created int64
	// previewed: values a preview already counted (rule index and value).
	previewed map[string]bool
}

// takeCreated returns the records created since the last call.
func (l *lookups) takeCreated() int64 {
	n := l.created
	l.created = 0
	return n
}

func newLookups(db *sqlx.DB, accountID string, target *sideConn, m *mapping.Mapper, batchSize int, retry RetryPolicy) *lookups {
	rules := m.Lookups()
	if len(rules) == 0 {
		return nil
	}
	return &lookups{db: db, accountID: accountID, target: target, rules: rules, batchSize: batchSize, retry: retry, refreshed: map[int]bool{}}
}

// lookupFailure is why a write's lookup failed; retryable when a later
// attempt may succeed (the app kept answering retryable errors).
type lookupFailure struct {
	msg       string
	retryable bool
}

// resolve replaces, in the Fields of writes, every lookup rule's value by
// the id it resolves to. sources holds each write's source record by Ref
// (read by the create rules). It answers the writes that must fail (by Ref,
// with the message for the user); other errors stop the run.
func (l *lookups) resolve(ctx context.Context, writes []sdk.WriteRecord, sources map[string]json.RawMessage) (map[string]lookupFailure, error) {
	failed := map[string]lookupFailure{}
	for _, rule := range l.rules {
		key := mapping.Match{Source: rule.Target, Target: rule.Target}
		byKey := map[string][]int{}
		for i, w := range writes {
			if _, bad := failed[w.Ref]; bad {
				continue
			}
			k, ok := key.Key(mapping.SideSource, w.Fields)
			if !ok {
				// No value to look up: the field is left out, never
				// written as the value itself.
				f, err := withoutField(w.Fields, rule.Target)
				if err != nil {
					return nil, err
				}
				writes[i].Fields = f
				continue
			}
			byKey[k] = append(byKey[k], i)
		}
		if len(byKey) == 0 {
			continue
		}
		ids, err := l.resolveKeys(ctx, rule, byKey, writes, sources)
		if err != nil {
			return nil, err
		}
		for k, idx := range byKey {
			res := ids[k]
			for _, i := range idx {
				if res.fail != "" {
					failed[writes[i].Ref] = lookupFailure{msg: res.fail, retryable: res.retryable}
					continue
				}
				f, err := withField(writes[i].Fields, rule.Target, res.id)
				if err != nil {
					return nil, err
				}
				writes[i].Fields = f
			}
		}
	}
	return failed, nil
}

// wouldCreate counts, for a preview, the distinct values of the writes that
// lookups with create rules would create a record for: the values their
// index does not hold once brought up to date with the app (a read; the
// index is Synchron's copy of the app's records, not the workflow's state).
// It creates nothing.
func (l *lookups) wouldCreate(ctx context.Context, writes []sdk.WriteRecord) (int64, error) {
	var n int64
	for _, rule := range l.rules {
		if !rule.CanCreate() {
			continue
		}
		key := mapping.Match{Source: rule.Target, Target: rule.Target}
		var keys []string
		for _, w := range writes {
			k, ok := key.Key(mapping.SideSource, w.Fields)
			id := strconv.Itoa(rule.Rule) + "\x00" + k
			if ok && !l.previewed[id] {
				if l.previewed == nil {
					l.previewed = map[string]bool{}
				}
				l.previewed[id] = true
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue
		}
		if !l.refreshed[rule.Rule] {
			if err := l.refresh(ctx, rule); err != nil {
				return 0, err
			}
			l.refreshed[rule.Rule] = true
		}
		found, err := l.known(ctx, rule, keys)
		if err != nil {
			return 0, err
		}
		n += int64(len(keys) - len(found))
	}
	return n, nil
}

// resolved is the outcome of one looked-up value.
type resolved struct {
	id        string
	fail      string
	retryable bool
}

func (l *lookups) resolveKeys(ctx context.Context, rule mapping.LookupRule, byKey map[string][]int, writes []sdk.WriteRecord, sources map[string]json.RawMessage) (map[string]resolved, error) {
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !l.refreshed[rule.Rule] {
		if err := l.refresh(ctx, rule); err != nil {
			return nil, err
		}
		l.refreshed[rule.Rule] = true
	}
	found, err := l.known(ctx, rule, keys)
	if err != nil {
		return nil, err
	}
	createFailed := map[string]resolved{}
	if len(found) < len(keys) {
		// Some values are unknown: under the lock, bring the index up to
		// date with the app, then create what is still missing.
		err := l.locked(ctx, rule, func() error {
			if err := l.refresh(ctx, rule); err != nil {
				return err
			}
			if found, err = l.known(ctx, rule, keys); err != nil {
				return err
			}
			if !rule.CanCreate() {
				return nil
			}
			createFailed, err = l.create(ctx, rule, keys, found, byKey, writes, sources)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	out := make(map[string]resolved, len(keys))
	for _, k := range keys {
		ids := found[k]
		value := displayValue(writes[byKey[k][0]].Fields, rule.Target)
		switch {
		case len(ids) == 1:
			out[k] = resolved{id: ids[0]}
		case len(ids) > 1:
			out[k] = resolved{fail: fmt.Sprintf("%s: %d %s records have %s %s (ids %s): keep one of them in the app, or look up by another field",
				rule.Target, len(ids), rule.Object, rule.Field, value, strings.Join(ids, ", "))}
		case createFailed[k].fail != "":
			out[k] = createFailed[k]
		default:
			out[k] = resolved{fail: fmt.Sprintf("%s: no %s record has %s %s: create it in the app, or add lookup.create to the rule so that Synchron creates it",
				rule.Target, rule.Object, rule.Field, value)}
		}
	}
	return out, nil
}

// known returns the ids indexed for keys (a key with two ids is ambiguous).
func (l *lookups) known(ctx context.Context, rule mapping.LookupRule, keys []string) (map[string][]string, error) {
	var rows []struct {
		Key      string `db:"key"`
		RecordID string `db:"record_id"`
	}
	if err := l.db.SelectContext(ctx, &rows, `
		SELECT key, record_id FROM lookup_refs
		WHERE account_id = $1 AND connection_id = $2 AND object = $3 AND field = $4 AND key = ANY($5)
		ORDER BY key, record_id`,
		l.accountID, l.target.connID, rule.Object, rule.Field, pq.Array(keys)); err != nil {
		return nil, fmt.Errorf("lookup %s.%s: %w", rule.Object, rule.Field, err)
	}
	out := make(map[string][]string, len(rows))
	for _, r := range rows {
		out[r.Key] = append(out[r.Key], r.RecordID)
	}
	return out, nil
}

// locked runs fn holding the advisory lock of the rule's index, so that two
// runs (on any hosts) never create the same record twice.
func (l *lookups) locked(ctx context.Context, rule mapping.LookupRule, fn func() error) error {
	conn, err := l.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("lookup lock: %w", err)
	}
	defer conn.Close()
	name := "lookup|" + l.target.connID + "|" + rule.Object + "|" + rule.Field
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, name); err != nil {
		return fmt.Errorf("lookup lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx ended
		// (otherwise the pooled connection keeps it).
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, name); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return fn()
}

// side returns the connection of the target on another object, sharing the
// target's credentials (refreshed ones are saved at once, and handed back
// to the target by keep).
func (l *lookups) side(object string) *sideConn {
	return &sideConn{side: SideTarget, connID: l.target.connID, conn: l.target.conn, config: l.target.config, object: object, save: l.target.save}
}

// keep hands credentials a call refreshed back to the target.
func (l *lookups) keep(s *sideConn) {
	if s.updatedConfig != nil {
		l.target.updatedConfig = s.updatedConfig
		l.target.config = s.updatedConfig
	}
}

// refresh reads the object's changes since the rule's cursor into the index.
func (l *lookups) refresh(ctx context.Context, rule mapping.LookupRule) error {
	var cursor []byte
	err := l.db.GetContext(ctx, &cursor, `SELECT cursor FROM lookup_cursors WHERE account_id = $1 AND connection_id = $2 AND object = $3 AND field = $4`,
		l.accountID, l.target.connID, rule.Object, rule.Field)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lookup cursor: %w", err)
	}
	s := l.side(rule.Object)
	key := mapping.Match{Source: rule.Field, Target: rule.Field}
	err = s.conn.Read(ctx, sdk.ReadRequest{Config: s.config, Object: rule.Object, Cursor: cursor, BatchSize: l.batchSize},
		sdk.ReadSinkFunc(func(ctx context.Context, b sdk.ReadBatch) error {
			if err := s.adopt(ctx, b.UpdatedConfig); err != nil {
				return err
			}
			l.keep(s)
			if b.Diagnostics.HasError() {
				return fmt.Errorf("read %s for lookups: %s", rule.Object, b.Diagnostics.Error())
			}
			var ids, keys, gone []string
			for _, r := range b.Records {
				if r.ID == "" {
					continue
				}
				k, ok := key.Key(mapping.SideSource, r.Fields)
				if r.Deleted || !ok {
					gone = append(gone, r.ID)
					continue
				}
				ids, keys = append(ids, r.ID), append(keys, k)
			}
			return l.index(ctx, rule, ids, keys, gone, b.Checkpoint)
		}))
	if err != nil {
		return fmt.Errorf("refresh lookups of %s.%s: %w", rule.Object, rule.Field, err)
	}
	return nil
}

// index saves records of the object (id -> key), forgets gone ones and moves
// the cursor, in one transaction.
func (l *lookups) index(ctx context.Context, rule mapping.LookupRule, ids, keys, gone []string, cursor []byte) error {
	tx, err := l.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("lookup index: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	all := append(append([]string{}, ids...), gone...)
	if len(all) > 0 {
		// A record whose value changed leaves its old key.
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM lookup_refs r USING unnest($5::text[], $6::text[]) AS u(id, k)
			WHERE r.account_id = $1 AND r.connection_id = $2 AND r.object = $3 AND r.field = $4
				AND r.record_id = u.id AND r.key IS DISTINCT FROM u.k`,
			l.accountID, l.target.connID, rule.Object, rule.Field, pq.Array(all), pq.Array(append(append([]string{}, keys...), make([]string, len(gone))...))); err != nil {
			return fmt.Errorf("lookup index: %w", err)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO lookup_refs (account_id, connection_id, object, field, key, record_id)
			SELECT $1, $2, $3, $4, u.k, u.id FROM unnest($5::text[], $6::text[]) AS u(id, k)
			ON CONFLICT (connection_id, object, field, key, record_id) DO UPDATE SET updated_at = now()`,
			l.accountID, l.target.connID, rule.Object, rule.Field, pq.Array(ids), pq.Array(keys)); err != nil {
			return fmt.Errorf("lookup index: %w", err)
		}
	}
	if cursor != nil {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO lookup_cursors (account_id, connection_id, object, field, cursor) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (connection_id, object, field) DO UPDATE SET cursor = EXCLUDED.cursor, refreshed_at = now()`,
			l.accountID, l.target.connID, rule.Object, rule.Field, cursor); err != nil {
			return fmt.Errorf("lookup cursor: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("lookup index: %w", err)
	}
	return nil
}

// create creates one record of the object for each key still missing, from
// the source record of the first write with that key, and indexes it. It
// answers the keys whose record could not be created, with the app's reason.
func (l *lookups) create(ctx context.Context, rule mapping.LookupRule, keys []string, found map[string][]string, byKey map[string][]int, writes []sdk.WriteRecord, sources map[string]json.RawMessage) (map[string]resolved, error) {
	failed := map[string]resolved{}
	var recs []sdk.WriteRecord
	refKey := map[string]string{}
	for n, k := range keys {
		if len(found[k]) > 0 {
			continue
		}
		w := writes[byKey[k][0]]
		fields, err := rule.Create(sources[w.Ref])
		if err != nil {
			failed[k] = resolved{fail: fmt.Sprintf("%s: creating the %s record failed: %v", rule.Target, rule.Object, err)}
			continue
		}
		ref := strconv.Itoa(n)
		refKey[ref] = k
		recs = append(recs, sdk.WriteRecord{Ref: ref, Fields: fields})
	}
	if len(recs) == 0 {
		return failed, nil
	}
	s := l.side(rule.Object)
	results, err := writeWithRetry(ctx, s, recs, l.retry)
	l.keep(s)
	if err != nil && !errors.Is(err, ErrRetriesExhausted) {
		return nil, err
	}
	var ids, idKeys []string
	for _, r := range recs {
		k := refKey[r.Ref]
		res, ok := results[r.Ref]
		switch {
		case ok && res.Status == sdk.WriteOK && res.ID != "":
			ids, idKeys = append(ids, res.ID), append(idKeys, k)
			found[k] = []string{res.ID}
			if res.Action == sdk.ActionCreated {
				l.created++
			}
		case !ok || res.Status == sdk.WriteRetryable:
			// Unknown whether the app created it: the next refresh finds
			// it if it did.
			failed[k] = resolved{retryable: true, fail: fmt.Sprintf("%s: creating the %s record for %s %s failed: the app kept answering retryable errors", rule.Target, rule.Object, rule.Field, displayValue(writes[byKey[k][0]].Fields, rule.Target))}
		default:
			msg := res.Message
			if msg == "" {
				msg = "rejected without a message"
			}
			failed[k] = resolved{fail: fmt.Sprintf("%s: creating the %s record for %s %s failed: %s", rule.Target, rule.Object, rule.Field, displayValue(writes[byKey[k][0]].Fields, rule.Target), msg)}
		}
	}
	if err := l.index(ctx, rule, ids, idKeys, nil, nil); err != nil {
		return nil, err
	}
	return failed, nil
}

// displayValue is a field's JSON value, for messages.
func displayValue(fields json.RawMessage, name string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(fields, &m) != nil {
		return "(unknown)"
	}
	v := string(m[name])
	if len(v) > 80 {
		v = v[:77] + "..."
	}
	return v
}

// withField returns fields with name set to the string value.
func withField(fields json.RawMessage, name, value string) (json.RawMessage, error) {
	v, _ := json.Marshal(value)
	return mergeObjects(fields, json.RawMessage(`{`+string(mustJSON(name))+`:`+string(v)+`}`))
}

// withoutField returns fields without name.
func withoutField(fields json.RawMessage, name string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(fields, &m); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	delete(m, name)
	return json.Marshal(m)
}

func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
