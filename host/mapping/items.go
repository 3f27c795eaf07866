package mapping

// Nested rules: items and lookups.
//
// # Items
//
// A rule with Items maps a source array of objects (an order's line_items)
// into a target array (an invoice's invoice_lines): each element is mapped
// with the item rules as if it were a record, and the results are written,
// in order, as the target array:
//
//	{"source": "line_items", "target": "invoice_lines", "items": [
//	    {"source": "name", "target": "description"},
//	    {"source": "quantity", "target": "quantity"},
//	    {"source": "price", "target": "unit_price"},
//	    {"target": "ledger_account_id", "value": "9a994b92"}]}
//
// Item rules take transforms, defaults, constants and items of their own;
// they flow to the target only, so the array rule does too.
//
// # Lookups
//
// A rule with Lookup writes the id of a record of another object of the
// target's connection instead of the value it reads: the value (after the
// rule's transforms) is looked up in Lookup.Field of Lookup.Object, trimmed
// and compared without case, like a matching key. When no record has it and
// Lookup.Create is given, the record is created first from the source record
// with the Create rules; otherwise the record fails with a message naming
// the value. Two records with the value fail it too (ambiguous). The engine
// does the lookups (they need the connector); Map writes the value looked up
// in the target field, and Lookups lists the rules.
//
//	{"source": "email", "target": "contact_id", "transform": "trim",
//	 "lookup": {"object": "contacts", "field": "email", "create": [
//	     {"source": "email", "target": "email"},
//	     {"source": "customer_name", "target": "name", "default": "Shopify customer"},
//	     {"target": "contact_type_ids", "value": ["CUSTOMER"]}]}}

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Lookup finds (or creates) a record of another object of the target's
// connection and writes its id.
type Lookup struct {
	// Object is the object of the target's connection looked up in.
	Object string `json:"object"`
	// Field is the field of Object compared with the value read.
	Field string `json:"field"`
	// Create maps the source record into a new Object record, created when
	// no record has the value. Without it a missing value fails the record.
	Create []Rule `json:"create,omitempty"`
}

// oneWayOnly reports whether the rule can only flow to the target.
func (r Rule) oneWayOnly() bool { return len(r.Items) > 0 || r.Lookup != nil }

// normalize fills in the directions of a parsed rule and of its nested rules
// (which default to "to_target").
func normalize(r *Rule) {
	r.Direction = r.direction()
	for k := range r.Items {
		normalizeSub(&r.Items[k])
	}
	if r.Lookup != nil {
		for k := range r.Lookup.Create {
			normalizeSub(&r.Lookup.Create[k])
		}
	}
}

func normalizeSub(r *Rule) {
	if r.Direction == "" {
		r.Direction = DirectionToTarget
	}
	normalize(r)
}

// checkNested checks a rule's items and lookup.
func checkNested(i int, r Rule) *Error {
	name := r.name()
	fail := func(format string, args ...any) *Error {
		return &Error{Index: i, Field: name, Message: fmt.Sprintf(format, args...)}
	}
	if r.Items != nil && len(r.Items) == 0 {
		return fail("rule for %q has an empty items list: give the rules that map each element, such as {\"source\": \"name\", \"target\": \"description\"}", name)
	}
	if !r.oneWayOnly() {
		return nil
	}
	what := "items"
	if r.Lookup != nil {
		what = "a lookup"
	}
	if r.direction() != DirectionToTarget {
		return fail("rule for %q has %s, which flows only to the target: set direction \"to_target\" or leave direction out", name, what)
	}
	if len(r.Items) > 0 {
		switch {
		case r.Lookup != nil:
			return fail("rule for %q has both items and a lookup: keep one", name)
		case r.constant():
			return fail("rule for %q has items and a value: items map the elements of a source array, so name it in \"source\" instead of giving a value", name)
		case r.Transform != "" || len(r.Default) > 0:
			return fail("rule for %q has items: put transforms and defaults on the item rules, not on the array rule", name)
		}
		if e := checkSubRules(r.Items); e != nil {
			return fail("rule for %q, items[%d]: %s", name, e.Index, e.Message)
		}
		return nil
	}
	lk := r.Lookup
	switch {
	case strings.TrimSpace(lk.Object) == "":
		return fail("rule for %q: lookup.object is required: the object of the target's connection to look the value up in, such as \"contacts\"", name)
	case strings.TrimSpace(lk.Field) == "":
		return fail("rule for %q: lookup.field is required: the field of %q whose value equals the value read, such as \"email\"", name, lk.Object)
	}
	if lk.Create != nil && len(lk.Create) == 0 {
		return fail("rule for %q: lookup.create is empty: give the rules that fill a new %q record, or leave create out", name, lk.Object)
	}
	if e := checkSubRules(lk.Create); e != nil {
		return fail("rule for %q, lookup.create[%d]: %s", name, e.Index, e.Message)
	}
	return nil
}

// checkSubRules checks nested rules (items, lookup.create): each on its own,
// flowing to the target, no lookups, no field written twice.
func checkSubRules(rules []Rule) *Error {
	targets := make(map[string]int, len(rules))
	for j, sub := range rules {
		if sub.Direction != "" && sub.Direction != DirectionToTarget {
			return &Error{Index: j, Field: sub.name(), Message: fmt.Sprintf("rule for %q: nested rules flow only to the target: remove direction %q", sub.name(), sub.Direction)}
		}
		if sub.Lookup != nil {
			return &Error{Index: j, Field: sub.name(), Message: fmt.Sprintf("rule for %q: a lookup cannot be nested in items or lookup.create", sub.name())}
		}
		normalizeSub(&sub)
		if e := checkRule(j, sub); e != nil {
			return e
		}
		if k, dup := targets[sub.Target]; dup {
			return &Error{Index: j, Field: sub.Target, Message: fmt.Sprintf("field %q is already written by rule %d", sub.Target, k)}
		}
		targets[sub.Target] = j
	}
	return nil
}

// validateItems checks that an items rule maps an array into an array.
func validateItems(i int, r Rule, source, target sdk.Object) error {
	if len(r.Items) == 0 {
		return nil
	}
	if f, ok := source.Field(r.Source); ok && f.Type != "" && f.Type != sdk.TypeArray {
		return &Error{Index: i, Field: r.Source, Message: fmt.Sprintf("source field %q of %q is a %s, and items map the elements of an array (such as line_items)", r.Source, source.Name, f.Type)}
	}
	if f, ok := target.Field(r.Target); ok && f.Type != "" && f.Type != sdk.TypeArray {
		return &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q of %q is a %s, and items write an array (such as invoice_lines)", r.Target, target.Name, f.Type)}
	}
	return nil
}

// ValidateLookups checks the lookups of rules against the objects of the
// target's connection (objects) and the source object: the object looked up
// in must exist and be readable, with the field; with create it must be
// writable and the create rules must be valid from source to it.
func ValidateLookups(rules []Rule, source sdk.Object, objects []sdk.Object) error {
	for i, r := range rules {
		if r.Lookup == nil {
			continue
		}
		lk, name := r.Lookup, r.name()
		fail := func(format string, args ...any) error {
			return &Error{Index: i, Field: name, Message: fmt.Sprintf(format, args...)}
		}
		var obj sdk.Object
		found := false
		names := make([]string, 0, len(objects))
		for _, o := range objects {
			names = append(names, o.Name)
			if o.Name == lk.Object {
				obj, found = o, true
			}
		}
		if !found {
			return fail("rule for %q: lookup.object %q is not an object of the target's connection; objects: %s", name, lk.Object, strings.Join(names, ", "))
		}
		if !obj.Readable {
			return fail("rule for %q: lookup.object %q cannot be read, so values cannot be looked up in it", name, lk.Object)
		}
		if _, ok := obj.Field(lk.Field); !ok {
			return fail("rule for %q: lookup.field %q does not exist in %q; available fields: %s", name, lk.Field, lk.Object, fieldNames(obj))
		}
		if len(lk.Create) == 0 {
			continue
		}
		if !obj.Writable {
			return fail("rule for %q: lookup.create needs an object that can be written, and %q cannot be: remove create", name, lk.Object)
		}
		if err := Validate(lk.Create, source, obj); err != nil {
			if e, ok := err.(*Error); ok {
				return fail("rule for %q, lookup.create[%d]: %s", name, e.Index, e.Message)
			}
			return err
		}
		// The created record is indexed under the value looked up: unless
		// create writes lookup.field, the next read of the object finds it
		// without that value and the next record creates another.
		writes := false
		for _, sub := range lk.Create {
			if sub.name() == lk.Field {
				writes = true
				break
			}
		}
		if !writes {
			return fail("rule for %q: lookup.create must write %q (the field looked up by), or the record it creates cannot be found again", name, lk.Field)
		}
	}
	return nil
}

// LookupRule is a compiled lookup: after Map, the target field Target holds
// the value to look up in Field of Object.
type LookupRule struct {
	Rule   int
	Target string
	Object string
	Field  string
	create *Mapper
}

// CanCreate reports whether a missing record is created.
func (l LookupRule) CanCreate() bool { return l.create != nil }

// Create maps a source record into the fields of a new Object record.
func (l LookupRule) Create(fields json.RawMessage) (json.RawMessage, error) {
	if l.create == nil {
		return nil, fmt.Errorf("mapping: lookup of %s.%s creates nothing", l.Object, l.Field)
	}
	return l.create.Apply(fields)
}

// Lookups lists the lookup rules, in rule order.
func (m *Mapper) Lookups() []LookupRule { return m.lookups }

// compileNested compiles a rule's items and lookup.create into mappers.
func compileNested(r Rule) (items, create *Mapper, err error) {
	if len(r.Items) > 0 {
		if items, err = NewMapper(subRules(r.Items)); err != nil {
			return nil, nil, fmt.Errorf("items: %w", err)
		}
	}
	if r.Lookup != nil && len(r.Lookup.Create) > 0 {
		if create, err = NewMapper(subRules(r.Lookup.Create)); err != nil {
			return nil, nil, fmt.Errorf("lookup.create: %w", err)
		}
	}
	return items, create, nil
}

func subRules(rules []Rule) []Rule {
	out := make([]Rule, len(rules))
	copy(out, rules)
	for k := range out {
		normalizeSub(&out[k])
	}
	return out
}

// mapItems maps the source array raw with the item rules.
func (f *flow) mapItems(dst, raw []byte) ([]byte, error) {
	var elems []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, &Error{Index: f.rule, Field: f.read, Message: fmt.Sprintf("field %q must be an array of objects for its items rules, not %s", f.read, short(raw))}
	}
	dst = append(dst, '[')
	for k, e := range elems {
		if k > 0 {
			dst = append(dst, ',')
		}
		if len(e) == 0 || e[0] != '{' {
			return nil, &Error{Index: f.rule, Field: f.read, Message: fmt.Sprintf("%s[%d] must be an object for the items rules, not %s", f.read, k, short(e))}
		}
		out, err := f.items.run(e, nil)
		if err != nil {
			if me, ok := err.(*Error); ok {
				return nil, &Error{Index: f.rule, Field: f.read, Message: fmt.Sprintf("%s[%d]: %s", f.read, k, me.Message)}
			}
			return nil, fmt.Errorf("%s[%d]: %w", f.read, k, err)
		}
		dst = append(dst, out...)
	}
	return append(dst, ']'), nil
}

func short(raw []byte) string {
	s := string(raw)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
