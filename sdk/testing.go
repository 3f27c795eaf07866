package sdk

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// ServeTestConn serves c over a real gRPC connection inside the current
// process (an in-memory listener: no port, no file, no binary to build) with
// the same server, client and message limits as a plugin process, and returns
// the client side. Tests use it to exercise the whole wire path: conversions,
// status codes, panics, streaming.
//
// Call the returned function to close the connection and stop the server; it
// waits for the server's goroutines and may be called more than once. The
// connection is also closed when ctx is done. c.Stop is not called (call Stop
// on the returned Connector to exercise it).
func ServeTestConn(ctx context.Context, c Connector) (Connector, func(), error) {
	if c == nil {
		return nil, nil, fmt.Errorf("sdk: serve test conn: nil connector")
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(serverOptions()...)
	p := &GRPCPlugin{Impl: c}
	if err := p.GRPCServer(nil, srv); err != nil {
		return nil, nil, fmt.Errorf("sdk: serve test conn: %w", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis) // returns when srv stops
	}()

	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, ClientDialOptions()...)
	cc, err := grpc.NewClient("passthrough:///connector", opts...)
	if err != nil {
		srv.Stop()
		<-served
		return nil, nil, fmt.Errorf("sdk: serve test conn: dial: %w", err)
	}
	raw, err := p.GRPCClient(ctx, nil, cc)
	if err != nil {
		_ = cc.Close()
		srv.Stop()
		<-served
		return nil, nil, fmt.Errorf("sdk: serve test conn: %w", err)
	}

	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			_ = cc.Close()
			srv.Stop()
			<-served
		})
	}
	stopAfter := context.AfterFunc(ctx, cleanup)
	return raw.(*Client), func() { stopAfter(); cleanup() }, nil
}
