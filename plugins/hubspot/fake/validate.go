package fake

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validator checks request bodies against the request schemas of the
// published HubSpot specs.
type validator struct {
	// schemas by object and schema name.
	schemas map[string]map[string]*jsonschema.Schema
}

var specFiles = map[string]string{
	"contacts":  "crm-contacts-v3.json",
	"companies": "crm-companies-v3.json",
	"deals":     "crm-deals-v3.json",
}

func loadValidator(dir string) (*validator, error) {
	v := &validator{schemas: map[string]map[string]*jsonschema.Schema{}}
	for object, file := range specFiles {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("read spec: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		relaxSearchAfter(doc)
		allowNullProperties(doc)
		c := jsonschema.NewCompiler()
		url := "mem://" + file
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("add %s: %w", file, err)
		}
		v.schemas[object] = map[string]*jsonschema.Schema{}
		for _, name := range batchSchemas {
			if err := v.compile(c, object, url, name); err != nil {
				return nil, err
			}
		}
		for _, name := range append([]string{"PublicObjectSearchRequest"}, responseSchemas...) {
			if err := v.compile(c, object, url, name); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

func (v *validator) compile(c *jsonschema.Compiler, object, url, name string) error {
	if v.schemas[object][name] != nil {
		return nil
	}
	sch, err := c.Compile(url + "#/components/schemas/" + name)
	if err != nil {
		return fmt.Errorf("compile %s of %s: %w", name, object, err)
	}
	v.schemas[object][name] = sch
	return nil
}

// relaxSearchAfter drops "after" from the search request's required
// properties: the spec marks it required although the real API accepts a
// first page without it (see specs/README.md, "Spec quirks").
func relaxSearchAfter(doc any) {
	m, _ := doc.(map[string]any)
	comps, _ := m["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	req, _ := schemas["PublicObjectSearchRequest"].(map[string]any)
	list, _ := req["required"].([]any)
	var kept []any
	for _, r := range list {
		if r != "after" {
			kept = append(kept, r)
		}
	}
	if req != nil {
		req["required"] = kept
	}
}

// responseSchemas are the answers tests check the fake's own responses against.
var responseSchemas = []string{
	"CollectionResponseSimplePublicObjectWithAssociationsForwardPaging",
	"CollectionResponseWithTotalSimplePublicObject",
	"BatchResponseSimplePublicObject",
	"BatchResponseSimplePublicObjectWithErrors",
	"BatchResponseSimplePublicUpsertObject",
	"BatchResponseSimplePublicUpsertObjectWithErrors",
	"Error",
}

// allowNullProperties lets property values be null: the API answers null for
// a requested property the record has no value for, where the spec says
// string.
func allowNullProperties(doc any) {
	m, _ := doc.(map[string]any)
	comps, _ := m["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	for _, name := range []string{"SimplePublicObject", "SimplePublicObjectWithAssociations", "SimplePublicUpsertObject"} {
		sch, _ := schemas[name].(map[string]any)
		props, _ := sch["properties"].(map[string]any)
		p, _ := props["properties"].(map[string]any)
		if p != nil {
			p["additionalProperties"] = map[string]any{"type": []any{"string", "null"}}
		}
	}
}

// ValidateResponse checks a response body of object against the named
// response schema of the spec (nil when the server does not validate).
func (s *Server) ValidateResponse(object, schema string, body []byte) error {
	if s.validator == nil {
		return nil
	}
	if s.validator.schemas[object][schema] == nil {
		return fmt.Errorf("no schema %s", schema)
	}
	return s.validator.validate(object, schema, body)
}

func (v *validator) validate(object, schema string, body []byte) error {
	sch := v.schemas[object][schema]
	if sch == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("does not match %s: %w", schema, err)
	}
	return nil
}
