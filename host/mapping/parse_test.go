package mapping_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

func TestParseRejectsBadRules(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		raw       string
		wantMsg   []string // all must appear
		wantIndex int
		wantField string
	}{
		"bad direction": {
			raw:     `[{"source":"a","target":"b","direction":"sideways"}]`,
			wantMsg: []string{`mapping[0]`, `direction "sideways" is not valid`, `"both", "to_target" or "to_source"`}, wantField: "b",
		},
		"constant both ways": {
			raw:     `[{"source":"a","target":"b"},{"target":"stage","value":"x","direction":"both"}]`,
			wantMsg: []string{`mapping[1]`, `rule for "stage" has a constant value`, `set direction "to_target"`}, wantIndex: 1, wantField: "stage",
		},
		"constant to source without source": {
			raw:     `[{"target":"stage","value":"x","direction":"to_source"}]`,
			wantMsg: []string{`needs "source": the source field the value is written to`}, wantField: "stage",
		},
		"constant to source with a target": {
			raw:     `[{"source":"s","target":"stage","value":"x","direction":"to_source"}]`,
			wantMsg: []string{`writes only the source field "s": remove "target" "stage"`}, wantField: "s",
		},
		"constant to target without target": {
			raw:     `[{"value":"x"}]`,
			wantMsg: []string{`target is required: name the target field the constant value is written to`},
		},
		"unknown transform": {
			raw:     `[{"source":"a","target":"b","transform":"trim,title"}]`,
			wantMsg: []string{`unknown transform "title" in rule for "b"`, `use trim, lower, upper, number, format_date or map`}, wantField: "b",
		},
		"format_date without format": {
			raw:     `[{"source":"a","target":"day","transform":"format_date"}]`,
			wantMsg: []string{`rule for "day": transform format_date needs "format"`, `"YYYY-MM-DD"`}, wantField: "day",
		},
		"format without format_date": {
			raw:     `[{"source":"a","target":"day","format":"YYYY"}]`,
			wantMsg: []string{`has a "format" but no format_date transform`}, wantField: "day",
		},
		"java style format": {
			raw:     `[{"source":"a","target":"day","transform":"format_date","format":"yyyy-MM-dd"}]`,
			wantMsg: []string{`rule for "day": format "yyyy-MM-dd": "yyyy" is not a date part`, `use YYYY (year)`, `[brackets]`}, wantField: "day",
		},
		"format with only literals": {
			raw:     `[{"source":"a","target":"day","transform":"format_date","format":"--"}]`,
			wantMsg: []string{`format "--" has no date parts`}, wantField: "day",
		},
		"unclosed bracket": {
			raw:     `[{"source":"a","target":"day","transform":"format_date","format":"YYYY [at"}]`,
			wantMsg: []string{`has a [ without its closing ]`}, wantField: "day",
		},
		"five Y": {
			raw:     `[{"source":"a","target":"day","transform":"format_date","format":"YYYYY"}]`,
			wantMsg: []string{`"YYYYY" is not a date part`}, wantField: "day",
		},
		"map without map": {
			raw:     `[{"source":"a","target":"stage","transform":"map"}]`,
			wantMsg: []string{`transform map needs "map"`, `{"prod": "production"}`}, wantField: "stage",
		},
		"map without transform": {
			raw:     `[{"source":"a","target":"stage","map":{"a":"b"}}]`,
			wantMsg: []string{`has a "map" but no map transform`}, wantField: "stage",
		},
		"map not invertible on both": {
			raw:     `[{"source":"env","target":"stage","transform":"map","map":{"prod":"live","production":"live","dev":"test"}}]`,
			wantMsg: []string{`map sends both "prod" and "production" to "live"`, `set direction "to_target"`}, wantField: "stage",
		},
		"map not invertible on to_source": {
			raw:     `[{"source":"env","target":"stage","direction":"to_source","transform":"map","map":{"prod":"live","production":"live"}}]`,
			wantMsg: []string{`read backwards`, `"prod" and "production" both map to "live"`}, wantField: "stage",
		},
		"two rules write a source field": {
			raw:     `[{"source":"email","target":"email"},{"source":"email","target":"work_email"}]`,
			wantMsg: []string{`mapping[1]`, `source field "email" is already written back by rule 0`, `set direction "to_target"`}, wantIndex: 1, wantField: "email",
		},
		"two rules write a target field": {
			raw:     `[{"source":"a","target":"x","direction":"to_target"},{"target":"x","value":1}]`,
			wantMsg: []string{`target field "x" is already mapped by rule 0`}, wantIndex: 1, wantField: "x",
		},
		"value not JSON-decodable shape": {
			raw:     `[{"source":"a","target":"b","allow_empty":"yes"}]`,
			wantMsg: []string{`mapping must be an array`, `allow_empty`}, wantIndex: -1,
		},
		"map values must be strings": {
			raw:     `[{"source":"a","target":"b","transform":"map","map":{"a":1}}]`,
			wantMsg: []string{`mapping must be an array`}, wantIndex: -1,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.Parse(json.RawMessage(tc.raw))
			var me *mapping.Error
			if !errors.As(err, &me) {
				t.Fatalf("Parse(%s) error = %v, want a *mapping.Error", tc.raw, err)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Parse(%s) error = %q, want it to contain %q", tc.raw, err, want)
				}
			}
			if me.Index != tc.wantIndex || me.Field != tc.wantField {
				t.Errorf("Parse(%s) error Index, Field = %d, %q; want %d, %q", tc.raw, me.Index, me.Field, tc.wantIndex, tc.wantField)
			}
		})
	}
}

func TestParseAcceptsAndFillsDirections(t *testing.T) {
	t.Parallel()
	rules, err := mapping.Parse(json.RawMessage(`[
		{"source": "email", "target": "email", "transform": "trim,lower"},
		{"target": "lifecyclestage", "value": "customer"},
		{"source": "synced", "value": true, "direction": "to_source"},
		{"source": "id", "target": "shopify_id", "direction": "to_target"},
		{"source": "hs_id", "target": "id", "direction": "to_source"},
		{"source": "env", "target": "stage", "transform": "map", "map": {"prod": "production", "dev": "development"}},
		{"source": "kind", "target": "type", "direction": "to_target", "transform": "map", "map": {"a": "x", "b": "x"}},
		{"source": "created", "target": "created_on", "transform": "format_date", "format": "DD/MM/YYYY", "allow_empty": true},
		{"source": "email", "target": "work_email", "direction": "to_target"}
	]`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{"both", "to_target", "to_source", "to_target", "to_source", "both", "to_target", "both", "to_target"}
	for i, r := range rules {
		if r.Direction != want[i] {
			t.Errorf("rule %d direction = %q, want %q", i, r.Direction, want[i])
		}
	}
	if !rules[7].AllowEmpty || rules[7].Format != "DD/MM/YYYY" || rules[5].Map["prod"] != "production" {
		t.Errorf("fields not decoded: %+v", rules)
	}
	if _, err := mapping.NewMapper(rules); err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
}

func TestValidateDirections(t *testing.T) {
	t.Parallel()
	src := sdk.Object{Name: "customers", Fields: []sdk.Field{
		{Name: "id", Type: sdk.TypeString, ReadOnly: true},
		{Name: "email", Type: sdk.TypeString},
		{Name: "note", Type: sdk.TypeString},
		{Name: "hubspot_id", Type: sdk.TypeString},
	}}
	dst := sdk.Object{Name: "contacts", Fields: []sdk.Field{
		{Name: "id", Type: sdk.TypeString, ReadOnly: true},
		{Name: "email", Type: sdk.TypeString},
		{Name: "shopify_id", Type: sdk.TypeString},
		{Name: "stage", Type: sdk.TypeString},
	}}
	testCases := map[string]struct {
		rules     []mapping.Rule
		wantMsg   string // "" means valid
		wantField string
	}{
		"both":                       {rules: []mapping.Rule{{Source: "email", Target: "email"}}},
		"read-only source to_target": {rules: []mapping.Rule{{Source: "id", Target: "shopify_id", Direction: "to_target"}}},
		"read-only target to_source": {rules: []mapping.Rule{{Source: "hubspot_id", Target: "id", Direction: "to_source"}}},
		"constant to target":         {rules: []mapping.Rule{{Target: "stage", Value: raw(`"customer"`)}}},
		"constant to source":         {rules: []mapping.Rule{{Source: "note", Value: raw(`"synced"`), Direction: "to_source"}}},
		"read-only source both": {
			rules:   []mapping.Rule{{Source: "id", Target: "shopify_id"}},
			wantMsg: `mapping[0]: source field "id" of "customers" is read-only, but direction "both" writes values back to it: set direction "to_target"`, wantField: "id",
		},
		"read-only source to_source": {
			rules:   []mapping.Rule{{Source: "id", Target: "stage", Direction: "to_source"}},
			wantMsg: `direction "to_source" writes values back to it`, wantField: "id",
		},
		"read-only target both": {
			rules:   []mapping.Rule{{Source: "hubspot_id", Target: "id"}},
			wantMsg: `target field "id" of "contacts" is read-only, but direction "both" writes to it: set direction "to_source" to only read it`, wantField: "id",
		},
		"read-only target constant": {
			rules:   []mapping.Rule{{Target: "id", Value: raw(`1`)}},
			wantMsg: `direction "to_target" writes to it`, wantField: "id",
		},
		"read-only source constant": {
			rules:   []mapping.Rule{{Source: "id", Value: raw(`1`), Direction: "to_source"}},
			wantMsg: `source field "id" of "customers" is read-only`, wantField: "id",
		},
		"missing source for to_source": {
			rules:   []mapping.Rule{{Source: "phone", Target: "email", Direction: "to_source"}},
			wantMsg: `source field "phone" does not exist in "customers"; available fields: id, email, note, hubspot_id`, wantField: "phone",
		},
		"missing target for to_source": {
			rules:   []mapping.Rule{{Source: "note", Target: "notes", Direction: "to_source"}},
			wantMsg: `target field "notes" does not exist in "contacts"`, wantField: "notes",
		},
		"second rule": {
			rules:   []mapping.Rule{{Source: "email", Target: "email"}, {Source: "note", Target: "nope"}},
			wantMsg: `mapping[1]: target field "nope"`, wantField: "nope",
		},
		"map and format on any type": {
			rules: []mapping.Rule{{Source: "note", Target: "stage", Transform: "map,format_date", Map: map[string]string{"a": "b"}, Format: "YYYY"}},
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := mapping.Validate(tc.rules, src, dst)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate: unexpected error %v", err)
				}
				return
			}
			var me *mapping.Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Validate error = %v, want a *mapping.Error containing %q", err, tc.wantMsg)
			}
			if me.Field != tc.wantField {
				t.Fatalf("Validate error field = %q, want %q", me.Field, tc.wantField)
			}
		})
	}
}

func TestOneWay(t *testing.T) {
	t.Parallel()
	rules := []mapping.Rule{{Source: "id", Target: "external_id"}, {Target: "stage", Value: raw(`"x"`)}, {Source: "a", Target: "b", Direction: "both"}}
	one, err := mapping.OneWay(rules)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range one {
		if r.Direction != "to_target" {
			t.Errorf("rule %d direction = %q, want to_target", i, r.Direction)
		}
	}
	if rules[0].Direction != "" {
		t.Errorf("OneWay changed its input")
	}
	_, err = mapping.OneWay([]mapping.Rule{{Source: "a", Target: "b"}, {Source: "c", Target: "d", Direction: "to_source"}})
	if err == nil || !strings.Contains(err.Error(), `mapping[1]: rule for "d" has direction "to_source", which needs a two-way workflow`) {
		t.Fatalf("OneWay error = %v", err)
	}
}
