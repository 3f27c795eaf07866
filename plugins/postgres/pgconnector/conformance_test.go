package pgconnector_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/sdk"
	"github.com/synchron-io/synchron/sdk/conformance"
)

// TestConformance runs the SDK's conformance kit on an incremental config
// (bigint key, timestamptz updated-at with NULLs and ties), on a full-scan
// config (text key), and on an incremental config with soft deletes (some
// rows soft-deleted). Not parallel: the kit's leak check sees the whole
// process, so no other test of the package may run alongside.
func TestConformance(t *testing.T) {
	setup := []string{
		`CREATE SCHEMA app`,
		`CREATE TABLE app.people (
			id bigint PRIMARY KEY,
			name text NOT NULL,
			score integer CHECK (score >= 0),
			tags text[],
			meta jsonb,
			born date,
			updated_at timestamptz
		)`,
		`CREATE INDEX ON app.people (updated_at, id)`,
		`CREATE TABLE codes (code text PRIMARY KEY, label varchar(40), amount numeric(10,2), active boolean DEFAULT true)`,
		`CREATE VIEW people_view AS SELECT * FROM app.people`,
		`CREATE TABLE app.members (
			id bigint PRIMARY KEY,
			name text NOT NULL,
			joined date,
			updated_at timestamptz NOT NULL DEFAULT now(),
			archived boolean NOT NULL DEFAULT false
		)`,
		`CREATE INDEX ON app.members (updated_at, id)`,
	}
	url, db := newDB(t, setup...)
	badURL := strings.Replace(url, "postgres@", "no_such_role:s3cr3t-pw@", 1)
	good := map[string]any{"url": url, "table": "app.people", "primary_key": "id", "updated_at_column": "updated_at"}
	with := func(k string, v any) json.RawMessage {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return config(t, m)
	}
	badConfigs := map[string]json.RawMessage{
		"unknown role":              with("url", badURL),
		"unreachable port":          with("url", "postgres://postgres:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"),
		"missing database":          with("url", strings.Replace(url, "/t_", "/missing_", 1)),
		"not a postgres url":        with("url", "mysql://root@localhost/db"),
		"missing table":             with("table", "app.nobody"),
		"table in another schema":   with("table", "people"),
		"view":                      with("table", "people_view"),
		"key column missing":        with("primary_key", "uid"),
		"key column not unique":     with("primary_key", "name"),
		"updated_at not timestamp":  with("updated_at_column", "born"),
		"updated_at column missing": with("updated_at_column", "modified"),
		"unknown key":               with("colour", "red"),
		"url missing":               with("url", nil),
		"read lag negative":         with("read_lag_seconds", -1),
		"not an object":             json.RawMessage(`["url"]`),
	}

	t.Run("incremental", func(t *testing.T) {
		conformance.Run(t, conformance.Suite{
			New:        func(t *testing.T) sdk.Connector { return newConn(t) },
			Config:     config(t, good),
			BadConfigs: badConfigs,
			Object:     "app.people",
			MinRecords: 25,
			Seed: func(t *testing.T, n int) {
				// A third NULL, the rest on three timestamps: ties everywhere.
				mustExec(t, db, `INSERT INTO app.people (id, name, score, tags, meta, born, updated_at)
					SELECT i, 'person ' || i, i, ARRAY['t' || i % 3], jsonb_build_object('i', i), date '2000-01-01' + i,
					       CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2025-01-01 00:00:00+00' + (i % 4) * interval '1 microsecond' END
					FROM generate_series(1, $1) AS i`, n)
			},
			NewRecord: func(i int) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"id": %d, "name": "written %d", "score": %d, "tags": ["a", "b"], "meta": {"n": %d}}`, 1000+i, i, i, i))
			},
		})
	})

	t.Run("soft_delete", func(t *testing.T) {
		soft := map[string]any{"url": url, "table": "app.members", "primary_key": "id", "updated_at_column": "updated_at", "deleted_column": "archived"}
		with := func(k string, v any) json.RawMessage {
			m := map[string]any{}
			for k, v := range soft {
				m[k] = v
			}
			m[k] = v
			return config(t, m)
		}
		conformance.Run(t, conformance.Suite{
			New:    func(t *testing.T) sdk.Connector { return newConn(t) },
			Config: config(t, soft),
			BadConfigs: map[string]json.RawMessage{
				"deleted_column missing":       with("deleted_column", "deleted_at"),
				"deleted_column not a flag":    with("deleted_column", "joined"),
				"deleted_column is updated_at": with("deleted_column", "updated_at"),
			},
			Object:     "app.members",
			MinRecords: 20,
			Seed: func(t *testing.T, n int) {
				// Every third member archived; timestamps shared by many.
				mustExec(t, db, `INSERT INTO app.members (id, name, joined, updated_at, archived)
					SELECT i, 'member ' || i, date '2020-01-01' + i, timestamptz '2025-01-01 00:00:00+00' + (i % 4) * interval '1 second', i % 3 = 0
					FROM generate_series(1, $1) AS i`, n)
			},
			NewRecord: func(i int) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"id": %d, "name": "written %d"}`, 1000+i, i))
			},
		})
	})

	t.Run("full_scan", func(t *testing.T) {
		conformance.Run(t, conformance.Suite{
			New:    func(t *testing.T) sdk.Connector { return newConn(t) },
			Config: config(t, map[string]any{"url": url, "table": "codes", "primary_key": "code"}),
			BadConfigs: map[string]json.RawMessage{
				"updated_at without such column": config(t, map[string]any{"url": url, "table": "codes", "primary_key": "code", "updated_at_column": "updated_at"}),
				"key not unique":                 config(t, map[string]any{"url": url, "table": "codes", "primary_key": "label"}),
			},
			Object:     "codes",
			MinRecords: 12,
			Seed: func(t *testing.T, n int) {
				mustExec(t, db, `INSERT INTO codes (code, label, amount) SELECT 'c' || i, 'label ' || i, i * 1.25 FROM generate_series(1, $1) AS i`, n)
			},
			NewRecord: func(i int) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"code": "new-%d", "label": "new %d", "amount": %d.5}`, i, i, i))
			},
		})
	})
}
