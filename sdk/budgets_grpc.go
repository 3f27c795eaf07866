package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// ErrBudgetsUnsupported: the connector does not know AttachBudgets (built
// with an older SDK), or the client has no go-plugin broker (an in-process
// test connection). The connector keeps its budgets in its own process.
var ErrBudgetsUnsupported = errors.New("the connector does not support shared budgets")

func limitToProto(l Limit) *connectorv1.BudgetLimit {
	m := connectorv1.BudgetLimit_MODEL_UNSPECIFIED
	switch l.Model {
	case BudgetWindow:
		m = connectorv1.BudgetLimit_MODEL_WINDOW
	case BudgetBucket:
		m = connectorv1.BudgetLimit_MODEL_BUCKET
	}
	return &connectorv1.BudgetLimit{
		Model: m, Max: l.Max, IntervalNanos: int64(l.Interval), MarginNanos: int64(l.Margin),
		RestoreRate: l.Rate, ProbeCost: l.Probe,
	}
}

func limitFromProto(p *connectorv1.BudgetLimit) Limit {
	var m BudgetModel
	switch p.GetModel() {
	case connectorv1.BudgetLimit_MODEL_WINDOW:
		m = BudgetWindow
	case connectorv1.BudgetLimit_MODEL_BUCKET:
		m = BudgetBucket
	}
	return Limit{
		Model: m, Max: p.GetMax(), Interval: time.Duration(p.GetIntervalNanos()), Margin: time.Duration(p.GetMarginNanos()),
		Rate: p.GetRestoreRate(), Probe: p.GetProbeCost(),
	}
}

// remoteBudgets is the host's BudgetAuthority, called over the broker.
type remoteBudgets struct {
	rpc connectorv1.BudgetsClient
}

func (r *remoteBudgets) TryTake(ctx context.Context, key string, limit Limit, cost float64) (Grant, error) {
	resp, err := r.rpc.Take(ctx, &connectorv1.TakeRequest{Key: key, Limit: limitToProto(limit), Cost: cost})
	if err != nil {
		return Grant{}, fmt.Errorf("host budgets: take: %w", err)
	}
	if resp.GetGranted() {
		return Grant{Ticket: resp.GetTicket()}, nil
	}
	return Grant{Wait: max(time.Duration(resp.GetWaitNanos()), time.Millisecond)}, nil
}

func (r *remoteBudgets) Observe(ctx context.Context, key string, limit Limit, obs Observation) error {
	_, err := r.rpc.Observe(ctx, &connectorv1.ObserveRequest{
		Key: key, Limit: limitToProto(limit), Ticket: obs.Ticket, Release: obs.Release,
		Max: obs.Max, IntervalNanos: int64(obs.Interval), HasRemaining: obs.HasRemaining,
		Remaining: obs.Remaining, RestoreRate: obs.Rate, RetryAfterNanos: int64(obs.RetryAfter),
	})
	if err != nil {
		return fmt.Errorf("host budgets: observe: %w", err)
	}
	return nil
}

// budgetsServer serves a BudgetAuthority as connectorv1.BudgetsServer.
type budgetsServer struct {
	connectorv1.UnimplementedBudgetsServer
	auth BudgetAuthority
}

func (s *budgetsServer) Take(ctx context.Context, req *connectorv1.TakeRequest) (*connectorv1.TakeResponse, error) {
	g, err := s.auth.TryTake(ctx, req.GetKey(), limitFromProto(req.GetLimit()), req.GetCost())
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if g.Granted() {
		return &connectorv1.TakeResponse{Granted: true, Ticket: g.Ticket}, nil
	}
	return &connectorv1.TakeResponse{WaitNanos: int64(g.Wait)}, nil
}

func (s *budgetsServer) Observe(ctx context.Context, req *connectorv1.ObserveRequest) (*connectorv1.ObserveResponse, error) {
	err := s.auth.Observe(ctx, req.GetKey(), limitFromProto(req.GetLimit()), Observation{
		Ticket: req.GetTicket(), Release: req.GetRelease(), Max: req.GetMax(),
		Interval: time.Duration(req.GetIntervalNanos()), Rate: req.GetRestoreRate(),
		HasRemaining: req.GetHasRemaining(), Remaining: req.GetRemaining(),
		RetryAfter: time.Duration(req.GetRetryAfterNanos()),
	})
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &connectorv1.ObserveResponse{}, nil
}

// AttachBudgets serves auth to the connector over go-plugin's broker and
// tells the connector to use it: from then on the connector's rate-limit
// budgets are auth's. The host calls it once, right after the connector
// was dispensed. It returns ErrBudgetsUnsupported (wrapped) when the
// connector predates AttachBudgets or the client has no broker; the
// connector then keeps its own budgets.
func (c *Client) AttachBudgets(ctx context.Context, auth BudgetAuthority) error {
	if c.broker == nil {
		return fmt.Errorf("connector attach budgets: %w", ErrBudgetsUnsupported)
	}
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		connectorv1.RegisterBudgetsServer(s, &budgetsServer{auth: auth})
		return s
	})
	_, err := c.rpc.AttachBudgets(ctx, &connectorv1.AttachBudgetsRequest{BrokerId: id})
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("connector attach budgets: %w", ErrBudgetsUnsupported)
	}
	if err != nil {
		return clientError(ctx, "attach budgets", err)
	}
	return nil
}

// attachedBudgets is the plugin side: the host's authority once attached.
type attachedBudgets struct {
	broker *plugin.GRPCBroker

	mu   sync.Mutex
	auth BudgetAuthority
	conn *grpc.ClientConn
}

// attach dials the host's Budgets service on the broker id.
func (a *attachedBudgets) attach(id uint32) error {
	if a == nil || a.broker == nil {
		return status.Error(codes.FailedPrecondition, "no go-plugin broker: budgets stay in the process")
	}
	conn, err := a.broker.Dial(id)
	if err != nil {
		return status.Errorf(codes.Unavailable, "dial the host's budgets (broker id %d): %v", id, err)
	}
	a.mu.Lock()
	old := a.conn
	a.conn, a.auth = conn, &remoteBudgets{rpc: connectorv1.NewBudgetsClient(conn)}
	a.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// context returns ctx carrying the host's authority, when attached.
func (a *attachedBudgets) context(ctx context.Context) context.Context {
	if a == nil {
		return ctx
	}
	a.mu.Lock()
	auth := a.auth
	a.mu.Unlock()
	if auth == nil {
		return ctx
	}
	return WithBudgetAuthority(ctx, auth)
}
