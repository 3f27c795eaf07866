package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/synchron-io/synchron/sdk"
)

// Match is a workflow's matching key: on the first (historical) run a source
// record and a target record whose keys are equal are linked instead of
// creating a duplicate.
type Match struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// ParseMatch decodes a matching key, {"source": "email", "target": "email"}.
// A missing or null raw means the workflow has none: nil, nil.
func ParseMatch(raw json.RawMessage) (*Match, error) {
	if absent(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Match
	if err := dec.Decode(&m); err != nil {
		return nil, &Error{Part: "match", Index: -1, Message: "match must be an object such as {\"source\": \"email\", \"target\": \"email\"}: " + err.Error()}
	}
	m.Source, m.Target = strings.TrimSpace(m.Source), strings.TrimSpace(m.Target)
	switch {
	case m.Source == "" && m.Target == "":
		return nil, &Error{Part: "match", Index: -1, Message: "match needs both source and target fields, such as {\"source\": \"email\", \"target\": \"email\"}"}
	case m.Source == "":
		return nil, &Error{Part: "match", Index: -1, Field: "source", Message: fmt.Sprintf("match needs a source field: the source field whose value equals target field %q", m.Target)}
	case m.Target == "":
		return nil, &Error{Part: "match", Index: -1, Field: "target", Message: fmt.Sprintf("match needs a target field: the target field whose value equals source field %q", m.Source)}
	}
	return &m, nil
}

// Validate checks that both fields exist in their objects.
func (m Match) Validate(source, target sdk.Object) error {
	if _, ok := source.Field(m.Source); !ok {
		return &Error{Part: "match", Index: -1, Field: m.Source, Message: fmt.Sprintf("match.source field %q does not exist in %q; available fields: %s", m.Source, source.Name, fieldNames(source))}
	}
	if _, ok := target.Field(m.Target); !ok {
		return &Error{Part: "match", Index: -1, Field: m.Target, Message: fmt.Sprintf("match.target field %q does not exist in %q; available fields: %s", m.Target, target.Name, fieldNames(target))}
	}
	return nil
}

// Key returns the normalized matching key of a record of side: strings
// trimmed and lowercased; numbers and booleans keyed by their JSON text, so
// the number 42 and the string "42" match. ok is false when the field is
// missing, null, empty after trimming, an object or an array, or when fields
// is not a JSON object.
func (m Match) Key(side Side, fields json.RawMessage) (string, bool) {
	var name string
	switch side {
	case SideSource:
		name = m.Source
	case SideTarget:
		name = m.Target
	default:
		return "", false
	}
	raw, err := lookup(fields, name)
	if err != nil || raw == nil {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		s := strings.ToLower(strings.TrimSpace(unquote(raw)))
		return s, s != ""
	case c == '-' || isDigit(c), c == 't', c == 'f':
		return string(raw), true
	}
	return "", false
}
