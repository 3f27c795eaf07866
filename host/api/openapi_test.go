package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/synchron-io/synchron/host/connectors"
	"github.com/synchron-io/synchron/host/secrets"
	"github.com/synchron-io/synchron/host/store"
)

type noApps struct{}

func (noApps) Apps(context.Context) ([]connectors.App, error) { return nil, nil }
func (noApps) App(context.Context, string) (connectors.App, error) {
	return connectors.App{}, connectors.ErrUnknownApp
}
func (noApps) Acquire(context.Context, string) (*connectors.Lease, error) {
	return nil, connectors.ErrUnknownApp
}

// ginParam turns Gin's :name into OpenAPI's {name}.
var ginParam = regexp.MustCompile(`:([a-z_]+)`)

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	// The routes are registered without touching the database.
	e := newEngine(Deps{Store: store.New(nil), Registry: noApps{}, Secrets: box, PasswordCost: bcrypt.MinCost, GinMode: "test"})

	routes := map[string]bool{}
	for _, r := range e.Routes() {
		routes[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d", w.Code)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !routes[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from the OpenAPI document: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("documented operations that are not routes: %v", extra)
	}
	var v1 int
	for r := range routes {
		if strings.Contains(r, " /v1/") {
			v1++
		}
	}
	if v1 < 25 {
		t.Errorf("only %d /v1 routes: the walk is broken", v1)
	}

	// Every $ref points into the document.
	refs := regexp.MustCompile(`"\$ref":"#/components/([A-Za-z]+)/([A-Za-z]+)"`).FindAllStringSubmatch(w.Body.String(), -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found")
	}
	for _, m := range refs {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("dangling $ref #/components/%s/%s", m[1], m[2])
		}
	}
}
