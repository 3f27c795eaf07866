package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	connectorv1 "github.com/synchron-io/synchron/proto/connector/v1"
)

// Client is a Connector that calls a connector over gRPC: a plugin process
// launched by the host, or a connection made by ServeTestConn. The host's
// engine can therefore use a plugin or an in-process connector
// interchangeably.
//
// Errors start with "connector <method>: ". Use IsTransportError to tell a
// dead process or broken connection from a *ConnectorError (the connector
// answered with an error, or panicked). Cancelling ctx returns ctx's error.
type Client struct {
	rpc connectorv1.ConnectorClient
	// broker is go-plugin's, when the connector is a plugin process.
	broker *plugin.GRPCBroker
}

var _ Connector = (*Client)(nil)

// NewClient returns a Client calling the connector served on cc. The host
// normally gets a Client from go-plugin (see PluginSet) rather than calling
// this; cc should have been dialled with ClientDialOptions.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: connectorv1.NewConnectorClient(cc)}
}

// Spec implements Connector.
func (c *Client) Spec(ctx context.Context) (*Spec, error) {
	resp, err := c.rpc.Spec(ctx, &connectorv1.SpecRequest{})
	if err != nil {
		return nil, clientError(ctx, "spec", err)
	}
	return specFromProto(resp), nil
}

// Check implements Connector.
func (c *Client) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	resp, err := c.rpc.Check(ctx, checkRequestToProto(req))
	if err != nil {
		return nil, clientError(ctx, "check", err)
	}
	return checkResponseFromProto(resp), nil
}

// Discover implements Connector.
func (c *Client) Discover(ctx context.Context, req DiscoverRequest) (*DiscoverResponse, error) {
	resp, err := c.rpc.Discover(ctx, discoverRequestToProto(req))
	if err != nil {
		return nil, clientError(ctx, "discover", err)
	}
	return discoverResponseFromProto(resp), nil
}

// Read implements Connector: it consumes the stream and calls sink.Emit for
// each message. When Emit returns an error, Read cancels the stream and
// returns that error unchanged.
func (c *Client) Read(ctx context.Context, req ReadRequest, sink ReadSink) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on every path, so the server stops producing
	stream, err := c.rpc.Read(streamCtx, readRequestToProto(req))
	if err != nil {
		return clientError(ctx, "read", err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return clientError(ctx, "read", err)
		}
		if err := sink.Emit(ctx, readBatchFromProto(msg)); err != nil {
			return err
		}
	}
}

// Write implements Connector.
func (c *Client) Write(ctx context.Context, req WriteRequest) (*WriteResponse, error) {
	resp, err := c.rpc.Write(ctx, writeRequestToProto(req))
	if err != nil {
		return nil, clientError(ctx, "write", err)
	}
	out := writeResponseFromProto(resp)
	if len(out.Results) != len(req.Records) {
		return nil, fmt.Errorf("connector write: protocol violation: %d results for %d records", len(out.Results), len(req.Records))
	}
	return out, nil
}

// HandleWebhook implements Connector.
func (c *Client) HandleWebhook(ctx context.Context, req WebhookRequest) (*WebhookResponse, error) {
	resp, err := c.rpc.HandleWebhook(ctx, webhookRequestToProto(req))
	if err != nil {
		return nil, clientError(ctx, "webhook", err)
	}
	return webhookResponseFromProto(resp), nil
}

// Stop implements Connector: it asks the connector to finish in-flight work
// and release its resources. It does not end the process (the host's
// plugin.Client.Kill does).
func (c *Client) Stop(ctx context.Context) error {
	resp, err := c.rpc.Stop(ctx, &connectorv1.StopRequest{})
	if err != nil {
		return clientError(ctx, "stop", err)
	}
	if d := diagnosticsFromProto(resp.GetDiagnostics()); d.HasError() {
		return fmt.Errorf("connector stop: %s", d.Error())
	}
	return nil
}
