package sdk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorDomain marks the gRPC statuses the SDK server builds from a
// connector's own errors and panics, so that the client can tell them apart
// from transport failures that carry the same codes.
const errorDomain = "connector.synchron.io"

// Reasons carried in the google.rpc.ErrorInfo detail of such statuses.
const (
	reasonConnectorError     = "CONNECTOR_ERROR"
	reasonConnectorPanic     = "CONNECTOR_PANIC"
	reasonConnectorRetryable = "CONNECTOR_RETRYABLE"
	// metaRetryAfter is the ErrorInfo metadata key of RetryAfter, in ms.
	metaRetryAfter = "retry_after_ms"
)

// RetryableError marks a connector error that a later attempt may not meet:
// the app kept answering 429 or 5xx, or a network error, past what the
// connector waits for within one call. The host then resumes the run from
// its last checkpoint after RetryAfter (or its own backoff) instead of
// failing it. Make one with Retryable.
type RetryableError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable marks err as retryable after the given wait (0: the host's
// backoff). A nil err stays nil.
func Retryable(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err, RetryAfter: after}
}

// ConnectorError is an error that the connector itself returned, or a panic it
// raised (Panic true), carried back over the wire by Client. The connector
// process is still alive: retrying the call may help, restarting the process
// will not. Use errors.As to get it from a Client error.
type ConnectorError struct {
	// Method is the call that failed: "spec", "check", "read", ...
	Method string
	// Message is the connector's error message (or the panic value).
	Message string
	// Panic is true when the connector panicked; the SDK recovered it.
	Panic bool
	// Retryable is true when the connector said a later attempt may
	// succeed (Retryable), after RetryAfter when known.
	Retryable  bool
	RetryAfter time.Duration
}

// IsRetryable reports whether err (from a Client call, or a connector's own
// error in process) says a later attempt may succeed, and after how long.
func IsRetryable(err error) (time.Duration, bool) {
	var ce *ConnectorError
	if errors.As(err, &ce) && ce.Retryable {
		return ce.RetryAfter, true
	}
	var re *RetryableError
	if errors.As(err, &re) {
		return re.RetryAfter, true
	}
	return 0, false
}

func (e *ConnectorError) Error() string {
	if e.Panic {
		return "connector panicked in " + e.Method + ": " + e.Message
	}
	return e.Message
}

// IsTransportError reports whether err (from a Client call) means the
// connector process or the connection to it failed: the process died or
// exited, the stream broke, the peer cancelled the call. The host should then
// consider the plugin crashed (restart it) rather than blame the data.
//
// It is false for nil, for a ConnectorError (the connector answered with an
// error or panicked: the process is alive), for the caller's own context
// cancellation or deadline, and for errors that did not come from gRPC.
func IsTransportError(err error) bool {
	if err == nil {
		return false
	}
	var ce *ConnectorError
	if errors.As(err, &ce) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	switch se.GRPCStatus().Code() {
	case codes.Unavailable, // process gone, connection refused or closed
		codes.Canceled,         // cancelled by the peer (Client turns local cancellation into context.Canceled)
		codes.DeadlineExceeded, // likewise, a deadline the caller did not set
		codes.Internal,         // broken stream, RST_STREAM, framing errors
		codes.Unknown,          // unexpected EOF and other untyped transport failures
		codes.Aborted,
		codes.DataLoss:
		return true
	}
	return false
}

// connectorStatus turns an error returned by a connector into a gRPC status
// error. ctx is the call's context: a context error caused by it ending maps to
// the standard Canceled / DeadlineExceeded codes, anything else is the
// connector's own failure (codes.Unknown, marked with errorDomain).
func connectorStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return status.FromContextError(ctx.Err()).Err()
	}
	var re *RetryableError
	if errors.As(err, &re) {
		return markedStatusMeta(codes.Unknown, reasonConnectorRetryable, err.Error(),
			map[string]string{metaRetryAfter: strconv.FormatInt(re.RetryAfter.Milliseconds(), 10)})
	}
	return markedStatus(codes.Unknown, reasonConnectorError, err.Error())
}

// panicStatus is the status returned for a recovered panic.
func panicStatus(v any) error {
	return markedStatus(codes.Internal, reasonConnectorPanic, fmt.Sprintf("%v", v))
}

func markedStatus(code codes.Code, reason, msg string) error {
	return markedStatusMeta(code, reason, msg, nil)
}

func markedStatusMeta(code codes.Code, reason, msg string, meta map[string]string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: meta}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// clientError converts the error of a gRPC call made by Client. The result
// always starts with "connector <method>: ". The caller's own cancellation
// comes back as ctx's error (errors.Is(err, context.Canceled) holds), a
// connector's error or panic as a *ConnectorError, anything else as the gRPC
// status error (see IsTransportError).
func clientError(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("connector %s: %w", method, context.Cause(ctx))
	}
	st, ok := status.FromError(err)
	if ok {
		for _, d := range st.Details() {
			info, isInfo := d.(*errdetails.ErrorInfo)
			if !isInfo || info.GetDomain() != errorDomain {
				continue
			}
			switch info.GetReason() {
			case reasonConnectorError, reasonConnectorPanic, reasonConnectorRetryable:
				ce := &ConnectorError{
					Method:    method,
					Message:   st.Message(),
					Panic:     info.GetReason() == reasonConnectorPanic,
					Retryable: info.GetReason() == reasonConnectorRetryable,
				}
				if ms, err := strconv.ParseInt(info.GetMetadata()[metaRetryAfter], 10, 64); err == nil && ms > 0 {
					ce.RetryAfter = time.Duration(ms) * time.Millisecond
				}
				return fmt.Errorf("connector %s: %w", method, ce)
			}
		}
	}
	return fmt.Errorf("connector %s: %w", method, err)
}
