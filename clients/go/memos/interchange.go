package memos

import (
	"context"
	"io"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/grpc"
)

// InterchangeService: signed bundles exported to an io.Writer, imported and verified from an io.Reader, and
// pulled from a peer server.

// ExportBundle streams the bundle req describes into w; it returns the bytes written. Verify it offline with
// verify.VerifyBundle before trusting it. With req.Release set the bundle is a marketplace release.
func (c *Client) ExportBundle(ctx context.Context, req *pb.ExportBundleRequest, w io.Writer) (int64, error) {
	stream := received(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.ExportBundleResponse], error) {
		return c.Interchange.ExportBundle(ctx, req)
	})
	return drain(stream, (*pb.ExportBundleResponse).GetChunk, w)
}

// ImportBundle streams a bundle from r into the space first.Parent; first carries the options of the first
// message (conflict policy, trust policy, or the license of a marketplace release) and its Chunk is ignored.
func (c *Client) ImportBundle(ctx context.Context, first *pb.ImportBundleRequest, r io.Reader) (*pb.ImportBundleResponse, error) {
	msg := &pb.ImportBundleRequest{Parent: first.GetParent(), ConflictPolicy: first.GetConflictPolicy(),
		TrustPolicy: first.GetTrustPolicy(), License: first.GetLicense()}
	return upload(ctx, func(ctx context.Context) (grpc.ClientStreamingClient[pb.ImportBundleRequest, pb.ImportBundleResponse], error) {
		return c.Interchange.ImportBundle(ctx)
	}, msg, func(m *pb.ImportBundleRequest, chunk []byte) { m.Chunk = chunk }, func() *pb.ImportBundleRequest { return &pb.ImportBundleRequest{} }, r)
}

// VerifyBundle has the server verify a bundle read from r under policy (nil: the node role) and report on it,
// importing nothing. A bad bundle is a report with Valid false and its Reason, not an error.
func (c *Client) VerifyBundle(ctx context.Context, policy *pb.TrustPolicy, r io.Reader) (*pb.BundleVerification, error) {
	resp, err := upload(ctx, func(ctx context.Context) (grpc.ClientStreamingClient[pb.VerifyBundleRequest, pb.VerifyBundleResponse], error) {
		return c.Interchange.VerifyBundle(ctx)
	}, &pb.VerifyBundleRequest{TrustPolicy: policy}, func(m *pb.VerifyBundleRequest, chunk []byte) { m.Chunk = chunk },
		func() *pb.VerifyBundleRequest { return &pb.VerifyBundleRequest{} }, r)
	return resp.GetVerification(), err
}

// ImportFromPeer has the server pull req.Selection from another memos-grpc server and import it (admins).
func (c *Client) ImportFromPeer(ctx context.Context, req *pb.ImportFromPeerRequest) (*pb.ImportBundleResponse, error) {
	return c.Interchange.ImportFromPeer(ctx, req)
}
