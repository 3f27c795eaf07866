package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// grpcServer serves a Connector as connectorv1.ConnectorServer.
//
// A connector's error becomes codes.Unknown (marked so that Client returns a
// *ConnectorError), a panic is recovered and becomes codes.Internal with the
// panic value as message (the stack goes to the log), and diagnostics travel
// as data in the responses.
type grpcServer struct {
	connectorv1.UnimplementedConnectorServer
	impl   Connector
	logger hclog.Logger
	// budgets is the host's budget authority once the host attached it
	// (AttachBudgets); every call's context carries it.
	budgets *attachedBudgets
}

func newGRPCServer(impl Connector, logger hclog.Logger, broker *plugin.GRPCBroker) *grpcServer {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &grpcServer{impl: impl, logger: logger, budgets: &attachedBudgets{broker: broker}}
}

// AttachBudgets dials the host's Budgets service: from then on every call's
// context carries it (BudgetAuthorityFrom).
func (s *grpcServer) AttachBudgets(_ context.Context, req *connectorv1.AttachBudgetsRequest) (*connectorv1.AttachBudgetsResponse, error) {
	if err := s.budgets.attach(req.GetBrokerId()); err != nil {
		return nil, err
	}
	s.logger.Debug("rate-limit budgets attached to the host", "broker_id", req.GetBrokerId())
	return &connectorv1.AttachBudgetsResponse{}, nil
}

// recoverPanic turns a panic of the connector into *err; use it deferred.
func (s *grpcServer) recoverPanic(method string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("connector panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = panicStatus(r)
	}
}

func (s *grpcServer) Spec(ctx context.Context, _ *connectorv1.SpecRequest) (resp *connectorv1.SpecResponse, err error) {
	defer s.recoverPanic("spec", &err)
	ctx = s.budgets.context(ctx)
	spec, err := s.impl.Spec(ctx)
	if err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return specToProto(spec), nil
}

func (s *grpcServer) Check(ctx context.Context, req *connectorv1.CheckRequest) (resp *connectorv1.CheckResponse, err error) {
	defer s.recoverPanic("check", &err)
	ctx = s.budgets.context(ctx)
	r, err := s.impl.Check(ctx, checkRequestFromProto(req))
	if err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return checkResponseToProto(r), nil
}

func (s *grpcServer) Discover(ctx context.Context, req *connectorv1.DiscoverRequest) (resp *connectorv1.DiscoverResponse, err error) {
	defer s.recoverPanic("discover", &err)
	ctx = s.budgets.context(ctx)
	r, err := s.impl.Discover(ctx, discoverRequestFromProto(req))
	if err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return discoverResponseToProto(r), nil
}

func (s *grpcServer) Write(ctx context.Context, req *connectorv1.WriteRequest) (resp *connectorv1.WriteResponse, err error) {
	defer s.recoverPanic("write", &err)
	ctx = s.budgets.context(ctx)
	r, err := s.impl.Write(ctx, writeRequestFromProto(req))
	if err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return writeResponseToProto(r), nil
}

func (s *grpcServer) HandleWebhook(ctx context.Context, req *connectorv1.HandleWebhookRequest) (resp *connectorv1.HandleWebhookResponse, err error) {
	defer s.recoverPanic("webhook", &err)
	ctx = s.budgets.context(ctx)
	r, err := s.impl.HandleWebhook(ctx, webhookRequestFromProto(req))
	if err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return webhookResponseToProto(r), nil
}

func (s *grpcServer) Stop(ctx context.Context, _ *connectorv1.StopRequest) (resp *connectorv1.StopResponse, err error) {
	defer s.recoverPanic("stop", &err)
	ctx = s.budgets.context(ctx)
	if err := s.impl.Stop(ctx); err != nil {
		return nil, connectorStatus(ctx, err)
	}
	return &connectorv1.StopResponse{}, nil
}

// Read streams each ReadBatch the connector emits as one ReadResponse.
func (s *grpcServer) Read(req *connectorv1.ReadRequest, stream grpc.ServerStreamingServer[connectorv1.ReadResponse]) (err error) {
	defer s.recoverPanic("read", &err)
	ctx := s.budgets.context(stream.Context())
	sink := &streamSink{stream: stream}
	defer sink.close()
	err = s.impl.Read(ctx, readRequestFromProto(req), sink)
	if err == nil {
		return nil
	}
	if sendErr := sink.err(); sendErr != nil && errors.Is(err, sendErr) {
		// The connector stopped because the stream broke: report the stream's
		// own status, not a connector error.
		return sendErr
	}
	return connectorStatus(ctx, err)
}

// errSinkClosed is returned by Emit after Read has returned.
var errSinkClosed = errors.New("sdk: read sink used after Read returned")

// streamSink sends batches on a Read stream. It is safe for concurrent use
// (gRPC streams are not), and refuses batches once Read has returned.
type streamSink struct {
	mu      sync.Mutex
	stream  grpc.ServerStreamingServer[connectorv1.ReadResponse]
	sendErr error
	closed  bool
}

func (s *streamSink) Emit(ctx context.Context, batch ReadBatch) error {
	resp := readBatchToProto(batch) // outside the lock: this is the expensive part
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	if s.sendErr != nil {
		return s.sendErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.stream.Send(resp); err != nil {
		s.sendErr = err
		return err
	}
	return nil
}

func (s *streamSink) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendErr
}

func (s *streamSink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
