package pgconnector

import (
	"encoding/json"
	"errors"
	"fmt"
)

// maxJSONDepth bounds the nesting of a record's JSON (PostgreSQL's own
// limit is about the same order).
const maxJSONDepth = 1000

// member is one top-level member of a JSON object.
type member struct {
	name  string
	value []byte // raw JSON value, a sub-slice of the object
}

// scanObject validates that b is exactly one JSON object (surrounding
// whitespace allowed) and returns its top-level members in order. It is the
// write path's replacement for json.Unmarshal into a map: it allocates only
// the member list, and it guarantees that the object's bytes can be
// concatenated into a JSON array without changing its meaning. intern, if
// not nil, returns the string of an unescaped member name (so that known
// names need no allocation).
func scanObject(b []byte, intern func([]byte) string) ([]member, error) {
	s := scanner{b: b, intern: intern}
	s.ws()
	if !s.eat('{') {
		return nil, errors.New("not a JSON object")
	}
	members := make([]member, 0, 16)
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			name, err := s.key()
			if err != nil {
				return nil, err
			}
			s.ws()
			if !s.eat(':') {
				return nil, s.errorf("want ':' after a member name")
			}
			s.ws()
			start := s.i
			if err := s.value(1); err != nil {
				return nil, err
			}
			members = append(members, member{name: name, value: b[start:s.i]})
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return nil, s.errorf("want ',' or '}' after a member")
		}
	}
	s.ws()
	if s.i != len(b) {
		return nil, s.errorf("unexpected data after the object")
	}
	return members, nil
}

type scanner struct {
	b      []byte
	i      int
	intern func([]byte) string
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// key reads a member name.
func (s *scanner) key() (string, error) {
	start := s.i
	escaped, err := s.str()
	if err != nil {
		return "", err
	}
	raw := s.b[start:s.i]
	if !escaped {
		if s.intern != nil {
			return s.intern(raw[1 : len(raw)-1]), nil
		}
		return string(raw[1 : len(raw)-1]), nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return "", s.errorf("member name: %v", err)
	}
	return name, nil
}

// str reads a string, reporting whether it holds escapes.
func (s *scanner) str() (escaped bool, err error) {
	if !s.eat('"') {
		return false, s.errorf("want a string")
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return false, s.errorf("unterminated string")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return false, s.errorf("short \\u escape")
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return false, s.errorf("invalid \\u escape")
					}
				}
				s.i += 5
			default:
				return false, s.errorf("invalid escape")
			}
		case c < 0x20:
			return false, s.errorf("control character in a string")
		default:
			s.i++
		}
	}
	return false, s.errorf("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// value reads any JSON value.
func (s *scanner) value(depth int) error {
	if depth > maxJSONDepth {
		return s.errorf("nested too deeply")
	}
	if s.i >= len(s.b) {
		return s.errorf("want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return nil
		}
		for {
			s.ws()
			if _, err := s.str(); err != nil {
				return err
			}
			s.ws()
			if !s.eat(':') {
				return s.errorf("want ':' after a member name")
			}
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				return nil
			}
			return s.errorf("want ',' or '}' in an object")
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return nil
		}
		for {
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat(']') {
				return nil
			}
			return s.errorf("want ',' or ']' in an array")
		}
	case c == '-' || isDigit(c):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.errorf("unexpected character %q", s.b[s.i])
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.errorf("invalid literal")
	}
	s.i += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && isDigit(s.b[s.i]):
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	default:
		return s.errorf("invalid number")
	}
	if s.eat('.') {
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("invalid number")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("invalid number")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	return nil
}
