package mapping

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestDecimalCompare(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		a, b string
		want int
	}{
		{"0", "-0", 0}, {"0", "0.000", 0}, {"0e10", "0", 0}, {"1", "1.0", 0}, {"100", "1e2", 0}, {"1.5e2", "150", 0},
		{"0.05", "5e-2", 0}, {"12345678901234567890", "12345678901234567891", -1}, {"-1", "1", -1}, {"-2", "-1", -1},
		{"0.1", "0.09", 1}, {"10", "9.999", 1}, {"1e-7", "0", 1}, {"-1e-7", "0", -1}, {"123.456", "123.4561", -1},
		{"1E+3", "999", 1}, {"0.0010", "0.001", 0},
	}
	for _, tc := range testCases {
		a, ok1 := parseDecimal(tc.a)
		b, ok2 := parseDecimal(tc.b)
		if !ok1 || !ok2 {
			t.Fatalf("parseDecimal(%q, %q) failed", tc.a, tc.b)
		}
		if got := a.cmp(b); got != tc.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := b.cmp(a); got != -tc.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	for _, bad := range []string{"", "-", "1.", ".5", "01", "1e", "abc", "1e99999999999"} {
		if _, ok := parseDecimal(bad); ok {
			t.Errorf("parseDecimal(%q) succeeded", bad)
		}
	}
}

func TestDatePatternRoundTrip(t *testing.T) {
	t.Parallel()
	patterns := []string{
		"YYYY-MM-DD", "DD/MM/YYYY", "M/D/YY", "YYYY-MM-DDTHH:mm:ssZ", "YYYY-MM-DD HH:mm:ss.SSSSSSSSS ZZ",
		"dddd, MMMM D, YYYY h:mm:ss a", "ddd MMM DD YYYY hh:mm:ss A Z", "[Day] D [of] MMMM YYYY, H:m:s",
	}
	times := []time.Time{
		time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -(7*3600+30*60))),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 14*3600)),
		time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC),
	}
	for _, text := range patterns {
		p, err := compileDate(text)
		if err != nil {
			t.Fatalf("compileDate(%q): %v", text, err)
		}
		for _, tm := range times {
			s := string(p.appendText(nil, tm))
			got, ok := p.parseText(s)
			if !ok {
				t.Errorf("pattern %q: cannot parse its own output %q", text, s)
				continue
			}
			if again := string(p.appendText(nil, got)); again != s {
				t.Errorf("pattern %q: %q parsed and written again is %q", text, s, again)
			}
		}
	}
}

func TestDatePatternParseRejects(t *testing.T) {
	t.Parallel()
	testCases := map[string][]string{
		"YYYY-MM-DD":    {"2026-13-01", "2026-02-30", "2026-1-01", "2026-01-01x", "26-01-01", ""},
		"hh:mm A":       {"13:00 PM", "00:00 AM", "11:00 XM"},
		"HH:mm Z":       {"10:00 +25:00", "10:00 +01:", "10:00"},
		"MMMM D":        {"Mar 4x", "Smarch 4"},
		"YYYY-MM-DD HH": {"2026-01-01 24"},
	}
	for text, inputs := range testCases {
		p, err := compileDate(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			if tm, ok := p.parseText(in); ok {
				t.Errorf("pattern %q parsed %q as %v, want failure", text, in, tm)
			}
		}
	}
}

func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":[1,{"b":"\u00e9"}],"c":null}`, `{"a":}`, `[1]`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1e5,"b":-0.5}`, `{"a":01}`, `{"a":"x"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		stdErr := dec.Decode(&m)
		stdOK := stdErr == nil && m != nil && !dec.More() && json.Valid(data)
		idx := map[string]int{}
		for k := range m {
			idx[k] = len(idx)
		}
		vals := make([][]byte, len(idx))
		err := collect(data, idx, vals)
		if stdOK != (err == nil) {
			t.Fatalf("collect(%q) error = %v, encoding/json ok = %v", data, err, stdOK)
		}
		if !stdOK {
			return
		}
		// Every value, canonicalized, decodes to what encoding/json decodes.
		for k, slot := range idx {
			c := appendCanonical(nil, vals[slot])
			var got any
			d := json.NewDecoder(bytes.NewReader(c))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatalf("canonical %q of %q is not JSON: %v", c, vals[slot], err)
			}
			if !reflect.DeepEqual(got, m[k]) {
				t.Fatalf("canonical %q decodes to %#v, want %#v", c, got, m[k])
			}
			if again := appendCanonical(nil, c); !bytes.Equal(again, c) {
				t.Fatalf("canonical form is not stable: %q -> %q", c, again)
			}
		}
	})
}
