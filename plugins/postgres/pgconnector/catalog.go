package pgconnector

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lib/pq"

	"github.com/synchron-io/synchron/sdk"
)

// quoteIdent quotes an identifier for SQL.
func quoteIdent(s string) string { return pq.QuoteIdentifier(s) }

// PostgreSQL type oids the connector maps or handles specially.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// column is one column of the table.
type column struct {
	name string
	// sqlType is format_type(): a type name usable in a cast, with its
	// modifier ("character varying(20)", "numeric(10,2)", "my_domain").
	sqlType string
	// baseOID is the type's oid, or the base type's oid for a domain.
	baseOID  uint32
	category byte // pg_type.typcategory of the base type
	typtype  byte // pg_type.typtype of the base type
	notNull  bool
	// hasDefault: a DEFAULT, an identity or a generated expression.
	hasDefault bool
	generated  bool
	// identityAlways: GENERATED ALWAYS AS IDENTITY (insert-only here).
	identityAlways bool
	// unique: a primary key or a unique index on exactly this column that
	// ON CONFLICT can use (not partial, no expression, not deferrable).
	unique    bool
	isPrimary bool
}

// fieldType maps a PostgreSQL type to an sdk field type.
func (c column) fieldType() string {
	switch c.baseOID {
	case oidInt2, oidInt4, oidInt8, oidOID:
		return sdk.TypeInteger
	case oidFloat4, oidFloat8, oidNumeric:
		return sdk.TypeNumber
	case oidBool:
		return sdk.TypeBoolean
	case oidTimestamp, oidTimestampTZ:
		return sdk.TypeDateTime
	case oidDate:
		return sdk.TypeDate
	case oidJSON, oidJSONB:
		return sdk.TypeObject
	}
	switch {
	case c.category == 'A':
		return sdk.TypeArray
	case c.typtype == 'c':
		return sdk.TypeObject // a composite type: row_to_json nests it
	}
	return sdk.TypeString
}

// table is what the connector knows of the configured table.
type table struct {
	// qname is the quoted, schema-qualified name: "public"."users".
	qname   string
	schema  string
	name    string
	columns []column
	byName  map[string]int
	pk      column
	// updatedAt is the updated-at column; nil when not configured.
	updatedAt *column
	// deleted is the soft-delete column (timestamp or boolean); nil when not
	// configured.
	deleted *column
	// Privileges of the user: SELECT on the whole table (reads select every
	// column), INSERT and UPDATE on the table or some of its columns, DELETE.
	canSelect bool
	canInsert bool
	canUpdate bool
	canDelete bool
}

func (t *table) column(name string) (column, bool) {
	i, ok := t.byName[name]
	if !ok {
		return column{}, false
	}
	return t.columns[i], true
}

// intern returns a column's name for its bytes without allocating, or a new
// string for a name that is not a column.
func (t *table) intern(b []byte) string {
	if i, ok := t.byName[string(b)]; ok {
		return t.columns[i].name
	}
	return string(b)
}

// columnNames lists the columns, for messages.
func (t *table) columnNames() string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// catalogQuery returns the table (resolved like SQL would, through the
// search_path when unqualified) and its columns, one row per column.
const catalogQuery = `
WITH rel AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = pg_catalog.to_regclass($1)
)
SELECT rel.nspname, rel.relname, rel.relkind,
  pg_catalog.has_table_privilege(rel.oid, 'SELECT'),
  pg_catalog.has_any_column_privilege(rel.oid, 'INSERT'),
  pg_catalog.has_any_column_privilege(rel.oid, 'UPDATE'),
  pg_catalog.has_table_privilege(rel.oid, 'DELETE'),
  a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
  bt.oid::int8, bt.typcategory::text, bt.typtype::text,
  a.attnotnull, (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''),
  a.attgenerated <> '', a.attidentity = 'a',
  EXISTS (SELECT 1 FROM pg_catalog.pg_index i
          WHERE i.indrelid = rel.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
            AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum),
  EXISTS (SELECT 1 FROM pg_catalog.pg_index i
          WHERE i.indrelid = rel.oid AND i.indisprimary AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum)
FROM rel
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = COALESCE(NULLIF(t.typbasetype, 0), t.oid)
ORDER BY a.attnum`

// inspect loads the configured table and checks it against the config. A
// problem with the table or its columns is an error diagnostic on the config
// key to fix; an error means the catalog could not be queried at all.
func inspect(ctx context.Context, db *sql.DB, cfg Config) (*table, sdk.Diagnostics, error) {
	rows, err := db.QueryContext(ctx, catalogQuery, cfg.tableRef())
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: inspect table %s: %w", cfg.Table, err)
	}
	defer rows.Close()
	t := &table{byName: map[string]int{}}
	found := false
	var relkind string
	for rows.Next() {
		found = true
		var (
			name, sqlType, category, typtype                   sql.NullString
			baseOID                                            sql.NullInt64
			notNull, hasDefault, generated, identity, uniq, pk sql.NullBool
		)
		if err := rows.Scan(&t.schema, &t.name, &relkind, &t.canSelect, &t.canInsert, &t.canUpdate, &t.canDelete,
			&name, &sqlType, &baseOID, &category, &typtype, &notNull, &hasDefault, &generated, &identity, &uniq, &pk); err != nil {
			return nil, nil, fmt.Errorf("postgres: inspect table %s: %w", cfg.Table, err)
		}
		if !name.Valid {
			continue // a table without columns
		}
		t.byName[name.String] = len(t.columns)
		t.columns = append(t.columns, column{
			name:           name.String,
			sqlType:        sqlType.String,
			baseOID:        uint32(baseOID.Int64),
			category:       firstByte(category.String),
			typtype:        firstByte(typtype.String),
			notNull:        notNull.Bool,
			hasDefault:     hasDefault.Bool,
			generated:      generated.Bool,
			identityAlways: identity.Bool,
			unique:         uniq.Bool,
			isPrimary:      pk.Bool,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("postgres: inspect table %s: %w", cfg.Table, err)
	}
	if !found {
		return nil, sdk.Diagnostics{sdk.Errorf(keyTable, fmt.Sprintf("table %q not found", cfg.Table),
			"check the spelling and the schema (schema.table); names are case-sensitive, and an unqualified name is looked up in the search_path of the user in url")}, nil
	}
	t.qname = quoteIdent(t.schema) + "." + quoteIdent(t.name)

	var diags sdk.Diagnostics
	switch relkind {
	case "r", "p": // table, partitioned table
	default:
		diags = append(diags, sdk.Errorf(keyTable, fmt.Sprintf("%q is not a table (it is a %s)", cfg.Table, relkindName(relkind)),
			"only tables and partitioned tables are supported"))
	}
	if !t.canSelect {
		diags = append(diags, sdk.Errorf(keyTable, fmt.Sprintf("the user in url may not read table %q", cfg.Table),
			fmt.Sprintf("GRANT SELECT ON %s TO the user", t.qname)))
	}

	pk, ok := t.column(cfg.PrimaryKey)
	switch {
	case !ok:
		diags = append(diags, sdk.Errorf(keyPrimaryKey, fmt.Sprintf("column %q not found in table %q", cfg.PrimaryKey, cfg.Table),
			"columns: "+t.columnNames()))
	case !pk.unique:
		diags = append(diags, sdk.Errorf(keyPrimaryKey, fmt.Sprintf("column %q is not unique", cfg.PrimaryKey),
			fmt.Sprintf("it must be the primary key or have a unique index of its own (not partial, not deferrable): CREATE UNIQUE INDEX ON %s (%s)", t.qname, quoteIdent(cfg.PrimaryKey))))
	default:
		t.pk = pk
	}
	if cfg.UpdatedAtColumn != "" {
		u, ok := t.column(cfg.UpdatedAtColumn)
		switch {
		case !ok:
			diags = append(diags, sdk.Errorf(keyUpdatedAtColumn, fmt.Sprintf("column %q not found in table %q", cfg.UpdatedAtColumn, cfg.Table),
				"columns: "+t.columnNames()+"; leave updated_at_column out for full reads"))
		case u.baseOID != oidTimestamp && u.baseOID != oidTimestampTZ:
			diags = append(diags, sdk.Errorf(keyUpdatedAtColumn, fmt.Sprintf("column %q is of type %s, not a timestamp", cfg.UpdatedAtColumn, u.sqlType),
				"choose a column of type timestamp or timestamptz that changes on every update, or leave updated_at_column out for full reads"))
		default:
			t.updatedAt = &u
		}
	}
	if cfg.DeletedColumn != "" {
		d, ok := t.column(cfg.DeletedColumn)
		isTime := d.baseOID == oidTimestamp || d.baseOID == oidTimestampTZ
		switch {
		case !ok:
			diags = append(diags, sdk.Errorf(keyDeletedColumn, fmt.Sprintf("column %q not found in table %q", cfg.DeletedColumn, cfg.Table),
				"columns: "+t.columnNames()+"; leave deleted_column out for hard deletes"))
		case !isTime && d.baseOID != oidBool:
			diags = append(diags, sdk.Errorf(keyDeletedColumn, fmt.Sprintf("column %q is of type %s, not a timestamp or a boolean", cfg.DeletedColumn, d.sqlType),
				"choose a timestamp or timestamptz column (deleted when not NULL) or a boolean column (deleted when true), or leave deleted_column out for hard deletes"))
		case d.generated:
			diags = append(diags, sdk.Errorf(keyDeletedColumn, fmt.Sprintf("column %q is a generated column", cfg.DeletedColumn),
				"deletes set the soft-delete column: name the column it is generated from"))
		case isTime && d.notNull:
			diags = append(diags, sdk.Errorf(keyDeletedColumn, fmt.Sprintf("column %q is NOT NULL: a timestamp soft-delete column marks live rows with NULL", cfg.DeletedColumn),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", t.qname, quoteIdent(d.name))))
		default:
			t.deleted = &d
		}
	}
	return t, diags, nil
}

// deletedSQL is the condition "the row of alias d is soft-deleted": a
// timestamp is set, a boolean is true (NULL is not deleted).
func (t *table) deletedSQL(d string) string {
	q := d + "." + quoteIdent(t.deleted.name)
	if t.deleted.baseOID == oidBool {
		return q + " IS TRUE"
	}
	return q + " IS NOT NULL"
}

// deleteValueSQL is what a delete sets the column to.
func (t *table) deleteValueSQL() string {
	if t.deleted.baseOID == oidBool {
		return "true"
	}
	return "now()"
}

// undeleteValueSQL is what an upsert sets the column of the existing row
// (alias d) to: NULL for a timestamp; false for a boolean that is true, leaving NULL
// as it is (a live row whose flag is NULL does not change).
func (t *table) undeleteValueSQL(d string) string {
	if t.deleted.baseOID == oidBool {
		return fmt.Sprintf("CASE WHEN %[1]s.%[2]s THEN false ELSE %[1]s.%[2]s END", d, quoteIdent(t.deleted.name))
	}
	return "NULL"
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func relkindName(k string) string {
	switch k {
	case "v":
		return "view"
	case "m":
		return "materialized view"
	case "f":
		return "foreign table"
	case "S":
		return "sequence"
	case "i", "I":
		return "index"
	case "c":
		return "composite type"
	}
	return "relation of kind " + k
}

// object describes the table as an sdk object named name.
func (t *table) object(name string) sdk.Object {
	fields := make([]sdk.Field, len(t.columns))
	for i, c := range t.columns {
		desc := "PostgreSQL " + c.sqlType
		switch {
		case c.name == t.pk.name && c.isPrimary:
			desc += ", primary key"
		case c.name == t.pk.name:
			desc += ", unique key"
		case t.updatedAt != nil && c.name == t.updatedAt.name:
			desc += ", updated-at column (set to the time of the write when a write does not carry it)"
		case t.deleted != nil && c.name == t.deleted.name:
			desc += ", soft-delete column (set by deletes, cleared by writes that do not carry it)"
		case c.generated:
			desc += ", generated column (ignored by writes)"
		}
		fields[i] = sdk.Field{
			Name:        c.name,
			Type:        c.fieldType(),
			Required:    c.notNull && !c.hasDefault && !t.setByConnector(c.name),
			ReadOnly:    c.generated,
			Description: desc,
		}
	}
	return sdk.Object{
		Name:        name,
		Description: fmt.Sprintf("Rows of the PostgreSQL table %s, keyed by %s.", t.qname, quoteIdent(t.pk.name)),
		Fields:      fields,
		IDField:     t.pk.name,
		UpsertKey:   t.pk.name, // writes upsert by the primary key
		Readable:    true,
		Writable:    true,
		Incremental: t.updatedAt != nil,
		Deletes:     t.deleted != nil,
	}
}

// setByConnector reports whether writes set the column when a record does
// not carry it: the updated-at and soft-delete columns.
func (t *table) setByConnector(name string) bool {
	return t.updatedAt != nil && name == t.updatedAt.name || t.deleted != nil && name == t.deleted.name
}
