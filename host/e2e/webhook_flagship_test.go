package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	shopfake "github.com/synchron-io/synchron/plugins/shopify/fake"
	"github.com/synchron-io/synchron/sdk/testdb"
)

// A customer edited in Shopify reaches HubSpot through Shopify's signed
// webhook, without waiting for the workflow's 15-minute interval (the
// scheduler is off: only the hook can start the run); a forged hook is
// refused with 401 and recorded; a redelivery of the same delivery queues
// nothing.
func TestFlagshipWebhookPropagatesAnEdit(t *testing.T) {
	t.Parallel()
	const secret = "flagship-webhook-secret"
	a := startFlagshipApps(t)
	id := 0
	for i := range 3 {
		gid := a.shop.AddCustomer(shopfake.Customer{Email: fmt.Sprintf("hook%d@example.com", i), FirstName: "Hook", LastName: fmt.Sprint(i)})
		if i == 1 {
			if _, err := fmt.Sscanf(gid, "gid://shopify/Customer/%d", &id); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := startHost(t, testdb.URL(t), "SYNCHRON_SCHEDULER=off")
	tok := h.signup(t, "flagship-webhook@example.com")
	wfID := flagshipWorkflow(t, h, tok, a)
	wf := h.must(t, http.StatusOK, "GET", "/v1/workflows/"+wfID, tok, nil)
	connID := wf["source"].(map[string]any)["connection_id"].(string)
	h.must(t, http.StatusOK, "PATCH", "/v1/connections/"+connID, tok, map[string]any{
		"config": map[string]any{"shop": "acme.myshopify.com", "access_token": flagshipShopToken,
			"api_version": flagshipAPI, "base_url": a.shopURL, "client_secret": secret},
	})
	if run := h.runWorkflow(t, tok, wfID); counts(t, run)["created"] != 3 {
		t.Fatalf("historical sync = %v, want 3 contacts created", run)
	}

	a.clock.Advance(10 * time.Second)
	a.editShopifyCustomer(t, id, map[string]any{"firstName": "Edited"})
	body, _ := json.Marshal(map[string]any{"id": id, "admin_graphql_api_id": fmt.Sprintf("gid://shopify/Customer/%d", id),
		"email": "hook1@example.com", "first_name": "Edited"})
	post := func(sig, delivery string) (int, map[string]any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.baseURL+"/v1/hooks/"+connID, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Shopify-Hmac-Sha256", sig)
		req.Header.Set("X-Shopify-Topic", "customers/update")
		req.Header.Set("X-Shopify-Webhook-Id", delivery)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, _ := post(base64.StdEncoding.EncodeToString([]byte("forged")), "forged-1"); status != http.StatusUnauthorized {
		t.Fatalf("forged hook = %d, want 401", status)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	sent := time.Now()
	if status, out := post(sig, "delivery-1"); status != http.StatusOK || out["runs"] != 1.0 {
		t.Fatalf("signed hook = %d %v, want 200 with 1 run queued", status, out)
	}
	for a.hubByEmail(t)["hook1@example.com"].Properties["firstname"] != "Edited" {
		if time.Since(sent) > 30*time.Second {
			t.Fatal("the edit did not reach HubSpot within 30 s of the hook")
		}
		time.Sleep(10 * time.Millisecond) // polling the fake's state
	}
	t.Logf("edit reached HubSpot %v after the hook", time.Since(sent).Round(time.Millisecond))
	if status, out := post(sig, "delivery-1"); status != http.StatusOK || out["duplicate"] != true || out["runs"] != 0.0 {
		t.Fatalf("redelivery = %d %v, want 200, duplicate, nothing queued", status, out)
	}
	events := h.must(t, http.StatusOK, "GET", "/v1/connections/"+connID+"/webhooks", tok, nil)["items"].([]any)
	if len(events) != 3 || events[2].(map[string]any)["verified"] != false || events[1].(map[string]any)["delivery_id"] != "delivery-1" {
		t.Fatalf("webhook events = %v, want the forged one refused, the delivery and its duplicate", events)
	}
}
