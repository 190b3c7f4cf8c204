package memos

import (
	"context"
	"errors"
	"io"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a call the server refused: the gRPC code, and the reason and metadata of the google.rpc.ErrorInfo the
// server puts in grpc-status-details-bin (Reason is "" when it sent none). Every error a Client call returns for
// a refused call is one: errors.As(err, &memosErr).
type Error struct {
	Code     codes.Code
	Reason   string
	Message  string
	Metadata map[string]string
	status   *status.Status
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return e.Code.String() + " " + e.Reason + ": " + e.Message
	}
	return e.Code.String() + ": " + e.Message
}

// GRPCStatus keeps status.FromError and status.Code working on the wrapped error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// asError turns a gRPC status error into *Error; other errors (io.EOF, context errors) pass unchanged.
func asError(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	result := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			result.Reason, result.Metadata = info.GetReason(), info.GetMetadata()
			break
		}
	}
	return result
}

func unaryErrors(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return asError(invoker(ctx, method, req, reply, cc, opts...))
}

func streamErrors(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	stream, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, asError(err)
	}
	return errorStream{stream}, nil
}

type errorStream struct{ grpc.ClientStream }

func (s errorStream) RecvMsg(m any) error { return asError(s.ClientStream.RecvMsg(m)) }
func (s errorStream) SendMsg(m any) error { return asError(s.ClientStream.SendMsg(m)) }
func (s errorStream) CloseSend() error    { return asError(s.ClientStream.CloseSend()) }
