package mapping_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/mapping"
	"github.com/synchron-io/synchron/sdk"
)

func TestParseRejectsBadMappings(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		raw     string
		wantMsg string
	}{
		"missing":            {raw: ``, wantMsg: "mapping is required"},
		"not an array":       {raw: `{"source":"a"}`, wantMsg: "must be an array"},
		"empty":              {raw: `[]`, wantMsg: "mapping is empty"},
		"no target":          {raw: `[{"source":"a"}]`, wantMsg: "target is required"},
		"no source or value": {raw: `[{"target":"a"}]`, wantMsg: "needs a source field or a constant value"},
		"both":               {raw: `[{"target":"a","source":"b","value":"x"}]`, wantMsg: "both a source and a value"},
		"dup target":         {raw: `[{"target":"a","source":"b"},{"target":"a","source":"c"}]`, wantMsg: "already mapped"},
		"bad transform":      {raw: `[{"target":"a","source":"b","transform":"reverse"}]`, wantMsg: `unknown transform "reverse"`},
		"unknown key":        {raw: `[{"target":"a","source":"b","colour":"red"}]`, wantMsg: "colour"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.Parse(json.RawMessage(tc.raw))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want error containing %q", tc.raw, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Parse(%s) error = %q, want it to contain %q", tc.raw, err, tc.wantMsg)
			}
		})
	}
}

func TestValidateNamesTheMissingField(t *testing.T) {
	t.Parallel()
	src := sdk.Object{Name: "contacts", Fields: []sdk.Field{{Name: "email", Type: sdk.TypeString}, {Name: "name", Type: sdk.TypeString}}}
	dst := sdk.Object{Name: "people", Fields: []sdk.Field{{Name: "email", Type: sdk.TypeString}, {Name: "id", Type: sdk.TypeString, ReadOnly: true}}}
	testCases := map[string]struct {
		rules   []mapping.Rule
		wantMsg string // "" means valid
	}{
		"valid":            {rules: []mapping.Rule{{Source: "email", Target: "email"}}},
		"constant":         {rules: []mapping.Rule{{Value: json.RawMessage(`"x"`), Target: "email"}}},
		"missing source":   {rules: []mapping.Rule{{Source: "mail", Target: "email"}}, wantMsg: `source field "mail" does not exist in "contacts"`},
		"missing target":   {rules: []mapping.Rule{{Source: "email", Target: "e_mail"}}, wantMsg: `target field "e_mail" does not exist in "people"`},
		"read-only target": {rules: []mapping.Rule{{Source: "email", Target: "id"}}, wantMsg: "read-only"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := mapping.Validate(tc.rules, src, dst)
			switch {
			case tc.wantMsg == "" && err != nil:
				t.Fatalf("Validate: unexpected error %v", err)
			case tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)):
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		rules []mapping.Rule
		in    string
		want  string
	}{
		"rename and transforms": {
			rules: []mapping.Rule{{Source: "mail", Target: "email", Transform: "trim,lower"}, {Source: "n", Target: "name", Transform: "upper"}},
			in:    `{"mail": "  Ann@Example.COM ", "n": "ann", "other": 1}`,
			want:  `{"email":"ann@example.com","name":"ANN"}`,
		},
		"constant and big number kept exact": {
			rules: []mapping.Rule{{Value: json.RawMessage(`"customer"`), Target: "stage"}, {Source: "total", Target: "amount"}},
			in:    `{"total": 12345678901234567890.125}`,
			want:  `{"amount":12345678901234567890.125,"stage":"customer"}`,
		},
		"missing source field is left out": {
			rules: []mapping.Rule{{Source: "a", Target: "x"}, {Source: "b", Target: "y"}},
			in:    `{"a": 1}`,
			want:  `{"x":1}`,
		},
		"default for missing and null": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Default: json.RawMessage(`"none"`)}, {Source: "b", Target: "y", Default: json.RawMessage(`0`)}},
			in:    `{"b": null}`,
			want:  `{"x":"none","y":0}`,
		},
		"transform ignores non-strings": {
			rules: []mapping.Rule{{Source: "a", Target: "x", Transform: "upper"}},
			in:    `{"a": true}`,
			want:  `{"x":true}`,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := mapping.NewMapper(tc.rules)
			if err != nil {
				t.Fatalf("NewMapper: %v", err)
			}
			got, err := m.Apply(json.RawMessage(tc.in))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Fatalf("Apply(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestApplyRejectsNonObject(t *testing.T) {
	t.Parallel()
	m, err := mapping.NewMapper([]mapping.Rule{{Source: "a", Target: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`[1]`, `"a"`, `null`, `{`} {
		if _, err := m.Apply(json.RawMessage(in)); err == nil {
			t.Errorf("Apply(%s) succeeded, want ErrNotObject", in)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	m, err := mapping.NewMapper([]mapping.Rule{
		{Source: "email", Target: "email", Transform: "trim,lower"},
		{Source: "first_name", Target: "first_name"},
		{Source: "last_name", Target: "last_name"},
		{Source: "id", Target: "external_id"},
	})
	if err != nil {
		b.Fatal(err)
	}
	in := json.RawMessage(`{"id":"c_00000001","email":"Ann.Lee.1@example.com","first_name":"Ann","last_name":"Lee","phone":"+44 20 7946 0001","company":"Acme","updated_at":"2026-01-01T00:00:01Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Apply(in); err != nil {
			b.Fatal(err)
		}
	}
}
