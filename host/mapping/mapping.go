// Package mapping owns field mapping: the rules a workflow uses to turn a
// record of one side (source or target) into the fields written to the other
// side, their validation against the objects the connectors describe, their
// application in both directions, and the other per-record decisions that
// follow from them: the projection and hash used to detect changes, the
// matching key of the first (historical) run and the filter that selects
// which records sync.
//
// # Rules
//
// A Rule maps one source field to one target field, or writes a constant.
// Direction says which way it flows: "both" (the default), "to_target" or
// "to_source". A constant (value) rule flows one way only: "to_target" (the
// default: Target names the field written) or "to_source" (Source names the
// field written, Target is left out).
//
// Transforms (Rule.Transform, a comma-separated list applied in order) work
// on the value read: trim, lower and upper change strings; number turns a
// decimal string ("15.00") into a JSON number, keeping its digits (and back
// into a string towards the source); format_date
// rewrites a date with Rule.Format (the pattern language is described
// below); map replaces values listed in Rule.Map.
// Transforms always describe the way to the target: in the to_source
// direction the list is applied backwards, map uses the inverse of Rule.Map
// and format_date reads dates written with Rule.Format and writes them back
// the way the source writes them.
//
// # Empty values and write-backs
//
// A value is empty when it is null, "" or missing. Missing fields are never
// written (never as null), unless the rule has a default. A rule without
// AllowEmpty does not let an empty value (null or "", after default and
// transforms) overwrite a non-empty value the other side holds; constants are
// written as given.
//
// Towards the source, a field is also left out when the source's current
// value already maps to the incoming target value: transforms can lose
// information (lower, trim, a date without its time), and the target's
// "ann@example.com" must not overwrite the source's "Ann@Example.com" just
// because another field of the contact changed.
//
// # Date patterns
//
// Rule.Format (for format_date) is written the way customers know date
// patterns from spreadsheets and JavaScript date libraries, not as Go
// layouts:
//
//	YYYY  year, 4 digits          YY    year, 2 digits (69-99 -> 19xx, 00-68 -> 20xx)
//	MMMM  month name (January)    MMM   short month name (Jan)
//	MM    month 01-12             M     month 1-12
//	DD    day of month 01-31      D     day of month 1-31
//	dddd  weekday name (Monday)   ddd   short weekday name (Mon)
//	HH    hour 00-23              H     hour 0-23
//	hh    hour 01-12              h     hour 1-12 (use with A or a)
//	A     AM/PM                   a     am/pm
//	mm    minute 00-59            m     minute 0-59
//	ss    second 00-59            s     second 0-59
//	S...  fraction of a second, one S per digit (SSS = milliseconds, up to 9)
//	Z     time zone: "Z" for UTC, otherwise +hh:mm (RFC 3339 style)
//	ZZ    time zone as +hhmm
//
// The letter T and every character that is not an ASCII letter (- / : . ,
// space...) are copied as they are; put other literal text in square
// brackets, e.g. "DD/MM/YYYY [at] HH:mm". Any other letter is rejected, so a
// Java-style "yyyy-MM-dd" is caught when the mapping is saved rather than
// producing odd dates. Two whole-pattern keywords write JSON numbers instead
// of text: "unix" (seconds since 1970-01-01 UTC) and "unix_ms"
// (milliseconds). Examples: "YYYY-MM-DD", "DD/MM/YYYY",
// "YYYY-MM-DDTHH:mm:ssZ", "MMM D, YYYY h:mm A", "unix". Month and weekday
// names are English and read case-insensitively.
//
// Towards the target, format_date reads dates flexibly: RFC 3339 with or
// without fractional seconds ("2026-01-02T15:04:05Z",
// "2026-01-02T15:04:05.123+01:00"), "2026-01-02", "2026-01-02 15:04:05",
// "2026-01-02T15:04:05", "2026-01-02 15:04:05+01:00" (times without a zone
// are UTC), JSON numbers as unix seconds, and finally the rule's own
// pattern. Times keep the offset they were given in:
// "2026-01-02T23:30:00-05:00" written with "YYYY-MM-DD" is "2026-01-02".
//
// Towards the source it reads the rule's pattern (then the flexible forms)
// and writes the date the way the source's current value is written (one of
// the flexible forms above, or a unix number); when that is unknown, as
// "2026-01-02" for patterns without a time of day and as RFC 3339 otherwise.
// A value that is not a date fails the record with an *Error naming the
// field; "" and null pass through.
package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Directions a Rule may flow in.
const (
	DirectionBoth     = "both"
	DirectionToTarget = "to_target"
	DirectionToSource = "to_source"
)

// Rule maps one field. Either Source names the source field it reads, or
// Value gives a constant; Target names the target field.
type Rule struct {
	// Source is the source field: read for the target, written by the
	// to_source direction. For a constant with direction "to_source" it is
	// the field the constant is written to.
	Source string `json:"source,omitempty"`
	// Target is the target field (empty only for a "to_source" constant).
	Target string `json:"target,omitempty"`
	// Transform is a comma-separated list of transforms applied in order:
	// trim, lower, upper, format_date (needs Format) and map (needs Map).
	Transform string `json:"transform,omitempty"`
	// Value is a constant written instead of reading a field.
	Value json.RawMessage `json:"value,omitempty"`
	// Default is used when the field read is missing or null. It applies in
	// the rule's own direction: to the target for "both" and "to_target"
	// rules, to the source for "to_source" rules; it goes through the
	// transforms like a value read.
	Default json.RawMessage `json:"default,omitempty"`
	// Direction is "both" (the default for field rules), "to_target" (the
	// default for constants) or "to_source". Parse fills it in.
	Direction string `json:"direction,omitempty"`
	// Format is the target's date pattern for format_date, written with
	// YYYY, YY, MMMM, MMM, MM, M, DD, D, dddd, ddd, HH, H, hh, h, A, a, mm,
	// m, ss, s, S... (fraction digits), Z (Z or +hh:mm), ZZ (+hhmm), the
	// letter T and punctuation as they are, [other text] in brackets; or the
	// keywords "unix" (seconds) and "unix_ms" (milliseconds), written as
	// JSON numbers. Examples: "YYYY-MM-DD", "DD/MM/YYYY",
	// "YYYY-MM-DDTHH:mm:ssZ", "unix".
	Format string `json:"format,omitempty"`
	// Map lists source values and the target values they become, for the
	// map transform. Values not listed pass through unchanged; numbers and
	// booleans are looked up by their JSON text and become strings.
	Map map[string]string `json:"map,omitempty"`
	// AllowEmpty lets an empty value (null or "") overwrite a filled value
	// on the other side.
	AllowEmpty bool `json:"allow_empty,omitempty"`
	// Items maps each element of the source array field Source (a list of
	// objects, such as an order's line items) with these rules into the
	// target array field Target (such as an invoice's lines). Such a rule
	// flows only to the target; see items.go.
	Items []Rule `json:"items,omitempty"`
	// Lookup turns the value read (or the constant) into the id of a record
	// of another object of the target's connection, found by one of its
	// fields and created first when missing; see items.go.
	Lookup *Lookup `json:"lookup,omitempty"`
}

func (r Rule) constant() bool { return len(r.Value) > 0 }

// direction returns the rule's direction with the default filled in.
func (r Rule) direction() string {
	switch {
	case r.Direction != "":
		return r.Direction
	case r.constant(), r.oneWayOnly():
		return DirectionToTarget
	}
	return DirectionBoth
}

func (r Rule) toTarget() bool {
	d := r.direction()
	return d == DirectionBoth || d == DirectionToTarget
}

func (r Rule) toSource() bool {
	d := r.direction()
	return d == DirectionBoth || d == DirectionToSource
}

// name is the field a message about the rule names.
func (r Rule) name() string {
	if r.Target != "" {
		return r.Target
	}
	return r.Source
}

// Side is one end of a workflow.
type Side int

// The two sides of a workflow.
const (
	SideSource Side = iota + 1
	SideTarget
)

func (s Side) valid() bool { return s == SideSource || s == SideTarget }

// String returns "source" or "target".
func (s Side) String() string {
	switch s {
	case SideSource:
		return "source"
	case SideTarget:
		return "target"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// errSide reports a Side that is neither SideSource nor SideTarget.
var errSide = errors.New("side must be SideSource or SideTarget")

// Error is a mapping problem written for the user: it says which rule (or
// condition) and field are wrong and what to fix.
type Error struct {
	Index   int // rule (or filter condition) index, -1 when about the whole
	Field   string
	Message string
	// Part is the part of the workflow the problem is in: "mapping" (also
	// when empty), "match" or "filter".
	Part string
}

func (e *Error) Error() string {
	part := e.Part
	if part == "" {
		part = "mapping"
	}
	if e.Index < 0 {
		return part + ": " + e.Message
	}
	return fmt.Sprintf("%s[%d]: %s", part, e.Index, e.Message)
}

// Parse decodes a mapping (a JSON array of rules) and checks its shape:
// directions, constants, transforms, formats, maps and that no two rules
// write the same field. It fills in each rule's Direction.
func Parse(raw json.RawMessage) ([]Rule, error) {
	if absent(raw) {
		return nil, &Error{Index: -1, Message: "mapping is required: give at least one rule such as {\"source\": \"email\", \"target\": \"email\"}"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var rules []Rule
	if err := dec.Decode(&rules); err != nil {
		return nil, &Error{Index: -1, Message: "mapping must be an array of {source, target, direction, transform, format, map, value, default, allow_empty, items, lookup} objects: " + err.Error()}
	}
	if len(rules) == 0 {
		return nil, &Error{Index: -1, Message: "mapping is empty: give at least one rule"}
	}
	for i := range rules {
		if err := checkRule(i, rules[i]); err != nil {
			return nil, err
		}
		normalize(&rules[i])
	}
	targets := make(map[string]int, len(rules))
	sources := make(map[string]int, len(rules))
	for i, r := range rules {
		if r.toTarget() {
			if j, dup := targets[r.Target]; dup {
				return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q is already mapped by rule %d: only one rule may write a field", r.Target, j)}
			}
			targets[r.Target] = i
		}
		if r.toSource() {
			if j, dup := sources[r.Source]; dup {
				return nil, &Error{Index: i, Field: r.Source, Message: fmt.Sprintf("source field %q is already written back by rule %d: only one rule may write a field, so set direction \"to_target\" on one of them", r.Source, j)}
			}
			sources[r.Source] = i
		}
	}
	return rules, nil
}

// absent reports whether raw holds no JSON value or null.
func absent(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || isNull(t)
}

// transform names.
const (
	transformTrim   = "trim"
	transformLower  = "lower"
	transformUpper  = "upper"
	transformDate   = "format_date"
	transformMap    = "map"
	transformNumber = "number"
	transformsValid = "use trim, lower, upper, number, format_date or map"
)

func splitTransforms(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// checkRule checks one rule on its own.
func checkRule(i int, r Rule) *Error {
	fail := func(field, format string, args ...any) *Error {
		return &Error{Index: i, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch r.Direction {
	case "", DirectionBoth, DirectionToTarget, DirectionToSource:
	default:
		return fail(r.name(), "rule for %q: direction %q is not valid: use \"both\", \"to_target\" or \"to_source\"", r.name(), r.Direction)
	}
	if r.constant() {
		switch r.direction() {
		case DirectionBoth:
			return fail(r.name(), "rule for %q has a constant value, which has no source field to read back, so it cannot have direction \"both\": set direction \"to_target\" to write it to the target, or \"to_source\" (with \"source\" naming the field) to write it to the source", r.name())
		case DirectionToTarget:
			if r.Target == "" {
				return fail(r.Source, "target is required: name the target field the constant value is written to")
			}
			if r.Source != "" {
				return fail(r.Target, "rule for %q has both a source and a value: keep one", r.Target)
			}
		case DirectionToSource:
			if r.Source == "" {
				return fail(r.Target, "rule with a constant value and direction \"to_source\" needs \"source\": the source field the value is written to")
			}
			if r.Target != "" {
				return fail(r.Source, "rule for %q has a constant value and direction \"to_source\", so it writes only the source field %q: remove \"target\" %q", r.Source, r.Source, r.Target)
			}
		}
	} else {
		if r.Target == "" {
			return fail(r.Source, "target is required: name the target field")
		}
		if r.Source == "" {
			return fail(r.Target, "rule for %q needs a source field or a constant value", r.Target)
		}
	}
	name := r.name()
	if _, err := canonical(r.Value); err != nil {
		return fail(name, "rule for %q has a value that is not valid JSON", name)
	}
	if _, err := canonical(r.Default); err != nil {
		return fail(name, "rule for %q has a default that is not valid JSON", name)
	}
	var hasDate, hasMap bool
	for _, t := range splitTransforms(r.Transform) {
		switch t {
		case transformTrim, transformLower, transformUpper, transformNumber:
		case transformDate:
			hasDate = true
		case transformMap:
			hasMap = true
		default:
			return fail(name, "unknown transform %q in rule for %q: %s", t, name, transformsValid)
		}
	}
	switch {
	case hasDate && strings.TrimSpace(r.Format) == "":
		return fail(name, "rule for %q: transform format_date needs \"format\", the target's date pattern, such as \"YYYY-MM-DD\" or \"DD/MM/YYYY\"", name)
	case !hasDate && r.Format != "":
		return fail(name, "rule for %q has a \"format\" but no format_date transform: add format_date to transform, or remove format", name)
	case hasMap && len(r.Map) == 0:
		return fail(name, "rule for %q: transform map needs \"map\", the source values and the target values they become, such as {\"prod\": \"production\"}", name)
	case !hasMap && len(r.Map) > 0:
		return fail(name, "rule for %q has a \"map\" but no map transform: add map to transform, or remove map", name)
	}
	if hasDate {
		if _, err := compileDate(r.Format); err != nil {
			return fail(name, "rule for %q: %s", name, err)
		}
	}
	if err := checkNested(i, r); err != nil {
		return err
	}
	if hasMap && r.toSource() {
		if a, b, v, ok := collision(r.Map); ok {
			if r.direction() == DirectionBoth {
				return fail(name, "rule for %q: map sends both %q and %q to %q, so a %q read back from the target cannot be turned into one source value: give each source value its own target value, or set direction \"to_target\"", name, a, b, v, v)
			}
			return fail(name, "rule for %q: with direction \"to_source\" the map is read backwards (its values are target values, its keys the source values they become), and %q and %q both map to %q: give each source value its own target value", name, a, b, v)
		}
	}
	return nil
}

// collision finds two keys of m with the same value, the smallest pair first.
func collision(m map[string]string) (a, b, v string, ok bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := make(map[string]string, len(m))
	for _, k := range keys {
		if first, dup := seen[m[k]]; dup {
			return first, k, m[k], true
		}
		seen[m[k]] = k
	}
	return "", "", "", false
}

// Validate checks the rules against the source and target objects: every
// field a rule reads must exist on its side, and every field it writes must
// exist and be writable — the target field for "both" and "to_target"
// rules, the source field for "both" and "to_source" rules.
//
// Rules default to "both", which writes source fields back: for a one-way
// workflow validate OneWay(rules) instead.
func Validate(rules []Rule, source, target sdk.Object) error {
	for i, r := range rules {
		dir := r.direction()
		if r.Source != "" {
			f, ok := source.Field(r.Source)
			if !ok {
				return &Error{Index: i, Field: r.Source, Message: fmt.Sprintf("source field %q does not exist in %q; available fields: %s", r.Source, source.Name, fieldNames(source))}
			}
			if r.toSource() && f.ReadOnly {
				return &Error{Index: i, Field: r.Source, Message: fmt.Sprintf("source field %q of %q is read-only, but direction %q writes values back to it: set direction \"to_target\", or map another field", r.Source, source.Name, dir)}
			}
		}
		if r.Target != "" {
			f, ok := target.Field(r.Target)
			if !ok {
				return &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q does not exist in %q; available fields: %s", r.Target, target.Name, fieldNames(target))}
			}
			if r.toTarget() && f.ReadOnly {
				return &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q of %q is read-only, but direction %q writes to it: set direction \"to_source\" to only read it, or map another field", r.Target, target.Name, dir)}
			}
		}
		if err := validateItems(i, r, source, target); err != nil {
			return err
		}
	}
	return nil
}

// OneWay returns a copy of rules for a one-way workflow (source to target):
// every "both" rule (and every rule without a direction) becomes
// "to_target". A "to_source" rule is an error: it needs a two-way workflow.
func OneWay(rules []Rule) ([]Rule, error) {
	out := slices.Clone(rules)
	for i := range out {
		if out[i].direction() == DirectionToSource {
			return nil, &Error{Index: i, Field: out[i].name(), Message: fmt.Sprintf("rule for %q has direction \"to_source\", which needs a two-way workflow: remove the rule or make the workflow two_way", out[i].name())}
		}
		out[i].Direction = DirectionToTarget
	}
	return out, nil
}

func fieldNames(o sdk.Object) string {
	names := make([]string, len(o.Fields))
	for i, f := range o.Fields {
		names[i] = f.Name
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// ErrNotObject is returned (possibly wrapped) when a record is not a JSON
// object.
var ErrNotObject = errors.New("record fields are not a JSON object")

// Mapper applies a validated set of rules to records. It is safe for
// concurrent use.
type Mapper struct {
	plans   [2]plan       // by from side - 1
	sides   [2]projection // by side - 1
	lookups []LookupRule
}

// NewMapper prepares rules (as returned by Parse) for application. When two
// rules write the same field the later one wins (Parse rejects that).
func NewMapper(rules []Rule) (*Mapper, error) {
	m := &Mapper{}
	compiled := make([]compiledRule, len(rules))
	for i, r := range rules {
		if err := checkRule(i, r); err != nil {
			return nil, err
		}
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("mapping: rule %d: %w", i, err)
		}
		compiled[i] = c
		if r.Lookup != nil {
			m.lookups = append(m.lookups, LookupRule{Rule: i, Target: r.Target, Object: r.Lookup.Object, Field: r.Lookup.Field, create: c.create})
		}
	}
	m.plans[0] = newPlan(rules, compiled, SideSource)
	m.plans[1] = newPlan(rules, compiled, SideTarget)
	var src, dst []string
	for _, r := range rules {
		if r.Source != "" {
			src = append(src, r.Source)
		}
		if r.Target != "" {
			dst = append(dst, r.Target)
		}
	}
	m.sides[0] = newProjection(src)
	m.sides[1] = newProjection(dst)
	return m, nil
}

// Apply maps one source record (a JSON object) to the target fields (a JSON
// object) with the rules that flow to the target: it is Map(SideSource,
// fields, nil), the one-way mapping. Fields missing from the source are left
// out of the result, so a write never clears a target field the source does
// not carry, unless the rule gives a default.
func (m *Mapper) Apply(fields json.RawMessage) (json.RawMessage, error) {
	return m.Map(SideSource, fields, nil)
}

// Map turns a record of side from (a JSON object) into the fields to write on
// the other side, a JSON object with sorted keys, using the rules that flow
// that way: "both" and "to_target" rules from the source, "both" and
// "to_source" rules from the target, with their transforms (applied
// backwards, with the inverse map, towards the source).
//
// current is the other side's record as last known (a JSON object; nil or
// null when unknown). A rule without AllowEmpty leaves its field out when
// the new value is empty (null or "") and current holds a non-empty value
// for it. Fields whose source field is missing from the record are left out
// (never written as null) unless a default applies. Towards the source, a
// rule with transforms also leaves its field out when current's value, mapped
// to the target, equals the incoming value (see the package comment), and
// current tells format_date how the source writes dates.
//
// A record or current that is not a JSON object gives an error wrapping
// ErrNotObject; a value format_date cannot read gives an *Error.
func (m *Mapper) Map(from Side, fields, current json.RawMessage) (json.RawMessage, error) {
	if !from.valid() {
		return nil, fmt.Errorf("mapping: map from %v: %w", from, errSide)
	}
	return m.plans[from-1].run(fields, current)
}

// Project returns the canonical JSON of the fields of side that the mapping
// touches in any direction (see Fields): keys sorted, no insignificant
// whitespace, nested objects' keys sorted too, strings escaped one way
// (only ", \ and control characters; other characters as UTF-8), numbers
// exactly as written. Missing fields are left out; null is kept.
func (m *Mapper) Project(side Side, fields json.RawMessage) (json.RawMessage, error) {
	if !side.valid() {
		return nil, fmt.Errorf("mapping: project %v: %w", side, errSide)
	}
	out, err := m.sides[side-1].appendProject(make([]byte, 0, len(fields)), fields)
	if err != nil {
		return nil, fmt.Errorf("mapping: project %v record: %w", side, err)
	}
	return out, nil
}

// Hash returns the hex SHA-256 of Project(side, fields). Key order,
// whitespace and string escaping do not change it; numbers are hashed as
// written, so 1, 1.0 and 1e0 hash differently (an app that rewrites
// numbers shows as a change once).
func (m *Mapper) Hash(side Side, fields json.RawMessage) (string, error) {
	if !side.valid() {
		return "", fmt.Errorf("mapping: hash %v: %w", side, errSide)
	}
	var buf [1024]byte
	b, err := m.sides[side-1].appendProject(buf[:0], fields)
	if err != nil {
		return "", fmt.Errorf("mapping: hash %v record: %w", side, err)
	}
	sum := sha256.Sum256(b)
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:]), nil
}

// Fields lists, sorted, the fields of side the mapping touches in any
// direction, read or written: for SideSource the Source of every rule that
// names one (field rules, and constants written to the source), for
// SideTarget the Target of every rule that names one.
func (m *Mapper) Fields(side Side) []string {
	if !side.valid() {
		return nil
	}
	return slices.Clone(m.sides[side-1].names)
}

// projection is the set of fields of one side the mapping touches.
type projection struct {
	names []string
	keys  [][]byte // `"name":` for each name
	idx   map[string]int
}

func newProjection(fields []string) projection {
	slices.Sort(fields)
	fields = slices.Compact(fields)
	p := projection{names: fields, keys: make([][]byte, len(fields)), idx: make(map[string]int, len(fields))}
	for i, f := range fields {
		p.keys[i] = append(appendString(nil, f), ':')
		p.idx[f] = i
	}
	return p
}

// slotBuf is the number of field slots kept on the stack.
const slotBuf = 16

func slots(buf [][]byte, n int) [][]byte {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([][]byte, n)
}

func (p *projection) appendProject(dst, fields []byte) ([]byte, error) {
	var buf [slotBuf][]byte
	vals := slots(buf[:], len(p.names))
	if err := collect(fields, p.idx, vals); err != nil {
		return nil, err
	}
	dst = append(dst, '{')
	n := 0
	for i, v := range vals {
		if v == nil {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, p.keys[i]...)
		dst = appendCanonical(dst, v)
	}
	return append(dst, '}'), nil
}
