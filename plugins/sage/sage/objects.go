package sage

import (
	"fmt"
	"sort"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// objectDef is one Sage object as the connector exposes it.
type objectDef struct {
	name, path, wrapper, description string
	// naturalKey is the field that identifies a record when writing without
	// an id (upsert); "" when the object has none.
	naturalKey string
	writable   bool
	deletes    bool
	// sortable: the list takes sort=updated_at (only sales invoices in the
	// spec); elsewhere the connector relies on Sage's default order.
	sortable bool
	fields   []sdk.Field
	// writeFields are the fields a write sends (others are read-only).
	writeFields map[string]bool
}

func f(name, typ string, ro bool, desc string) sdk.Field {
	return sdk.Field{Name: name, Type: typ, ReadOnly: ro, Description: desc}
}

var common = []sdk.Field{
	f("id", sdk.TypeString, true, "Sage id"),
	f("displayed_as", sdk.TypeString, true, "display name"),
	f("created_at", sdk.TypeDateTime, true, "creation time"),
	f("updated_at", sdk.TypeDateTime, true, "last change"),
}

// lineFields are the fields of one sales invoice line.
var lineFields = []string{"id", "description", "product_id", "ledger_account_id", "quantity", "unit_price",
	"tax_rate_id", "net_amount", "tax_amount", "total_amount"}

var lineWriteFields = map[string]bool{"description": true, "product_id": true, "ledger_account_id": true,
	"quantity": true, "unit_price": true, "tax_rate_id": true}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// objects returns the object definitions (a new slice each call: no shared
// mutable state).
func objects() []objectDef {
	return []objectDef{
		{
			name: "contacts", path: "contacts", wrapper: "contact", naturalKey: "reference", writable: true, deletes: true,
			description: "Customers and suppliers",
			fields: append(append([]sdk.Field{}, common...),
				f("name", sdk.TypeString, false, "full or business name (required to create)"),
				f("reference", sdk.TypeString, false, "unique reference: the natural key for upserts"),
				f("contact_type_ids", sdk.TypeArray, false, `"CUSTOMER" and/or "VENDOR" (required to create)`),
				f("email", sdk.TypeString, false, "email of the main contact person"),
				f("notes", sdk.TypeString, false, ""),
				f("tax_number", sdk.TypeString, false, "VAT registration number"),
				f("currency_id", sdk.TypeString, false, ""),
				f("credit_limit", sdk.TypeNumber, false, ""),
				f("credit_days", sdk.TypeInteger, false, "0-365"),
			),
			writeFields: set("name", "reference", "contact_type_ids", "email", "notes", "tax_number", "currency_id", "credit_limit", "credit_days"),
		},
		{
			name: "products", path: "products", wrapper: "product", naturalKey: "item_code", writable: true, deletes: true,
			description: "Products (stock and non-stock items)",
			fields: append(append([]sdk.Field{}, common...),
				f("item_code", sdk.TypeString, false, "unique item code: the natural key for upserts"),
				f("description", sdk.TypeString, false, "required to create"),
				f("notes", sdk.TypeString, false, ""),
				f("sales_ledger_account_id", sdk.TypeString, false, "required to create"),
				f("purchase_ledger_account_id", sdk.TypeString, false, "required to create"),
				f("cost_price", sdk.TypeNumber, false, ""),
				f("active", sdk.TypeBoolean, false, ""),
			),
			writeFields: set("item_code", "description", "notes", "sales_ledger_account_id", "purchase_ledger_account_id", "cost_price", "active"),
		},
		{
			name: "sales_invoices", path: "sales_invoices", wrapper: "sales_invoice", writable: true, deletes: true, sortable: true,
			description: "Sales invoices with their lines (invoice_lines); amounts are computed by Sage",
			fields: append(append([]sdk.Field{}, common...),
				f("invoice_number", sdk.TypeString, true, ""),
				f("contact_id", sdk.TypeString, false, "the customer (required to create)"),
				f("contact_name", sdk.TypeString, true, ""),
				f("date", sdk.TypeDate, false, "required to create"),
				f("due_date", sdk.TypeDate, false, ""),
				f("reference", sdk.TypeString, false, ""),
				f("notes", sdk.TypeString, false, ""),
				f("currency_id", sdk.TypeString, false, ""),
				f("status", sdk.TypeString, true, "status id (e.g. UNPAID)"),
				f("net_amount", sdk.TypeNumber, true, ""),
				f("tax_amount", sdk.TypeNumber, true, ""),
				f("total_amount", sdk.TypeNumber, true, ""),
				f("invoice_lines", sdk.TypeArray, false, "lines: description, product_id, ledger_account_id, quantity, unit_price, tax_rate_id (required to create: description, ledger_account_id, unit_price); net/tax/total amounts read-only"),
			),
			writeFields: set("contact_id", "date", "due_date", "reference", "notes", "currency_id", "invoice_lines"),
		},
		{
			name: "ledger_accounts", path: "ledger_accounts", description: "Ledger accounts (read-only, for lookups)",
			fields: append(append([]sdk.Field{}, common...),
				f("name", sdk.TypeString, true, ""), f("nominal_code", sdk.TypeString, true, "")),
		},
		{
			name: "tax_rates", path: "tax_rates", description: "Tax rates (read-only, for lookups)",
			fields: append(append([]sdk.Field{}, common...),
				f("name", sdk.TypeString, true, ""), f("percentage", sdk.TypeNumber, true, "")),
		},
	}
}

func findObject(name string) (objectDef, bool) {
	for _, o := range objects() {
		if o.name == name {
			return o, true
		}
	}
	return objectDef{}, false
}

func (o objectDef) sdkObject() sdk.Object {
	return sdk.Object{Name: o.name, Description: o.description, Fields: o.fields, IDField: "id", UpsertKey: o.naturalKey,
		Readable: true, Writable: o.writable, Incremental: true, Deletes: o.deletes}
}

// flattenValue reads field name from a Sage record: nested links
// ({"contact": {"id": ...}}) become their id.
func flattenValue(rec map[string]any, name string) (any, bool) {
	if v, ok := rec[name]; ok {
		if m, isMap := v.(map[string]any); isMap {
			return m["id"], true
		}
		return v, true
	}
	if strings.HasSuffix(name, "_id") {
		if m, ok := rec[strings.TrimSuffix(name, "_id")].(map[string]any); ok {
			return m["id"], true
		}
	}
	return nil, false
}

// flatten turns a Sage record into the connector's fields.
func (o objectDef) flatten(rec map[string]any) map[string]any {
	out := map[string]any{}
	for _, fd := range o.fields {
		switch fd.Name {
		case "contact_type_ids":
			if types, ok := rec["contact_types"].([]any); ok {
				ids := []any{}
				for _, t := range types {
					if m, ok := t.(map[string]any); ok {
						ids = append(ids, m["id"])
					}
				}
				out[fd.Name] = ids
			}
			continue
		case "email":
			if v, ok := rec["email"]; ok && v != nil {
				out["email"] = v
			} else if p, ok := rec["main_contact_person"].(map[string]any); ok && p["email"] != nil {
				out["email"] = p["email"]
			}
			continue
		case "invoice_lines":
			if lines, ok := rec["invoice_lines"].([]any); ok {
				outLines := []any{}
				for _, l := range lines {
					lm, _ := l.(map[string]any)
					ol := map[string]any{}
					for _, name := range lineFields {
						if v, ok := flattenValue(lm, name); ok && v != nil {
							ol[name] = v
						}
					}
					outLines = append(outLines, ol)
				}
				out[fd.Name] = outLines
			}
			continue
		}
		if v, ok := flattenValue(rec, fd.Name); ok && v != nil {
			out[fd.Name] = v
		}
	}
	return out
}

// body builds the wrapped request body of a write from the connector's
// fields. Read-only fields are ignored; unknown fields are an error.
func (o objectDef) body(fields map[string]any) (map[string]any, error) {
	declared := map[string]bool{}
	for _, fd := range o.fields {
		declared[fd.Name] = true
	}
	in := map[string]any{}
	var unknown []string
	for k, v := range fields {
		switch {
		case !declared[k]:
			unknown = append(unknown, k)
		case !o.writeFields[k]:
		case k == "email":
			in["main_contact_person"] = map[string]any{"email": v, "is_main_contact": true}
		case k == "invoice_lines":
			lines, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("invoice_lines must be an array")
			}
			out := []any{}
			for i, l := range lines {
				lm, ok := l.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("invoice_lines[%d] must be an object", i)
				}
				ol := map[string]any{}
				for lk, lv := range lm {
					if lineWriteFields[lk] {
						ol[lk] = lv
					}
				}
				out = append(out, ol)
			}
			in[k] = out
		default:
			in[k] = v
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown fields for %s: %s", o.name, strings.Join(unknown, ", "))
	}
	return map[string]any{o.wrapper: in}, nil
}
