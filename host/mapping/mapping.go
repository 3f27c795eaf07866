// Package mapping owns field mapping: the rules a workflow uses to turn a
// source record into the fields written to the target, their validation
// against the objects the connectors describe, and their application.
package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Rule maps one target field. Either Source names the source field it reads,
// or Value gives a constant. Transform is a comma-separated list of
// transforms applied in order to string values: trim, lower, upper.
type Rule struct {
	Source    string          `json:"source,omitempty"`
	Target    string          `json:"target"`
	Transform string          `json:"transform,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	// Default is used when the source field is missing or null.
	Default json.RawMessage `json:"default,omitempty"`
}

// Transforms lists the transforms a Rule may name.
var transforms = map[string]func(string) string{
	"trim":  strings.TrimSpace,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// Error is a mapping problem written for the user: it says which rule and
// field are wrong and what to fix.
type Error struct {
	Index   int // rule index, -1 when about the whole mapping
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return "mapping: " + e.Message
	}
	return fmt.Sprintf("mapping[%d]: %s", e.Index, e.Message)
}

// Parse decodes a mapping (a JSON array of rules) and checks its shape.
func Parse(raw json.RawMessage) ([]Rule, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, &Error{Index: -1, Message: "mapping is required: give at least one rule such as {\"source\": \"email\", \"target\": \"email\"}"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var rules []Rule
	if err := dec.Decode(&rules); err != nil {
		return nil, &Error{Index: -1, Message: "mapping must be an array of {source, target, transform, value, default} objects: " + err.Error()}
	}
	if len(rules) == 0 {
		return nil, &Error{Index: -1, Message: "mapping is empty: give at least one rule"}
	}
	seen := make(map[string]int, len(rules))
	for i, r := range rules {
		if r.Target == "" {
			return nil, &Error{Index: i, Message: "target is required"}
		}
		if j, dup := seen[r.Target]; dup {
			return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q is already mapped by rule %d", r.Target, j)}
		}
		seen[r.Target] = i
		hasValue := len(r.Value) > 0
		if r.Source == "" && !hasValue {
			return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("rule for %q needs a source field or a constant value", r.Target)}
		}
		if r.Source != "" && hasValue {
			return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("rule for %q has both a source and a value: keep one", r.Target)}
		}
		for _, v := range [][]byte{r.Value, r.Default} {
			if len(v) > 0 && !json.Valid(v) {
				return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("rule for %q has a value or default that is not valid JSON", r.Target)}
			}
		}
		for _, name := range splitTransforms(r.Transform) {
			if _, ok := transforms[name]; !ok {
				return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("unknown transform %q: use trim, lower or upper", name)}
			}
		}
	}
	return rules, nil
}

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

// Validate checks the rules against the source and target objects: every
// source field must exist in the source object, every target field must exist
// in the target object and be writable.
func Validate(rules []Rule, source, target sdk.Object) error {
	for i, r := range rules {
		if r.Source != "" {
			if _, ok := source.Field(r.Source); !ok {
				return &Error{Index: i, Field: r.Source, Message: fmt.Sprintf("source field %q does not exist in %q; available fields: %s", r.Source, source.Name, fieldNames(source))}
			}
		}
		f, ok := target.Field(r.Target)
		if !ok {
			return &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q does not exist in %q; available fields: %s", r.Target, target.Name, fieldNames(target))}
		}
		if f.ReadOnly {
			return &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("target field %q of %q is read-only", r.Target, target.Name)}
		}
	}
	return nil
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

// Mapper applies a validated set of rules to records.
type Mapper struct {
	rules      []Rule
	transforms [][]func(string) string
	values     []any // decoded constant values (nil where the rule reads a source field)
	defaults   []any
}

// NewMapper prepares rules (as returned by Parse) for application.
func NewMapper(rules []Rule) (*Mapper, error) {
	m := &Mapper{
		rules:      rules,
		transforms: make([][]func(string) string, len(rules)),
		values:     make([]any, len(rules)),
		defaults:   make([]any, len(rules)),
	}
	for i, r := range rules {
		for _, name := range splitTransforms(r.Transform) {
			fn, ok := transforms[name]
			if !ok {
				return nil, &Error{Index: i, Field: r.Target, Message: fmt.Sprintf("unknown transform %q", name)}
			}
			m.transforms[i] = append(m.transforms[i], fn)
		}
		var err error
		if m.values[i], err = decode(r.Value); err != nil {
			return nil, fmt.Errorf("mapping: rule %d value: %w", i, err)
		}
		if m.defaults[i], err = decode(r.Default); err != nil {
			return nil, fmt.Errorf("mapping: rule %d default: %w", i, err)
		}
	}
	return m, nil
}

func decode(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// ErrNotObject is returned by Apply when the source record is not a JSON object.
var ErrNotObject = errors.New("record fields are not a JSON object")

// Apply maps one source record (a JSON object) to the target fields (a JSON
// object). Fields missing from the source are left out of the result, so a
// write never clears a target field the source does not carry, unless the
// rule gives a default.
func (m *Mapper) Apply(fields json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(fields))
	dec.UseNumber()
	var src map[string]any
	if err := dec.Decode(&src); err != nil || src == nil {
		return nil, ErrNotObject
	}
	out := make(map[string]any, len(m.rules))
	for i, r := range m.rules {
		var v any
		present := true
		if r.Source == "" {
			v = m.values[i]
		} else {
			v, present = src[r.Source]
		}
		if (!present || v == nil) && m.defaults[i] != nil {
			v, present = m.defaults[i], true
		}
		if !present {
			continue
		}
		if s, ok := v.(string); ok {
			for _, fn := range m.transforms[i] {
				s = fn(s)
			}
			v = s
		}
		out[r.Target] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("mapping: encode: %w", err)
	}
	return b, nil
}
