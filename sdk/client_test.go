package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchron-io/synchron/sdk"
)

// fakeConn is a Connector built from functions; a nil function panics, which
// the tests do not rely on.
type fakeConn struct {
	spec     func(ctx context.Context) (*sdk.Spec, error)
	check    func(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error)
	discover func(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error)
	read     func(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error
	write    func(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error)
	webhook  func(ctx context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error)
	stop     func(ctx context.Context) error
}

func (f *fakeConn) Spec(ctx context.Context) (*sdk.Spec, error) { return f.spec(ctx) }
func (f *fakeConn) Check(ctx context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
	return f.check(ctx, req)
}
func (f *fakeConn) Discover(ctx context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
	return f.discover(ctx, req)
}
func (f *fakeConn) Read(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
	return f.read(ctx, req, sink)
}
func (f *fakeConn) Write(ctx context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
	return f.write(ctx, req)
}
func (f *fakeConn) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return f.webhook(ctx, req)
}
func (f *fakeConn) Stop(ctx context.Context) error { return f.stop(ctx) }

// serve serves c with ServeTestConn for the duration of the test.
func serve(t *testing.T, c sdk.Connector) sdk.Connector {
	t.Helper()
	client, cleanup, err := sdk.ServeTestConn(context.Background(), c)
	if err != nil {
		t.Fatalf("ServeTestConn: %v", err)
	}
	t.Cleanup(cleanup)
	return client
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collect is a ReadSink keeping every batch.
type collect struct{ batches []sdk.ReadBatch }

func (c *collect) Emit(_ context.Context, b sdk.ReadBatch) error {
	c.batches = append(c.batches, b)
	return nil
}

func TestClientPassesEveryCall(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg := json.RawMessage(`{"token":"t"}`)
	var stopped atomic.Bool
	c := serve(t, &fakeConn{
		spec: func(context.Context) (*sdk.Spec, error) {
			return &sdk.Spec{Name: "fake", Version: "1.0.0", Docs: "docs", ProtocolVersion: sdk.ProtocolVersion}, nil
		},
		check: func(_ context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
			if !bytes.Equal(req.Config, cfg) {
				return nil, fmt.Errorf("config %s", req.Config)
			}
			return &sdk.CheckResponse{Diagnostics: sdk.Diagnostics{{Severity: sdk.SeverityWarning, Summary: "w"}}}, nil
		},
		discover: func(_ context.Context, req sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) {
			return &sdk.DiscoverResponse{Objects: []sdk.Object{{Name: "o", Readable: true}}, UpdatedConfig: req.Config}, nil
		},
		write: func(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
			resp := &sdk.WriteResponse{}
			for _, r := range req.Records {
				resp.Results = append(resp.Results, sdk.WriteResult{Ref: r.Ref, Status: sdk.WriteOK, Action: sdk.ActionCreated, ID: "id-" + r.Ref})
			}
			return resp, nil
		},
		webhook: func(_ context.Context, req sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
			return &sdk.WebhookResponse{Verified: req.Headers["X-Sig"][0] == "ok", ResponseStatus: 202}, nil
		},
		stop: func(context.Context) error { stopped.Store(true); return nil },
	})

	spec, err := c.Spec(ctx)
	if err != nil || spec.Name != "fake" || spec.Docs != "docs" {
		t.Fatalf("Spec = %+v, %v", spec, err)
	}
	chk, err := c.Check(ctx, sdk.CheckRequest{Config: cfg})
	if err != nil || len(chk.Diagnostics) != 1 || chk.Diagnostics.HasError() {
		t.Fatalf("Check = %+v, %v", chk, err)
	}
	disc, err := c.Discover(ctx, sdk.DiscoverRequest{Config: cfg})
	if err != nil || len(disc.Objects) != 1 || !bytes.Equal(disc.UpdatedConfig, cfg) {
		t.Fatalf("Discover = %+v, %v", disc, err)
	}
	wr, err := c.Write(ctx, sdk.WriteRequest{Object: "o", Records: []sdk.WriteRecord{{Ref: "a"}, {Ref: "b"}}})
	if err != nil || len(wr.Results) != 2 || wr.Results[1].ID != "id-b" || wr.Results[1].Action != sdk.ActionCreated {
		t.Fatalf("Write = %+v, %v", wr, err)
	}
	wh, err := c.HandleWebhook(ctx, sdk.WebhookRequest{Headers: map[string][]string{"X-Sig": {"ok"}}})
	if err != nil || !wh.Verified || wh.ResponseStatus != 202 {
		t.Fatalf("HandleWebhook = %+v, %v", wh, err)
	}
	if err := c.Stop(ctx); err != nil || !stopped.Load() {
		t.Fatalf("Stop = %v (stopped %v)", err, stopped.Load())
	}
}

func TestClientReadStreamsBatchesInOrder(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := serve(t, &fakeConn{read: func(ctx context.Context, req sdk.ReadRequest, sink sdk.ReadSink) error {
		for i := range 5 {
			recs := make([]sdk.Record, req.BatchSize)
			for j := range recs {
				recs[j] = sdk.Record{ID: fmt.Sprintf("%d-%d", i, j), Fields: json.RawMessage(`{}`)}
			}
			if err := sink.Emit(ctx, sdk.ReadBatch{Records: recs, Checkpoint: fmt.Appendf(nil, "%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}})
	var got collect
	if err := c.Read(ctx, sdk.ReadRequest{Object: "o", BatchSize: 3}, &got); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(got.batches) != 5 {
		t.Fatalf("got %d batches, want 5", len(got.batches))
	}
	for i, b := range got.batches {
		if string(b.Checkpoint) != fmt.Sprint(i) || len(b.Records) != 3 || b.Records[2].ID != fmt.Sprintf("%d-2", i) {
			t.Fatalf("batch %d = %+v", i, b)
		}
	}
}

func TestClientReadStopsWhenSinkFails(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	readReturned := make(chan error, 1)
	c := serve(t, &fakeConn{read: func(ctx context.Context, _ sdk.ReadRequest, sink sdk.ReadSink) error {
		// An endless source: only the sink's error can stop it.
		var err error
		for i := 0; err == nil; i++ {
			err = sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: fmt.Sprint(i)}}, Checkpoint: []byte("c")})
		}
		readReturned <- err
		return err
	}})
	stop := errors.New("enough")
	n := 0
	err := c.Read(ctx, sdk.ReadRequest{Object: "o"}, sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	}))
	if !errors.Is(err, stop) {
		t.Fatalf("Read = %v, want the sink's error", err)
	}
	select {
	case err := <-readReturned:
		if err == nil {
			t.Fatal("connector's Emit returned nil after the client stopped")
		}
	case <-ctx.Done():
		t.Fatal("the connector's Read did not stop after the client stopped reading")
	}
}

func TestClientErrorsAndPanics(t *testing.T) {
	t.Parallel()
	boom := func() error { return errors.New("app returned 500") }
	tests := []struct {
		name string
		call func(ctx context.Context, c sdk.Connector) error
	}{
		{"spec", func(ctx context.Context, c sdk.Connector) error { _, err := c.Spec(ctx); return err }},
		{"check", func(ctx context.Context, c sdk.Connector) error {
			_, err := c.Check(ctx, sdk.CheckRequest{Config: json.RawMessage(`"fail"`)})
			return err
		}},
		{"discover", func(ctx context.Context, c sdk.Connector) error {
			_, err := c.Discover(ctx, sdk.DiscoverRequest{})
			return err
		}},
		{"read", func(ctx context.Context, c sdk.Connector) error { return c.Read(ctx, sdk.ReadRequest{}, &collect{}) }},
		{"write", func(ctx context.Context, c sdk.Connector) error {
			_, err := c.Write(ctx, sdk.WriteRequest{})
			return err
		}},
		{"webhook", func(ctx context.Context, c sdk.Connector) error {
			_, err := c.HandleWebhook(ctx, sdk.WebhookRequest{})
			return err
		}},
		{"stop", func(ctx context.Context, c sdk.Connector) error { return c.Stop(ctx) }},
	}
	for _, panics := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name + "/error"
			if panics {
				name = tt.name + "/panic"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := testCtx(t)
				fail := func() error {
					if panics {
						panic("nil map in " + tt.name)
					}
					return boom()
				}
				f := &fakeConn{
					spec: func(context.Context) (*sdk.Spec, error) { return nil, fail() },
					check: func(_ context.Context, req sdk.CheckRequest) (*sdk.CheckResponse, error) {
						if string(req.Config) == `"fail"` {
							return nil, fail()
						}
						return &sdk.CheckResponse{}, nil // the probe proving the server survived
					},
					discover: func(context.Context, sdk.DiscoverRequest) (*sdk.DiscoverResponse, error) { return nil, fail() },
					read:     func(context.Context, sdk.ReadRequest, sdk.ReadSink) error { return fail() },
					write:    func(context.Context, sdk.WriteRequest) (*sdk.WriteResponse, error) { return nil, fail() },
					webhook:  func(context.Context, sdk.WebhookRequest) (*sdk.WebhookResponse, error) { return nil, fail() },
					stop:     func(context.Context) error { return fail() },
				}
				c := serve(t, f)
				err := tt.call(ctx, c)
				var ce *sdk.ConnectorError
				if !errors.As(err, &ce) {
					t.Fatalf("error %v (%T) is not a *ConnectorError", err, err)
				}
				if ce.Panic != panics || ce.Method != tt.name {
					t.Fatalf("ConnectorError = %+v", ce)
				}
				wantMsg := "app returned 500"
				if panics {
					wantMsg = "nil map in " + tt.name
				}
				if ce.Message != wantMsg || !strings.HasPrefix(err.Error(), "connector "+tt.name+": ") {
					t.Fatalf("error = %q, message %q", err, ce.Message)
				}
				if sdk.IsTransportError(err) {
					t.Fatalf("IsTransportError(%v) = true for a connector error", err)
				}
				// The server survived.
				if _, err := c.Check(ctx, sdk.CheckRequest{}); err != nil {
					t.Fatalf("call after the failure: %v", err)
				}
			})
		}
	}
}

func TestClientReadPanicAfterABatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := serve(t, &fakeConn{read: func(ctx context.Context, _ sdk.ReadRequest, sink sdk.ReadSink) error {
		if err := sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: "1"}}, Checkpoint: []byte("1")}); err != nil {
			return err
		}
		panic("boom after a batch")
	}})
	var got collect
	err := c.Read(ctx, sdk.ReadRequest{}, &got)
	var ce *sdk.ConnectorError
	if !errors.As(err, &ce) || !ce.Panic || !strings.Contains(ce.Message, "boom after a batch") {
		t.Fatalf("Read = %v, want a recovered panic", err)
	}
	if len(got.batches) != 1 {
		t.Fatalf("got %d batches before the panic, want 1", len(got.batches))
	}
}

func TestClientCallerCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testCtx(t))
	c := serve(t, &fakeConn{read: func(ctx context.Context, _ sdk.ReadRequest, sink sdk.ReadSink) error {
		if err := sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: "1"}}}); err != nil {
			return err
		}
		<-ctx.Done() // blocks until the caller goes away
		return ctx.Err()
	}})
	err := c.Read(ctx, sdk.ReadRequest{}, sdk.ReadSinkFunc(func(context.Context, sdk.ReadBatch) error {
		cancel()
		return nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read = %v, want context.Canceled", err)
	}
	if sdk.IsTransportError(err) {
		t.Fatalf("IsTransportError = true for the caller's own cancellation")
	}
}

func TestClientServerGoneIsTransportError(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c, cleanup, err := sdk.ServeTestConn(ctx, &fakeConn{spec: func(context.Context) (*sdk.Spec, error) { return &sdk.Spec{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Spec(ctx); err != nil {
		t.Fatalf("Spec: %v", err)
	}
	cleanup()
	cleanup() // idempotent
	_, err = c.Spec(ctx)
	if err == nil || !sdk.IsTransportError(err) {
		t.Fatalf("Spec after the server stopped = %v, want a transport error", err)
	}
}

func TestServeTestConnEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	c, cleanup, err := sdk.ServeTestConn(ctx, &fakeConn{spec: func(context.Context) (*sdk.Spec, error) { return &sdk.Spec{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cancel()
	cleanup() // waits for the shutdown started by cancel, if any
	if _, err := c.Spec(testCtx(t)); !sdk.IsTransportError(err) {
		t.Fatalf("Spec after ctx ended = %v, want a transport error", err)
	}
}

func TestClientLargeMessages(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// 8 MiB: twice gRPC's default 4 MiB receive limit.
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 8<<20) + `"}`)
	c := serve(t, &fakeConn{
		read: func(ctx context.Context, _ sdk.ReadRequest, sink sdk.ReadSink) error {
			return sink.Emit(ctx, sdk.ReadBatch{Records: []sdk.Record{{ID: "big", Fields: big}}})
		},
		write: func(_ context.Context, req sdk.WriteRequest) (*sdk.WriteResponse, error) {
			return &sdk.WriteResponse{Results: []sdk.WriteResult{{Ref: req.Records[0].Ref, Status: sdk.WriteOK, ID: fmt.Sprint(len(req.Records[0].Fields))}}}, nil
		},
	})
	var got collect
	if err := c.Read(ctx, sdk.ReadRequest{}, &got); err != nil {
		t.Fatalf("Read of an 8 MiB record: %v", err)
	}
	if len(got.batches) != 1 || len(got.batches[0].Records[0].Fields) != len(big) {
		t.Fatal("the 8 MiB record did not come back whole")
	}
	wr, err := c.Write(ctx, sdk.WriteRequest{Records: []sdk.WriteRecord{{Ref: "r", Fields: big}}})
	if err != nil || wr.Results[0].ID != fmt.Sprint(len(big)) {
		t.Fatalf("Write of an 8 MiB record = %+v, %v", wr, err)
	}
}

func TestClientWriteResultCountMismatch(t *testing.T) {
	t.Parallel()
	c := serve(t, &fakeConn{write: func(context.Context, sdk.WriteRequest) (*sdk.WriteResponse, error) {
		return &sdk.WriteResponse{Results: []sdk.WriteResult{{Ref: "a", Status: sdk.WriteOK}}}, nil
	}})
	_, err := c.Write(testCtx(t), sdk.WriteRequest{Records: []sdk.WriteRecord{{Ref: "a"}, {Ref: "b"}}})
	if err == nil || !strings.Contains(err.Error(), "1 results for 2 records") {
		t.Fatalf("Write = %v, want a protocol violation", err)
	}
}

// A connector's Retryable error reaches the host as a retryable
// ConnectorError with its wait; a plain error is not retryable.
func TestClientRetryableErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err       error
		retryable bool
		after     time.Duration
	}{
		"retryable with a wait": {err: sdk.Retryable(errors.New("HTTP 429 after 6 attempts"), 90*time.Second), retryable: true, after: 90 * time.Second},
		"retryable, no wait":    {err: sdk.Retryable(fmt.Errorf("read: %w", errors.New("HTTP 503")), 0), retryable: true},
		"plain":                 {err: errors.New("invalid config")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := serve(t, &fakeConn{read: func(context.Context, sdk.ReadRequest, sdk.ReadSink) error { return tc.err }})
			err := c.Read(testCtx(t), sdk.ReadRequest{}, &collect{})
			after, ok := sdk.IsRetryable(err)
			if ok != tc.retryable || after != tc.after {
				t.Fatalf("IsRetryable(%v) = %v, %v; want %v, %v", err, after, ok, tc.after, tc.retryable)
			}
			if !strings.Contains(err.Error(), tc.err.Error()) || sdk.IsTransportError(err) {
				t.Fatalf("error %q: want the connector's message, not a transport error", err)
			}
		})
	}
	if sdk.Retryable(nil, time.Second) != nil {
		t.Error("Retryable(nil) is not nil")
	}
}
