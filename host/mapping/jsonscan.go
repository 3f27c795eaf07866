package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file holds the small JSON layer the hot path uses instead of decoding
// whole records into map[string]any: a validating scanner that walks the
// top-level members of an object and hands back the raw bytes of the values
// it is asked for, and a writer for canonical JSON (no insignificant
// whitespace, object keys sorted, strings escaped one way, numbers as written).

// maxDepth bounds the nesting of values, as encoding/json does.
const maxDepth = 10000

// errSyntax reports invalid JSON found by the scanner.
var errSyntax = errors.New("invalid JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// scanValue returns the index just past the JSON value that starts at d[i].
func scanValue(d []byte, i, depth int) (int, error) {
	if i >= len(d) {
		return 0, errSyntax
	}
	switch c := d[i]; {
	case c == '"':
		end, _, err := scanString(d, i)
		return end, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, fmt.Errorf("%w: nested deeper than %d levels", errSyntax, maxDepth)
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == closer {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(d) || d[i] != '"' {
					return 0, errSyntax
				}
				if i, _, err = scanString(d, i); err != nil {
					return 0, err
				}
				i = skipSpace(d, i)
				if i >= len(d) || d[i] != ':' {
					return 0, errSyntax
				}
				i = skipSpace(d, i+1)
			}
			if i, err = scanValue(d, i, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(d, i)
			if i >= len(d) {
				return 0, errSyntax
			}
			if d[i] == closer {
				return i + 1, nil
			}
			if d[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(d, i+1)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(d, i)
	case c == 't':
		return scanLiteral(d, i, "true")
	case c == 'f':
		return scanLiteral(d, i, "false")
	case c == 'n':
		return scanLiteral(d, i, "null")
	}
	return 0, errSyntax
}

func scanLiteral(d []byte, i int, lit string) (int, error) {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// scanString returns the index just past the string that starts at d[i] (a
// quote) and whether it holds escape sequences.
func scanString(d []byte, i int) (end int, escaped bool, err error) {
	for j := i + 1; j < len(d); j++ {
		switch c := d[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(d) {
				return 0, false, errSyntax
			}
			switch d[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d)-j < 5 {
					return 0, false, errSyntax
				}
				for _, h := range d[j+1 : j+5] {
					if !isHex(h) {
						return 0, false, errSyntax
					}
				}
				j += 4
			default:
				return 0, false, errSyntax
			}
		case c < 0x20:
			return 0, false, errSyntax
		}
	}
	return 0, false, errSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the index just past the JSON number that starts at d[i].
func scanNumber(d []byte, i int) (int, error) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return 0, errSyntax
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return 0, errSyntax
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return 0, errSyntax
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i, nil
}

// isNumberText reports whether s is exactly one JSON number.
func isNumberText(s []byte) bool {
	end, err := scanNumber(s, 0)
	return err == nil && end == len(s)
}

// members walks the top-level members of a JSON object, validating the whole
// document as it goes.
type members struct {
	d     []byte
	i     int
	first bool
	done  bool
	err   error
}

// newMembers starts walking d, which must hold a JSON object.
func newMembers(d []byte) (members, error) {
	i := skipSpace(d, 0)
	if i >= len(d) || d[i] != '{' {
		return members{}, ErrNotObject
	}
	return members{d: d, i: i + 1, first: true}, nil
}

// next returns the next member: its key as written between the quotes
// (escaped tells whether it must be decoded: escape sequences or invalid
// UTF-8) and its raw value. ok is
// false at the end or on an error, which err then holds.
func (it *members) next() (key []byte, escaped bool, val []byte, ok bool) {
	if it.done || it.err != nil {
		return nil, false, nil, false
	}
	d := it.d
	i := skipSpace(d, it.i)
	if i < len(d) && d[i] == '}' && it.first {
		return it.finish(i)
	}
	if !it.first {
		if i < len(d) && d[i] == '}' {
			return it.finish(i)
		}
		if i >= len(d) || d[i] != ',' {
			it.err = errSyntax
			return nil, false, nil, false
		}
		i = skipSpace(d, i+1)
	}
	it.first = false
	if i >= len(d) || d[i] != '"' {
		it.err = errSyntax
		return nil, false, nil, false
	}
	end, esc, err := scanString(d, i)
	if err != nil {
		it.err = err
		return nil, false, nil, false
	}
	key = d[i+1 : end-1]
	if !esc && !utf8.Valid(key) {
		esc = true // decoded like encoding/json: invalid bytes become U+FFFD
	}
	i = skipSpace(d, end)
	if i >= len(d) || d[i] != ':' {
		it.err = errSyntax
		return nil, false, nil, false
	}
	i = skipSpace(d, i+1)
	vend, err := scanValue(d, i, 1)
	if err != nil {
		it.err = err
		return nil, false, nil, false
	}
	it.i = vend
	return key, esc, d[i:vend], true
}

func (it *members) finish(i int) ([]byte, bool, []byte, bool) {
	it.done = true
	if skipSpace(it.d, i+1) != len(it.d) {
		it.err = errSyntax
	}
	return nil, false, nil, false
}

// keyString returns the decoded member key.
func keyString(key []byte, escaped bool) string {
	if !escaped {
		return string(key)
	}
	return unquoteContent(key)
}

// collect walks the JSON object d and stores in vals[idx[key]] the raw value
// of every member idx knows (the last one when a key repeats). vals entries
// of missing members stay nil. It fails when d is not a valid JSON object.
func collect(d []byte, idx map[string]int, vals [][]byte) error {
	it, err := newMembers(d)
	if err != nil {
		return err
	}
	for {
		key, esc, val, ok := it.next()
		if !ok {
			break
		}
		var slot int
		var found bool
		if esc {
			slot, found = idx[unquoteContent(key)]
		} else {
			slot, found = idx[string(key)]
		}
		if found {
			vals[slot] = val
		}
	}
	if it.err != nil {
		return fmt.Errorf("%w: %w", ErrNotObject, it.err)
	}
	return nil
}

// lookup returns the raw value of the member name of the JSON object d, nil
// when it is missing.
func lookup(d []byte, name string) ([]byte, error) {
	it, err := newMembers(d)
	if err != nil {
		return nil, err
	}
	var found []byte
	for {
		key, esc, val, ok := it.next()
		if !ok {
			break
		}
		if (!esc && string(key) == name) || (esc && unquoteContent(key) == name) {
			found = val
		}
	}
	if it.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotObject, it.err)
	}
	return found, nil
}

// unquoteContent decodes the text between the quotes of a JSON string.
func unquoteContent(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
		return string(b)
	}
	q := make([]byte, 0, len(b)+2)
	q = append(q, '"')
	q = append(q, b...)
	q = append(q, '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		// b was validated by the scanner; keep the raw text rather than fail.
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return s
}

// unquote decodes a raw JSON string (with its quotes).
func unquote(raw []byte) string { return unquoteContent(raw[1 : len(raw)-1]) }

// isNull reports whether raw is the JSON null literal.
func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

// isEmpty reports whether raw is missing, null or the empty string.
func isEmpty(raw []byte) bool { return raw == nil || isNull(raw) || string(raw) == `""` }

// appendString appends s as a canonical JSON string: only ", \ and control
// characters are escaped (\n, \r, \t, \b, \f short, others as \u00XX), and
// invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// member is one decoded member of a nested object being canonicalized.
type member struct {
	key string
	val []byte
}

// appendCanonical appends the canonical form of the valid JSON value v (no
// surrounding whitespace): insignificant whitespace removed, object keys
// sorted (the last of repeated keys kept), strings re-escaped canonically,
// numbers and literals as written.
func appendCanonical(dst, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	switch v[0] {
	case '"':
		content := v[1 : len(v)-1]
		if bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
			return append(dst, v...)
		}
		return appendString(dst, unquoteContent(content))
	case '{':
		it := members{d: v, i: 1, first: true}
		var ms []member
		for {
			key, esc, val, ok := it.next()
			if !ok {
				break
			}
			ms = append(ms, member{key: keyString(key, esc), val: val})
		}
		slices.SortStableFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
		dst = append(dst, '{')
		n := 0
		for i, m := range ms {
			if i+1 < len(ms) && ms[i+1].key == m.key {
				continue // a later member with the same key wins
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendString(dst, m.key)
			dst = append(dst, ':')
			dst = appendCanonical(dst, m.val)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		i := skipSpace(v, 1)
		for n := 0; i < len(v) && v[i] != ']'; n++ {
			if n > 0 {
				i = skipSpace(v, i+1) // past the comma
			}
			end, err := scanValue(v, i, 1)
			if err != nil {
				break // unreachable for validated input
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonical(dst, v[i:end])
			i = skipSpace(v, end)
		}
		return append(dst, ']')
	}
	return append(dst, v...)
}

// canonical validates raw as one JSON value and returns its canonical form,
// nil for an empty raw.
func canonical(raw []byte) ([]byte, error) {
	i := skipSpace(raw, 0)
	if i == len(raw) {
		return nil, nil
	}
	end, err := scanValue(raw, i, 0)
	if err != nil {
		return nil, err
	}
	if skipSpace(raw, end) != len(raw) {
		return nil, errSyntax
	}
	return appendCanonical(nil, raw[i:end]), nil
}
