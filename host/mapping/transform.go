package mapping

import (
	"bytes"
	"fmt"

	"slices"
	"strings"
	"unicode/utf8"
)

// stepKind is one compiled transform.
type stepKind uint8

const (
	stepTrim stepKind = iota + 1
	stepLower
	stepUpper
	stepDate
	stepMap
	stepNumber
)

// compiledRule holds what NewMapper derives from a checked Rule.
type compiledRule struct {
	steps   []stepKind // in the to_target order
	date    *datePattern
	inverse map[string]string // Map read backwards
	value   []byte            // canonical constant, nil for field rules
	def     []byte            // canonical default, nil when none or null
	items   *Mapper           // the item rules, nil for other rules
	create  *Mapper           // lookup.create, nil when none
}

func compileRule(r Rule) (compiledRule, error) {
	var c compiledRule
	for _, name := range splitTransforms(r.Transform) {
		switch name {
		case transformTrim:
			c.steps = append(c.steps, stepTrim)
		case transformLower:
			c.steps = append(c.steps, stepLower)
		case transformUpper:
			c.steps = append(c.steps, stepUpper)
		case transformDate:
			c.steps = append(c.steps, stepDate)
		case transformMap:
			c.steps = append(c.steps, stepMap)
		case transformNumber:
			c.steps = append(c.steps, stepNumber)
		}
	}
	if slices.Contains(c.steps, stepDate) {
		p, err := compileDate(r.Format)
		if err != nil {
			return c, fmt.Errorf("format: %w", err)
		}
		c.date = p
	}
	if len(r.Map) > 0 && r.toSource() {
		c.inverse = make(map[string]string, len(r.Map))
		for k, v := range r.Map {
			c.inverse[v] = k
		}
	}
	var err error
	if c.value, err = canonical(r.Value); err != nil {
		return c, fmt.Errorf("value: %w", err)
	}
	if c.def, err = canonical(r.Default); err != nil {
		return c, fmt.Errorf("default: %w", err)
	}
	if isNull(c.def) {
		c.def = nil
	}
	if c.items, c.create, err = compileNested(r); err != nil {
		return c, err
	}
	return c, nil
}

// flow is one rule as applied in one direction.
type flow struct {
	rule       int    // index in the rules, for messages
	read       string // field read on the from side, "" for constants
	write      string // field written on the other side
	key        []byte // `"write":`
	readSlot   int
	writeSlot  int
	constant   []byte // canonical constant, nil for field rules
	def        []byte // canonical default, nil when none applies
	steps      []stepKind
	date       *datePattern
	mp         map[string]string // Map, or its inverse towards the source
	items      *plan             // the item rules' plan, for items rules
	reverse    bool              // towards the source
	allowEmpty bool
	// echo is the rule's way to the target, for flows towards the source
	// with transforms: the field is left out when the source's current
	// value, mapped to the target, gives the incoming value again.
	echo *flow
}

// plan is the compiled mapping for one direction.
type plan struct {
	flows  []flow // sorted by write
	read   map[string]int
	nread  int
	write  map[string]int
	nwrite int
	size   int // bytes the keys and constants take in the output
}

// newPlan compiles the rules that flow away from side from.
func newPlan(rules []Rule, compiled []compiledRule, from Side) plan {
	var p plan
	for i, r := range rules {
		c := compiled[i]
		f := flow{rule: i, constant: c.value, date: c.date, allowEmpty: r.AllowEmpty}
		switch {
		case from == SideSource && r.toTarget():
			f.read, f.write, f.mp = r.Source, r.Target, r.Map
			f.steps = c.steps
			if c.items != nil {
				f.items = &c.items.plans[0]
			}
			if r.direction() != DirectionToSource {
				f.def = c.def
			}
		case from == SideTarget && r.toSource():
			f.read, f.write, f.mp, f.reverse = r.Target, r.Source, c.inverse, true
			f.steps = slices.Clone(c.steps)
			slices.Reverse(f.steps)
			if r.direction() == DirectionToSource {
				f.def = c.def
			}
			if len(c.steps) > 0 && c.value == nil {
				f.echo = &flow{rule: i, read: r.Source, write: r.Target, steps: c.steps, date: c.date, mp: r.Map}
			}
		default:
			continue
		}
		if f.constant != nil {
			f.read = ""
		}
		p.flows = append(p.flows, f)
	}
	// Sort by the field written; of rules writing the same field the last wins.
	slices.SortStableFunc(p.flows, func(a, b flow) int { return strings.Compare(a.write, b.write) })
	kept := p.flows[:0]
	for i, f := range p.flows {
		if i+1 < len(p.flows) && p.flows[i+1].write == f.write {
			continue
		}
		kept = append(kept, f)
	}
	p.flows = kept
	p.read = make(map[string]int)
	p.write = make(map[string]int, len(p.flows))
	for i := range p.flows {
		f := &p.flows[i]
		if f.read != "" {
			slot, ok := p.read[f.read]
			if !ok {
				slot = len(p.read)
				p.read[f.read] = slot
			}
			f.readSlot = slot
		}
		f.writeSlot = len(p.write)
		p.write[f.write] = f.writeSlot
		f.key = append(appendString(nil, f.write), ':')
		p.size += len(f.key) + len(f.constant) + 1
	}
	p.nread, p.nwrite = len(p.read), len(p.write)
	return p
}

// run maps one record.
func (p *plan) run(fields, current []byte) ([]byte, error) {
	var readBuf, curBuf [slotBuf][]byte
	vals := slots(readBuf[:], p.nread)
	if err := collect(fields, p.read, vals); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	var cur [][]byte
	if !absent(current) {
		cur = slots(curBuf[:], p.nwrite)
		if err := collect(current, p.write, cur); err != nil {
			return nil, fmt.Errorf("mapping: current record of the other side: %w", err)
		}
	}
	out := make([]byte, 0, len(fields)+p.size+2)
	out = append(out, '{')
	for i := range p.flows {
		f := &p.flows[i]
		var raw, had []byte
		if cur != nil {
			had = cur[f.writeSlot]
		}
		if f.constant != nil {
			raw = f.constant
		} else {
			raw = vals[f.readSlot]
			if (raw == nil || isNull(raw)) && f.def != nil {
				raw = f.def
			}
			if raw == nil {
				continue
			}
		}
		if f.echo != nil && had != nil && f.echo.maps(had, raw) {
			continue
		}
		if f.items != nil && !isNull(raw) {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, f.key...)
			var err error
			if out, err = f.mapItems(out, raw); err != nil {
				return nil, err
			}
			continue
		}
		v := value{raw: raw}
		if len(f.steps) > 0 {
			var err error
			if v, err = f.transform(raw, had); err != nil {
				return nil, err
			}
		}
		if f.constant == nil && !f.allowEmpty && v.empty() && !isEmpty(had) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, f.key...)
		out = v.append(out)
	}
	return append(out, '}'), nil
}

// maps reports whether the forward flow turns had into the value raw.
func (f *flow) maps(had, raw []byte) bool {
	v, err := f.transform(had, nil)
	if err != nil {
		return false
	}
	var a, b [128]byte
	return bytes.Equal(v.append(a[:0]), appendCanonical(b[:0], raw))
}

// value is a value being transformed: a decoded string, or raw JSON.
type value struct {
	raw   []byte
	str   string
	isStr bool
}

func (v value) empty() bool {
	if v.isStr {
		return v.str == ""
	}
	return isEmpty(v.raw)
}

func (v value) append(dst []byte) []byte {
	if v.isStr {
		return appendString(dst, v.str)
	}
	return appendCanonical(dst, v.raw)
}

// mapKey is the text map looks a value up by: strings, numbers and booleans.
func (v value) mapKey() ([]byte, bool) {
	if v.isStr || len(v.raw) == 0 {
		return nil, false
	}
	switch c := v.raw[0]; {
	case c == '-' || isDigit(c), c == 't', c == 'f':
		return v.raw, true
	}
	return nil, false
}

// transform applies the flow's transforms to raw; had is the other side's
// current value of the field written (nil when unknown).
func (f *flow) transform(raw, had []byte) (value, error) {
	v := value{raw: raw}
	if raw[0] == '"' {
		v = value{str: unquote(raw), isStr: true}
	}
	for _, step := range f.steps {
		switch step {
		case stepTrim:
			if v.isStr {
				v.str = strings.TrimSpace(v.str)
			}
		case stepLower:
			if v.isStr {
				v.str = strings.ToLower(v.str)
			}
		case stepUpper:
			if v.isStr {
				v.str = strings.ToUpper(v.str)
			}
		case stepMap:
			if v.isStr {
				if to, ok := f.mp[v.str]; ok {
					v = value{str: to, isStr: true}
				}
			} else if key, ok := v.mapKey(); ok {
				if to, ok := f.mp[string(key)]; ok {
					v = value{str: to, isStr: true}
				}
			}
		case stepDate:
			var err error
			if v, err = f.convertDate(v, had); err != nil {
				return value{}, err
			}
		case stepNumber:
			var err error
			if v, err = f.convertNumber(v); err != nil {
				return value{}, err
			}
		}
	}
	return v, nil
}

// convertDate is the format_date transform: towards the target it reads a
// date flexibly and writes it with the rule's pattern; towards the source it
// reads the pattern (or flexibly) and writes the date the way the source's
// current value is written, or as an RFC 3339 time (a plain date for patterns
// without a time of day) when that is unknown. Empty values pass through.
func (f *flow) convertDate(v value, had []byte) (value, error) {
	if (v.isStr && strings.TrimSpace(v.str) == "") || (!v.isStr && isNull(v.raw)) {
		return v, nil
	}
	if !f.reverse {
		t, _, ok := parseFlexible(v)
		if !ok {
			t, ok = f.date.parse(v)
		}
		if !ok {
			return value{}, f.notDate(v)
		}
		return f.date.format(t), nil
	}
	t, ok := f.date.parse(v)
	if !ok {
		t, _, ok = parseFlexible(v)
	}
	if !ok {
		return value{}, f.notDate(v)
	}
	style := f.date.defaultStyle()
	if !isEmpty(had) {
		hv := value{raw: had}
		if had[0] == '"' {
			hv = value{str: unquote(had), isStr: true}
		}
		if _, st, ok := parseFlexible(hv); ok {
			style = st
		}
	}
	return formatStyle(t, style), nil
}

// convertNumber is the number transform: towards the target a decimal
// string becomes a JSON number with the same digits; towards the source a
// number becomes a string. Empty values and values already of the wanted
// kind pass through.
func (f *flow) convertNumber(v value) (value, error) {
	if f.reverse {
		if !v.isStr && len(v.raw) > 0 && isNumberText(v.raw) {
			return value{str: string(v.raw), isStr: true}, nil
		}
		return v, nil
	}
	if !v.isStr {
		return v, nil
	}
	s := strings.TrimSpace(v.str)
	if s == "" {
		return v, nil
	}
	s = strings.TrimPrefix(s, "+")
	if !isNumberText([]byte(s)) {
		field := f.read
		if field == "" {
			field = f.write
		}
		return value{}, &Error{Index: f.rule, Field: field, Message: fmt.Sprintf("field %q: %q is not a number: the number transform reads decimals such as 15.00 or -3.5", field, short([]byte(v.str)))}
	}
	return value{raw: []byte(s)}, nil
}

func (f *flow) notDate(v value) error {
	field := f.read
	if field == "" {
		field = f.write
	}
	shown := string(v.append(nil))
	if utf8.RuneCountInString(shown) > 60 {
		shown = string([]rune(shown)[:57]) + "..."
	}
	return &Error{Index: f.rule, Field: field, Message: fmt.Sprintf(
		"field %q: %s is not a date: expected an RFC 3339 time such as 2026-01-02T15:04:05Z, a date such as 2026-01-02, unix seconds, or the format %q",
		field, shown, f.date.text)}
}
