package mapping_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
)

// raw is shorthand for a json.RawMessage literal.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

func mustMapper(t testing.TB, rules ...mapping.Rule) *mapping.Mapper {
	t.Helper()
	m, err := mapping.NewMapper(rules)
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	return m
}

func TestMap(t *testing.T) {
	t.Parallel()
	stage := mapping.Rule{Source: "env", Target: "stage", Transform: "map", Map: map[string]string{"prod": "production", "dev": "development"}}
	testCases := map[string]struct {
		rules   []mapping.Rule
		from    mapping.Side
		in      string
		current string
		want    string
	}{
		// Transforms, both directions.
		"trim to target": {
			rules: []mapping.Rule{{Source: "n", Target: "name", Transform: "trim"}},
			from:  mapping.SideSource, in: `{"n": "  Ann \t"}`, want: `{"name":"Ann"}`,
		},
		"trim to source": {
			rules: []mapping.Rule{{Source: "n", Target: "name", Transform: "trim"}},
			from:  mapping.SideTarget, in: `{"name": " Ann "}`, want: `{"n":"Ann"}`,
		},
		"lower to target": {
			rules: []mapping.Rule{{Source: "e", Target: "email", Transform: "lower"}},
			from:  mapping.SideSource, in: `{"e": "Ann@X.COM"}`, want: `{"email":"ann@x.com"}`,
		},
		"lower to source": {
			rules: []mapping.Rule{{Source: "e", Target: "email", Transform: "lower"}},
			from:  mapping.SideTarget, in: `{"email": "Ann@X.COM"}`, want: `{"e":"ann@x.com"}`,
		},
		"upper to target": {
			rules: []mapping.Rule{{Source: "c", Target: "country", Transform: "upper"}},
			from:  mapping.SideSource, in: `{"c": "gb"}`, want: `{"country":"GB"}`,
		},
		"upper to source": {
			rules: []mapping.Rule{{Source: "c", Target: "country", Transform: "upper"}},
			from:  mapping.SideTarget, in: `{"country": "gb"}`, want: `{"c":"GB"}`,
		},
		"transforms in order": {
			rules: []mapping.Rule{{Source: "e", Target: "email", Transform: "trim, lower"}},
			from:  mapping.SideSource, in: `{"e": "  Ann@X.com  "}`, want: `{"email":"ann@x.com"}`,
		},
		"transforms skip non-strings": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Transform: "trim,upper"}},
			from:  mapping.SideSource, in: `{"a": [" a "]}`, want: `{"x":[" a "]}`,
		},
		"escaped strings are decoded and re-encoded": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Transform: "upper"}, {Source: "b", Target: "y"}},
			from:  mapping.SideSource, in: `{"a": "caf\u00e9 \"q\"\n", "b": "\u0041<>&"}`, want: `{"x":"CAFÉ \"Q\"\n","y":"A<>&"}`,
		},

		// map and its inverse.
		"map to target": {
			rules: []mapping.Rule{stage}, from: mapping.SideSource, in: `{"env": "prod"}`, want: `{"stage":"production"}`,
		},
		"map to source uses the inverse": {
			rules: []mapping.Rule{stage}, from: mapping.SideTarget, in: `{"stage": "development"}`, want: `{"env":"dev"}`,
		},
		"unmapped value passes through": {
			rules: []mapping.Rule{stage}, from: mapping.SideSource, in: `{"env": "qa"}`, want: `{"stage":"qa"}`,
		},
		"unmapped value passes through to source": {
			rules: []mapping.Rule{stage}, from: mapping.SideTarget, in: `{"stage": "prod"}`, want: `{"env":"prod"}`,
		},
		"map numbers and booleans by their JSON text": {
			rules: []mapping.Rule{
				{Source: "s", Target: "status", Transform: "map", Map: map[string]string{"1": "active", "2": "closed"}},
				{Source: "v", Target: "vip", Transform: "map", Map: map[string]string{"true": "yes", "false": "no"}},
			},
			from: mapping.SideSource, in: `{"s": 1, "v": false}`, want: `{"status":"active","vip":"no"}`,
		},
		"map after lower, inverse before lower": {
			rules: []mapping.Rule{{Source: "env", Target: "stage", Transform: "lower,map", Map: map[string]string{"prod": "Production"}}},
			from:  mapping.SideTarget, in: `{"stage": "Production"}`, want: `{"env":"prod"}`,
		},
		"to_source rule reads the map backwards": {
			rules: []mapping.Rule{{Source: "env", Target: "stage", Direction: "to_source", Transform: "map", Map: map[string]string{"prod": "production"}}},
			from:  mapping.SideTarget, in: `{"stage": "production"}`, want: `{"env":"prod"}`,
		},
		"to_target map may be many-to-one": {
			rules: []mapping.Rule{{Source: "env", Target: "stage", Direction: "to_target", Transform: "map", Map: map[string]string{"prod": "live", "production": "live"}}},
			from:  mapping.SideSource, in: `{"env": "production"}`, want: `{"stage":"live"}`,
		},

		// Directions.
		"to_target rule does not flow back": {
			rules: []mapping.Rule{{Source: "id", Target: "external_id", Direction: "to_target"}, {Source: "n", Target: "name"}},
			from:  mapping.SideTarget, in: `{"external_id": "x", "name": "Ann"}`, want: `{"n":"Ann"}`,
		},
		"to_source rule does not flow forward": {
			rules: []mapping.Rule{{Source: "hs_id", Target: "id", Direction: "to_source"}, {Source: "n", Target: "name"}},
			from:  mapping.SideSource, in: `{"hs_id": "x", "n": "Ann"}`, want: `{"name":"Ann"}`,
		},
		"to_source rule flows back": {
			rules: []mapping.Rule{{Source: "hs_id", Target: "id", Direction: "to_source"}},
			from:  mapping.SideTarget, in: `{"id": 42}`, want: `{"hs_id":42}`,
		},

		// Constants.
		"constant to target": {
			rules: []mapping.Rule{{Target: "stage", Value: raw(`"customer"`)}},
			from:  mapping.SideSource, in: `{}`, want: `{"stage":"customer"}`,
		},
		"constant to target is not written back": {
			rules: []mapping.Rule{{Target: "stage", Value: raw(`"customer"`)}},
			from:  mapping.SideTarget, in: `{"stage": "lead"}`, want: `{}`,
		},
		"constant to source": {
			rules: []mapping.Rule{{Source: "synced", Value: raw(`true`), Direction: "to_source"}},
			from:  mapping.SideTarget, in: `{"x": 1}`, want: `{"synced":true}`,
		},
		"constant to source is not written forward": {
			rules: []mapping.Rule{{Source: "synced", Value: raw(`true`), Direction: "to_source"}},
			from:  mapping.SideSource, in: `{"synced": false}`, want: `{}`,
		},
		"empty constant overwrites": {
			rules: []mapping.Rule{{Target: "note", Value: raw(`""`)}},
			from:  mapping.SideSource, in: `{}`, current: `{"note": "old"}`, want: `{"note":""}`,
		},
		"constant object is canonical": {
			rules: []mapping.Rule{{Target: "meta", Value: raw(`{ "b" : 1, "a" : [ 1, 2 ] }`)}},
			from:  mapping.SideSource, in: `{}`, want: `{"meta":{"a":[1,2],"b":1}}`,
		},

		// Defaults.
		"default for missing": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"none"`)}},
			from:  mapping.SideSource, in: `{}`, want: `{"x":"none"}`,
		},
		"default for null": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`0`)}},
			from:  mapping.SideSource, in: `{"a": null}`, want: `{"x":0}`,
		},
		"default not used for empty string": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"none"`)}},
			from:  mapping.SideSource, in: `{"a": ""}`, want: `{"x":""}`,
		},
		"default goes through transforms": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"prod"`), Transform: "map", Map: map[string]string{"prod": "production"}}},
			from:  mapping.SideSource, in: `{}`, want: `{"x":"production"}`,
		},
		"default of a both rule does not apply to source": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"none"`)}},
			from:  mapping.SideTarget, in: `{}`, want: `{}`,
		},
		"default of a to_source rule applies to source": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"none"`), Direction: "to_source"}},
			from:  mapping.SideTarget, in: `{"x": null}`, want: `{"a":"none"}`,
		},
		"default overwrites a filled value": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: raw(`"none"`)}},
			from:  mapping.SideSource, in: `{}`, current: `{"x": "old"}`, want: `{"x":"none"}`,
		},

		// Empty values.
		"missing is omitted, not null": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}},
			from:  mapping.SideSource, in: `{"a": 1}`, want: `{"x":1}`,
		},
		"null written when current is unknown": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"a": null}`, want: `{"x":null}`,
		},
		"null does not overwrite a filled value": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}},
			from:  mapping.SideSource, in: `{"a": null, "b": 2}`, current: `{"x": "kept", "y": 1}`, want: `{"y":2}`,
		},
		"empty string does not overwrite a filled value": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"a": ""}`, current: `{"x": "kept"}`, want: `{}`,
		},
		"empty after trim does not overwrite": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Transform: "trim"}},
			from:  mapping.SideSource, in: `{"a": "   "}`, current: `{"x": "kept"}`, want: `{}`,
		},
		"empty overwrites null or empty current": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}, {Source: "c", Target: "z"}},
			from:  mapping.SideSource, in: `{"a": "", "b": null, "c": ""}`, current: `{"x": null, "y": ""}`, want: `{"x":"","y":null,"z":""}`,
		},
		"empty does not overwrite towards the source either": {
			rules: []mapping.Rule{{Source: "p", Target: "phone"}},
			from:  mapping.SideTarget, in: `{"phone": ""}`, current: `{"p": "+44 1"}`, want: `{}`,
		},
		"allow_empty lets null overwrite": {
			rules: []mapping.Rule{{Source: "a", Target: "x", AllowEmpty: true}},
			from:  mapping.SideSource, in: `{"a": null}`, current: `{"x": "old"}`, want: `{"x":null}`,
		},
		"allow_empty lets empty string overwrite": {
			rules: []mapping.Rule{{Source: "a", Target: "x", AllowEmpty: true}},
			from:  mapping.SideTarget, in: `{"x": ""}`, current: `{"a": "old"}`, want: `{"a":""}`,
		},
		"allow_empty still never writes missing": {
			rules: []mapping.Rule{{Source: "a", Target: "x", AllowEmpty: true}},
			from:  mapping.SideSource, in: `{}`, current: `{"x": "old"}`, want: `{}`,
		},
		"zero and false are not empty": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}, {Source: "c", Target: "z"}},
			from:  mapping.SideSource, in: `{"a": 0, "b": false, "c": []}`, current: `{"x": 5, "y": true, "z": [1]}`, want: `{"x":0,"y":false,"z":[]}`,
		},
		"null current is unknown": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"a": null}`, current: `null`, want: `{"x":null}`,
		},

		// Write-backs through lossy transforms.
		"lowered value that maps to the source's is not written back": {
			rules: []mapping.Rule{{Source: "e", Target: "email", Transform: "trim,lower"}, {Source: "p", Target: "phone"}},
			from:  mapping.SideTarget, in: `{"email": "ann@x.com", "phone": "2"}`, current: `{"e": " Ann@X.com", "p": "1"}`, want: `{"p":"2"}`,
		},
		"changed lowered value is written back": {
			rules: []mapping.Rule{{Source: "e", Target: "email", Transform: "lower"}},
			from:  mapping.SideTarget, in: `{"email": "Bob@x.com"}`, current: `{"e": "Ann@X.com"}`, want: `{"e":"bob@x.com"}`,
		},
		"date without time is not written back over the same day": {
			rules: []mapping.Rule{{Source: "d", Target: "day", Transform: "format_date", Format: "DD/MM/YYYY"}},
			from:  mapping.SideTarget, in: `{"day": "04/03/2026"}`, current: `{"d": "2026-03-04T05:06:07Z"}`, want: `{}`,
		},
		"unchanged mapped value is not written back": {
			rules: []mapping.Rule{{Source: "env", Target: "stage", Direction: "to_source", Transform: "map", Map: map[string]string{"prod": "production"}}},
			from:  mapping.SideTarget, in: `{"stage": "production"}`, current: `{"env": "prod"}`, want: `{}`,
		},
		"rule without transforms writes the same value": {
			rules: []mapping.Rule{{Source: "n", Target: "name"}},
			from:  mapping.SideTarget, in: `{"name": "Ann"}`, current: `{"n": "Ann"}`, want: `{"n":"Ann"}`,
		},

		// Output shape.
		"numbers kept exactly as written": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}},
			from:  mapping.SideSource, in: `{"a": 12345678901234567890.125, "b": 1.0e2}`, want: `{"x":12345678901234567890.125,"y":1.0e2}`,
		},
		"nested values compacted with sorted keys": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"a": {"z": [1, {"b": 2, "a": 1}], "a": "\u00e9"}}`, want: `{"x":{"a":"é","z":[1,{"a":1,"b":2}]}}`,
		},
		"repeated key: last wins": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"a": 1, "a": 2}`, want: `{"x":2}`,
		},
		"escaped key is matched": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}},
			from:  mapping.SideSource, in: `{"\u0061": 1}`, want: `{"x":1}`,
		},
		"one source field to two targets": {
			rules: []mapping.Rule{{Source: "e", Target: "email"}, {Source: "e", Target: "work_email", Direction: "to_target"}},
			from:  mapping.SideSource, in: `{"e": "a@b"}`, want: `{"email":"a@b","work_email":"a@b"}`,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mustMapper(t, tc.rules...)
			var cur json.RawMessage
			if tc.current != "" {
				cur = raw(tc.current)
			}
			got, err := m.Map(tc.from, raw(tc.in), cur)
			if err != nil {
				t.Fatalf("Map(%v, %s, %s): %v", tc.from, tc.in, tc.current, err)
			}
			if string(got) != tc.want {
				t.Fatalf("Map(%v, %s, %s) = %s, want %s", tc.from, tc.in, tc.current, got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("Map output %s is not valid JSON", got)
			}
		})
	}
}

func TestMapFormatDate(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		format  string
		from    mapping.Side
		in      string // the field's JSON value
		current string // the other side's current field value, "" for none
		want    string // the written JSON value; "" means omitted
	}{
		"RFC 3339 to date":                   {format: "YYYY-MM-DD", from: mapping.SideSource, in: `"2026-03-04T05:06:07Z"`, want: `"2026-03-04"`},
		"fractional seconds to date":         {format: "DD/MM/YYYY", from: mapping.SideSource, in: `"2026-03-04T05:06:07.123456Z"`, want: `"04/03/2026"`},
		"date only":                          {format: "DD/MM/YYYY", from: mapping.SideSource, in: `"2026-03-04"`, want: `"04/03/2026"`},
		"space date time":                    {format: "YYYY-MM-DDTHH:mm:ssZ", from: mapping.SideSource, in: `"2026-03-04 05:06:07"`, want: `"2026-03-04T05:06:07Z"`},
		"unix seconds":                       {format: "YYYY-MM-DDTHH:mm:ssZ", from: mapping.SideSource, in: `1772600767`, want: `"2026-03-04T05:06:07Z"`},
		"offset kept":                        {format: "YYYY-MM-DD HH:mm Z", from: mapping.SideSource, in: `"2026-03-04T23:30:00-05:00"`, want: `"2026-03-04 23:30 -05:00"`},
		"compact zone":                       {format: "YYYY-MM-DDTHH:mm:ssZZ", from: mapping.SideSource, in: `"2026-03-04T05:06:07+05:30"`, want: `"2026-03-04T05:06:07+0530"`},
		"names and 12 hour clock":            {format: "dddd, MMMM D, YYYY h:mm A", from: mapping.SideSource, in: `"2026-03-04T15:06:07Z"`, want: `"Wednesday, March 4, 2026 3:06 PM"`},
		"short names, lower am":              {format: "ddd D MMM YY hh:mm a", from: mapping.SideSource, in: `"2026-03-04T00:06:07Z"`, want: `"Wed 4 Mar 26 12:06 am"`},
		"milliseconds":                       {format: "HH:mm:ss.SSS", from: mapping.SideSource, in: `"2026-03-04T05:06:07.123456Z"`, want: `"05:06:07.123"`},
		"bracketed literal":                  {format: "DD/MM/YYYY [at] HH:mm", from: mapping.SideSource, in: `"2026-03-04T05:06:07Z"`, want: `"04/03/2026 at 05:06"`},
		"to unix":                            {format: "unix", from: mapping.SideSource, in: `"2026-03-04T05:06:07Z"`, want: `1772600767`},
		"to unix_ms":                         {format: "unix_ms", from: mapping.SideSource, in: `"2026-03-04T05:06:07.5Z"`, want: `1772600767500`},
		"already in the target format":       {format: "DD/MM/YYYY", from: mapping.SideSource, in: `"04/03/2026"`, want: `"04/03/2026"`},
		"empty passes":                       {format: "DD/MM/YYYY", from: mapping.SideSource, in: `""`, want: `""`},
		"null passes":                        {format: "DD/MM/YYYY", from: mapping.SideSource, in: `null`, want: `null`},
		"back to date by default":            {format: "DD/MM/YYYY", from: mapping.SideTarget, in: `"04/03/2026"`, want: `"2026-03-04"`},
		"back to RFC 3339 by default":        {format: "DD/MM/YYYY HH:mm", from: mapping.SideTarget, in: `"04/03/2026 05:06"`, want: `"2026-03-04T05:06:00Z"`},
		"back in the current's style":        {format: "DD/MM/YYYY", from: mapping.SideTarget, in: `"04/03/2026"`, current: `"2020-01-01T10:00:00Z"`, want: `"2026-03-04T00:00:00Z"`},
		"back to unix like the current":      {format: "YYYY-MM-DD HH:mm:ss", from: mapping.SideTarget, in: `"2026-03-04 05:06:07"`, current: `1`, want: `1772600767`},
		"back to space style":                {format: "MMM D, YYYY h:mm A", from: mapping.SideTarget, in: `"Mar 4, 2026 5:06 PM"`, current: `"2020-01-01 00:00:00"`, want: `"2026-03-04 17:06:00"`},
		"back keeps the offset":              {format: "YYYY-MM-DDTHH:mm:ssZ", from: mapping.SideTarget, in: `"2026-03-04T05:06:07+02:00"`, current: `"2020-01-01T00:00:00Z"`, want: `"2026-03-04T05:06:07+02:00"`},
		"back from unix":                     {format: "unix", from: mapping.SideTarget, in: `1772600767`, want: `"2026-03-04T05:06:07Z"`},
		"back from unix string":              {format: "unix", from: mapping.SideTarget, in: `"1772600767"`, current: `"2020-01-01"`, want: `"2026-03-04"`},
		"back reads flexible dates too":      {format: "DD/MM/YYYY", from: mapping.SideTarget, in: `"2026-03-04"`, want: `"2026-03-04"`},
		"back does not overwrite with empty": {format: "DD/MM/YYYY", from: mapping.SideTarget, in: `""`, current: `"2020-01-01"`, want: ``},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mustMapper(t, mapping.Rule{Source: "s", Target: "t", Transform: "format_date", Format: tc.format})
			in, written := `{"s":`+tc.in+`}`, "t"
			var cur json.RawMessage
			if tc.from == mapping.SideTarget {
				in, written = `{"t":`+tc.in+`}`, "s"
			}
			if tc.current != "" {
				cur = raw(`{"` + written + `":` + tc.current + `}`)
			}
			got, err := m.Map(tc.from, raw(in), cur)
			if err != nil {
				t.Fatalf("Map(%v, %s): %v", tc.from, in, err)
			}
			want := `{}`
			if tc.want != "" {
				want = `{"` + written + `":` + tc.want + `}`
			}
			if string(got) != want {
				t.Fatalf("Map(%v, %s) with format %q = %s, want %s", tc.from, in, tc.format, got, want)
			}
		})
	}
}

func TestFormatDateRoundTrips(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		format string
		source string // the source value; going there and back must give it again
		other  string // another source value written the same way, as the source's current value
	}{
		"date via DD/MM/YYYY":              {format: "DD/MM/YYYY", source: `"2026-03-04"`, other: `"1999-01-01"`},
		"date via MMMM D, YYYY":            {format: "MMMM D, YYYY", source: `"2026-12-31"`, other: `"1999-01-01"`},
		"RFC 3339 via YYYY-MM-DD HH:mm:ss": {format: "YYYY-MM-DD HH:mm:ss", source: `"2026-03-04T05:06:07Z"`, other: `"1999-01-01T00:00:00Z"`},
		"RFC 3339 offset via Z":            {format: "DD.MM.YYYY HH:mm:ss Z", source: `"2026-03-04T05:06:07-07:00"`, other: `"1999-01-01T00:00:00Z"`},
		"fraction via SSS":                 {format: "YYYY-MM-DDTHH:mm:ss.SSSZ", source: `"2026-03-04T05:06:07.25Z"`, other: `"1999-01-01T00:00:00.1Z"`},
		"unix via RFC 3339":                {format: "YYYY-MM-DDTHH:mm:ssZ", source: `1772600767`, other: `0`},
		"RFC 3339 via unix":                {format: "unix", source: `"2026-03-04T05:06:07Z"`, other: `"1999-01-01T00:00:00Z"`},
		"space date time via 12h clock":    {format: "MM/DD/YYYY hh:mm:ss A", source: `"2026-03-04 17:06:07"`, other: `"1999-01-01 00:00:00"`},
		"negative unix with fraction":      {format: "YYYY-MM-DD HH:mm:ss.SSS", source: `-1.5`, other: `0`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mustMapper(t, mapping.Rule{Source: "s", Target: "t", Transform: "format_date", Format: tc.format})
			src := raw(`{"s":` + tc.source + `}`)
			there, err := m.Map(mapping.SideSource, src, nil)
			if err != nil {
				t.Fatalf("to target: %v", err)
			}
			back, err := m.Map(mapping.SideTarget, there, raw(`{"s":`+tc.other+`}`))
			if err != nil {
				t.Fatalf("to source: %v", err)
			}
			if string(back) != string(src) {
				t.Fatalf("round trip of %s through %q: target %s, back %s", src, tc.format, there, back)
			}
			// The source already holds the value: nothing to write back.
			if echo, err := m.Map(mapping.SideTarget, there, src); err != nil || string(echo) != `{}` {
				t.Fatalf("writing %s back over %s = %s, %v; want {}", there, src, echo, err)
			}
		})
	}
}

func TestMapErrors(t *testing.T) {
	t.Parallel()
	m := mustMapper(t, mapping.Rule{Source: "d", Target: "day", Transform: "format_date", Format: "DD/MM/YYYY"})
	testCases := map[string]struct {
		from    mapping.Side
		in      string
		current string
		wantMsg string
		notObj  bool
	}{
		"not a date":          {from: mapping.SideSource, in: `{"d": "soon"}`, wantMsg: `mapping[0]: field "d": "soon" is not a date`},
		"impossible date":     {from: mapping.SideTarget, in: `{"day": "31/02/2026"}`, wantMsg: `field "day": "31/02/2026" is not a date`},
		"boolean is no date":  {from: mapping.SideSource, in: `{"d": true}`, wantMsg: "true is not a date"},
		"array record":        {from: mapping.SideSource, in: `[1]`, notObj: true},
		"invalid JSON":        {from: mapping.SideSource, in: `{"d": }`, notObj: true},
		"trailing garbage":    {from: mapping.SideSource, in: `{"d": "2026-01-01"} x`, notObj: true},
		"null record":         {from: mapping.SideSource, in: `null`, notObj: true},
		"bad current":         {from: mapping.SideSource, in: `{"d": "2026-01-01"}`, current: `"x"`, notObj: true},
		"bad side":            {from: mapping.Side(7), in: `{}`, wantMsg: "side must be SideSource or SideTarget"},
		"unterminated string": {from: mapping.SideSource, in: `{"d": "2026}`, notObj: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var cur json.RawMessage
			if tc.current != "" {
				cur = raw(tc.current)
			}
			_, err := m.Map(tc.from, raw(tc.in), cur)
			if err == nil {
				t.Fatalf("Map(%s) succeeded, want an error", tc.in)
			}
			if tc.notObj && !errors.Is(err, mapping.ErrNotObject) {
				t.Fatalf("Map(%s) error = %v, want ErrNotObject", tc.in, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Map(%s) error = %q, want it to contain %q", tc.in, err, tc.wantMsg)
			}
		})
	}
}

func TestApplyIsMapFromSource(t *testing.T) {
	t.Parallel()
	m := mustMapper(t,
		mapping.Rule{Source: "e", Target: "email", Transform: "trim,lower"},
		mapping.Rule{Source: "id", Target: "external_id", Direction: "to_target"},
		mapping.Rule{Source: "hs", Target: "id", Direction: "to_source"},
		mapping.Rule{Target: "stage", Value: raw(`"customer"`)},
		mapping.Rule{Source: "n", Target: "name", Default: raw(`"?"`)},
	)
	for _, in := range []string{`{"e": " A@B ", "id": 7, "hs": "x"}`, `{"n": null}`, `{}`} {
		a, err := m.Apply(raw(in))
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Map(mapping.SideSource, raw(in), nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("Apply(%s) = %s, Map = %s", in, a, b)
		}
	}
	got, _ := m.Apply(raw(`{"e": " A@B ", "id": 7, "hs": "x"}`))
	if want := `{"email":"a@b","external_id":7,"name":"?","stage":"customer"}`; string(got) != want {
		t.Errorf("Apply = %s, want %s", got, want)
	}
}

func TestNewMapperLastRuleWins(t *testing.T) {
	t.Parallel()
	m := mustMapper(t, mapping.Rule{Source: "a", Target: "x"}, mapping.Rule{Source: "b", Target: "x"})
	got, err := m.Apply(raw(`{"a": 1, "b": 2}`))
	if err != nil || string(got) != `{"x":2}` {
		t.Fatalf("Apply = %s, %v; want {\"x\":2}", got, err)
	}
}

func TestNewMapperRejectsBadRules(t *testing.T) {
	t.Parallel()
	for _, r := range []mapping.Rule{
		{Source: "a", Target: "x", Transform: "reverse"},
		{Source: "a", Target: "x", Transform: "format_date"},
		{Source: "a", Target: "x", Value: raw(`{`)},
		{Source: "a", Target: "x", Default: raw(`nope`)},
		{Source: "a", Target: "x", Direction: "up"},
	} {
		if _, err := mapping.NewMapper([]mapping.Rule{r}); err == nil {
			t.Errorf("NewMapper(%+v) succeeded, want an error", r)
		}
	}
}

func TestProjectAndHash(t *testing.T) {
	t.Parallel()
	m := mustMapper(t,
		mapping.Rule{Source: "email", Target: "Email"},
		mapping.Rule{Source: "first", Target: "name", Direction: "to_target"},
		mapping.Rule{Source: "hs_id", Target: "id", Direction: "to_source"},
		mapping.Rule{Target: "stage", Value: raw(`"customer"`)},
		mapping.Rule{Source: "synced", Value: raw(`true`), Direction: "to_source"},
		mapping.Rule{Source: "email", Target: "work_email", Direction: "to_target"},
	)
	if got, want := strings.Join(m.Fields(mapping.SideSource), ","), "email,first,hs_id,synced"; got != want {
		t.Errorf("Fields(source) = %s, want %s", got, want)
	}
	if got, want := strings.Join(m.Fields(mapping.SideTarget), ","), "Email,id,name,stage,work_email"; got != want {
		t.Errorf("Fields(target) = %s, want %s", got, want)
	}
	if m.Fields(mapping.Side(0)) != nil {
		t.Errorf("Fields(0) is not nil")
	}
	fs := m.Fields(mapping.SideSource)
	fs[0] = "changed"
	if m.Fields(mapping.SideSource)[0] != "email" {
		t.Errorf("Fields returned the mapper's own slice")
	}

	testCases := map[string]struct {
		side mapping.Side
		a, b string // equal projections
		want string // Project(a)
	}{
		"source: key order, whitespace, other fields": {
			side: mapping.SideSource,
			a:    `{"first":"Ann","email":"a@b","other":1,"synced":false}`,
			b:    "{\n  \"synced\" : false ,\"email\": \"a@b\",\t\"first\": \"Ann\"}",
			want: `{"email":"a@b","first":"Ann","synced":false}`,
		},
		"target: null kept, missing left out": {
			side: mapping.SideTarget,
			a:    `{"Email":null,"stage":"customer","id":12}`,
			b:    `{"id":12,"stage":"customer","Email":null,"zzz":[]}`,
			want: `{"Email":null,"id":12,"stage":"customer"}`,
		},
		"string escapes": {
			side: mapping.SideSource,
			a:    `{"email":"\u00e9\/x\u0022"}`,
			b:    `{"email":"é/x\""}`,
			want: `{"email":"é/x\""}`,
		},
		"nested objects": {
			side: mapping.SideTarget,
			a:    `{"name":{"b":[1,{"y":2,"x":1}],"a":null}}`,
			b:    `{"name":{ "a" : null , "b" : [ 1 , { "x" : 1 , "y" : 2 } ] }}`,
			want: `{"name":{"a":null,"b":[1,{"x":1,"y":2}]}}`,
		},
		"numbers as written": {
			side: mapping.SideSource,
			a:    `{"email":1.50}`,
			b:    `{ "email" : 1.50 }`,
			want: `{"email":1.50}`,
		},
		"empty": {side: mapping.SideSource, a: `{}`, b: `{"x":1}`, want: `{}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pa, err := m.Project(tc.side, raw(tc.a))
			if err != nil {
				t.Fatal(err)
			}
			pb, err := m.Project(tc.side, raw(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			if string(pa) != tc.want || string(pb) != tc.want {
				t.Fatalf("Project = %s and %s, want %s", pa, pb, tc.want)
			}
			ha, err := m.Hash(tc.side, raw(tc.a))
			if err != nil {
				t.Fatal(err)
			}
			hb, _ := m.Hash(tc.side, raw(tc.b))
			if ha != hb || len(ha) != 64 {
				t.Fatalf("Hash = %s and %s, want equal hex sha256", ha, hb)
			}
		})
	}

	differ := [][2]string{
		{`{"email":"a"}`, `{"email":"A"}`},
		{`{"email":1}`, `{"email":1.0}`},
		{`{"email":1}`, `{"email":"1"}`},
		{`{"email":null}`, `{}`},
		{`{"email":""}`, `{"email":null}`},
		{`{"first":"a"}`, `{"email":"a"}`},
	}
	for _, d := range differ {
		ha, _ := m.Hash(mapping.SideSource, raw(d[0]))
		hb, _ := m.Hash(mapping.SideSource, raw(d[1]))
		if ha == hb {
			t.Errorf("Hash(%s) == Hash(%s), want them to differ", d[0], d[1])
		}
	}
	for _, bad := range []string{`[]`, `{"a":}`, ``} {
		if _, err := m.Hash(mapping.SideSource, raw(bad)); !errors.Is(err, mapping.ErrNotObject) {
			t.Errorf("Hash(%s) error = %v, want ErrNotObject", bad, err)
		}
		if _, err := m.Project(mapping.SideTarget, raw(bad)); !errors.Is(err, mapping.ErrNotObject) {
			t.Errorf("Project(%s) error = %v, want ErrNotObject", bad, err)
		}
	}
}

func TestHashOfWrittenFieldsMatchesReadBack(t *testing.T) {
	t.Parallel()
	// What Map writes, read back from the target with other fields around it
	// and in another order, hashes the same.
	m := mustMapper(t, mapping.Rule{Source: "e", Target: "email", Transform: "lower"}, mapping.Rule{Source: "tags", Target: "tags"})
	out, err := m.Map(mapping.SideSource, raw(`{"e":"A@B","tags":{"y":1,"x":[2, 3]}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := m.Hash(mapping.SideTarget, out)
	h2, _ := m.Hash(mapping.SideTarget, raw(`{"id":"9","tags":{"x":[2,3],"y":1},"email":"a@b"}`))
	if h1 != h2 {
		t.Fatalf("hash of written %s differs from read back", out)
	}
}

func BenchmarkMap(b *testing.B) {
	m := mustMapper(b,
		mapping.Rule{Source: "email", Target: "email", Transform: "trim,lower"},
		mapping.Rule{Source: "first_name", Target: "firstname"},
		mapping.Rule{Source: "last_name", Target: "lastname"},
		mapping.Rule{Source: "id", Target: "shopify_id", Direction: "to_target"},
		mapping.Rule{Source: "phone", Target: "phone"},
		mapping.Rule{Target: "lifecyclestage", Value: raw(`"customer"`)},
	)
	src := raw(`{"id":"c_00000001","email":"Ann.Lee.1@example.com","first_name":"Ann","last_name":"Lee","phone":"+44 20 7946 0001","company":"Acme","updated_at":"2026-01-01T00:00:01Z"}`)
	dst := raw(`{"id":"901","email":"ann.lee.1@example.com","firstname":"Ann","lastname":"Lee","phone":"","shopify_id":"c_00000001","lifecyclestage":"customer","updatedAt":"2026-01-01T00:00:02Z"}`)
	b.Run("to_target", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Map(mapping.SideSource, src, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("to_source", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Map(mapping.SideTarget, dst, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHash(b *testing.B) {
	m := mustMapper(b,
		mapping.Rule{Source: "email", Target: "email", Transform: "trim,lower"},
		mapping.Rule{Source: "first_name", Target: "firstname"},
		mapping.Rule{Source: "last_name", Target: "lastname"},
		mapping.Rule{Source: "id", Target: "shopify_id", Direction: "to_target"},
		mapping.Rule{Source: "phone", Target: "phone"},
	)
	src := raw(`{"id":"c_00000001","email":"Ann.Lee.1@example.com","first_name":"Ann","last_name":"Lee","phone":"+44 20 7946 0001","company":"Acme","updated_at":"2026-01-01T00:00:01Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Hash(mapping.SideSource, src); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMapManyRules(t *testing.T) {
	t.Parallel()
	var rules []mapping.Rule
	var in strings.Builder
	in.WriteString("{")
	for i := range 40 {
		src, dst := string(rune('a'+i%26))+strings.Repeat("x", i/26), "t"+string(rune('a'+i%26))+strings.Repeat("x", i/26)
		rules = append(rules, mapping.Rule{Source: src, Target: dst})
		if i > 0 {
			in.WriteString(",")
		}
		in.WriteString(`"` + src + `":` + string(rune('0'+i%10)))
	}
	in.WriteString("}")
	m := mustMapper(t, rules...)
	got, err := m.Map(mapping.SideSource, raw(in.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]int
	if err := json.Unmarshal(got, &out); err != nil || len(out) != 40 {
		t.Fatalf("Map = %s (%v), want 40 fields", got, err)
	}
	back, err := m.Map(mapping.SideTarget, got, raw(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := m.Project(mapping.SideSource, raw(in.String()))
	if string(back) != string(p1) {
		t.Fatalf("back = %s, want %s", back, p1)
	}
	if len(m.Fields(mapping.SideTarget)) != 40 {
		t.Fatalf("Fields(target) = %v", m.Fields(mapping.SideTarget))
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  mapping.Error
		want string
	}{
		{mapping.Error{Index: -1, Message: "m"}, "mapping: m"},
		{mapping.Error{Index: 2, Message: "m"}, "mapping[2]: m"},
		{mapping.Error{Part: "filter", Index: 0, Message: "m"}, "filter[0]: m"},
		{mapping.Error{Part: "match", Index: -1, Message: "m"}, "match: m"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
