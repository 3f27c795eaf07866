package shopify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

func header(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// topicObject maps a webhook topic to an object and whether it is a delete.
func topicObject(topic string) (string, bool, bool) {
	resource, event, ok := strings.Cut(topic, "/")
	if !ok {
		return "", false, false
	}
	switch resource {
	case "customers", "orders", "products":
		return resource, event == "delete", true
	}
	return "", false, false
}

// HandleWebhook verifies X-Shopify-Hmac-Sha256 with the client secret and
// announces the change, with the record when the body carries it. The
// delivery's X-Shopify-Webhook-Id is handed to the host, which drops a
// redelivery of a delivery it processed (on any host) and processes again
// one it failed to.
func (c *Connector) HandleWebhook(_ context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	cfg, diags := parseConfig(req.Config)
	if diags.HasError() {
		return &sdk.WebhookResponse{Diagnostics: diags}, nil
	}
	if cfg.ClientSecret == "" {
		return &sdk.WebhookResponse{Diagnostics: sdk.Diagnostics{sdk.Errorf("client_secret", "client_secret is required to verify webhooks", "")}}, nil
	}
	got, err := base64.StdEncoding.DecodeString(header(req.Headers, "X-Shopify-Hmac-Sha256"))
	mac := hmac.New(sha256.New, []byte(cfg.ClientSecret))
	mac.Write(req.Body)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return &sdk.WebhookResponse{Verified: false}, nil
	}
	resp := &sdk.WebhookResponse{Verified: true, DeliveryID: header(req.Headers, "X-Shopify-Webhook-Id")}
	topic := header(req.Headers, "X-Shopify-Topic")
	object, deleted, ok := topicObject(topic)
	if !ok {
		resp.Diagnostics = sdk.Diagnostics{{Severity: sdk.SeverityWarning, Summary: "ignored webhook topic " + topic}}
		return resp, nil
	}
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil {
		resp.Diagnostics = sdk.Diagnostics{sdk.Errorf("", "webhook body is not a JSON object", err.Error())}
		return resp, nil
	}
	id, _ := body["admin_graphql_api_id"].(string)
	if id == "" {
		if n, ok := body["id"].(float64); ok {
			id = fmt.Sprintf("gid://shopify/%s/%.0f", map[string]string{"customers": "Customer", "orders": "Order", "products": "Product"}[object], n)
		}
	}
	if id == "" {
		resp.Diagnostics = sdk.Diagnostics{sdk.Errorf("", "webhook body without an id", "topic "+topic)}
		return resp, nil
	}
	notice := sdk.ChangeNotice{Object: object, ID: id, Deleted: deleted}
	if !deleted {
		if fields := restRecord(object, id, body); fields != nil {
			raw, err := json.Marshal(fields)
			if err != nil {
				return nil, fmt.Errorf("encode webhook record %s: %w", id, err)
			}
			updated, _ := time.Parse(time.RFC3339, fmt.Sprint(body["updated_at"]))
			notice.Record = &sdk.Record{ID: id, UpdatedAt: updated, Fields: raw}
		}
	}
	resp.Changes = []sdk.ChangeNotice{notice}
	return resp, nil
}

// restRecord converts a webhook's REST-shaped body to the object's fields.
func restRecord(object, id string, b map[string]any) map[string]any {
	tags := func() []string {
		s, _ := b["tags"].(string)
		out := []string{}
		for _, t := range strings.Split(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out
	}
	ts := func(k string) any {
		t, err := time.Parse(time.RFC3339, fmt.Sprint(b[k]))
		if err != nil {
			return nil
		}
		return t.UTC().Format(time.RFC3339)
	}
	switch object {
	case "customers":
		return map[string]any{
			"id": id, "email": b["email"], "first_name": b["first_name"], "last_name": b["last_name"],
			"phone": b["phone"], "note": b["note"], "tags": tags(),
			"created_at": ts("created_at"), "updated_at": ts("updated_at"),
		}
	case "orders":
		lines := []map[string]any{}
		if ls, ok := b["line_items"].([]any); ok {
			for _, l := range ls {
				m, _ := l.(map[string]any)
				name := m["name"]
				if name == nil {
					name = m["title"]
				}
				lines = append(lines, map[string]any{"name": name, "quantity": m["quantity"], "price": m["price"]})
			}
		}
		status, _ := b["financial_status"].(string)
		return map[string]any{
			"id": id, "name": b["name"], "email": b["email"], "note": b["note"], "tags": tags(),
			"total_price": b["total_price"], "currency": b["currency"], "financial_status": strings.ToUpper(status),
			"line_items": lines, "created_at": ts("created_at"), "updated_at": ts("updated_at"),
		}
	case "products":
		status, _ := b["status"].(string)
		return map[string]any{
			"id": id, "title": b["title"], "handle": b["handle"], "vendor": b["vendor"],
			"product_type": b["product_type"], "status": strings.ToUpper(status), "tags": tags(),
			"created_at": ts("created_at"), "updated_at": ts("updated_at"),
		}
	}
	return nil
}
