package mapping_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

func TestParseMatch(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		raw     string
		want    *mapping.Match
		wantMsg string
	}{
		"absent":         {raw: ``},
		"null":           {raw: `null`},
		"ok":             {raw: `{"source": "email", "target": "Email"}`, want: &mapping.Match{Source: "email", Target: "Email"}},
		"trimmed":        {raw: `{"source": " email ", "target": "email"}`, want: &mapping.Match{Source: "email", Target: "email"}},
		"empty object":   {raw: `{}`, wantMsg: `match: match needs both source and target fields`},
		"no target":      {raw: `{"source": "email"}`, wantMsg: `match needs a target field: the target field whose value equals source field "email"`},
		"no source":      {raw: `{"target": "email"}`, wantMsg: `match needs a source field`},
		"unknown key":    {raw: `{"source": "a", "target": "b", "case": true}`, wantMsg: `match must be an object`},
		"not an object":  {raw: `"email"`, wantMsg: `match must be an object such as {"source": "email", "target": "email"}`},
		"number field":   {raw: `{"source": 1, "target": "b"}`, wantMsg: `match must be an object`},
		"blank source":   {raw: `{"source": "  ", "target": "b"}`, wantMsg: `match needs a source field`},
		"null in fields": {raw: `{"source": null, "target": null}`, wantMsg: `needs both`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := mapping.ParseMatch(json.RawMessage(tc.raw))
			if tc.wantMsg != "" {
				var me *mapping.Error
				if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("ParseMatch(%s) error = %v, want a *mapping.Error containing %q", tc.raw, err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMatch(%s): %v", tc.raw, err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("ParseMatch(%s) = %+v, want %+v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestMatchValidate(t *testing.T) {
	t.Parallel()
	src := sdk.Object{Name: "customers", Fields: []sdk.Field{{Name: "email"}}}
	dst := sdk.Object{Name: "contacts", Fields: []sdk.Field{{Name: "Email"}, {Name: "id"}}}
	if err := (mapping.Match{Source: "email", Target: "Email"}).Validate(src, dst); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	err := (mapping.Match{Source: "mail", Target: "Email"}).Validate(src, dst)
	if err == nil || !strings.Contains(err.Error(), `match: match.source field "mail" does not exist in "customers"; available fields: email`) {
		t.Fatalf("Validate error = %v", err)
	}
	err = (mapping.Match{Source: "email", Target: "email"}).Validate(src, dst)
	if err == nil || !strings.Contains(err.Error(), `match.target field "email" does not exist in "contacts"; available fields: Email, id`) {
		t.Fatalf("Validate error = %v", err)
	}
}

func TestMatchKey(t *testing.T) {
	t.Parallel()
	m := mapping.Match{Source: "email", Target: "Email"}
	testCases := map[string]struct {
		side   mapping.Side
		fields string
		want   string
		ok     bool
	}{
		"case and spaces":       {side: mapping.SideSource, fields: `{"email": "  Ann.Lee@Example.COM \n"}`, want: "ann.lee@example.com", ok: true},
		"target field":          {side: mapping.SideTarget, fields: `{"Email": "ANN@x.io", "email": "other"}`, want: "ann@x.io", ok: true},
		"escaped":               {side: mapping.SideSource, fields: `{"email": "\u0041nn"}`, want: "ann", ok: true},
		"unicode lower":         {side: mapping.SideSource, fields: `{"email": "ÉLODIE"}`, want: "élodie", ok: true},
		"number":                {side: mapping.SideSource, fields: `{"email": 12.50}`, want: "12.50", ok: true},
		"number matches string": {side: mapping.SideTarget, fields: `{"Email": "12.50"}`, want: "12.50", ok: true},
		"boolean":               {side: mapping.SideSource, fields: `{"email": true}`, want: "true", ok: true},
		"missing":               {side: mapping.SideSource, fields: `{"Email": "a"}`},
		"null":                  {side: mapping.SideSource, fields: `{"email": null}`},
		"empty":                 {side: mapping.SideSource, fields: `{"email": ""}`},
		"blank":                 {side: mapping.SideSource, fields: `{"email": " \t "}`},
		"object":                {side: mapping.SideSource, fields: `{"email": {"a": 1}}`},
		"array":                 {side: mapping.SideSource, fields: `{"email": ["a"]}`},
		"not an object":         {side: mapping.SideSource, fields: `["a"]`},
		"invalid JSON":          {side: mapping.SideSource, fields: `{"email": "a",}`},
		"bad side":              {side: 0, fields: `{"email": "a"}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := m.Key(tc.side, json.RawMessage(tc.fields))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Key(%v, %s) = %q, %v; want %q, %v", tc.side, tc.fields, got, ok, tc.want, tc.ok)
			}
		})
	}
}
