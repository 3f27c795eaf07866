package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchron-io/synchron/host/store"
	"github.com/synchron-io/synchron/plugins/hubspot/hubspot"
	"github.com/synchron-io/synchron/plugins/shopify/shopify"
)

// memConn creates a memdb connection of u with api_key key.
func (b *testBundle) memConn(u user, key string) string {
	b.t.Helper()
	m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/connections", token: u.token,
		body: map[string]any{"app": "memdb", "name": "Memory " + key[:4], "config": map[string]any{"api_key": key}}})
	return m["id"].(string)
}

// rawWorkflow inserts a workflow directly: the webhook route only needs
// which connections and objects it reads and whether it is active.
func (b *testBundle) rawWorkflow(accountID, src, srcObject, dst, dstObject, direction, status string) string {
	b.t.Helper()
	id := store.NewID(store.PrefixWorkflow)
	_, err := b.db.ExecContext(b.ctx, `INSERT INTO workflows (id, account_id, name, source_connection_id, source_object,
		target_connection_id, target_object, direction, mapping, interval_seconds, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]', 900, $9)`,
		id, accountID, "wf "+id, src, srcObject, dst, dstObject, direction, status)
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// memHook posts a memdb delivery for conn signed with key.
func (b *testBundle) memHook(conn, key string, body []byte) response {
	b.t.Helper()
	return b.do(req{method: "POST", path: "/v1/hooks/" + conn, body: body,
		header: map[string]string{"X-Mem-Signature": hex.EncodeToString(memSign(key, body))}})
}

func (b *testBundle) enqueued() []string {
	var ids []string
	for _, c := range b.runner.Calls() {
		if c.Trigger != store.TriggerWebhook {
			b.t.Fatalf("enqueue with trigger %q", c.Trigger)
		}
		ids = append(ids, c.AccountID+"/"+c.WorkflowID)
	}
	sort.Strings(ids)
	return ids
}

func (b *testBundle) webhookEvents(u user, conn string) []map[string]any {
	b.t.Helper()
	m := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + conn + "/webhooks", token: u.token})
	var out []map[string]any
	for _, it := range m["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

const (
	keyA = "key-a-0123456789"
	keyB = "key-b-0123456789"
	keyC = "key-c-0123456789"
)

func TestWebhookQueuesTheWorkflowsReadingFromTheConnection(t *testing.T) {
	b := setup(t)
	u := b.signup("hooks@example.com")
	v := b.signup("other@example.com")
	a, bb := b.memConn(u, keyA), b.memConn(u, keyB)
	c := b.memConn(v, keyC)

	reads := b.rawWorkflow(u.accountID, a, "people", bb, "people", store.DirectionOneWay, store.WorkflowActive)
	twoWay := b.rawWorkflow(u.accountID, bb, "people", a, "people", store.DirectionTwoWay, store.WorkflowActive)
	b.rawWorkflow(u.accountID, bb, "people", a, "people", store.DirectionOneWay, store.WorkflowActive) // writes to a only
	b.rawWorkflow(u.accountID, a, "people", bb, "people", store.DirectionOneWay, store.WorkflowPaused) // paused
	b.rawWorkflow(u.accountID, a, "audit", bb, "people", store.DirectionOneWay, store.WorkflowActive)  // another object
	b.rawWorkflow(v.accountID, c, "people", c, "outbox", store.DirectionOneWay, store.WorkflowActive)  // another account

	body := []byte(`{"object": "people", "ids": ["m1", "m2"], "secret_marker": "do-not-log-this"}`)
	resp := b.memHook(a, keyA, body)
	if resp.Status != http.StatusOK {
		t.Fatalf("hook = %d: %s", resp.Status, resp.Body)
	}
	if m := resp.JSON(t); m["received"] != true || m["runs"] != 2.0 {
		t.Fatalf("answer = %v", m)
	}
	want := []string{u.accountID + "/" + reads, u.accountID + "/" + twoWay}
	sort.Strings(want)
	if got := b.enqueued(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("enqueued %v, want %v", got, want)
	}
	var queued int
	if err := b.db.GetContext(b.ctx, &queued, `SELECT count(*) FROM runs WHERE trigger = 'webhook' AND status = 'queued'`); err != nil {
		t.Fatal(err)
	}
	if queued != 2 {
		t.Fatalf("%d queued webhook runs, want 2", queued)
	}
	evs := b.webhookEvents(u, a)
	if len(evs) != 1 || evs[0]["verified"] != true || evs[0]["changes"] != 2.0 || evs[0]["runs"] != 2.0 ||
		evs[0]["summary"] != "people x2" || evs[0]["error"] != "" || evs[0]["connection_id"] != a {
		t.Fatalf("events = %v", evs)
	}
	if strings.Contains(b.logs.String(), "do-not-log-this") || strings.Contains(b.logs.String(), keyA) {
		t.Fatalf("the body or the key reached the logs")
	}
	var stored int
	if err := b.db.GetContext(b.ctx, &stored, `SELECT count(*) FROM webhook_events WHERE summary LIKE '%do-not-log%' OR error LIKE '%do-not-log%'`); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Fatal("the body was stored")
	}

	// A delivery announcing another object queues only the workflows reading it.
	resp = b.memHook(a, keyA, []byte(`{"object": "audit", "ids": ["x"]}`))
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 1.0 {
		t.Fatalf("audit hook = %d: %s", resp.Status, resp.Body)
	}
	// A verified delivery announcing nothing queues nothing.
	before := len(b.runner.Calls())
	resp = b.memHook(a, keyA, []byte(`{"object": "people", "ids": []}`))
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 0.0 || len(b.runner.Calls()) != before {
		t.Fatalf("empty hook = %d: %s", resp.Status, resp.Body)
	}
}

func TestWebhookInvalidSignatureIsRefusedAndRecorded(t *testing.T) {
	b := setup(t)
	u := b.signup("refused@example.com")
	a, bb := b.memConn(u, keyA), b.memConn(u, keyB)
	b.rawWorkflow(u.accountID, a, "people", bb, "people", store.DirectionOneWay, store.WorkflowActive)
	body := []byte(`{"object": "people", "ids": ["m1"]}`)

	for name, r := range map[string]req{
		"wrong key":    {method: "POST", path: "/v1/hooks/" + a, body: body, header: map[string]string{"X-Mem-Signature": hex.EncodeToString(memSign(keyB, body))}},
		"no signature": {method: "POST", path: "/v1/hooks/" + a, body: body},
		"bearer only":  {method: "POST", path: "/v1/hooks/" + a, body: body, token: u.token},
	} {
		resp := b.do(r)
		if code, _ := resp.errorCode(t); resp.Status != http.StatusUnauthorized || code != "invalid_signature" {
			t.Fatalf("%s: %d %s", name, resp.Status, resp.Body)
		}
	}
	if calls := b.runner.Calls(); len(calls) != 0 {
		t.Fatalf("refused deliveries enqueued %v", calls)
	}
	evs := b.webhookEvents(u, a)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for _, e := range evs {
		if e["verified"] != false || e["error"] != "invalid signature" || e["runs"] != 0.0 {
			t.Fatalf("event = %v", e)
		}
	}
	// Paged, newest first.
	m := b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + a + "/webhooks?limit=2", token: u.token})
	if len(m["items"].([]any)) != 2 || m["next_cursor"] == "" {
		t.Fatalf("page = %v", m)
	}
	m = b.must(http.StatusOK, req{method: "GET", path: "/v1/connections/" + a + "/webhooks?limit=2&cursor=" + m["next_cursor"].(string), token: u.token})
	if len(m["items"].([]any)) != 1 || m["next_cursor"] != "" {
		t.Fatalf("page 2 = %v", m)
	}
}

func TestWebhookErrors(t *testing.T) {
	b := setup(t)
	u := b.signup("errors@example.com")
	a := b.memConn(u, keyA)

	resp := b.memHook("con_doesnotexist000000000", keyA, []byte(`{}`))
	if code, msg := resp.errorCode(t); resp.Status != http.StatusNotFound || code != "not_found" || strings.Contains(msg, "acc_") {
		t.Fatalf("unknown connection = %d %s", resp.Status, resp.Body)
	}

	big := bytes.Repeat([]byte("x"), 1<<20+1)
	resp = b.memHook(a, keyA, big)
	if code, _ := resp.errorCode(t); resp.Status != http.StatusRequestEntityTooLarge || code != "body_too_large" {
		t.Fatalf("oversized = %d %s", resp.Status, resp.Body)
	}

	resp = b.memHook(a, keyA, []byte(`{"fail": true}`))
	if code, _ := resp.errorCode(t); resp.Status != http.StatusServiceUnavailable || code != "connector_unavailable" {
		t.Fatalf("connector down = %d %s", resp.Status, resp.Body)
	}

	// Another account's connection: its events are not listed.
	v := b.signup("nosy@example.com")
	resp = b.do(req{method: "GET", path: "/v1/connections/" + a + "/webhooks", token: v.token})
	if code, _ := resp.errorCode(t); resp.Status != http.StatusNotFound || code != "not_found" {
		t.Fatalf("other account's events = %d %s", resp.Status, resp.Body)
	}
	resp = b.do(req{method: "GET", path: "/v1/connections/" + a + "/webhooks"})
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("events without a token = %d", resp.Status)
	}
	if n := len(b.runner.Calls()); n != 0 {
		t.Fatalf("%d enqueues", n)
	}
}

func TestWebhookBurstQueuesOneRunPerWorkflow(t *testing.T) {
	b := setup(t)
	u := b.signup("burst@example.com")
	a, bb := b.memConn(u, keyA), b.memConn(u, keyB)
	w1 := b.rawWorkflow(u.accountID, a, "people", bb, "people", store.DirectionOneWay, store.WorkflowActive)
	w2 := b.rawWorkflow(u.accountID, bb, "people", a, "people", store.DirectionTwoWay, store.WorkflowActive)

	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := []byte(fmt.Sprintf(`{"object": "people", "ids": ["m%d"]}`, i))
			statuses[i] = b.memHook(a, keyA, body).Status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("hook %d = %d", i, s)
		}
	}
	var counts []struct {
		WorkflowID string `db:"workflow_id"`
		N          int    `db:"n"`
	}
	if err := b.db.SelectContext(b.ctx, &counts, `SELECT workflow_id, count(*) AS n FROM runs
		WHERE status IN ('queued', 'running') GROUP BY workflow_id ORDER BY workflow_id`); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range counts {
		got[c.WorkflowID] = c.N
	}
	if len(got) != 2 || got[w1] != 1 || got[w2] != 1 {
		t.Fatalf("active runs per workflow = %v", got)
	}
	if evs := b.webhookEvents(u, a); len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
}

// shopifySign signs a body as Shopify does: base64 HMAC-SHA256 with the
// app's client secret.
func shopifySign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sealedConn creates a connection through the store (the API would check
// its credentials with the app).
func (b *testBundle) sealedConn(accountID, app string, config map[string]string) string {
	b.t.Helper()
	raw, err := json.Marshal(config)
	if err != nil {
		b.t.Fatal(err)
	}
	id := store.NewID(store.PrefixConnection)
	enc, err := b.box.Seal(raw, store.ConnectionAAD(id))
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.store.CreateConnection(b.ctx, store.Connection{ID: id, AccountID: accountID, App: app, Name: app, ConfigEnc: enc}); err != nil {
		b.t.Fatal(err)
	}
	return id
}

// TestWebhookHubSpot uses the real HubSpot connector, whose v3 signature
// covers the method, the full URL called (host and query included), the
// body and a timestamp.
func TestWebhookHubSpot(t *testing.T) {
	b := setup(t, withConnectors(hubspot.New("1.0.0", "# HubSpot\n")))
	u := b.signup("hub@example.com")
	const secret = "hubspot-app-secret-for-tests"
	id := b.sealedConn(u.accountID, "hubspot", map[string]string{"access_token": "pat-test", "app_secret": secret})
	mem := b.memConn(u, keyB)
	contacts := b.rawWorkflow(u.accountID, id, "contacts", mem, "people", store.DirectionOneWay, store.WorkflowActive)
	b.rawWorkflow(u.accountID, id, "deals", mem, "people", store.DirectionOneWay, store.WorkflowActive)

	body := []byte(`[{"objectId": 101, "subscriptionType": "contact.propertyChange"}, {"objectId": 102, "subscriptionType": "contact.creation"}]`)
	path := "/v1/hooks/" + id + "?portal=42"
	hook := func(uri string) response {
		ts := fmt.Sprint(time.Now().UnixMilli())
		return b.do(req{method: "POST", path: path, body: body, header: map[string]string{
			"X-HubSpot-Signature-v3":      hubspot.SignV3(secret, "POST", uri, body, ts),
			"X-HubSpot-Request-Timestamp": ts,
		}})
	}
	// httptest requests are for host example.com.
	if resp := hook("https://example.com/v1/hooks/" + id); resp.Status != http.StatusUnauthorized {
		t.Fatalf("signed without the query = %d %s", resp.Status, resp.Body)
	}
	resp := hook("https://example.com" + path)
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 1.0 {
		t.Fatalf("signed hook = %d %s", resp.Status, resp.Body)
	}
	if got := b.enqueued(); len(got) != 1 || got[0] != u.accountID+"/"+contacts {
		t.Fatalf("enqueued %v, want only %s", got, contacts)
	}
	if evs := b.webhookEvents(u, id); len(evs) != 2 {
		t.Fatalf("events = %v", evs)
	}
}

func TestWebhookShopify(t *testing.T) {
	b := setup(t, withConnectors(shopify.New("1.0.0", "# Shopify\n", shopify.Options{})))
	u := b.signup("shop@example.com")
	const secret = "shopify-client-secret-for-tests"
	id := b.sealedConn(u.accountID, "shopify", map[string]string{"shop": "acme.myshopify.com", "access_token": "shpat_test", "client_secret": secret})
	mem := b.memConn(u, keyB)
	customers := b.rawWorkflow(u.accountID, id, "customers", mem, "people", store.DirectionOneWay, store.WorkflowActive)
	b.rawWorkflow(u.accountID, id, "orders", mem, "people", store.DirectionOneWay, store.WorkflowActive)

	body := []byte(`{"id": 706405506930370084, "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084",
		"email": "bob@example.com", "first_name": "Bob", "last_name": "Norman", "tags": "",
		"created_at": "2026-11-27T05:00:00Z", "updated_at": "2026-11-27T05:10:00Z"}`)
	hook := func(sig, deliveryID string) response {
		b.clock.Advance(time.Second) // events are listed by the time they were received
		return b.do(req{method: "POST", path: "/v1/hooks/" + id, body: body, header: map[string]string{
			"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "customers/update",
			"X-Shopify-Webhook-Id": deliveryID, "X-Shopify-Shop-Domain": "acme.myshopify.com",
		}})
	}
	resp := hook(shopifySign("not-the-secret", body), "d-0")
	if code, _ := resp.errorCode(t); resp.Status != http.StatusUnauthorized || code != "invalid_signature" {
		t.Fatalf("bad signature = %d %s", resp.Status, resp.Body)
	}
	if n := len(b.runner.Calls()); n != 0 {
		t.Fatalf("refused delivery enqueued %d runs", n)
	}
	resp = hook(shopifySign(secret, body), "d-1")
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 1.0 {
		t.Fatalf("signed hook = %d %s", resp.Status, resp.Body)
	}
	if got := b.enqueued(); len(got) != 1 || got[0] != u.accountID+"/"+customers {
		t.Fatalf("enqueued %v, want only %s", got, customers)
	}
	// Shopify redelivers: the host drops the duplicate, nothing queued.
	resp = hook(shopifySign(secret, body), "d-1")
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 0.0 || resp.JSON(t)["duplicate"] != true || len(b.runner.Calls()) != 1 {
		t.Fatalf("duplicate = %d %s", resp.Status, resp.Body)
	}
	evs := b.webhookEvents(u, id)
	if len(evs) != 3 || evs[2]["verified"] != false || evs[1]["summary"] != "customers x1" || evs[1]["delivery_id"] != "d-1" ||
		evs[0]["summary"] != "duplicate delivery d-1: already processed" {
		t.Fatalf("events = %v", evs)
	}
	// A delivery whose runs could not be queued is answered 5xx, and its
	// redelivery is processed (not dropped as a duplicate).
	b.runner.mu.Lock()
	b.runner.failEnqueue = 1
	b.runner.mu.Unlock()
	if resp = hook(shopifySign(secret, body), "d-2"); resp.Status < 500 {
		t.Fatalf("delivery whose runs failed to queue = %d %s, want a 5xx so that Shopify retries", resp.Status, resp.Body)
	}
	resp = hook(shopifySign(secret, body), "d-2")
	if resp.Status != http.StatusOK || resp.JSON(t)["runs"] != 1.0 || resp.JSON(t)["duplicate"] == true {
		t.Fatalf("redelivery of the failed d-2 = %d %s, want it processed", resp.Status, resp.Body)
	}
	if strings.Contains(b.logs.String(), secret) || strings.Contains(b.logs.String(), "bob@example.com") {
		t.Fatal("a secret or the body reached the logs")
	}
}

func TestWebhookRateLimitPerConnection(t *testing.T) {
	b := setup(t)
	// 300 deliveries for one id: a burst of 100 and a refill of 50 a second
	// let them all through only if they took 4 s or more.
	start := time.Now()
	limited := 0
	for range 300 {
		resp := b.do(req{method: "POST", path: "/v1/hooks/con_flooded00000000000000", body: []byte(`{}`)})
		switch resp.Status {
		case http.StatusNotFound:
		case http.StatusTooManyRequests:
			if code, _ := resp.errorCode(t); code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("429 = %s %v", resp.Body, resp.Header)
			}
			limited++
		default:
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
	}
	if elapsed := time.Since(start); limited == 0 && elapsed < 4*time.Second {
		t.Fatalf("no delivery limited in %v", elapsed)
	}
	// Another connection has its own bucket.
	if resp := b.do(req{method: "POST", path: "/v1/hooks/con_other000000000000000", body: []byte(`{}`)}); resp.Status != http.StatusNotFound {
		t.Fatalf("other connection = %d", resp.Status)
	}
}
