package fake

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// schema is the part of a Swagger 2.0 schema the fake checks: types,
// required properties, nested properties and array items.
type schema struct {
	Type       string             `json:"type"`
	Required   []string           `json:"required"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
}

// specBodies maps a request (method + collection) to the schema of its
// wrapped body, read from the spec's definitions.
type specBodies map[string]*schema

// LoadSpec reads the request-body definitions of contacts, products and
// sales invoices from sage-accounting-v3.1-openapi.json in dir.
func LoadSpec(dir string) (specBodies, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "sage-accounting-v3.1-openapi.json"))
	if err != nil {
		return nil, fmt.Errorf("read sage spec: %w", err)
	}
	var doc struct {
		Definitions map[string]*schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse sage spec: %w", err)
	}
	out := specBodies{}
	for _, c := range []struct{ coll, def string }{
		{"contacts", "Contacts"}, {"products", "Products"}, {"sales_invoices", "SalesInvoices"},
	} {
		for _, m := range []string{"post", "put"} {
			s := doc.Definitions[m+c.def]
			if s == nil {
				return nil, fmt.Errorf("sage spec: no definition %s%s", m, c.def)
			}
			out[m+" "+c.coll] = s
		}
	}
	return out, nil
}

// problem is one validation failure: the field (dotted path) and message.
type problem struct{ source, message string }

// check validates v against s; path is the dotted path of v.
func check(s *schema, v any, path string, out *[]problem) {
	if s == nil || v == nil {
		return
	}
	bad := func(want string) {
		*out = append(*out, problem{path, fmt.Sprintf("%s must be of type %s", path, want)})
	}
	switch s.Type {
	case "string":
		if _, ok := v.(string); !ok {
			bad("string")
		}
	case "number":
		if _, ok := v.(float64); !ok {
			bad("number")
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			bad("integer")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("boolean")
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("array")
			return
		}
		for i, x := range a {
			check(s.Items, x, fmt.Sprintf("%s[%d]", path, i), out)
		}
	case "object", "":
		m, ok := v.(map[string]any)
		if !ok {
			if s.Type == "object" {
				bad("object")
			}
			return
		}
		for _, r := range s.Required {
			if x, ok := m[r]; !ok || x == nil {
				*out = append(*out, problem{join(path, r), fmt.Sprintf("%s is required", join(path, r))})
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			check(s.Properties[k], m[k], join(path, k), out)
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
