package hubspot

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

func TestWebhookSignatureV3(t *testing.T) {
	clk := newClock()
	c := New("0.1.0", "", WithClock(clk.Now, clk.Sleep))
	cfg := json.RawMessage(`{"access_token":"t","app_secret":"shh","webhook_url":"https://hooks.example.com/hubspot/acct1"}`)
	body := []byte(`[{"objectId":101,"subscriptionType":"contact.propertyChange","propertyName":"email"},
		{"objectId":202,"subscriptionType":"deal.deletion"},{"objectId":101,"subscriptionType":"contact.creation"},
		{"objectId":5,"subscriptionType":"ticket.creation"}]`)
	req := func(ts time.Time, secret string, body []byte) sdk.WebhookRequest {
		tss := strconv.FormatInt(ts.UnixMilli(), 10)
		return sdk.WebhookRequest{Config: cfg, Method: "POST", Path: "/hubspot/acct1", Body: body, Headers: map[string][]string{
			"X-Hubspot-Signature-V3":      {SignV3(secret, "POST", "https://hooks.example.com/hubspot/acct1", body, tss)},
			"X-Hubspot-Request-Timestamp": {tss},
		}}
	}
	resp, err := c.HandleWebhook(context.Background(), req(clk.Now().Add(-time.Minute), "shh", body))
	if err != nil || !resp.Verified {
		t.Fatalf("valid: %v %+v", err, resp)
	}
	want := []sdk.ChangeNotice{{Object: "contacts", ID: "101"}, {Object: "deals", ID: "202", Deleted: true}}
	if len(resp.Changes) != 2 || resp.Changes[0] != want[0] || resp.Changes[1] != want[1] {
		t.Fatalf("changes %+v", resp.Changes)
	}
	for name, r := range map[string]sdk.WebhookRequest{
		"wrong_secret": req(clk.Now(), "other", body),
		"stale":        req(clk.Now().Add(-6*time.Minute), "shh", body),
		"future":       req(clk.Now().Add(6*time.Minute), "shh", body),
	} {
		resp, err := c.HandleWebhook(context.Background(), r)
		if err != nil || resp.Verified {
			t.Errorf("%s: verified %v (%v)", name, resp.Verified, err)
		}
	}
	tampered := req(clk.Now(), "shh", body)
	tampered.Body = []byte(`[{"objectId":999,"subscriptionType":"contact.deletion"}]`)
	if resp, _ := c.HandleWebhook(context.Background(), tampered); resp.Verified {
		t.Error("tampered body verified")
	}
	noSig := req(clk.Now(), "shh", body)
	delete(noSig.Headers, "X-Hubspot-Signature-V3")
	if resp, _ := c.HandleWebhook(context.Background(), noSig); resp.Verified {
		t.Error("unsigned request verified")
	}
}
