package sample

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// Limits and defaults of the config.
const (
	MaxCount    = 10_000_000
	DefaultSeed = 1
)

// defaultBase is the updated_at of record 1 when the config sets none.
func defaultBase() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// configSchema is the JSON Schema of Config, as published in the Spec.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["count"],
  "properties": {
    "count": {"type": "integer", "minimum": 1, "maximum": 10000000, "description": "Number of records of each object."},
    "seed": {"type": "integer", "default": 1, "description": "Seed of the generator: the same seed gives the same records."},
    "updated_at": {"type": "string", "format": "date-time", "description": "RFC 3339 updated_at of the first record; record i is i seconds later. Default 2024-01-01T00:00:00Z."}
  }
}`

// Config is the parsed connection config.
type Config struct {
	Count int64
	Seed  int64
	// Base is the updated_at of the first record.
	Base time.Time
}

// ParseConfig parses and validates a config. Every problem is reported as an
// error diagnostic whose Attribute is the config key.
func ParseConfig(raw json.RawMessage) (Config, sdk.Diagnostics) {
	cfg := Config{Seed: DefaultSeed, Base: defaultBase()}
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is required", `a JSON object such as {"count": 1000}`)}
	}
	if !json.Valid(raw) {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config is not valid JSON", "")}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return cfg, sdk.Diagnostics{sdk.Errorf("", "config must be a JSON object", `for example {"count": 1000}`)}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var diags sdk.Diagnostics
	if _, ok := m["count"]; !ok {
		diags = append(diags, sdk.Errorf("count", "count is required", fmt.Sprintf("an integer from 1 to %d", MaxCount)))
	}
	for _, k := range keys {
		v := m[k]
		switch k {
		case "count":
			n, ok := parseInt(v)
			switch {
			case !ok:
				diags = append(diags, sdk.Errorf(k, "count must be an integer", fmt.Sprintf("got %s", v)))
			case n < 1 || n > MaxCount:
				diags = append(diags, sdk.Errorf(k, "count is out of range", fmt.Sprintf("got %d, want 1 to %d", n, MaxCount)))
			default:
				cfg.Count = n
			}
		case "seed":
			n, ok := parseInt(v)
			if !ok {
				diags = append(diags, sdk.Errorf(k, "seed must be an integer", fmt.Sprintf("got %s", v)))
			} else {
				cfg.Seed = n
			}
		case "updated_at":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				diags = append(diags, sdk.Errorf(k, "updated_at must be a string", "an RFC 3339 time such as 2024-01-01T00:00:00Z"))
				break
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				diags = append(diags, sdk.Errorf(k, "updated_at is not an RFC 3339 time", err.Error()))
				break
			}
			cfg.Base = t.UTC()
		default:
			diags = append(diags, sdk.Errorf(k, "unknown config key", "allowed keys: count, seed, updated_at"))
		}
	}
	return cfg, diags
}

// parseInt parses a JSON integer (no fraction, no exponent).
func parseInt(v json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(v))
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
