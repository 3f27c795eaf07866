package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/synchron-io/synchron/host/connectors"
)

// noLoader refuses every external reference of a connector's config schema:
// a schema must be self-contained, and must not make the host read files or
// reach the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema references are not allowed: %s", url)
}

const schemaURL = "urn:synchron:connector-config"

// configSchema compiles (once per app version) the app's config schema; nil
// when the app publishes none.
func (s *server) configSchema(app connectors.App) (*jsonschema.Schema, error) {
	if len(bytes.TrimSpace(app.Spec.ConfigSchema)) == 0 {
		return nil, nil
	}
	key := app.Name + "@" + app.Version
	if sch, ok := s.schemas.Load(key); ok {
		return sch.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(app.Spec.ConfigSchema))
	if err != nil {
		return nil, fmt.Errorf("config schema of %s: %w", key, err)
	}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(noLoader{})
	comp.AssertFormat()
	if err := comp.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("config schema of %s: %w", key, err)
	}
	sch, err := comp.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("config schema of %s: %w", key, err)
	}
	s.schemas.Store(key, sch)
	return sch, nil
}

// validateConfig checks that config is a JSON object that the app's config
// schema accepts; the 422 names each failing location.
func (s *server) validateConfig(app connectors.App, config json.RawMessage) error {
	trimmed := bytes.TrimSpace(config)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return invalid("invalid_config", "config must be a JSON object with the keys the %s app asks for (see GET /v1/apps/%s)", app.Name, app.Name)
	}
	sch, err := s.configSchema(app)
	if err != nil {
		// The connector's fault, not the user's.
		s.log.Error("connector config schema", "app", app.Name, "version", app.Version, "error", err)
		return errorf(http.StatusBadGateway, "connector_error", "the %s connector publishes an invalid config schema: contact support", app.Name)
	}
	if sch == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(trimmed))
	if err != nil {
		return invalid("invalid_config", "config is not valid JSON")
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate config: %w", err)
	}
	var msgs []string
	s.leafErrors(ve, &msgs)
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("and %d more", len(msgs)-5))
	}
	return invalid("invalid_config", "config is invalid: %s", strings.Join(msgs, "; "))
}

// leafErrors flattens a validation error to its leaves, each as
// "config/<json pointer>: <what is wrong>".
func (s *server) leafErrors(e *jsonschema.ValidationError, out *[]string) {
	if len(e.Causes) == 0 {
		loc := "config"
		for _, tok := range e.InstanceLocation {
			loc += "/" + strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
		}
		*out = append(*out, loc+": "+e.ErrorKind.LocalizedString(s.printer))
		return
	}
	for _, c := range e.Causes {
		s.leafErrors(c, out)
	}
}
