package hubspot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// MaxWebhookAge is the oldest X-HubSpot-Request-Timestamp accepted.
const MaxWebhookAge = 5 * time.Minute

func header(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// SignV3 computes HubSpot's X-HubSpot-Signature-v3 of a request.
func SignV3(secret, method, uri string, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(method + uri))
	m.Write(body)
	m.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// webhookURI is the URI HubSpot signed: webhook_url when configured (with
// the request's query), else https://<Host><Path>.
func webhookURI(cfg Config, req sdk.WebhookRequest) string {
	if strings.HasPrefix(req.Path, "http://") || strings.HasPrefix(req.Path, "https://") {
		return req.Path
	}
	if cfg.WebhookURL != "" {
		if i := strings.IndexByte(req.Path, '?'); i >= 0 && !strings.Contains(cfg.WebhookURL, "?") {
			return cfg.WebhookURL + req.Path[i:]
		}
		return cfg.WebhookURL
	}
	if host := header(req.Headers, "Host"); host != "" {
		return "https://" + host + req.Path
	}
	return req.Path
}

type webhookEvent struct {
	ObjectID         json.Number `json:"objectId"`
	SubscriptionType string      `json:"subscriptionType"`
}

var webhookObjects = map[string]string{"contact": "contacts", "company": "companies", "deal": "deals"}

// HandleWebhook verifies a v3 signature and lists the changed records.
func (c *Connector) HandleWebhook(_ context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	cfg, diags := ParseConfig(req.Config)
	if diags.HasError() {
		return &sdk.WebhookResponse{Diagnostics: diags, ResponseStatus: http.StatusInternalServerError}, nil
	}
	secret := cfg.AppSecret
	if secret == "" {
		secret = cfg.ClientSecret
	}
	if secret == "" {
		return &sdk.WebhookResponse{Diagnostics: sdk.Diagnostics{sdk.Errorf("app_secret", "app_secret is required to verify webhooks", "")}, ResponseStatus: http.StatusInternalServerError}, nil
	}
	sig := header(req.Headers, "X-HubSpot-Signature-v3")
	ts := header(req.Headers, "X-HubSpot-Request-Timestamp")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if sig == "" || err != nil {
		return &sdk.WebhookResponse{Verified: false}, nil
	}
	if age := c.now().Sub(time.UnixMilli(ms)); age > MaxWebhookAge || age < -MaxWebhookAge {
		return &sdk.WebhookResponse{Verified: false}, nil
	}
	want := SignV3(secret, req.Method, webhookURI(cfg, req), req.Body, ts)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return &sdk.WebhookResponse{Verified: false}, nil
	}
	var events []webhookEvent
	if err := json.Unmarshal(req.Body, &events); err != nil {
		return &sdk.WebhookResponse{Verified: true, ResponseStatus: http.StatusBadRequest,
			Diagnostics: sdk.Diagnostics{sdk.Errorf("", "webhook body is not a list of HubSpot events", err.Error())}}, nil
	}
	resp := &sdk.WebhookResponse{Verified: true}
	index := map[string]int{}
	for _, e := range events {
		kind, action, _ := strings.Cut(e.SubscriptionType, ".")
		object, ok := webhookObjects[kind]
		if !ok || e.ObjectID == "" {
			continue
		}
		deleted := action == "deletion" || action == "privacyDeletion"
		key := object + "/" + e.ObjectID.String()
		if i, seen := index[key]; seen {
			resp.Changes[i].Deleted = deleted
			continue
		}
		index[key] = len(resp.Changes)
		resp.Changes = append(resp.Changes, sdk.ChangeNotice{Object: object, ID: e.ObjectID.String(), Deleted: deleted})
	}
	return resp, nil
}
