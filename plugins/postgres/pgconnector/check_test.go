package pgconnector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/synchron-io/synchron/plugins/postgres/pgconnector"
	"github.com/synchron-io/synchron/sdk"
)

const secret = "s3cr3t-Pa55word"

// TestCheck checks that each broken config is reported on the config key to
// fix, with a useful summary, and that the password never appears in a
// diagnostic or a log line.
func TestCheck(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t,
		`CREATE TABLE items (id int PRIMARY KEY, sku text, nick text, born date, updated_at timestamp, note text)`,
		`CREATE UNIQUE INDEX ON items (nick) WHERE nick <> ''`,
		`CREATE TABLE nokey (id int, updated_at timestamptz)`,
		`CREATE TABLE "Mixed Case" ("Id" int PRIMARY KEY, "Changed At" timestamptz)`,
		`CREATE VIEW items_view AS SELECT * FROM items`,
	)
	// Trust authentication: the password is ignored, so a URL with one works.
	withPassword := strings.Replace(url, "postgres@", "postgres:"+secret+"@", 1)
	base := map[string]any{"url": withPassword, "table": "items", "primary_key": "id", "updated_at_column": "updated_at"}
	cfg := func(changes map[string]any) json.RawMessage {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return config(t, m)
	}

	tests := []struct {
		name      string
		config    json.RawMessage
		attribute string // of the first error; "" for none
		summary   string // substring of the first error's summary
		warning   string // substring of a warning's summary
	}{
		{name: "works", config: cfg(nil), warning: "no index on (updated_at, id)"},
		{name: "mixed case names", config: cfg(map[string]any{"table": `public."Mixed Case"`, "primary_key": "Id", "updated_at_column": "Changed At"}), warning: "no index"},
		{name: "quoted table with default schema", config: cfg(map[string]any{"table": `"Mixed Case"`, "primary_key": "Id", "updated_at_column": nil})},
		{name: "full scan", config: cfg(map[string]any{"updated_at_column": nil})},
		{name: "read lag", config: cfg(map[string]any{"read_lag_seconds": 30}), warning: "no index"},
		{name: "unknown role", config: cfg(map[string]any{"url": strings.Replace(url, "postgres@", "nobody:"+secret+"@", 1)}), attribute: "url", summary: "authentication failed"},
		{name: "unreachable port", config: cfg(map[string]any{"url": "postgres://postgres:" + secret + "@127.0.0.1:1/db?sslmode=disable"}), attribute: "url", summary: "cannot reach"},
		{name: "missing database", config: cfg(map[string]any{"url": strings.Replace(withPassword, "/t_", "/nodb_", 1)}), attribute: "url", summary: "database does not exist"},
		{name: "invalid url", config: cfg(map[string]any{"url": "postgres://postgres:" + secret + "@127.0.0.1:port/db"}), attribute: "url", summary: "not a valid URL"},
		{name: "key=value url", config: cfg(map[string]any{"url": "host=127.0.0.1 password=" + secret}), attribute: "url", summary: "must start with postgres://"},
		{name: "url not a string", config: cfg(map[string]any{"url": 5}), attribute: "url", summary: "non-empty string"},
		{name: "missing url", config: cfg(map[string]any{"url": nil}), attribute: "url", summary: "required"},
		{name: "missing table key", config: cfg(map[string]any{"table": nil}), attribute: "table", summary: "required"},
		{name: "missing primary_key", config: cfg(map[string]any{"primary_key": nil}), attribute: "primary_key", summary: "required"},
		{name: "missing table", config: cfg(map[string]any{"table": "nothing"}), attribute: "table", summary: `table "nothing" not found`},
		{name: "wrong schema", config: cfg(map[string]any{"table": "other.items"}), attribute: "table", summary: "not found"},
		{name: "wrong case", config: cfg(map[string]any{"table": "Items"}), attribute: "table", summary: "not found"},
		{name: "too many dots", config: cfg(map[string]any{"table": "a.b.c"}), attribute: "table", summary: "not a valid table name"},
		{name: "view", config: cfg(map[string]any{"table": "items_view"}), attribute: "table", summary: "is not a table (it is a view)"},
		{name: "key column missing", config: cfg(map[string]any{"primary_key": "uid"}), attribute: "primary_key", summary: `column "uid" not found`},
		{name: "key not unique", config: cfg(map[string]any{"primary_key": "sku"}), attribute: "primary_key", summary: "not unique"},
		{name: "key with partial unique index", config: cfg(map[string]any{"primary_key": "nick"}), attribute: "primary_key", summary: "not unique"},
		{name: "table without key", config: cfg(map[string]any{"table": "nokey"}), attribute: "primary_key", summary: "not unique"},
		{name: "updated_at missing", config: cfg(map[string]any{"updated_at_column": "changed"}), attribute: "updated_at_column", summary: `column "changed" not found`},
		{name: "updated_at is a date", config: cfg(map[string]any{"updated_at_column": "born"}), attribute: "updated_at_column", summary: "of type date, not a timestamp"},
		{name: "updated_at is text", config: cfg(map[string]any{"updated_at_column": "note"}), attribute: "updated_at_column", summary: "of type text, not a timestamp"},
		{name: "updated_at is the key", config: cfg(map[string]any{"updated_at_column": "id"}), attribute: "updated_at_column", summary: "must differ"},
		{name: "unknown key", config: cfg(map[string]any{"colour": "red"}), attribute: "colour", summary: `unknown config key "colour"`},
		{name: "read lag too large", config: cfg(map[string]any{"read_lag_seconds": 100000}), attribute: "read_lag_seconds", summary: "from 0 to 86400"},
		{name: "read lag fraction", config: cfg(map[string]any{"read_lag_seconds": 1.5}), attribute: "read_lag_seconds", summary: "integer"},
		{name: "not json", config: json.RawMessage(`{"url": `), summary: "not valid JSON"},
		{name: "empty", config: nil, summary: "required"},
		{name: "array", config: json.RawMessage(`[]`), summary: "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			c := pgconnector.New("0.1.0", "", pgconnector.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})))
			defer c.Stop(context.Background())
			resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: tt.config})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			var first *sdk.Diagnostic
			var warnings []string
			for i, d := range resp.Diagnostics {
				if d.Severity == sdk.SeverityError && first == nil {
					first = &resp.Diagnostics[i]
				}
				if d.Severity == sdk.SeverityWarning {
					warnings = append(warnings, d.Summary)
				}
				if all := d.Summary + d.Detail + d.Attribute; strings.Contains(all, secret) || strings.Contains(all, "Pa55") {
					t.Errorf("diagnostic leaks the password: %+v", d)
				}
			}
			if strings.Contains(logs.String(), "Pa55") {
				t.Errorf("logs leak the password:\n%s", logs.String())
			}
			switch {
			case tt.summary == "" && first != nil:
				t.Fatalf("working config rejected: %+v", resp.Diagnostics)
			case tt.summary != "" && first == nil:
				t.Fatalf("bad config accepted: %+v", resp.Diagnostics)
			case first != nil && (first.Attribute != tt.attribute || !strings.Contains(first.Summary, tt.summary)):
				t.Fatalf("first error %+v, want attribute %q and a summary containing %q", *first, tt.attribute, tt.summary)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.warning)
			}
			if tt.warning == "" && first == nil && len(warnings) > 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
		})
	}
}

// TestDiscover checks the object a config discovers: its name, the field
// types mapped from PostgreSQL types, the key, and incremental only with an
// updated-at column.
func TestDiscover(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t,
		`CREATE DOMAIN positive AS integer CHECK (VALUE > 0)`,
		`CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE TYPE pair AS (a int, b text)`,
		`CREATE SCHEMA s`,
		`CREATE TABLE s.all_types (
			id uuid PRIMARY KEY,
			t text NOT NULL, vc varchar(10), ch char(2), m mood,
			i2 smallint, i4 integer NOT NULL DEFAULT 0, i8 bigint, p positive, serial_id bigint GENERATED ALWAYS AS IDENTITY,
			n numeric(8,2), f4 real, f8 double precision,
			b boolean, ts timestamp, tstz timestamptz, d date, tm time,
			j json, jb jsonb, arr integer[], tarr text[], pr pair, by bytea, ip inet,
			gen integer GENERATED ALWAYS AS (i4 * 2) STORED
		)`,
	)
	c := newConn(t)
	want := map[string]string{
		"id": "string", "t": "string", "vc": "string", "ch": "string", "m": "string",
		"i2": "integer", "i4": "integer", "i8": "integer", "p": "integer", "serial_id": "integer",
		"n": "number", "f4": "number", "f8": "number",
		"b": "boolean", "ts": "datetime", "tstz": "datetime", "d": "date", "tm": "string",
		"j": "object", "jb": "object", "arr": "array", "tarr": "array", "pr": "object", "by": "string", "ip": "string",
		"gen": "integer",
	}
	for _, incremental := range []bool{false, true} {
		m := map[string]any{"url": url, "table": "s.all_types", "primary_key": "id"}
		if incremental {
			m["updated_at_column"] = "tstz"
		}
		resp, err := c.Discover(context.Background(), sdk.DiscoverRequest{Config: config(t, m)})
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if resp.Diagnostics.HasError() || len(resp.Objects) != 1 {
			t.Fatalf("Discover: %d objects, diagnostics %+v", len(resp.Objects), resp.Diagnostics)
		}
		o := resp.Objects[0]
		if o.Name != "s.all_types" || o.IDField != "id" || !o.Readable || !o.Writable || o.Incremental != incremental || o.Deletes {
			t.Errorf("object %+v: want name s.all_types, id_field id, readable, writable, incremental %v, no deletes", o, incremental)
		}
		got := map[string]string{}
		var order []string
		for _, f := range o.Fields {
			got[f.Name] = f.Type
			order = append(order, f.Name)
		}
		for name, typ := range want {
			if got[name] != typ {
				t.Errorf("field %q: type %q, want %q", name, got[name], typ)
			}
		}
		if len(got) != len(want) || order[0] != "id" || order[len(order)-1] != "gen" {
			t.Errorf("fields %v: want the %d columns in table order", order, len(want))
		}
		for _, f := range o.Fields {
			wantRequired := f.Name == "id" || f.Name == "t"
			if f.Required != wantRequired {
				t.Errorf("field %q: required %v, want %v", f.Name, f.Required, wantRequired)
			}
			if f.ReadOnly != (f.Name == "gen") {
				t.Errorf("field %q: read-only %v", f.Name, f.ReadOnly)
			}
		}
	}

	// A broken config gives diagnostics, not an error.
	resp, err := c.Discover(context.Background(), sdk.DiscoverRequest{Config: config(t, map[string]any{"url": url, "table": "s.nothing", "primary_key": "id"})})
	if err != nil || !resp.Diagnostics.HasError() || resp.Diagnostics[0].Attribute != "table" {
		t.Fatalf("Discover(missing table) = %+v, %v: want an error diagnostic on table", resp, err)
	}
}

// TestWebhookAndSpec checks the static answers.
func TestWebhookAndSpec(t *testing.T) {
	t.Parallel()
	c := newConn(t)
	resp, err := c.HandleWebhook(context.Background(), sdk.WebhookRequest{Method: "POST"})
	if err != nil || resp.Verified || !resp.Diagnostics.HasError() {
		t.Fatalf("HandleWebhook = %+v, %v: want not verified with an error diagnostic", resp, err)
	}
	spec, err := c.Spec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "postgres" || spec.Version != "0.1.0" || !spec.Capabilities.Discover || !spec.Capabilities.Read || !spec.Capabilities.Write || spec.Capabilities.Webhooks {
		t.Fatalf("spec %+v", spec)
	}
	var schema struct {
		Required             []string                   `json:"required"`
		AdditionalProperties bool                       `json:"additionalProperties"`
		Properties           map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(spec.ConfigSchema, &schema); err != nil {
		t.Fatalf("config schema: %v", err)
	}
	if strings.Join(schema.Required, ",") != "url,table,primary_key" || schema.AdditionalProperties || len(schema.Properties) != 6 {
		t.Fatalf("config schema: required %v, additionalProperties %v, %d properties", schema.Required, schema.AdditionalProperties, len(schema.Properties))
	}
}

// TestStop checks that calls after Stop fail instead of reopening pools.
func TestStop(t *testing.T) {
	t.Parallel()
	url, _ := newDB(t, `CREATE TABLE k (id int PRIMARY KEY)`)
	c := pgconnector.New("0.1.0", "")
	cfg := config(t, map[string]any{"url": url, "table": "k", "primary_key": "id"})
	if resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg}); err != nil || resp.Diagnostics.HasError() {
		t.Fatalf("Check: %+v, %v", resp, err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg}); err == nil {
		t.Fatal("Check after Stop: no error")
	}
	if _, err := c.Write(context.Background(), sdk.WriteRequest{Config: cfg, Object: "k", Records: []sdk.WriteRecord{{Fields: json.RawMessage(`{"id": 1}`)}}}); err == nil {
		t.Fatal("Write after Stop: no error")
	}
}

// TestPrivileges connects as a role with limited privileges: reads need
// SELECT on the table (an error in Check without it), writes without INSERT
// or DELETE are rejected at once with a clear message, and missing write
// privileges are a warning. Soft deletes need UPDATE, not DELETE.
func TestPrivileges(t *testing.T) {
	t.Parallel()
	url, db := newDB(t,
		`CREATE TABLE open_t (id int PRIMARY KEY, v text)`,
		`CREATE TABLE read_only (id int PRIMARY KEY, v text, deleted_at timestamptz)`,
		`CREATE TABLE closed (id int PRIMARY KEY, v text)`,
		`CREATE TABLE no_delete (id int PRIMARY KEY, v text, deleted_at timestamptz)`,
		`INSERT INTO read_only VALUES (1, 'a')`,
		`INSERT INTO no_delete VALUES (1, 'a')`,
	)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	role := "synchron_pgtest_" + hex.EncodeToString(b[:])
	mustExec(t, db, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() {
		// The role's privileges live in the test database: drop them first.
		if _, err := db.Exec(`DROP OWNED BY ` + role); err != nil {
			t.Errorf("drop owned: %v", err)
		}
		if _, err := db.Exec(`DROP ROLE ` + role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	mustExec(t, db, `GRANT SELECT, INSERT, UPDATE, DELETE ON open_t TO `+role)
	mustExec(t, db, `GRANT SELECT ON read_only TO `+role)
	mustExec(t, db, `GRANT SELECT, INSERT, UPDATE ON no_delete TO `+role)
	roleURL := strings.Replace(url, "postgres@", role+"@", 1)
	c := newConn(t)
	cfg := func(table string) json.RawMessage {
		return config(t, map[string]any{"url": roleURL, "table": table, "primary_key": "id"})
	}
	check := func(table string) sdk.Diagnostics {
		resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: cfg(table)})
		if err != nil {
			t.Fatalf("Check(%s): %v", table, err)
		}
		return resp.Diagnostics
	}
	if d := check("open_t"); len(d) != 0 {
		t.Errorf("open_t: diagnostics %+v, want none", d)
	}
	if d := check("read_only"); d.HasError() || len(d) != 1 || !strings.Contains(d[0].Summary, "may not INSERT, UPDATE, DELETE") {
		t.Errorf("read_only: diagnostics %+v, want one warning about write privileges", d)
	}
	if d := check("closed"); !d.HasError() || d[0].Attribute != "table" || !strings.Contains(d[0].Summary, "may not read") {
		t.Errorf("closed: diagnostics %+v, want an error on table", d)
	}

	resp := write(t, c, cfg("read_only"), "read_only", rec(`{"id": 2, "v": "b"}`), sdk.WriteRecord{ID: "1", Delete: true})
	if got := summary(resp.Results); !strings.Contains(got[0], "may not INSERT") || !strings.Contains(got[1], "may not DELETE") {
		t.Errorf("writes to read_only:%s", joinLines(got))
	}
	resp = write(t, c, cfg("open_t"), "open_t", rec(`{"id": 2, "v": "b"}`))
	if got := summary(resp.Results); got[0] != "created 2" {
		t.Errorf("write to open_t: %v", got)
	}

	// Without DELETE: hard deletes are refused, soft deletes work.
	if d := check("no_delete"); d.HasError() || len(d) != 1 || !strings.Contains(d[0].Summary, "may not DELETE") {
		t.Errorf("no_delete: diagnostics %+v, want one warning about DELETE", d)
	}
	resp = write(t, c, cfg("no_delete"), "no_delete", sdk.WriteRecord{ID: "1", Delete: true})
	if got := summary(resp.Results); !strings.Contains(got[0], "may not DELETE") {
		t.Errorf("hard delete from no_delete: %v", got)
	}
	soft := config(t, map[string]any{"url": roleURL, "table": "no_delete", "primary_key": "id", "deleted_column": "deleted_at"})
	if resp, err := c.Check(context.Background(), sdk.CheckRequest{Config: soft}); err != nil || len(resp.Diagnostics) != 0 {
		t.Errorf("no_delete with deleted_column: diagnostics %+v (%v), want none", resp.Diagnostics, err)
	}
	resp = write(t, c, soft, "no_delete", sdk.WriteRecord{ID: "1", Delete: true})
	if got := summary(resp.Results); got[0] != "deleted 1" {
		t.Errorf("soft delete from no_delete: %v", got)
	}
	// Soft deletes without UPDATE are refused up front.
	softRO := config(t, map[string]any{"url": roleURL, "table": "read_only", "primary_key": "id", "deleted_column": "deleted_at"})
	resp = write(t, c, softRO, "read_only", sdk.WriteRecord{ID: "1", Delete: true})
	if got := summary(resp.Results); !strings.Contains(got[0], "may not UPDATE") {
		t.Errorf("soft delete from read_only: %v", got)
	}
}
