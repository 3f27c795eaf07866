package e2e_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/sdk/testdb"
)

// Each app connector's docs.md is what GET /v1/apps/{app}/docs serves
// through the real host, and its Spec (GET /v1/apps/{app}) lists the
// objects with typed fields.
func TestAppDocsAndSpecsThroughTheHost(t *testing.T) {
	t.Parallel()
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "app-docs@example.com")
	root, err := testdb.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for app, objects := range map[string][]string{
		"hubspot": {"contacts", "companies", "deals"},
		"shopify": {"customers", "orders", "products"},
		"sage":    {"contacts", "products", "sales_invoices", "ledger_accounts", "tax_rates"},
	} {
		t.Run(app, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(root, "plugins", app, "docs.md"))
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodGet, h.baseURL+"/v1/apps/"+app+"/docs", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/markdown") || string(got) != string(want) {
				t.Fatalf("GET /v1/apps/%s/docs = %d %s, %d bytes; want plugins/%s/docs.md (%d bytes)", app, resp.StatusCode, resp.Header.Get("Content-Type"), len(got), app, len(want))
			}
			for _, section := range []string{"## Limits", "## Conn"} {
				if !strings.Contains(string(got), section) {
					t.Errorf("%s docs lack a %q section", app, section)
				}
			}
			spec := h.must(t, http.StatusOK, "GET", "/v1/apps/"+app, tok, nil)
			have := map[string]bool{}
			for _, o := range spec["objects"].([]any) {
				obj := o.(map[string]any)
				have[obj["name"].(string)] = true
				fields, _ := obj["fields"].([]any)
				if len(fields) == 0 {
					t.Errorf("%s object %v lists no fields", app, obj["name"])
				}
				for _, f := range fields {
					if fm := f.(map[string]any); fm["type"] == "" || fm["type"] == nil {
						t.Errorf("%s.%v field %v has no type", app, obj["name"], fm["name"])
					}
				}
			}
			for _, o := range objects {
				if !have[o] {
					t.Errorf("%s spec lacks object %s (has %v)", app, o, have)
				}
			}
		})
	}
}
