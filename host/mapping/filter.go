package mapping

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Filter selects which records sync. Its JSON form is {"all": [conditions]}
// (every condition holds) or {"any": [conditions]} (at least one holds); a
// condition is
//
//	{"side": "source", "field": "status", "op": "eq", "value": "active"}
//
// where side is "source" (the default) or "target" and op is one of:
//
//	eq, ne           equal / not equal to value (a string, number, boolean or
//	                 null; eq null also holds for a missing field)
//	in, not_in       equal / equal to none of value, an array of those
//	exists           the field holds a value: not missing, null or ""
//	not_exists       the field is missing, null or ""
//	contains         a string field contains value (a string), ignoring case;
//	                 an array field holds an element equal to it, ignoring case
//	starts_with      a string field starts with value, ignoring case
//	gt, gte, lt, lte greater / less than value, a number or a string
//
// Numbers compare numerically and exactly (1.50 eq 1.5), also when the
// field holds the number as a string ("12.50" gt 10). Strings compare
// case-sensitively except with contains and starts_with; with gt, gte, lt
// and lte two dates (RFC 3339, 2026-01-02, 2026-01-02 15:04:05) compare as
// times, other strings byte by byte. Values of different types are never
// equal and never ordered: a condition comparing them does not hold (ne and
// not_in do).
//
// An "any" filter must keep its conditions on one side: a record is checked
// on its own, without the record it is linked to on the other side.
type Filter struct {
	any    bool
	conds  []condition
	fields [2]map[string]int // by side - 1: field -> slot
}

// Filter operators.
const (
	opEq         = "eq"
	opNe         = "ne"
	opIn         = "in"
	opNotIn      = "not_in"
	opExists     = "exists"
	opNotExists  = "not_exists"
	opContains   = "contains"
	opStartsWith = "starts_with"
	opGt         = "gt"
	opGte        = "gte"
	opLt         = "lt"
	opLte        = "lte"
	opsValid     = "use eq, ne, in, not_in, exists, not_exists, contains, starts_with, gt, gte, lt or lte"
)

type condition struct {
	side  Side
	field string
	op    string
	slot  int
	val   operand   // every op but exists, not_exists, in and not_in
	list  []operand // in, not_in
}

// operand is a condition value, decoded once.
type operand struct {
	raw    []byte // canonical JSON
	kind   byte   // 's' string, 'n' number, 'b' boolean, 'z' null
	str    string
	lower  string
	num    decimal
	time   time.Time
	isTime bool
}

// ParseFilter decodes a filter. A missing or null raw means every record
// syncs: nil, nil.
func ParseFilter(raw json.RawMessage) (*Filter, error) {
	if absent(raw) {
		return nil, nil
	}
	fail := func(i int, field, format string, args ...any) error {
		return &Error{Part: "filter", Index: i, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	var top struct {
		All json.RawMessage `json:"all"`
		Any json.RawMessage `json:"any"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, fail(-1, "", "filter must be {\"all\": [conditions]} or {\"any\": [conditions]}: %s", err)
	}
	f := &Filter{}
	list := top.All
	switch hasAll, hasAny := !absent(top.All), !absent(top.Any); {
	case hasAll && hasAny:
		return nil, fail(-1, "", "filter has both \"all\" and \"any\": keep one")
	case !hasAll && !hasAny:
		return nil, fail(-1, "", "filter needs \"all\" or \"any\" with at least one condition, such as {\"all\": [{\"field\": \"status\", \"op\": \"eq\", \"value\": \"active\"}]}")
	case hasAny:
		f.any, list = true, top.Any
	}
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, fail(-1, "", "filter conditions must be an array of {side, field, op, value} objects: %s", err)
	}
	if len(items) == 0 {
		return nil, fail(-1, "", "filter has no conditions: give at least one, or remove the filter so every record syncs")
	}
	f.fields = [2]map[string]int{{}, {}}
	for i, item := range items {
		c, err := parseCondition(i, item)
		if err != nil {
			return nil, err
		}
		idx := f.fields[c.side-1]
		slot, ok := idx[c.field]
		if !ok {
			slot = len(idx)
			idx[c.field] = slot
		}
		c.slot = slot
		f.conds = append(f.conds, c)
	}
	if f.any && len(f.fields[0]) > 0 && len(f.fields[1]) > 0 {
		return nil, fail(-1, "", "an \"any\" filter cannot mix source and target conditions (records are checked one side at a time): keep its conditions on one side, or use \"all\"")
	}
	return f, nil
}

func parseCondition(i int, item json.RawMessage) (condition, error) {
	var rc struct {
		Side  string          `json:"side"`
		Field string          `json:"field"`
		Op    string          `json:"op"`
		Value json.RawMessage `json:"value"`
	}
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return condition{}, &Error{Part: "filter", Index: i, Message: "a condition must be an object {side, field, op, value}: " + err.Error()}
	}
	fail := func(format string, args ...any) error {
		return &Error{Part: "filter", Index: i, Field: rc.Field, Message: fmt.Sprintf(format, args...)}
	}
	c := condition{field: rc.Field, op: rc.Op}
	switch rc.Side {
	case "", "source":
		c.side = SideSource
	case "target":
		c.side = SideTarget
	default:
		return c, fail("side %q is not valid: use \"source\" or \"target\"", rc.Side)
	}
	if rc.Field == "" {
		return c, fail("condition needs a field: the %s field it tests", c.side)
	}
	hasValue := rc.Value != nil
	example := fmt.Sprintf("such as {\"field\": %q, \"op\": %q, \"value\": \"active\"}", rc.Field, rc.Op)
	switch rc.Op {
	case opExists, opNotExists:
		if hasValue {
			return c, fail("op %q on %q takes no value: remove value", rc.Op, rc.Field)
		}
	case opEq, opNe:
		if !hasValue {
			return c, fail("op %q on %q needs a value, %s", rc.Op, rc.Field, example)
		}
		o, kind := newOperand(rc.Value)
		if kind != "" {
			return c, fail("op %q on %q compares with a string, number, boolean or null, not %s: use \"in\" to compare with a list", rc.Op, rc.Field, kind)
		}
		c.val = o
	case opIn, opNotIn:
		var elems []json.RawMessage
		if !hasValue || json.Unmarshal(rc.Value, &elems) != nil || elems == nil {
			return c, fail("op %q on %q needs an array value, such as [\"active\", \"trial\"]", rc.Op, rc.Field)
		}
		if len(elems) == 0 {
			return c, fail("op %q on %q needs at least one value in its array", rc.Op, rc.Field)
		}
		for j, e := range elems {
			o, kind := newOperand(e)
			if kind != "" {
				return c, fail("op %q on %q: value[%d] is %s: list only strings, numbers, booleans or null", rc.Op, rc.Field, j, kind)
			}
			c.list = append(c.list, o)
		}
	case opContains, opStartsWith:
		o, _ := newOperand(rc.Value)
		if !hasValue || o.kind != 's' || o.str == "" {
			return c, fail("op %q on %q needs a non-empty string value, %s", rc.Op, rc.Field, example)
		}
		c.val = o
	case opGt, opGte, opLt, opLte:
		o, _ := newOperand(rc.Value)
		if !hasValue || (o.kind != 's' && o.kind != 'n') {
			return c, fail("op %q on %q needs a number or a string value, such as 100 or \"2026-01-01T00:00:00Z\"", rc.Op, rc.Field)
		}
		c.val = o
	case "":
		return c, fail("condition on %q needs an op: %s", rc.Field, opsValid)
	default:
		return c, fail("unknown op %q on %q: %s", rc.Op, rc.Field, opsValid)
	}
	return c, nil
}

// newOperand decodes a condition value; kind names its type when it is not
// a scalar ("an object", "an array").
func newOperand(raw json.RawMessage) (operand, string) {
	c, err := canonical(raw)
	if err != nil || len(c) == 0 {
		return operand{}, "missing"
	}
	o := operand{raw: c}
	switch ch := c[0]; {
	case ch == '"':
		o.kind, o.str = 's', unquote(c)
		o.lower = strings.ToLower(o.str)
		o.time, _, o.isTime = parseFlexible(value{str: o.str, isStr: true})
	case ch == '-' || isDigit(ch):
		o.kind = 'n'
		o.num, _ = parseDecimal(string(c))
	case ch == 't' || ch == 'f':
		o.kind = 'b'
	case ch == 'n':
		o.kind = 'z'
	case ch == '{':
		return o, "an object"
	case ch == '[':
		return o, "an array"
	}
	return o, ""
}

// Validate checks that every condition's field exists on its side.
func (f *Filter) Validate(source, target sdk.Object) error {
	if f == nil {
		return nil
	}
	for i, c := range f.conds {
		obj := source
		if c.side == SideTarget {
			obj = target
		}
		if _, ok := obj.Field(c.field); !ok {
			return &Error{Part: "filter", Index: i, Field: c.field, Message: fmt.Sprintf("%s field %q does not exist in %q; available fields: %s", c.side, c.field, obj.Name, fieldNames(obj))}
		}
	}
	return nil
}

// Match reports whether a record of side passes the filter. Conditions about
// the other side are ignored (they count as holding), so an "all" filter
// passes a linked pair when both sides pass. A nil Filter matches every
// record; a record that is not a JSON object matches no filter that has
// conditions on its side.
func (f *Filter) Match(side Side, fields json.RawMessage) bool {
	if f == nil {
		return true
	}
	if !side.valid() {
		return false
	}
	idx := f.fields[side-1]
	if len(idx) == 0 {
		return true
	}
	var buf [slotBuf][]byte
	vals := slots(buf[:], len(idx))
	if err := collect(fields, idx, vals); err != nil {
		return false
	}
	for i := range f.conds {
		c := &f.conds[i]
		if c.side != side {
			continue
		}
		ok := c.holds(vals[c.slot])
		if f.any && ok {
			return true
		}
		if !f.any && !ok {
			return false
		}
	}
	return !f.any
}

// holds evaluates the condition on the raw field value (nil when missing).
func (c *condition) holds(raw []byte) bool {
	switch c.op {
	case opExists:
		return !isEmpty(raw)
	case opNotExists:
		return isEmpty(raw)
	case opEq:
		return equal(raw, &c.val)
	case opNe:
		return !equal(raw, &c.val)
	case opIn, opNotIn:
		in := false
		for j := range c.list {
			if equal(raw, &c.list[j]) {
				in = true
				break
			}
		}
		return in == (c.op == opIn)
	case opContains:
		if raw == nil {
			return false
		}
		switch raw[0] {
		case '"':
			return strings.Contains(strings.ToLower(unquote(raw)), c.val.lower)
		case '[':
			return arrayHolds(raw, c.val.str)
		}
		return false
	case opStartsWith:
		return raw != nil && raw[0] == '"' && strings.HasPrefix(strings.ToLower(unquote(raw)), c.val.lower)
	case opGt, opGte, opLt, opLte:
		r, ok := order(raw, &c.val)
		if !ok {
			return false
		}
		switch c.op {
		case opGt:
			return r > 0
		case opGte:
			return r >= 0
		case opLt:
			return r < 0
		}
		return r <= 0
	}
	return false
}

// arrayHolds reports whether the JSON array raw has a string element equal
// to s, ignoring case.
func arrayHolds(raw []byte, s string) bool {
	i := skipSpace(raw, 1)
	for n := 0; i < len(raw) && raw[i] != ']'; n++ {
		if n > 0 {
			i = skipSpace(raw, i+1)
		}
		end, err := scanValue(raw, i, 1)
		if err != nil {
			return false
		}
		if raw[i] == '"' && strings.EqualFold(unquote(raw[i:end]), s) {
			return true
		}
		i = skipSpace(raw, end)
	}
	return false
}

// equal reports whether the field value raw equals the operand.
func equal(raw []byte, o *operand) bool {
	if o.kind == 'z' {
		return raw == nil || isNull(raw)
	}
	if raw == nil || isNull(raw) {
		return false
	}
	switch o.kind {
	case 's':
		if raw[0] != '"' {
			return false
		}
		content := raw[1 : len(raw)-1]
		if bytes.IndexByte(content, '\\') < 0 {
			return string(content) == o.str
		}
		return unquote(raw) == o.str
	case 'n':
		d, ok := numberOf(raw)
		return ok && d.cmp(o.num) == 0
	case 'b':
		return string(raw) == string(o.raw)
	}
	return false
}

// order compares the field value raw with the operand: numbers (also
// numbers held as strings) numerically, dates as times, other strings byte
// by byte. ok is false when they cannot be ordered.
func order(raw []byte, o *operand) (int, bool) {
	if raw == nil || isNull(raw) {
		return 0, false
	}
	switch o.kind {
	case 'n':
		d, ok := numberOf(raw)
		if !ok {
			return 0, false
		}
		return d.cmp(o.num), true
	case 's':
		if raw[0] != '"' {
			return 0, false
		}
		s := unquote(raw)
		if o.isTime {
			if t, _, ok := parseFlexible(value{str: s, isStr: true}); ok {
				return t.Compare(o.time), true
			}
		}
		return strings.Compare(s, o.str), true
	}
	return 0, false
}

// numberOf reads a JSON number, or a string holding one.
func numberOf(raw []byte) (decimal, bool) {
	if raw[0] == '"' {
		return parseDecimal(strings.TrimSpace(unquote(raw)))
	}
	if raw[0] == '-' || isDigit(raw[0]) {
		return parseDecimal(string(raw))
	}
	return decimal{}, false
}

// decimal is an exact JSON number: sign × 0.DIGITS × 10^exp, where DIGITS is
// ip followed by fp, without leading or trailing zeros (both empty for 0).
type decimal struct {
	neg    bool
	ip, fp string
	exp    int
}

// parseDecimal reads s, which must be JSON number text.
func parseDecimal(s string) (decimal, bool) {
	if !isNumberText([]byte(s)) {
		return decimal{}, false
	}
	var d decimal
	if s[0] == '-' {
		d.neg, s = true, s[1:]
	}
	e := 0
	if k := strings.IndexAny(s, "eE"); k >= 0 {
		exp := strings.TrimPrefix(s[k+1:], "+")
		if len(exp) > 10 {
			return decimal{}, false
		}
		v, err := strconv.Atoi(exp)
		if err != nil {
			return decimal{}, false
		}
		e, s = v, s[:k]
	}
	d.ip = s
	if k := strings.IndexByte(s, '.'); k >= 0 {
		d.ip, d.fp = s[:k], s[k+1:]
	}
	d.ip = strings.TrimLeft(d.ip, "0")
	d.exp = len(d.ip) + e
	if d.ip == "" {
		n := len(d.fp)
		d.fp = strings.TrimLeft(d.fp, "0")
		d.exp -= n - len(d.fp)
	}
	d.fp = strings.TrimRight(d.fp, "0")
	if d.fp == "" {
		d.ip = strings.TrimRight(d.ip, "0")
	}
	if d.ip == "" && d.fp == "" {
		return decimal{}, true
	}
	return d, true
}

func (d decimal) zero() bool { return d.ip == "" && d.fp == "" }

func (d decimal) digit(i int) byte {
	switch {
	case i < len(d.ip):
		return d.ip[i]
	case i-len(d.ip) < len(d.fp):
		return d.fp[i-len(d.ip)]
	}
	return '0'
}

func (d decimal) sign() int {
	switch {
	case d.zero():
		return 0
	case d.neg:
		return -1
	}
	return 1
}

// cmp compares d and o exactly: -1, 0 or +1.
func (d decimal) cmp(o decimal) int {
	ds, os := d.sign(), o.sign()
	if ds != os || ds == 0 {
		return cmp.Compare(ds, os)
	}
	r := cmp.Compare(d.exp, o.exp)
	if r == 0 {
		n := max(len(d.ip)+len(d.fp), len(o.ip)+len(o.fp))
		for i := 0; i < n && r == 0; i++ {
			r = cmp.Compare(d.digit(i), o.digit(i))
		}
	}
	return r * ds
}
