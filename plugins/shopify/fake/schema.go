package fake

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vektah/gqlparser/v2/ast"
)

// introspection is the part of a GraphQL introspection result the schema
// conversion needs.
type introspection struct {
	Data struct {
		Schema struct {
			QueryType    *struct{ Name string } `json:"queryType"`
			MutationType *struct{ Name string } `json:"mutationType"`
			Types        []itType               `json:"types"`
			Directives   []struct {
				Name         string         `json:"name"`
				Locations    []string       `json:"locations"`
				Args         []itInputValue `json:"args"`
				IsRepeatable bool           `json:"isRepeatable"`
			} `json:"directives"`
		} `json:"__schema"`
	} `json:"data"`
}

type itTypeRef struct {
	Kind   string     `json:"kind"`
	Name   string     `json:"name"`
	OfType *itTypeRef `json:"ofType"`
}

type itInputValue struct {
	Name         string    `json:"name"`
	Type         itTypeRef `json:"type"`
	DefaultValue *string   `json:"defaultValue"`
}

type itType struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Fields []struct {
		Name string         `json:"name"`
		Args []itInputValue `json:"args"`
		Type itTypeRef      `json:"type"`
	} `json:"fields"`
	InputFields   []itInputValue          `json:"inputFields"`
	Interfaces    []itTypeRef             `json:"interfaces"`
	EnumValues    []struct{ Name string } `json:"enumValues"`
	PossibleTypes []itTypeRef             `json:"possibleTypes"`
}

// SpecDir returns the directory of the Shopify schema files, searched as
// ../shared/specs/shopify relative to the repository root (found by walking up
// from the working directory to go.mod), or "" when it does not exist.
// SYNCHRON_SHOPIFY_SPECS overrides it: a directory, or "none" to run the
// tests as without the specs.
func SpecDir() string {
	if env := os.Getenv("SYNCHRON_SHOPIFY_SPECS"); env != "" {
		if env == "none" {
			return ""
		}
		return env
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			spec := filepath.Join(dir, "..", "shared", "specs", "shopify")
			if st, err := os.Stat(spec); err == nil && st.IsDir() {
				return spec
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// LoadSchema reads the gzipped introspection result of an Admin API version
// (admin_schema_<version>.json.gz in dir) and converts it to a schema that
// gqlparser can validate queries against.
func LoadSchema(dir, version string) (*ast.Schema, error) {
	path := filepath.Join(dir, "admin_schema_"+version+".json.gz")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open schema of version %s: %w", version, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gunzip %s: %w", path, err)
	}
	var in introspection
	if err := json.NewDecoder(zr).Decode(&in); err != nil {
		return nil, fmt.Errorf("decode introspection %s: %w", path, err)
	}
	return fromIntrospection(&in)
}

func typeOf(r itTypeRef) *ast.Type {
	switch r.Kind {
	case "NON_NULL":
		if r.OfType == nil {
			return &ast.Type{}
		}
		t := typeOf(*r.OfType)
		t.NonNull = true
		return t
	case "LIST":
		if r.OfType == nil {
			return &ast.Type{}
		}
		return &ast.Type{Elem: typeOf(*r.OfType)}
	}
	return &ast.Type{NamedType: r.Name}
}

func argDefs(in []itInputValue) ast.ArgumentDefinitionList {
	out := make(ast.ArgumentDefinitionList, 0, len(in))
	for _, a := range in {
		d := &ast.ArgumentDefinition{Name: a.Name, Type: typeOf(a.Type)}
		if a.DefaultValue != nil {
			// Only its presence matters to validation (an argument with a
			// default is not required).
			d.DefaultValue = &ast.Value{Kind: ast.StringValue, Raw: *a.DefaultValue}
		}
		out = append(out, d)
	}
	return out
}

func kindOf(k string) (ast.DefinitionKind, bool) {
	switch k {
	case "OBJECT":
		return ast.Object, true
	case "INTERFACE":
		return ast.Interface, true
	case "UNION":
		return ast.Union, true
	case "ENUM":
		return ast.Enum, true
	case "SCALAR":
		return ast.Scalar, true
	case "INPUT_OBJECT":
		return ast.InputObject, true
	}
	return "", false
}

func fromIntrospection(in *introspection) (*ast.Schema, error) {
	s := &ast.Schema{
		Types:         map[string]*ast.Definition{},
		Directives:    map[string]*ast.DirectiveDefinition{},
		PossibleTypes: map[string][]*ast.Definition{},
		Implements:    map[string][]*ast.Definition{},
	}
	src := in.Data.Schema
	for _, t := range src.Types {
		kind, ok := kindOf(t.Kind)
		if !ok {
			return nil, fmt.Errorf("type %s: unknown kind %q", t.Name, t.Kind)
		}
		d := &ast.Definition{Kind: kind, Name: t.Name, BuiltIn: len(t.Name) > 1 && t.Name[:2] == "__"}
		for _, f := range t.Fields {
			d.Fields = append(d.Fields, &ast.FieldDefinition{Name: f.Name, Arguments: argDefs(f.Args), Type: typeOf(f.Type)})
		}
		for _, f := range t.InputFields {
			fd := &ast.FieldDefinition{Name: f.Name, Type: typeOf(f.Type)}
			if f.DefaultValue != nil {
				fd.DefaultValue = &ast.Value{Kind: ast.StringValue, Raw: *f.DefaultValue}
			}
			d.Fields = append(d.Fields, fd)
		}
		for _, i := range t.Interfaces {
			d.Interfaces = append(d.Interfaces, i.Name)
		}
		for _, e := range t.EnumValues {
			d.EnumValues = append(d.EnumValues, &ast.EnumValueDefinition{Name: e.Name})
		}
		for _, p := range t.PossibleTypes {
			if kind == ast.Union {
				d.Types = append(d.Types, p.Name)
			}
		}
		s.Types[t.Name] = d
	}
	for _, t := range src.Types {
		d := s.Types[t.Name]
		for _, p := range t.PossibleTypes {
			if pd := s.Types[p.Name]; pd != nil {
				s.AddPossibleType(d.Name, pd)
				s.AddImplements(pd.Name, d)
			}
		}
		if d.Kind == ast.Object {
			s.AddPossibleType(d.Name, d)
		}
	}
	for _, dir := range src.Directives {
		dd := &ast.DirectiveDefinition{Name: dir.Name, Arguments: argDefs(dir.Args), IsRepeatable: dir.IsRepeatable}
		for _, l := range dir.Locations {
			dd.Locations = append(dd.Locations, ast.DirectiveLocation(l))
		}
		s.Directives[dir.Name] = dd
	}
	if src.QueryType == nil || s.Types[src.QueryType.Name] == nil {
		return nil, fmt.Errorf("introspection without a query type")
	}
	s.Query = s.Types[src.QueryType.Name]
	if src.MutationType != nil {
		s.Mutation = s.Types[src.MutationType.Name]
	}
	return s, nil
}
