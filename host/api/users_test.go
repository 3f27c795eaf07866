package api_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignupLoginMeLogout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.must(http.StatusCreated, req{method: "POST", path: "/v1/signup",
		body: map[string]string{"email": "  Ann@Example.COM ", "password": "correct horse battery", "name": "Ann"}})
	acc := m["account"].(map[string]any)
	usr := m["user"].(map[string]any)
	if acc["plan"] != "individual" || acc["status"] != "trialing" {
		t.Fatalf("account = %v", acc)
	}
	trialEnd, err := time.Parse(time.RFC3339, acc["trial_ends_at"].(string))
	if err != nil || trialEnd.Sub(b.clock.Now()).Round(time.Hour) != 14*24*time.Hour {
		t.Fatalf("trial_ends_at = %v (%v), want 14 days from now", acc["trial_ends_at"], err)
	}
	if usr["email"] != "ann@example.com" || usr["role"] != "admin" || usr["is_primary"] != true {
		t.Fatalf("user = %v", usr)
	}
	if _, leaked := usr["password_hash"]; leaked {
		t.Fatal("user view carries the password hash")
	}
	signupToken := m["token"].(string)
	if !strings.HasPrefix(signupToken, "syn_") {
		t.Fatalf("token = %q", signupToken)
	}

	me := b.must(http.StatusOK, req{method: "GET", path: "/v1/me", token: signupToken})
	if me["role"] != "admin" || me["user"].(map[string]any)["id"] != usr["id"] || me["account"].(map[string]any)["id"] != acc["id"] {
		t.Fatalf("me = %v", me)
	}

	login := b.must(http.StatusOK, req{method: "POST", path: "/v1/login", body: map[string]string{"email": "ANN@example.com", "password": "correct horse battery"}})
	session := login["token"].(string)
	if session == signupToken || !strings.HasPrefix(session, "syn_") {
		t.Fatalf("login token = %q", session)
	}
	b.must(http.StatusNoContent, req{method: "POST", path: "/v1/logout", token: session})
	resp := b.do(req{method: "GET", path: "/v1/me", token: session})
	if code, _ := resp.errorCode(t); resp.Status != http.StatusUnauthorized || code != "unauthorized" {
		t.Fatalf("me after logout = %d %s", resp.Status, resp.Body)
	}
	// The other session is still alive.
	b.must(http.StatusOK, req{method: "GET", path: "/v1/me", token: signupToken})

	for _, pw := range []string{"correct horse battery"} {
		if strings.Contains(b.logs.String(), pw) || strings.Contains(b.logs.String(), signupToken) || strings.Contains(b.logs.String(), session) {
			t.Fatal("a password or token reached the logs")
		}
	}
}

func TestSignupValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.signup("taken@example.com")
	testCases := map[string]struct {
		body       any
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		"bad email":       {body: map[string]string{"email": "nope", "password": "correct horse", "name": "A"}, wantStatus: 422, wantCode: "invalid_email", wantInMsg: "nope"},
		"no email":        {body: map[string]string{"password": "correct horse", "name": "A"}, wantStatus: 422, wantCode: "invalid_email"},
		"short password":  {body: map[string]string{"email": "a@example.com", "password": "short", "name": "A"}, wantStatus: 422, wantCode: "invalid_password", wantInMsg: "at least 10"},
		"long password":   {body: map[string]string{"email": "a@example.com", "password": strings.Repeat("x", 73), "name": "A"}, wantStatus: 422, wantCode: "invalid_password", wantInMsg: "72 bytes"},
		"no name":         {body: map[string]string{"email": "a@example.com", "password": "correct horse"}, wantStatus: 422, wantCode: "invalid_name"},
		"taken":           {body: map[string]string{"email": "Taken@example.com", "password": "correct horse", "name": "A"}, wantStatus: 409, wantCode: "email_taken"},
		"malformed json":  {body: `{"email": "a@example.com",`, wantStatus: 400, wantCode: "malformed_json"},
		"not an object":   {body: `[1, 2]`, wantStatus: 400, wantCode: "malformed_json"},
		"wrong type":      {body: `{"email": 12}`, wantStatus: 400, wantCode: "malformed_json", wantInMsg: "email"},
		"unknown field":   {body: `{"email": "a@example.com", "pasword": "x"}`, wantStatus: 400, wantCode: "unknown_field", wantInMsg: "pasword"},
		"empty body":      {body: ``, wantStatus: 400, wantCode: "malformed_json"},
		"trailing data":   {body: `{"email": "a@example.com"} {}`, wantStatus: 400, wantCode: "malformed_json"},
		"body over 1 MiB": {body: `{"name": "` + strings.Repeat("x", 1<<20) + `"}`, wantStatus: 413, wantCode: "request_too_large"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(req{method: "POST", path: "/v1/signup", body: tc.body})
			code, msg := resp.errorCode(t)
			if resp.Status != tc.wantStatus || code != tc.wantCode || !strings.Contains(msg, tc.wantInMsg) {
				t.Fatalf("= %d %s %q; want %d %s containing %q", resp.Status, code, msg, tc.wantStatus, tc.wantCode, tc.wantInMsg)
			}
		})
	}
	var n int
	if err := b.db.GetContext(b.ctx, &n, `SELECT count(*) FROM users`); err != nil || n != 1 {
		t.Fatalf("%d users after bad signups (%v), want 1", n, err)
	}
}

func TestLoginRateLimitPerEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	wrong := req{method: "POST", path: "/v1/login", body: map[string]string{"email": u.email, "password": "wrong password!"}}
	for i := range 10 {
		resp := b.do(wrong)
		if code, _ := resp.errorCode(t); resp.Status != http.StatusUnauthorized || code != "invalid_credentials" {
			t.Fatalf("failure %d = %d %s", i, resp.Status, resp.Body)
		}
		b.clock.Advance(time.Second)
	}
	right := req{method: "POST", path: "/v1/login", body: map[string]string{"email": u.email, "password": u.password}}
	resp := b.do(right)
	code, _ := resp.errorCode(t)
	if resp.Status != http.StatusTooManyRequests || code != "too_many_attempts" {
		t.Fatalf("11th try = %d %s, want 429", resp.Status, resp.Body)
	}
	// The first failure leaves the 15-minute window 15m - 10s from now.
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || retry != 15*60-10 {
		t.Fatalf("Retry-After = %q, want %d", resp.Header.Get("Retry-After"), 15*60-10)
	}
	b.clock.Advance(time.Duration(retry) * time.Second)
	b.must(http.StatusOK, right)
	// A success forgets the email's failures.
	b.must(http.StatusUnauthorized, wrong)
	b.must(http.StatusOK, right)
}

func TestLoginRateLimitPerIP(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	const ip = "203.0.113.7:5555"
	for i := range 50 {
		b.must(http.StatusUnauthorized, req{method: "POST", path: "/v1/login", remoteAddr: ip,
			body: map[string]string{"email": fmt.Sprintf("guess%d@example.com", i), "password": "some password"}})
	}
	resp := b.do(req{method: "POST", path: "/v1/login", remoteAddr: ip, body: map[string]string{"email": u.email, "password": u.password}})
	if resp.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("51st try from one IP = %d %s", resp.Status, resp.Body)
	}
	// Another IP is not blocked.
	b.must(http.StatusOK, req{method: "POST", path: "/v1/login", remoteAddr: "198.51.100.1:1", body: map[string]string{"email": u.email, "password": u.password}})
}

func TestLoginUnknownEmailAndBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp := b.do(req{method: "POST", path: "/v1/login", body: map[string]string{"email": "who@example.com", "password": "whatever123"}})
	if code, msg := resp.errorCode(t); resp.Status != 401 || code != "invalid_credentials" || strings.Contains(msg, "who@") {
		t.Fatalf("unknown email = %d %s", resp.Status, resp.Body)
	}
	resp = b.do(req{method: "POST", path: "/v1/login", body: map[string]string{"email": "who@example.com"}})
	if resp.Status != 422 {
		t.Fatalf("no password = %d %s", resp.Status, resp.Body)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u := b.signup("ann@example.com")
	other := b.signup("bob@example.com")

	created := b.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: u.token, body: map[string]any{"name": "CI"}})
	secret, _ := created["token"].(string)
	if !strings.HasPrefix(secret, "syn_") || created["kind"] != "api" || created["name"] != "CI" {
		t.Fatalf("created = %v", created)
	}
	id := created["id"].(string)

	listed := b.must(http.StatusOK, req{method: "GET", path: "/v1/tokens", token: u.token})
	items := listed["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("list = %v", listed)
	}
	if _, shown := items[0].(map[string]any)["token"]; shown {
		t.Fatal("the list shows the secret")
	}
	if got := b.must(http.StatusOK, req{method: "GET", path: "/v1/tokens", token: other.token}); len(got["items"].([]any)) != 0 {
		t.Fatalf("another account lists %v", got)
	}

	// The API token works.
	me := b.must(http.StatusOK, req{method: "GET", path: "/v1/me", token: secret})
	if me["user"].(map[string]any)["id"] != u.userID {
		t.Fatalf("me with API token = %v", me)
	}
	// Another account cannot delete it.
	resp := b.do(req{method: "DELETE", path: "/v1/tokens/" + id, token: other.token})
	if code, _ := resp.errorCode(t); resp.Status != 404 || code != "not_found" {
		t.Fatalf("foreign delete = %d %s", resp.Status, resp.Body)
	}
	b.must(http.StatusOK, req{method: "GET", path: "/v1/me", token: secret})

	b.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/tokens/" + id, token: u.token})
	b.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/me", token: secret})
	b.must(http.StatusNotFound, req{method: "DELETE", path: "/v1/tokens/" + id, token: u.token})

	// Expiry in the past is refused; a future one is kept.
	b.must(http.StatusUnprocessableEntity, req{method: "POST", path: "/v1/tokens", token: u.token,
		body: map[string]any{"name": "old", "expires_at": b.clock.Now().Add(-time.Hour).Format(time.RFC3339)}})
	exp := b.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: u.token,
		body: map[string]any{"name": "soon", "expires_at": b.clock.Now().Add(time.Hour).Format(time.RFC3339)}})
	b.must(http.StatusOK, req{method: "GET", path: "/v1/me", token: exp["token"].(string)})
	b.clock.Advance(2 * time.Hour)
	b.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/me", token: exp["token"].(string)})

	if strings.Contains(b.logs.String(), secret) {
		t.Fatal("a token reached the logs")
	}
	var hashes int
	if err := b.db.GetContext(b.ctx, &hashes, `SELECT count(*) FROM tokens WHERE position(convert_to($1, 'UTF8') in token_hash) > 0 OR name = $1`, secret); err != nil || hashes != 0 {
		t.Fatalf("the token secret is stored (%d, %v)", hashes, err)
	}
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	testCases := map[string]string{
		"no header":  "",
		"not bearer": "Basic abc",
		"unknown":    "Bearer syn_nope",
		"no prefix":  "Bearer abcdef",
	}
	for name, header := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{}
			if header != "" {
				h["Authorization"] = header
			}
			resp := b.do(req{method: "GET", path: "/v1/connections", header: h})
			if code, _ := resp.errorCode(t); resp.Status != 401 || code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("= %d %s", resp.Status, resp.Body)
			}
		})
	}
}
