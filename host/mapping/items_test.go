package mapping_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

const orderLines = `[
	{"source": "name", "target": "order_ref"},
	{"source": "line_items", "target": "invoice_lines", "items": [
		{"source": "name", "target": "description", "transform": "trim"},
		{"source": "quantity", "target": "quantity"},
		{"source": "price", "target": "unit_price", "default": 0},
		{"target": "ledger_account_id", "value": "la-sales"}]}]`

func TestItemsMapEachElement(t *testing.T) {
	t.Parallel()
	rules, err := mapping.Parse(raw(orderLines))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if rules[1].Direction != mapping.DirectionToTarget || rules[1].Items[0].Direction != mapping.DirectionToTarget {
		t.Errorf("items rule directions = %q / %q, want to_target for both", rules[1].Direction, rules[1].Items[0].Direction)
	}
	m := mustMapper(t, rules...)
	testCases := map[string]struct{ in, want string }{
		"two lines": {
			in:   `{"name": "#1001", "line_items": [{"name": " Mug ", "quantity": 2, "price": "15.00"}, {"name": "Tea", "quantity": 1}]}`,
			want: `{"invoice_lines":[{"description":"Mug","ledger_account_id":"la-sales","quantity":2,"unit_price":"15.00"},{"description":"Tea","ledger_account_id":"la-sales","quantity":1,"unit_price":0}],"order_ref":"#1001"}`,
		},
		"no lines":                  {in: `{"name": "#1002", "line_items": []}`, want: `{"invoice_lines":[],"order_ref":"#1002"}`},
		"missing array is left out": {in: `{"name": "#1003"}`, want: `{"order_ref":"#1003"}`},
		"null array is kept null":   {in: `{"name": "#1004", "line_items": null}`, want: `{"invoice_lines":null,"order_ref":"#1004"}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := m.Apply(raw(tc.in))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Apply(%s)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
	// Items flow one way: from the target nothing comes back.
	back, err := m.Map(mapping.SideTarget, raw(`{"order_ref": "#1", "invoice_lines": [{"description": "x"}]}`), nil)
	if err != nil || string(back) != `{"name":"#1"}` {
		t.Errorf("Map from target = %s, %v; want only the name back (items flow only to the target)", back, err)
	}
}

func TestItemsRejectBadElements(t *testing.T) {
	t.Parallel()
	rules, err := mapping.Parse(raw(`[{"source": "lines", "target": "invoice_lines", "items": [
		{"source": "day", "target": "date", "transform": "format_date", "format": "YYYY-MM-DD"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	m := mustMapper(t, rules...)
	testCases := map[string]struct{ in, want string }{
		"not an array":        {`{"lines": "x"}`, `field "lines" must be an array of objects`},
		"element not object":  {`{"lines": [1]}`, `lines[0] must be an object`},
		"bad value in a line": {`{"lines": [{"day": "2026-01-02"}, {"day": "soon"}]}`, `lines[1]: field "day": "soon" is not a date`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := m.Apply(raw(tc.in))
			var me *mapping.Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply(%s) = %v, want a *mapping.Error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestParseRejectsBadNestedRules(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct{ raw, want string }{
		"items both ways":       {`[{"source":"l","target":"lines","direction":"both","items":[{"source":"a","target":"b"}]}]`, `has items, which flows only to the target: set direction "to_target"`},
		"empty items":           {`[{"source":"l","target":"lines","items":[]}]`, `has an empty items list`},
		"items with value":      {`[{"target":"lines","value":[],"items":[{"source":"a","target":"b"}]}]`, `has items and a value`},
		"items with transform":  {`[{"source":"l","target":"lines","transform":"trim","items":[{"source":"a","target":"b"}]}]`, `put transforms and defaults on the item rules`},
		"bad item rule":         {`[{"source":"l","target":"lines","items":[{"source":"a","target":"b","transform":"title"}]}]`, `rule for "lines", items[0]: unknown transform "title"`},
		"item to source":        {`[{"source":"l","target":"lines","items":[{"source":"a","target":"b","direction":"to_source"}]}]`, `nested rules flow only to the target`},
		"item written twice":    {`[{"source":"l","target":"lines","items":[{"source":"a","target":"b"},{"source":"c","target":"b"}]}]`, `items[1]: field "b" is already written by rule 0`},
		"lookup without object": {`[{"source":"e","target":"contact_id","lookup":{"field":"email"}}]`, `lookup.object is required`},
		"lookup without field":  {`[{"source":"e","target":"contact_id","lookup":{"object":"contacts"}}]`, `lookup.field is required`},
		"lookup to source":      {`[{"source":"e","target":"contact_id","direction":"to_source","lookup":{"object":"contacts","field":"email"}}]`, `has a lookup, which flows only to the target`},
		"nested lookup":         {`[{"source":"e","target":"contact_id","lookup":{"object":"contacts","field":"email","create":[{"source":"e","target":"x","lookup":{"object":"a","field":"b"}}]}}]`, `a lookup cannot be nested`},
		"lookup and items":      {`[{"source":"e","target":"c","items":[{"source":"a","target":"b"}],"lookup":{"object":"contacts","field":"email"}}]`, `has both items and a lookup`},
		"empty create":          {`[{"source":"e","target":"contact_id","lookup":{"object":"contacts","field":"email","create":[]}}]`, `lookup.create is empty`},
		"unknown lookup member": {`[{"source":"e","target":"contact_id","lookup":{"object":"contacts","field":"email","make":[]}}]`, `unknown field "make"`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.Parse(raw(tc.raw))
			var me *mapping.Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%s) = %v, want a *mapping.Error containing %q", tc.raw, err, tc.want)
			}
		})
	}
}

func TestLookupRules(t *testing.T) {
	t.Parallel()
	rules, err := mapping.Parse(raw(`[
		{"source": "name", "target": "reference"},
		{"source": "email", "target": "contact_id", "transform": "trim", "lookup": {"object": "contacts", "field": "email", "create": [
			{"source": "email", "target": "email"},
			{"source": "customer_name", "target": "name", "default": "Web customer"},
			{"target": "contact_type_ids", "value": ["CUSTOMER"]}]}},
		{"target": "ledger_account_id", "value": "4000", "lookup": {"object": "ledger_accounts", "field": "nominal_code"}}]`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m := mustMapper(t, rules...)
	got, err := m.Apply(raw(`{"name": "#1", "email": " ann@example.com "}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"contact_id":"ann@example.com","ledger_account_id":"4000","reference":"#1"}`; string(got) != want {
		t.Errorf("Apply = %s, want %s (the value looked up, after transforms, in the target field)", got, want)
	}
	lks := m.Lookups()
	if len(lks) != 2 || lks[0].Target != "contact_id" || lks[0].Object != "contacts" || lks[0].Field != "email" || !lks[0].CanCreate() ||
		lks[1].Target != "ledger_account_id" || lks[1].CanCreate() {
		t.Fatalf("Lookups = %+v", lks)
	}
	created, err := lks[0].Create(raw(`{"name": "#1", "email": "ann@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"contact_type_ids":["CUSTOMER"],"email":"ann@example.com","name":"Web customer"}`; string(created) != want {
		t.Errorf("Create = %s, want %s", created, want)
	}
	if _, err := lks[1].Create(raw(`{}`)); err == nil {
		t.Error("Create of a lookup without create rules succeeded")
	}
}

func TestValidateLookups(t *testing.T) {
	t.Parallel()
	str := func(n string) sdk.Field { return sdk.Field{Name: n, Type: sdk.TypeString} }
	orders := sdk.Object{Name: "orders", Readable: true, Fields: []sdk.Field{str("email"), str("name"), {Name: "line_items", Type: sdk.TypeArray}}}
	invoices := sdk.Object{Name: "sales_invoices", Writable: true, Readable: true, Fields: []sdk.Field{str("contact_id"), {Name: "invoice_lines", Type: sdk.TypeArray}, str("reference")}}
	contacts := sdk.Object{Name: "contacts", Readable: true, Writable: true, Fields: []sdk.Field{str("email"), str("name")}}
	ledger := sdk.Object{Name: "ledger_accounts", Readable: true, Fields: []sdk.Field{str("nominal_code"), {Name: "name", Type: sdk.TypeString, ReadOnly: true}}}
	objects := []sdk.Object{invoices, contacts, ledger}
	testCases := map[string]struct{ raw, want string }{
		"valid": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"contacts","field":"email","create":[{"source":"email","target":"email"}]}}]`},
		"unknown object": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"customers","field":"email"}}]`,
			want: `lookup.object "customers" is not an object of the target's connection; objects: sales_invoices, contacts, ledger_accounts`},
		"unknown field": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"contacts","field":"mail"}}]`,
			want: `lookup.field "mail" does not exist in "contacts"; available fields: email, name`},
		"create in read-only object": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"ledger_accounts","field":"nominal_code","create":[{"source":"email","target":"name"}]}}]`,
			want: `lookup.create needs an object that can be written`},
		"create reads a missing field": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"contacts","field":"email","create":[{"source":"phone","target":"name"}]}}]`,
			want: `rule for "contact_id", lookup.create[0]: source field "phone" does not exist in "orders"`},
		"create without the looked-up field": {raw: `[{"source":"email","target":"contact_id","lookup":{"object":"contacts","field":"email","create":[{"source":"name","target":"name"}]}}]`,
			want: `rule for "contact_id": lookup.create must write "email" (the field looked up by), or the record it creates cannot be found again`},
		"items from a string": {raw: `[{"source":"email","target":"invoice_lines","items":[{"source":"a","target":"b"}]}]`,
			want: `source field "email" of "orders" is a string, and items map the elements of an array`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rules, err := mapping.Parse(raw(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if rules, err = mapping.OneWay(rules); err != nil {
				t.Fatal(err)
			}
			err = mapping.Validate(rules, orders, invoices)
			if err == nil {
				err = mapping.ValidateLookups(rules, orders, objects)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid rules: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNumberTransform(t *testing.T) {
	t.Parallel()
	m := mustMapper(t, mapping.Rule{Source: "price", Target: "unit_price", Transform: "trim,number"})
	testCases := map[string]struct {
		from      mapping.Side
		in, want  string
		wantError string
	}{
		"decimal string":      {from: mapping.SideSource, in: `{"price": " 15.00 "}`, want: `{"unit_price":15.00}`},
		"negative":            {from: mapping.SideSource, in: `{"price": "-3.5"}`, want: `{"unit_price":-3.5}`},
		"plus sign":           {from: mapping.SideSource, in: `{"price": "+2"}`, want: `{"unit_price":2}`},
		"already a number":    {from: mapping.SideSource, in: `{"price": 7}`, want: `{"unit_price":7}`},
		"empty passes":        {from: mapping.SideSource, in: `{"price": ""}`, want: `{"unit_price":""}`},
		"not a number":        {from: mapping.SideSource, in: `{"price": "12,50"}`, wantError: `field "price": "12,50" is not a number`},
		"back to the source":  {from: mapping.SideTarget, in: `{"unit_price": 15.00}`, want: `{"price":"15.00"}`},
		"string stays string": {from: mapping.SideTarget, in: `{"unit_price": "x"}`, want: `{"price":"x"}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := m.Map(tc.from, raw(tc.in), nil)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("Map(%s) = %s, %v; want error %q", tc.in, got, err, tc.wantError)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Map(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}
