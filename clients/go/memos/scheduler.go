package memos

import (
	"context"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/grpc"
)

// SchedulerService: recall plans, and transforms between memory types as long-running operations.

// Recall plans the memories for a query within a token budget.
func (c *Client) Recall(ctx context.Context, req *pb.RecallRequest) (*pb.RecallPlan, error) {
	return c.Scheduler.Recall(ctx, req)
}

// TransformCube starts a transform and returns its operation at once; follow it with WatchOperation.
func (c *Client) TransformCube(ctx context.Context, req *pb.TransformCubeRequest) (*pb.Operation, error) {
	return c.Scheduler.TransformCube(ctx, req)
}

// GetOperation reads an operation ("spaces/{space}/operations/{operation}").
func (c *Client) GetOperation(ctx context.Context, name string) (*pb.Operation, error) {
	return c.Scheduler.GetOperation(ctx, &pb.GetOperationRequest{Name: name})
}

// WatchOperation yields the operation now and at every change; the sequence ends once it is done.
func (c *Client) WatchOperation(ctx context.Context, name string) iter.Seq2[*pb.Operation, error] {
	return received(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.Operation], error) {
		return c.Scheduler.WatchOperation(ctx, &pb.WatchOperationRequest{Name: name})
	})
}

// WaitOperation watches an operation until it is done and returns its last state.
func (c *Client) WaitOperation(ctx context.Context, name string) (*pb.Operation, error) {
	var last *pb.Operation
	for operation, err := range c.WatchOperation(ctx, name) {
		if err != nil {
			return last, err
		}
		last = operation
	}
	return last, nil
}

// CancelOperation asks an operation to stop; an operation already done comes back unchanged.
func (c *Client) CancelOperation(ctx context.Context, name string) (*pb.Operation, error) {
	return c.Scheduler.CancelOperation(ctx, &pb.CancelOperationRequest{Name: name})
}

// GetModel describes the model the server transforms with (FAILED_PRECONDITION MODEL_NOT_CONFIGURED when none).
func (c *Client) GetModel(ctx context.Context) (*pb.ModelInfo, error) {
	return c.Scheduler.GetModel(ctx, &pb.GetModelRequest{})
}
