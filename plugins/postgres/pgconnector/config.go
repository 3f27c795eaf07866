package pgconnector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Config keys.
const (
	keyURL             = "url"
	keyTable           = "table"
	keyPrimaryKey      = "primary_key"
	keyUpdatedAtColumn = "updated_at_column"
	keyReadLagSeconds  = "read_lag_seconds"
	keyDeletedColumn   = "deleted_column"
)

// MaxReadLagSeconds bounds read_lag_seconds (one day).
const MaxReadLagSeconds = 86400

// configSchema is the JSON Schema of a connection's config, as published in
// the Spec.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["url", "table", "primary_key"],
  "properties": {
    "url": {
      "type": "string",
      "pattern": "^postgres(ql)?://",
      "writeOnly": true,
      "description": "PostgreSQL connection URL, e.g. postgres://user:password@host:5432/dbname?sslmode=require. It holds the password: it is never echoed back in messages or logs."
    },
    "table": {
      "type": "string",
      "minLength": 1,
      "description": "The table to sync: table (found through the search_path) or schema.table. Names are exact (case-sensitive); a part may be double-quoted to contain a dot."
    },
    "primary_key": {
      "type": "string",
      "minLength": 1,
      "description": "Key column: the table's primary key or a column with a unique index of its own. Records are identified and upserted by it."
    },
    "updated_at_column": {
      "type": "string",
      "minLength": 1,
      "description": "Optional timestamp or timestamptz column that changes on every update. With it reads are incremental; without it every read is a full scan ordered by the key."
    },
    "read_lag_seconds": {
      "type": "integer",
      "minimum": 0,
      "maximum": 86400,
      "default": 0,
      "description": "Incremental reads skip rows whose updated_at is less than this many seconds old, so that transactions still in flight when a read runs are not skipped for good. 0 reads everything committed before the read started."
    },
    "deleted_column": {
      "type": "string",
      "minLength": 1,
      "description": "Optional soft-delete column: a timestamp or timestamptz (deleted when not NULL) or a boolean (deleted when true). Reads report such rows as deleted; deletes set it (and updated_at_column) instead of removing the row; upserts clear it. Whoever soft-deletes a row must also bump updated_at_column for incremental reads to see it."
    }
  }
}`

// Config is a parsed connection config.
type Config struct {
	// URL is the connection URL as given (it holds the password).
	URL string
	// Table is the table as given in the config; it is also the object name.
	Table string
	// Schema is the schema part of Table ("" to use the search_path) and
	// Name the table's own name, both unquoted.
	Schema, Name string
	// PrimaryKey is the key column.
	PrimaryKey string
	// UpdatedAtColumn is the updated-at column, "" for none.
	UpdatedAtColumn string
	// ReadLagSeconds is the safety lag of incremental reads.
	ReadLagSeconds int
	// DeletedColumn is the soft-delete column, "" for none (hard deletes,
	// and reads never report deletes).
	DeletedColumn string
}

// Incremental reports whether reads are incremental (updated_at_column set).
func (c Config) Incremental() bool { return c.UpdatedAtColumn != "" }

// SoftDeletes reports whether deletes are soft (deleted_column set).
func (c Config) SoftDeletes() bool { return c.DeletedColumn != "" }

// tableRef is the table as a regclass literal: each part quoted.
func (c Config) tableRef() string {
	if c.Schema == "" {
		return quoteIdent(c.Name)
	}
	return quoteIdent(c.Schema) + "." + quoteIdent(c.Name)
}

// ParseConfig parses and validates a config without reaching the database.
// Every problem is an error diagnostic whose Attribute is the config key.
func ParseConfig(raw json.RawMessage) (Config, sdk.Diagnostics) {
	var cfg Config
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is required", `a JSON object such as {"url": "postgres://user:password@host/db", "table": "public.users", "primary_key": "id"}`)}
	}
	if !json.Valid(raw) {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is not valid JSON", "")}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config must be a JSON object", `for example {"url": "postgres://user:password@host/db", "table": "users", "primary_key": "id"}`)}
	}
	var diags sdk.Diagnostics
	for _, k := range []string{keyURL, keyTable, keyPrimaryKey} {
		if _, ok := m[k]; !ok {
			diags = append(diags, sdk.Errorf(k, k+" is required", ""))
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case keyURL:
			s, ok := stringValue(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "url must be a non-empty string", "postgres://user:password@host:5432/dbname"))
				break
			}
			if d, ok := checkURL(s); !ok {
				diags = append(diags, d)
				break
			}
			cfg.URL = s
		case keyTable:
			s, ok := stringValue(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "table must be a non-empty string", "table or schema.table"))
				break
			}
			schema, name, err := splitTable(s)
			if err != nil {
				diags = append(diags, sdk.Errorf(k, "table is not a valid table name", err.Error()))
				break
			}
			cfg.Table, cfg.Schema, cfg.Name = s, schema, name
		case keyPrimaryKey:
			s, ok := stringValue(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "primary_key must be a non-empty string", "the name of the key column, e.g. id"))
				break
			}
			cfg.PrimaryKey = s
		case keyUpdatedAtColumn:
			if string(bytes.TrimSpace(v)) == "null" {
				break // same as absent
			}
			s, ok := stringValue(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "updated_at_column must be a non-empty string", "the name of a timestamp column, e.g. updated_at; leave it out for full reads"))
				break
			}
			cfg.UpdatedAtColumn = s
		case keyReadLagSeconds:
			n, err := strconv.Atoi(strings.TrimSpace(string(v)))
			if err != nil || n < 0 || n > MaxReadLagSeconds {
				diags = append(diags, sdk.Errorf(k, "read_lag_seconds must be an integer from 0 to 86400", fmt.Sprintf("got %.40s", v)))
				break
			}
			cfg.ReadLagSeconds = n
		case keyDeletedColumn:
			if string(bytes.TrimSpace(v)) == "null" {
				break // same as absent
			}
			s, ok := stringValue(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "deleted_column must be a non-empty string", "the name of a soft-delete column (timestamp or boolean), e.g. deleted_at; leave it out for hard deletes"))
				break
			}
			cfg.DeletedColumn = s
		default:
			diags = append(diags, sdk.Errorf(k, fmt.Sprintf("unknown config key %q", k), "allowed keys: url, table, primary_key, updated_at_column, read_lag_seconds, deleted_column"))
		}
	}
	if cfg.UpdatedAtColumn != "" && cfg.UpdatedAtColumn == cfg.PrimaryKey {
		diags = append(diags, sdk.Errorf(keyUpdatedAtColumn, "updated_at_column must differ from primary_key", ""))
	}
	switch {
	case cfg.DeletedColumn == "":
	case cfg.DeletedColumn == cfg.PrimaryKey:
		diags = append(diags, sdk.Errorf(keyDeletedColumn, "deleted_column must differ from primary_key", ""))
	case cfg.DeletedColumn == cfg.UpdatedAtColumn:
		diags = append(diags, sdk.Errorf(keyDeletedColumn, "deleted_column must differ from updated_at_column",
			"the updated-at column changes on every update; the soft-delete column says whether the row is deleted"))
	}
	return cfg, diags
}

// stringValue returns a JSON string's non-blank value.
func stringValue(v json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil || strings.TrimSpace(s) == "" {
		return "", false
	}
	return s, true
}

// checkURL validates a connection URL. The diagnostic never contains the URL
// itself (it holds the password).
func checkURL(s string) (sdk.Diagnostic, bool) {
	u, err := url.Parse(s)
	if err != nil {
		detail := "want postgres://user:password@host:5432/dbname"
		var ue *url.Error
		if errors.As(err, &ue) {
			// ue.Err does not repeat the URL; percent-encode special
			// characters of the password (e.g. @ as %40).
			detail = redactURLText(ue.Err.Error(), s) + "; " + detail + " (percent-encode special characters of the user and password)"
		}
		return sdk.Errorf(keyURL, "url is not a valid URL", detail), false
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return sdk.Errorf(keyURL, "url must start with postgres:// or postgresql://", "key=value connection strings are not accepted"), false
	}
	return sdk.Diagnostic{}, true
}

// splitTable splits "table" or "schema.table". A part may be double-quoted
// ("my.schema"."My Table", with "" for a quote); unquoted parts are taken
// literally (case-sensitive, no folding).
func splitTable(s string) (schema, name string, err error) {
	var parts []string
	rest := s
	for {
		var part string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for i < len(rest) {
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				b.WriteByte(rest[i])
				i++
			}
			if !closed {
				return "", "", fmt.Errorf("unterminated double quote in %q", s)
			}
			part, rest = b.String(), rest[i:]
			if rest != "" && rest[0] != '.' {
				return "", "", fmt.Errorf("unexpected text after a quoted name in %q", s)
			}
		} else {
			j := strings.IndexByte(rest, '.')
			if j < 0 {
				j = len(rest)
			}
			part, rest = rest[:j], rest[j:]
		}
		if part == "" {
			return "", "", fmt.Errorf("empty name in %q: want table or schema.table", s)
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		rest = rest[1:] // the dot
		if rest == "" {
			return "", "", fmt.Errorf("empty name in %q: want table or schema.table", s)
		}
	}
	switch len(parts) {
	case 1:
		return "", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("%q has %d dot-separated parts: want table or schema.table (double-quote names that contain a dot)", s, len(parts))
}
