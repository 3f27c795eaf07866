package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWatchParent(t *testing.T) {
	t.Parallel()
	t.Run("parent changes", func(t *testing.T) {
		t.Parallel()
		var ppid atomic.Int64
		ppid.Store(100)
		polled := make(chan struct{}, 1)
		getppid := func() int {
			v := int(ppid.Load())
			select {
			case polled <- struct{}{}:
			default:
			}
			return v
		}
		res := make(chan bool, 1)
		go func() { res <- watchParent(context.Background(), getppid, time.Millisecond) }()
		<-polled // the initial value has been read
		ppid.Store(1)
		select {
		case got := <-res:
			if !got {
				t.Fatal("watchParent = false, want true after the parent changed")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watchParent did not notice the parent change")
		}
	})
	t.Run("ends with ctx", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan bool, 1)
		go func() { res <- watchParent(ctx, func() int { return 100 }, time.Millisecond) }()
		cancel()
		select {
		case got := <-res:
			if got {
				t.Fatal("watchParent = true, want false when ctx is done")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watchParent did not return after cancel")
		}
	})
}

func TestIsTransportError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("x"), false},
		{"context canceled", fmt.Errorf("connector read: %w", context.Canceled), false},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"), true},
		{"wrapped unavailable", clientError(ctx, "read", status.Error(codes.Unavailable, "eof")), true},
		{"peer cancel", clientError(ctx, "read", status.Error(codes.Canceled, "x")), true},
		{"local cancel", clientError(cancelled, "read", status.Error(codes.Canceled, "x")), false},
		{"internal", clientError(ctx, "read", status.Error(codes.Internal, "RST_STREAM")), true},
		{"unknown untyped", clientError(ctx, "read", status.Error(codes.Unknown, "unexpected EOF")), true},
		{"connector error", clientError(ctx, "read", connectorStatus(ctx, errors.New("boom"))), false},
		{"connector panic", clientError(ctx, "read", panicStatus("boom")), false},
		{"message too large", clientError(ctx, "read", status.Error(codes.ResourceExhausted, "too big")), false},
		{"unimplemented", clientError(ctx, "read", status.Error(codes.Unimplemented, "x")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsTransportError(tt.err); got != tt.want {
				t.Fatalf("IsTransportError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestConnectorStatus(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		wantCode  codes.Code
		wantPanic bool
		wantCE    bool
	}{
		{"connector error", live, errors.New("app said no"), codes.Unknown, false, true},
		{"own timeout is the connector's", live, fmt.Errorf("call app: %w", context.DeadlineExceeded), codes.Unknown, false, true},
		{"call cancelled", done, fmt.Errorf("x: %w", context.Canceled), codes.Canceled, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := connectorStatus(tt.ctx, tt.err)
			if c := status.Code(err); c != tt.wantCode {
				t.Fatalf("code = %v, want %v", c, tt.wantCode)
			}
			var ce *ConnectorError
			got := clientError(live, "check", err)
			if errors.As(got, &ce) != tt.wantCE {
				t.Fatalf("ConnectorError = %v, want %v (err %v)", ce != nil, tt.wantCE, got)
			}
			if ce != nil && (ce.Panic != tt.wantPanic || ce.Message != tt.err.Error() || ce.Method != "check") {
				t.Fatalf("ConnectorError = %+v", ce)
			}
		})
	}
}

func TestStopOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	want := errors.New("stop failed")
	c := &stopOnce{Connector: stopFunc(func(context.Context) error { calls.Add(1); return want })}
	for range 3 {
		if err := c.Stop(context.Background()); !errors.Is(err, want) {
			t.Fatalf("Stop = %v, want %v", err, want)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("connector Stop called %d times, want 1", n)
	}
}

// stopFunc is a Connector whose only working method is Stop.
type stopFunc func(context.Context) error

func (f stopFunc) Stop(ctx context.Context) error { return f(ctx) }
func (stopFunc) Spec(context.Context) (*Spec, error) {
	return nil, errors.New("unused")
}
func (stopFunc) Check(context.Context, CheckRequest) (*CheckResponse, error) {
	return nil, errors.New("unused")
}
func (stopFunc) Discover(context.Context, DiscoverRequest) (*DiscoverResponse, error) {
	return nil, errors.New("unused")
}
func (stopFunc) Read(context.Context, ReadRequest, ReadSink) error { return errors.New("unused") }
func (stopFunc) Write(context.Context, WriteRequest) (*WriteResponse, error) {
	return nil, errors.New("unused")
}
func (stopFunc) HandleWebhook(context.Context, WebhookRequest) (*WebhookResponse, error) {
	return nil, errors.New("unused")
}
