package mapping

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The pattern language is documented in the package comment (mapping.go).

// dateKind is one element of a compiled date pattern.
type dateKind uint8

const (
	dkLiteral dateKind = iota
	dkYear4
	dkYear2
	dkMonthName
	dkMonthShort
	dkMonth2
	dkMonth
	dkDay2
	dkDay
	dkWeekday
	dkWeekdayShort
	dkHour2
	dkHour
	dkHour12Pad
	dkHour12
	dkAMPM
	dkAMPMLower
	dkMinute2
	dkMinute
	dkSecond2
	dkSecond
	dkFraction
	dkZone
	dkZoneCompact
)

type dateToken struct {
	kind dateKind
	lit  string // dkLiteral: the text; dkFraction: unused
	n    int    // dkFraction: number of digits
}

// datePattern is a compiled Rule.Format.
type datePattern struct {
	text    string
	unix    int64 // 0 for a text pattern; 1 for "unix", 1000 for "unix_ms"
	tokens  []dateToken
	hasTime bool // some token is a time of day
	hasFrac bool
}

// datePartsHelp lists the pattern elements for error messages.
const datePartsHelp = "use YYYY (year), MM (month), DD (day), HH (hour 00-23), hh (hour 01-12) with A (AM/PM), mm (minute), ss (second), SSS (milliseconds), Z (time zone), put other text in [brackets], or use \"unix\""

// compileDate parses a customer date pattern.
func compileDate(text string) (*datePattern, error) {
	switch strings.TrimSpace(text) {
	case "":
		return nil, fmt.Errorf("format is empty: give a date pattern such as \"YYYY-MM-DD\" or \"DD/MM/YYYY\"")
	case "unix":
		return &datePattern{text: text, unix: 1, hasTime: true}, nil
	case "unix_ms":
		return &datePattern{text: text, unix: 1000, hasTime: true, hasFrac: true}, nil
	}
	p := &datePattern{text: text}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.tokens = append(p.tokens, dateToken{kind: dkLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	dateParts := 0
	for i := 0; i < len(text); {
		c := text[i]
		if c == '[' {
			end := strings.IndexByte(text[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("format %q has a [ without its closing ]", text)
			}
			lit.WriteString(text[i+1 : i+1+end])
			i += end + 2
			continue
		}
		if !isLetter(c) || c == 'T' {
			lit.WriteByte(c)
			i++
			continue
		}
		run := 1
		for i+run < len(text) && text[i+run] == c {
			run++
		}
		kind, ok := dateTokenKind(c, run)
		if !ok {
			return nil, fmt.Errorf("format %q: %q is not a date part: %s", text, text[i:i+run], datePartsHelp)
		}
		flush()
		p.tokens = append(p.tokens, dateToken{kind: kind, n: run})
		dateParts++
		switch kind {
		case dkHour2, dkHour, dkHour12Pad, dkHour12, dkMinute2, dkMinute, dkSecond2, dkSecond:
			p.hasTime = true
		case dkFraction:
			p.hasTime, p.hasFrac = true, true
		}
		i += run
	}
	flush()
	if dateParts == 0 {
		return nil, fmt.Errorf("format %q has no date parts: %s", text, datePartsHelp)
	}
	return p, nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// dateTokenKind maps a run of one letter to its pattern element.
func dateTokenKind(c byte, run int) (dateKind, bool) {
	switch {
	case c == 'Y' && run == 4:
		return dkYear4, true
	case c == 'Y' && run == 2:
		return dkYear2, true
	case c == 'M' && run == 4:
		return dkMonthName, true
	case c == 'M' && run == 3:
		return dkMonthShort, true
	case c == 'M' && run == 2:
		return dkMonth2, true
	case c == 'M' && run == 1:
		return dkMonth, true
	case c == 'D' && run == 2:
		return dkDay2, true
	case c == 'D' && run == 1:
		return dkDay, true
	case c == 'd' && run == 4:
		return dkWeekday, true
	case c == 'd' && run == 3:
		return dkWeekdayShort, true
	case c == 'H' && run == 2:
		return dkHour2, true
	case c == 'H' && run == 1:
		return dkHour, true
	case c == 'h' && run == 2:
		return dkHour12Pad, true
	case c == 'h' && run == 1:
		return dkHour12, true
	case c == 'A' && run == 1:
		return dkAMPM, true
	case c == 'a' && run == 1:
		return dkAMPMLower, true
	case c == 'm' && run == 2:
		return dkMinute2, true
	case c == 'm' && run == 1:
		return dkMinute, true
	case c == 's' && run == 2:
		return dkSecond2, true
	case c == 's' && run == 1:
		return dkSecond, true
	case c == 'S' && run <= 9:
		return dkFraction, true
	case c == 'Z' && run == 1:
		return dkZone, true
	case c == 'Z' && run == 2:
		return dkZoneCompact, true
	}
	return 0, false
}

func appendPad(dst []byte, v, width int) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendZone(dst []byte, offset int, colon bool) []byte {
	sign := byte('+')
	if offset < 0 {
		sign = '-'
		offset = -offset
	}
	dst = append(dst, sign)
	dst = appendPad(dst, offset/3600, 2)
	if colon {
		dst = append(dst, ':')
	}
	return appendPad(dst, offset%3600/60, 2)
}

// appendText appends t written with a text pattern.
func (p *datePattern) appendText(dst []byte, t time.Time) []byte {
	for _, tok := range p.tokens {
		switch tok.kind {
		case dkLiteral:
			dst = append(dst, tok.lit...)
		case dkYear4:
			dst = appendPad(dst, t.Year(), 4)
		case dkYear2:
			dst = appendPad(dst, (t.Year()%100+100)%100, 2)
		case dkMonthName:
			dst = append(dst, t.Month().String()...)
		case dkMonthShort:
			dst = append(dst, t.Month().String()[:3]...)
		case dkMonth2:
			dst = appendPad(dst, int(t.Month()), 2)
		case dkMonth:
			dst = appendPad(dst, int(t.Month()), 1)
		case dkDay2:
			dst = appendPad(dst, t.Day(), 2)
		case dkDay:
			dst = appendPad(dst, t.Day(), 1)
		case dkWeekday:
			dst = append(dst, t.Weekday().String()...)
		case dkWeekdayShort:
			dst = append(dst, t.Weekday().String()[:3]...)
		case dkHour2:
			dst = appendPad(dst, t.Hour(), 2)
		case dkHour:
			dst = appendPad(dst, t.Hour(), 1)
		case dkHour12Pad, dkHour12:
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			width := 1
			if tok.kind == dkHour12Pad {
				width = 2
			}
			dst = appendPad(dst, h, width)
		case dkAMPM, dkAMPMLower:
			s := "AM"
			if t.Hour() >= 12 {
				s = "PM"
			}
			if tok.kind == dkAMPMLower {
				s = strings.ToLower(s)
			}
			dst = append(dst, s...)
		case dkMinute2:
			dst = appendPad(dst, t.Minute(), 2)
		case dkMinute:
			dst = appendPad(dst, t.Minute(), 1)
		case dkSecond2:
			dst = appendPad(dst, t.Second(), 2)
		case dkSecond:
			dst = appendPad(dst, t.Second(), 1)
		case dkFraction:
			dst = appendPad(dst, t.Nanosecond()/int(math.Pow10(9-tok.n)), tok.n)
		case dkZone:
			_, off := t.Zone()
			if off == 0 {
				dst = append(dst, 'Z')
			} else {
				dst = appendZone(dst, off, true)
			}
		case dkZoneCompact:
			_, off := t.Zone()
			dst = appendZone(dst, off, false)
		}
	}
	return dst
}

// format converts t to the value the pattern describes: a JSON string, or a
// JSON number for unix patterns.
func (p *datePattern) format(t time.Time) value {
	if p.unix != 0 {
		var n int64
		if p.unix == 1 {
			n = t.Unix()
		} else {
			n = t.UnixMilli()
		}
		return value{raw: strconv.AppendInt(nil, n, 10)}
	}
	var buf [64]byte
	return value{str: string(p.appendText(buf[:0], t)), isStr: true}
}

// parse reads v (a string, or a number for unix patterns) written with the
// pattern.
func (p *datePattern) parse(v value) (time.Time, bool) {
	if p.unix != 0 {
		num := v.raw
		if v.isStr {
			num = []byte(strings.TrimSpace(v.str))
		}
		if !isNumberText(num) {
			return time.Time{}, false
		}
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil {
			return time.Time{}, false
		}
		return unixTime(f / float64(p.unix))
	}
	if !v.isStr {
		return time.Time{}, false
	}
	return p.parseText(strings.TrimSpace(v.str))
}

// maxUnixSeconds bounds unix timestamps to years 0001-9999.
const maxUnixSeconds = 253402300799

func unixTime(secs float64) (time.Time, bool) {
	if math.IsNaN(secs) || secs < -62135596800 || secs > maxUnixSeconds {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(math.Round(frac*1e9))).UTC(), true
}

// parseText reads s written with a text pattern.
func (p *datePattern) parseText(s string) (time.Time, bool) {
	year, month, day := 1970, 1, 1
	hour, minute, sec, nsec := 0, 0, 0, 0
	pm, hour12 := -1, false
	offset, hasZone := 0, false
	num := func(min, max int) (int, bool) {
		n := 0
		for n < max && n < len(s) && isDigit(s[n]) {
			n++
		}
		if n < min {
			return 0, false
		}
		v, _ := strconv.Atoi(s[:n])
		s = s[n:]
		return v, true
	}
	name := func(names func(int) string, count int, short bool) (int, bool) {
		for i := range count {
			full := names(i)
			for _, cand := range []string{full, full[:3]} {
				if short && cand == full {
					continue
				}
				if len(s) >= len(cand) && strings.EqualFold(s[:len(cand)], cand) {
					s = s[len(cand):]
					return i, true
				}
			}
		}
		return 0, false
	}
	monthName := func(i int) string { return time.Month(i + 1).String() }
	weekdayName := func(i int) string { return time.Weekday(i).String() }
	var ok bool
	for _, tok := range p.tokens {
		switch tok.kind {
		case dkLiteral:
			if !strings.HasPrefix(s, tok.lit) {
				return time.Time{}, false
			}
			s = s[len(tok.lit):]
			ok = true
		case dkYear4:
			year, ok = num(4, 4)
		case dkYear2:
			if year, ok = num(2, 2); ok {
				if year >= 69 {
					year += 1900
				} else {
					year += 2000
				}
			}
		case dkMonthName, dkMonthShort:
			month, ok = name(monthName, 12, tok.kind == dkMonthShort)
			month++
		case dkMonth2:
			month, ok = num(2, 2)
		case dkMonth:
			month, ok = num(1, 2)
		case dkDay2:
			day, ok = num(2, 2)
		case dkDay:
			day, ok = num(1, 2)
		case dkWeekday, dkWeekdayShort:
			_, ok = name(weekdayName, 7, tok.kind == dkWeekdayShort)
		case dkHour2:
			hour, ok = num(2, 2)
		case dkHour:
			hour, ok = num(1, 2)
		case dkHour12Pad:
			hour, ok = num(2, 2)
			hour12 = true
		case dkHour12:
			hour, ok = num(1, 2)
			hour12 = true
		case dkAMPM, dkAMPMLower:
			ok = len(s) >= 2
			if ok {
				switch strings.ToUpper(s[:2]) {
				case "AM":
					pm = 0
				case "PM":
					pm = 1
				default:
					ok = false
				}
				s = s[2:]
			}
		case dkMinute2:
			minute, ok = num(2, 2)
		case dkMinute:
			minute, ok = num(1, 2)
		case dkSecond2:
			sec, ok = num(2, 2)
		case dkSecond:
			sec, ok = num(1, 2)
		case dkFraction:
			digits := s
			var frac int
			if frac, ok = num(1, 9); ok {
				n := len(digits) - len(s)
				nsec = frac * int(math.Pow10(9-n))
			}
		case dkZone, dkZoneCompact:
			offset, ok = parseZone(&s)
			hasZone = true
		}
		if !ok {
			return time.Time{}, false
		}
	}
	if s != "" {
		return time.Time{}, false
	}
	if hour12 {
		if hour < 1 || hour > 12 {
			return time.Time{}, false
		}
		hour %= 12
		if pm == 1 {
			hour += 12
		}
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	loc := time.UTC
	if hasZone && offset != 0 {
		loc = time.FixedZone("", offset)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day { // 31 February and the like
		return time.Time{}, false
	}
	return t, true
}

// parseZone reads "Z", "+hh:mm", "+hhmm" or "+hh" from the front of *s.
func parseZone(s *string) (int, bool) {
	v := *s
	if v != "" && (v[0] == 'Z' || v[0] == 'z') {
		*s = v[1:]
		return 0, true
	}
	if len(v) < 3 || (v[0] != '+' && v[0] != '-') || !isDigit(v[1]) || !isDigit(v[2]) {
		return 0, false
	}
	h := int(v[1]-'0')*10 + int(v[2]-'0')
	rest := v[3:]
	m := 0
	if len(rest) >= 1 && rest[0] == ':' {
		rest = rest[1:]
	}
	if len(rest) >= 2 && isDigit(rest[0]) && isDigit(rest[1]) {
		m = int(rest[0]-'0')*10 + int(rest[1]-'0')
		rest = rest[2:]
	} else if len(v) > 3 && v[3] == ':' {
		return 0, false
	}
	if h > 23 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if v[0] == '-' {
		off = -off
	}
	*s = rest
	return off, true
}

// dateStyle is one of the layouts dates are read in flexibly; the to_source
// direction of format_date writes dates back in the style of the source's
// current value.
type dateStyle uint8

const (
	styleNone dateStyle = iota
	styleRFC3339
	styleRFC3339Nano
	styleDate
	styleLocalT    // 2006-01-02T15:04:05 (no zone)
	styleSpace     // 2006-01-02 15:04:05 (no zone)
	styleSpaceZone // 2006-01-02 15:04:05Z07:00
	styleUnix      // JSON number
)

func (s dateStyle) layout() string {
	switch s {
	case styleRFC3339:
		return time.RFC3339
	case styleRFC3339Nano:
		return time.RFC3339Nano
	case styleDate:
		return time.DateOnly
	case styleLocalT:
		return "2006-01-02T15:04:05"
	case styleSpace:
		return time.DateTime
	case styleSpaceZone:
		return "2006-01-02 15:04:05Z07:00"
	}
	return ""
}

// parseFlexible reads a date in one of the layouts format_date accepts as
// input, and says which.
func parseFlexible(v value) (time.Time, dateStyle, bool) {
	if !v.isStr {
		if len(v.raw) == 0 || !isNumberText(v.raw) {
			return time.Time{}, styleNone, false
		}
		f, err := strconv.ParseFloat(string(v.raw), 64)
		if err != nil {
			return time.Time{}, styleNone, false
		}
		t, ok := unixTime(f)
		return t, styleUnix, ok
	}
	s := strings.TrimSpace(v.str)
	if len(s) < 10 || !isDigit(s[0]) {
		return time.Time{}, styleNone, false
	}
	var candidates []dateStyle
	switch {
	case len(s) == 10:
		candidates = []dateStyle{styleDate}
	case s[10] == 'T' || s[10] == 't':
		candidates = []dateStyle{styleRFC3339, styleLocalT}
	case s[10] == ' ':
		candidates = []dateStyle{styleSpace, styleSpaceZone}
	}
	for _, st := range candidates {
		t, err := time.Parse(st.layout(), s)
		if err != nil {
			continue
		}
		if st == styleRFC3339 && strings.IndexByte(s[10:], '.') >= 0 {
			st = styleRFC3339Nano
		}
		return t, st, true
	}
	return time.Time{}, styleNone, false
}

// formatStyle writes t in style st.
func formatStyle(t time.Time, st dateStyle) value {
	if st == styleUnix {
		sec, ns := t.Unix(), t.Nanosecond()
		if ns == 0 {
			return value{raw: strconv.AppendInt(nil, sec, 10)}
		}
		var b []byte
		if sec < 0 { // -1.5 s is Unix() -2 plus 0.5 s
			sec, ns = sec+1, 1e9-ns
			b = append(b, '-')
			sec = -sec
		}
		b = strconv.AppendInt(b, sec, 10)
		b = append(b, '.')
		b = appendPad(b, ns, 9)
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
		return value{raw: b}
	}
	var buf [64]byte
	return value{str: string(t.AppendFormat(buf[:0], st.layout())), isStr: true}
}

// defaultStyle is the style the to_source direction writes when the source's
// current value does not show one: a plain date for patterns without a time
// of day, RFC 3339 otherwise.
func (p *datePattern) defaultStyle() dateStyle {
	switch {
	case !p.hasTime:
		return styleDate
	case p.hasFrac:
		return styleRFC3339Nano
	}
	return styleRFC3339
}
