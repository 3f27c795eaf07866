package mapping_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

func mustFilter(t *testing.T, raw string) *mapping.Filter {
	t.Helper()
	f, err := mapping.ParseFilter(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("ParseFilter(%s): %v", raw, err)
	}
	return f
}

func TestFilterOps(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		cond   string // one condition on the source
		fields string
		want   bool
	}{
		{`{"field":"s","op":"eq","value":"active"}`, `{"s":"active"}`, true},
		{`{"field":"s","op":"eq","value":"active"}`, `{"s":"Active"}`, false},
		{`{"field":"s","op":"eq","value":"active"}`, `{}`, false},
		{`{"field":"s","op":"eq","value":"a\"b"}`, `{"s":"a\u0022b"}`, true},
		{`{"field":"n","op":"eq","value":1.5}`, `{"n":1.50}`, true},
		{`{"field":"n","op":"eq","value":150}`, `{"n":1.5e2}`, true},
		{`{"field":"n","op":"eq","value":1.5}`, `{"n":"1.5"}`, true},
		{`{"field":"n","op":"eq","value":1}`, `{"n":2}`, false},
		{`{"field":"n","op":"eq","value":"1"}`, `{"n":1}`, false},
		{`{"field":"b","op":"eq","value":true}`, `{"b":true}`, true},
		{`{"field":"b","op":"eq","value":true}`, `{"b":"true"}`, false},
		{`{"field":"x","op":"eq","value":null}`, `{"x":null}`, true},
		{`{"field":"x","op":"eq","value":null}`, `{}`, true},
		{`{"field":"x","op":"eq","value":null}`, `{"x":""}`, false},
		{`{"field":"s","op":"ne","value":"active"}`, `{"s":"trial"}`, true},
		{`{"field":"s","op":"ne","value":"active"}`, `{"s":"active"}`, false},
		{`{"field":"s","op":"ne","value":"active"}`, `{}`, true},
		{`{"field":"s","op":"ne","value":5}`, `{"s":"5.0"}`, false},
		{`{"field":"s","op":"in","value":["a","b",3]}`, `{"s":"b"}`, true},
		{`{"field":"s","op":"in","value":["a","b",3]}`, `{"s":3.0}`, true},
		{`{"field":"s","op":"in","value":["a","b"]}`, `{"s":"c"}`, false},
		{`{"field":"s","op":"in","value":["a",null]}`, `{}`, true},
		{`{"field":"s","op":"not_in","value":["a","b"]}`, `{"s":"c"}`, true},
		{`{"field":"s","op":"not_in","value":["a","b"]}`, `{"s":"a"}`, false},
		{`{"field":"s","op":"not_in","value":["a"]}`, `{}`, true},
		{`{"field":"s","op":"exists"}`, `{"s":0}`, true},
		{`{"field":"s","op":"exists"}`, `{"s":""}`, false},
		{`{"field":"s","op":"exists"}`, `{"s":null}`, false},
		{`{"field":"s","op":"exists"}`, `{}`, false},
		{`{"field":"s","op":"not_exists"}`, `{}`, true},
		{`{"field":"s","op":"not_exists"}`, `{"s":null}`, true},
		{`{"field":"s","op":"not_exists"}`, `{"s":false}`, false},
		{`{"field":"s","op":"contains","value":"ACME"}`, `{"s":"the acme co"}`, true},
		{`{"field":"s","op":"contains","value":"acme"}`, `{"s":"ac me"}`, false},
		{`{"field":"s","op":"contains","value":"vip"}`, `{"s":["new","VIP"]}`, true},
		{`{"field":"s","op":"contains","value":"vip"}`, `{"s":["vips"]}`, false},
		{`{"field":"s","op":"contains","value":"1"}`, `{"s":12}`, false},
		{`{"field":"s","op":"contains","value":"a"}`, `{}`, false},
		{`{"field":"s","op":"starts_with","value":"Mr"}`, `{"s":"mr. smith"}`, true},
		{`{"field":"s","op":"starts_with","value":"Mr"}`, `{"s":"Ms. Mr"}`, false},
		{`{"field":"s","op":"starts_with","value":"1"}`, `{"s":12}`, false},
		{`{"field":"n","op":"gt","value":10}`, `{"n":10.5}`, true},
		{`{"field":"n","op":"gt","value":10}`, `{"n":10}`, false},
		{`{"field":"n","op":"gt","value":10}`, `{"n":"12.50"}`, true},
		{`{"field":"n","op":"gt","value":10}`, `{"n":"abc"}`, false},
		{`{"field":"n","op":"gt","value":10}`, `{"n":null}`, false},
		{`{"field":"n","op":"gt","value":-1}`, `{"n":0}`, true},
		{`{"field":"n","op":"gt","value":99999999999999999999}`, `{"n":100000000000000000000}`, true},
		{`{"field":"n","op":"gte","value":10}`, `{"n":10.0}`, true},
		{`{"field":"n","op":"gte","value":10}`, `{"n":9.99}`, false},
		{`{"field":"n","op":"lt","value":0.001}`, `{"n":1e-4}`, true},
		{`{"field":"n","op":"lt","value":-5}`, `{"n":-4}`, false},
		{`{"field":"n","op":"lte","value":-5}`, `{"n":-5e0}`, true},
		{`{"field":"n","op":"lte","value":0}`, `{"n":true}`, false},
		{`{"field":"d","op":"gt","value":"2026-01-01T00:00:00Z"}`, `{"d":"2026-01-01T01:00:00+02:00"}`, false},
		{`{"field":"d","op":"gt","value":"2026-01-01T00:00:00Z"}`, `{"d":"2026-01-01T01:00:00+00:30"}`, true},
		{`{"field":"d","op":"gte","value":"2026-01-01"}`, `{"d":"2026-01-01T00:00:00Z"}`, true},
		{`{"field":"d","op":"lt","value":"2026-01-01T00:00:00Z"}`, `{"d":"2025-12-31 23:59:59"}`, true},
		{`{"field":"s","op":"gt","value":"b"}`, `{"s":"c"}`, true},
		{`{"field":"s","op":"gt","value":"b"}`, `{"s":"B"}`, false},
		{`{"field":"s","op":"lt","value":"b"}`, `{"s":5}`, false},
		{`{"side":"target","field":"s","op":"eq","value":"x"}`, `{"s":"y"}`, true}, // other side: ignored
	}
	for _, tc := range testCases {
		t.Run(tc.cond+" "+tc.fields, func(t *testing.T) {
			t.Parallel()
			f := mustFilter(t, `{"all":[`+tc.cond+`]}`)
			if got := f.Match(mapping.SideSource, json.RawMessage(tc.fields)); got != tc.want {
				t.Fatalf("filter %s on %s = %v, want %v", tc.cond, tc.fields, got, tc.want)
			}
		})
	}
}

func TestFilterGroups(t *testing.T) {
	t.Parallel()
	all := mustFilter(t, `{"all":[
		{"field":"status","op":"eq","value":"active"},
		{"field":"total","op":"gte","value":100},
		{"side":"target","field":"owner","op":"exists"}]}`)
	anyF := mustFilter(t, `{"any":[{"field":"status","op":"eq","value":"vip"},{"field":"total","op":"gte","value":1000}]}`)
	targetOnly := mustFilter(t, `{"any":[{"side":"target","field":"owner","op":"exists"}]}`)
	var none *mapping.Filter
	testCases := map[string]struct {
		f      *mapping.Filter
		side   mapping.Side
		fields string
		want   bool
	}{
		"all: every source condition":   {f: all, side: mapping.SideSource, fields: `{"status":"active","total":150}`, want: true},
		"all: one fails":                {f: all, side: mapping.SideSource, fields: `{"status":"active","total":50}`, want: false},
		"all: target side checked":      {f: all, side: mapping.SideTarget, fields: `{"owner":""}`, want: false},
		"all: target side passes":       {f: all, side: mapping.SideTarget, fields: `{"owner":"ann","status":"x"}`, want: true},
		"any: first holds":              {f: anyF, side: mapping.SideSource, fields: `{"status":"vip","total":1}`, want: true},
		"any: second holds":             {f: anyF, side: mapping.SideSource, fields: `{"status":"x","total":1000}`, want: true},
		"any: none holds":               {f: anyF, side: mapping.SideSource, fields: `{"status":"x","total":999}`, want: false},
		"any: other side ignored":       {f: anyF, side: mapping.SideTarget, fields: `{}`, want: true},
		"any on target: source ignored": {f: targetOnly, side: mapping.SideSource, fields: `{}`, want: true},
		"any on target: target checked": {f: targetOnly, side: mapping.SideTarget, fields: `{}`, want: false},
		"nil filter":                    {f: none, side: mapping.SideSource, fields: `{}`, want: true},
		"nil filter, any record":        {f: none, side: mapping.SideTarget, fields: `garbage`, want: true},
		"not an object":                 {f: all, side: mapping.SideSource, fields: `[1]`, want: false},
		"invalid JSON":                  {f: anyF, side: mapping.SideSource, fields: `{"status":"vip",}`, want: false},
		"bad side":                      {f: all, side: 3, fields: `{}`, want: false},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := tc.f.Match(tc.side, json.RawMessage(tc.fields)); got != tc.want {
				t.Fatalf("Match(%v, %s) = %v, want %v", tc.side, tc.fields, got, tc.want)
			}
		})
	}
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{``, `null`, ` null `} {
		if f, err := mapping.ParseFilter(json.RawMessage(raw)); f != nil || err != nil {
			t.Errorf("ParseFilter(%q) = %v, %v; want nil, nil", raw, f, err)
		}
	}
	testCases := map[string]struct {
		raw       string
		wantMsg   string
		wantIndex int
		wantField string
	}{
		"not an object":      {raw: `[]`, wantMsg: `filter: filter must be {"all": [conditions]} or {"any": [conditions]}`, wantIndex: -1},
		"unknown group":      {raw: `{"none": []}`, wantMsg: `filter must be`, wantIndex: -1},
		"both groups":        {raw: `{"all": [{"field":"a","op":"exists"}], "any": [{"field":"a","op":"exists"}]}`, wantMsg: `has both "all" and "any": keep one`, wantIndex: -1},
		"no group":           {raw: `{}`, wantMsg: `filter needs "all" or "any"`, wantIndex: -1},
		"group not an array": {raw: `{"all": {"field":"a"}}`, wantMsg: `filter conditions must be an array`, wantIndex: -1},
		"empty group":        {raw: `{"any": []}`, wantMsg: `filter has no conditions: give at least one, or remove the filter`, wantIndex: -1},
		"unknown op":         {raw: `{"all": [{"field":"a","op":"exists"},{"field":"status","op":"equals","value":1}]}`, wantMsg: `filter[1]: unknown op "equals" on "status": use eq, ne, in`, wantIndex: 1, wantField: "status"},
		"no op":              {raw: `{"all": [{"field":"status"}]}`, wantMsg: `condition on "status" needs an op`, wantField: "status"},
		"no field":           {raw: `{"all": [{"op":"exists"}]}`, wantMsg: `condition needs a field: the source field it tests`},
		"bad side":           {raw: `{"all": [{"side":"both","field":"a","op":"exists"}]}`, wantMsg: `side "both" is not valid: use "source" or "target"`, wantField: "a"},
		"unknown key":        {raw: `{"all": [{"field":"a","op":"exists","values":[1]}]}`, wantMsg: `a condition must be an object {side, field, op, value}`},
		"missing value":      {raw: `{"all": [{"field":"status","op":"eq"}]}`, wantMsg: `op "eq" on "status" needs a value, such as {"field": "status", "op": "eq", "value": "active"}`, wantField: "status"},
		"eq array":           {raw: `{"all": [{"field":"status","op":"eq","value":["a"]}]}`, wantMsg: `compares with a string, number, boolean or null, not an array: use "in"`, wantField: "status"},
		"ne object":          {raw: `{"all": [{"field":"status","op":"ne","value":{}}]}`, wantMsg: `not an object`, wantField: "status"},
		"in scalar":          {raw: `{"all": [{"field":"status","op":"in","value":"a"}]}`, wantMsg: `op "in" on "status" needs an array value, such as ["active", "trial"]`, wantField: "status"},
		"in null":            {raw: `{"all": [{"field":"status","op":"not_in","value":null}]}`, wantMsg: `op "not_in" on "status" needs an array value`, wantField: "status"},
		"in missing":         {raw: `{"all": [{"field":"status","op":"in"}]}`, wantMsg: `needs an array value`, wantField: "status"},
		"in empty":           {raw: `{"all": [{"field":"status","op":"in","value":[]}]}`, wantMsg: `needs at least one value in its array`, wantField: "status"},
		"in nested":          {raw: `{"all": [{"field":"status","op":"in","value":["a",["b"]]}]}`, wantMsg: `value[1] is an array`, wantField: "status"},
		"exists with value":  {raw: `{"all": [{"field":"status","op":"exists","value":true}]}`, wantMsg: `op "exists" on "status" takes no value: remove value`, wantField: "status"},
		"contains number":    {raw: `{"all": [{"field":"tags","op":"contains","value":1}]}`, wantMsg: `op "contains" on "tags" needs a non-empty string value`, wantField: "tags"},
		"starts_with empty":  {raw: `{"all": [{"field":"tags","op":"starts_with","value":""}]}`, wantMsg: `needs a non-empty string value`, wantField: "tags"},
		"gt boolean":         {raw: `{"all": [{"field":"total","op":"gt","value":true}]}`, wantMsg: `op "gt" on "total" needs a number or a string value`, wantField: "total"},
		"lte missing":        {raw: `{"all": [{"field":"total","op":"lte"}]}`, wantMsg: `needs a number or a string value`, wantField: "total"},
		"any mixes sides":    {raw: `{"any": [{"field":"a","op":"exists"},{"side":"target","field":"b","op":"exists"}]}`, wantMsg: `an "any" filter cannot mix source and target conditions`, wantIndex: -1},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.ParseFilter(json.RawMessage(tc.raw))
			var me *mapping.Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("ParseFilter(%s) error = %v, want a *mapping.Error containing %q", tc.raw, err, tc.wantMsg)
			}
			if me.Index != tc.wantIndex || me.Field != tc.wantField || me.Part != "filter" {
				t.Fatalf("ParseFilter(%s) error Part, Index, Field = %q, %d, %q; want filter, %d, %q", tc.raw, me.Part, me.Index, me.Field, tc.wantIndex, tc.wantField)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	src := sdk.Object{Name: "orders", Fields: []sdk.Field{{Name: "status"}, {Name: "total"}}}
	dst := sdk.Object{Name: "deals", Fields: []sdk.Field{{Name: "stage"}}}
	ok := mustFilter(t, `{"all":[{"field":"status","op":"exists"},{"side":"target","field":"stage","op":"ne","value":"lost"}]}`)
	if err := ok.Validate(src, dst); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var none *mapping.Filter
	if err := none.Validate(src, dst); err != nil {
		t.Fatalf("nil Validate: %v", err)
	}
	bad := mustFilter(t, `{"all":[{"field":"status","op":"exists"},{"side":"target","field":"status","op":"exists"}]}`)
	err := bad.Validate(src, dst)
	if err == nil || !strings.Contains(err.Error(), `filter[1]: target field "status" does not exist in "deals"; available fields: stage`) {
		t.Fatalf("Validate error = %v", err)
	}
	bad = mustFilter(t, `{"any":[{"field":"stauts","op":"exists"}]}`)
	if err := bad.Validate(src, dst); err == nil || !strings.Contains(err.Error(), `filter[0]: source field "stauts" does not exist in "orders"; available fields: status, total`) {
		t.Fatalf("Validate error = %v", err)
	}
}
