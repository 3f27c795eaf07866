package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/synchron-io/synchron/plugins/sample/sample"
	"github.com/synchron-io/synchron/sdk"
)

// rotating is a source whose read refreshes its credentials (like Sage's
// single-use refresh tokens): the first batch hands over a config with one
// more "+" on its token, then the app fails.
type rotating struct{ sdk.Connector }

func (r rotating) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	var cfg map[string]any
	if err := json.Unmarshal(req.Config, &cfg); err != nil {
		return err
	}
	tok, _ := cfg["token"].(string)
	cfg["token"] = tok + "+"
	updated, _ := json.Marshal(cfg)
	delete(cfg, "token") // the sample app knows no token
	req.Config, _ = json.Marshal(cfg)
	first := true
	return r.Connector.Read(ctx, req, sdk.ReadSinkFunc(func(ctx context.Context, b sdk.ReadBatch) error {
		if !first {
			return sink.Emit(ctx, b)
		}
		first = false
		b.UpdatedConfig = updated
		if err := sink.Emit(ctx, b); err != nil {
			return err
		}
		return errors.New("the app went away right after the refresh")
	}))
}

// Credentials a connector refreshed are saved on the connection as soon as
// it hands them over, so a run (or a preview) that fails afterwards does not
// lose a single-use refresh token: in the one-way fast path, in a linked run
// and in a preview.
func TestRefreshedCredentialsSavedBeforeTheRunFails(t *testing.T) {
	t.Parallel()
	for name, mode := range map[string]struct{ linked, preview bool }{
		"one-way": {}, "linked": {linked: true}, "preview": {linked: true, preview: true},
	} {
		linked := mode.linked
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupExec(t, 250)
			ctx := context.Background()
			b.serve(t, "sample", rotating{sample.New("0.0.1", "")})
			cfg, err := b.box.Seal([]byte(`{"count": 250, "token": "t0"}`), []byte("con_src"))
			if err != nil {
				t.Fatal(err)
			}
			b.db.MustExec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, cfg)
			if linked {
				b.db.MustExec(`UPDATE workflows SET match = '{"source": "email", "target": "email"}' WHERE id = $1`, b.wfID)
			}
			e := b.executor("h1")
			if mode.preview {
				if _, err := e.Preview(ctx, "acc_a", b.wfID); err == nil || !strings.Contains(err.Error(), "went away") {
					t.Fatalf("preview = %v, want it failed by the app", err)
				}
			} else {
				if r := b.runOnce(t, e); r.Error == nil || !strings.Contains(*r.Error, "went away") {
					t.Fatalf("run = %+v (error %v), want it failed by the app", r, deref(r.Error))
				}
			}
			var sealed []byte
			if err := b.db.Get(&sealed, `SELECT config_enc FROM connections WHERE id = 'con_src'`); err != nil {
				t.Fatal(err)
			}
			plain, err := b.box.Open(sealed, []byte("con_src"))
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Token string }
			if err := json.Unmarshal(plain, &got); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.Token, "t0+") {
				t.Fatalf("stored token %q after the failed run, want the refreshed t0+", got.Token)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// staleCreds is a source whose app refuses the token the run started with
// because another host refreshed it meanwhile (onStale saves the new
// config, as that host would).
type staleCreds struct {
	sdk.Connector
	onStale func() error
}

func (s staleCreds) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	var cfg map[string]any
	if err := json.Unmarshal(req.Config, &cfg); err != nil {
		return err
	}
	if cfg["token"] != "t2" {
		if err := s.onStale(); err != nil {
			return err
		}
		return sink.Emit(ctx, sdk.ReadBatch{Diagnostics: sdk.Diagnostics{sdk.Errorf("refresh_token", "the token endpoint refused the refresh (HTTP 400 invalid_grant)", "")}})
	}
	delete(cfg, "token")
	req.Config, _ = json.Marshal(cfg)
	return s.Connector.Read(ctx, req, sink)
}

// A run that fails because another host rotated the connection's
// credentials during it is retried with the new ones instead of failing;
// a run that fails for another reason is not.
func TestRunRetriedWithCredentialsRefreshedElsewhere(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 120)
	seal := func(token string) []byte {
		c, err := b.box.Seal([]byte(`{"count": 120, "token": "`+token+`"}`), []byte("con_src"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b.db.MustExec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, seal("t1"))
	stale := 0
	b.serve(t, "sample", staleCreds{Connector: sample.New("0.0.1", ""), onStale: func() error {
		stale++
		if stale == 1 {
			_, err := b.db.Exec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, seal("t2"))
			return err
		}
		return nil
	}})
	e := b.executor("h1")
	if r := b.runOnce(t, e); r.Status != "succeeded" || r.Created != 120 || stale != 1 {
		t.Fatalf("run = %+v (error %v) after %d stale attempts, want it succeeded on the refreshed credentials", r, deref(r.Error), stale)
	}

	// Credentials that stay refused (nobody refreshed them): one attempt.
	b.db.MustExec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, seal("t1"))
	if r := b.runOnce(t, e); r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, "invalid_grant") || stale != 2 {
		t.Fatalf("run = %+v (error %v) after %d stale attempts, want failed after one attempt", r, deref(r.Error), stale)
	}
}

// flaky is a source whose app answers 429 beyond what the connector waits
// within one call, failures times: it returns sdk.Retryable.
type flaky struct {
	sdk.Connector
	failures *int
}

func (f flaky) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	if *f.failures > 0 {
		*f.failures--
		return sdk.Retryable(errors.New("the app kept answering HTTP 429"), 10*time.Millisecond)
	}
	return f.Connector.Read(ctx, req, sink)
}

// A connector that gives up on an app's 429s with sdk.Retryable does not
// fail the run: the run resumes after the wait; a plain error still fails.
func TestRetryableConnectorErrorResumesTheRun(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 50)
	failures := 2
	b.serve(t, "sample", flaky{Connector: sample.New("0.0.1", ""), failures: &failures})
	e := b.executor("h1")
	if r := b.runOnce(t, e); r.Status != "succeeded" || r.Created != 50 || failures != 0 {
		t.Fatalf("run = %+v (error %v), want it succeeded after two 429 give-ups", r, deref(r.Error))
	}
}

// patchedMidRun is a source whose read refreshes its credentials while the
// user reconnects the account (a new config saved on the connection).
type patchedMidRun struct {
	sdk.Connector
	patch func() error
}

func (p patchedMidRun) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	if err := p.patch(); err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(req.Config, &cfg); err != nil {
		return err
	}
	cfg["token"] = "refreshed-from-the-old-account"
	updated, _ := json.Marshal(cfg)
	delete(cfg, "token")
	req.Config, _ = json.Marshal(cfg)
	first := true
	return p.Connector.Read(ctx, req, sdk.ReadSinkFunc(func(ctx context.Context, b sdk.ReadBatch) error {
		if first {
			b.UpdatedConfig, first = updated, false
		}
		return sink.Emit(ctx, b)
	}))
}

// Credentials refreshed during a run are not saved over credentials the
// user put on the connection meanwhile.
func TestRefreshedCredentialsDoNotOverwriteAReconnect(t *testing.T) {
	t.Parallel()
	b := setupExec(t, 20)
	seal := func(token string) []byte {
		c, err := b.box.Seal([]byte(`{"count": 20, "token": "`+token+`"}`), []byte("con_src"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b.db.MustExec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, seal("old-account"))
	b.serve(t, "sample", patchedMidRun{Connector: sample.New("0.0.1", ""), patch: func() error {
		_, err := b.db.Exec(`UPDATE connections SET config_enc = $1 WHERE id = 'con_src'`, seal("new-account"))
		return err
	}})
	e := b.executor("h1")
	if r := b.runOnce(t, e); r.Status != "succeeded" {
		t.Fatalf("run = %+v (error %v)", r, deref(r.Error))
	}
	var sealed []byte
	if err := b.db.Get(&sealed, `SELECT config_enc FROM connections WHERE id = 'con_src'`); err != nil {
		t.Fatal(err)
	}
	plain, err := b.box.Open(sealed, []byte("con_src"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), "new-account") {
		t.Fatalf("connection config after the run = %s, want the user's new account kept", plain)
	}
}
