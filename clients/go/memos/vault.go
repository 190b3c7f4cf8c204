package memos

import (
	"context"
	"io"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// VaultService: cubes, their payload blobs, versions and lifecycle.

// CreateCube creates one cube under req.Parent.
func (c *Client) CreateCube(ctx context.Context, req *pb.CreateCubeRequest) (*pb.MemCube, error) {
	return c.Vault.CreateCube(ctx, req)
}

// BatchCreateCubes creates several cubes in one space, all or none.
func (c *Client) BatchCreateCubes(ctx context.Context, parent string, reqs ...*pb.CreateCubeRequest) ([]*pb.MemCube, error) {
	resp, err := c.Vault.BatchCreateCubes(ctx, &pb.BatchCreateCubesRequest{Parent: parent, Requests: reqs})
	return resp.GetCubes(), err
}

// GetCube reads a cube by name (or one version of it: ".../versions/{n}").
func (c *Client) GetCube(ctx context.Context, name string) (*pb.MemCube, error) {
	return c.Vault.GetCube(ctx, &pb.GetCubeRequest{Name: name})
}

// Cubes lists the cubes req selects (req.PageToken is the starting page), following page tokens as it iterates.
// Stop ranging to stop fetching; an error ends the sequence.
func (c *Client) Cubes(ctx context.Context, req *pb.ListCubesRequest) iter.Seq2[*pb.MemCube, error] {
	return pages(func(token string) ([]*pb.MemCube, string, error) {
		page := &pb.ListCubesRequest{Parent: req.GetParent(), PageSize: req.GetPageSize(), Filter: req.GetFilter(), PageToken: token}
		if token == "" {
			page.PageToken = req.GetPageToken()
		}
		resp, err := c.Vault.ListCubes(ctx, page)
		return resp.GetCubes(), resp.GetNextPageToken(), err
	})
}

// UpdateCube writes the fields of cube named by paths (the update mask). The cube's etag, when set, makes the
// update conditional: the server refuses it if the cube changed since that etag was read.
func (c *Client) UpdateCube(ctx context.Context, cube *pb.MemCube, paths ...string) (*pb.MemCube, error) {
	return c.Vault.UpdateCube(ctx, &pb.UpdateCubeRequest{Cube: cube, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
}

// DeleteCube deletes a cube from every store; etag, when not empty, must be its current one.
func (c *Client) DeleteCube(ctx context.Context, name, etag string) error {
	_, err := c.Vault.DeleteCube(ctx, &pb.DeleteCubeRequest{Name: name, Etag: etag})
	return err
}

// SearchCubes runs a dense, lexical or hybrid search.
func (c *Client) SearchCubes(ctx context.Context, req *pb.SearchCubesRequest) (*pb.SearchCubesResponse, error) {
	return c.Vault.SearchCubes(ctx, req)
}

// WritePayload uploads a payload blob from r into the space first.Parent; first carries the expected digest,
// size and media type (its Data is ignored). The answer is the stored blob, to name in an activation or
// parametric payload.
func (c *Client) WritePayload(ctx context.Context, first *pb.WritePayloadRequest, r io.Reader) (*pb.BlobRef, error) {
	msg := &pb.WritePayloadRequest{Parent: first.GetParent(), ExpectedDigest: first.GetExpectedDigest(),
		ExpectedSize: first.GetExpectedSize(), MediaType: first.GetMediaType()}
	resp, err := upload(ctx, func(ctx context.Context) (grpc.ClientStreamingClient[pb.WritePayloadRequest, pb.WritePayloadResponse], error) {
		return c.Vault.WritePayload(ctx)
	}, msg, func(m *pb.WritePayloadRequest, data []byte) { m.Data = data }, func() *pb.WritePayloadRequest { return &pb.WritePayloadRequest{} }, r)
	return resp.GetBlob(), err
}

// ReadPayload streams the payload blob of the cube req names (from req.ReadOffset, at most req.ReadLimit bytes
// when it is set) into w; it returns the bytes written.
func (c *Client) ReadPayload(ctx context.Context, req *pb.ReadPayloadRequest, w io.Writer) (int64, error) {
	stream := received(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.ReadPayloadResponse], error) {
		return c.Vault.ReadPayload(ctx, req)
	})
	return drain(stream, (*pb.ReadPayloadResponse).GetData, w)
}

// CubeVersions lists the versions of a cube, newest first, page by page as it is iterated.
func (c *Client) CubeVersions(ctx context.Context, name string, pageSize int32) iter.Seq2[*pb.MemCube, error] {
	return pages(func(token string) ([]*pb.MemCube, string, error) {
		resp, err := c.Vault.ListCubeVersions(ctx, &pb.ListCubeVersionsRequest{Name: name, PageSize: pageSize, PageToken: token})
		return resp.GetVersions(), resp.GetNextPageToken(), err
	})
}

// RollbackCube makes an earlier version's content the cube's next version; etag, when not empty, must be current.
func (c *Client) RollbackCube(ctx context.Context, name string, version int64, etag string) (*pb.MemCube, error) {
	return c.Vault.RollbackCube(ctx, &pb.RollbackCubeRequest{Name: name, Version: version, Etag: etag})
}

// FreezeCube freezes a cube: it refuses every change (CUBE_FROZEN) until unfrozen.
func (c *Client) FreezeCube(ctx context.Context, name, etag string) (*pb.MemCube, error) {
	return c.Vault.FreezeCube(ctx, &pb.FreezeCubeRequest{Name: name, Etag: etag})
}

// UnfreezeCube puts a frozen cube back in the state it was frozen in.
func (c *Client) UnfreezeCube(ctx context.Context, name, etag string) (*pb.MemCube, error) {
	return c.Vault.UnfreezeCube(ctx, &pb.UnfreezeCubeRequest{Name: name, Etag: etag})
}

// ArchiveCube archives a cube: it stays, but searches leave it out unless they include archived cubes.
func (c *Client) ArchiveCube(ctx context.Context, name, etag string) (*pb.MemCube, error) {
	return c.Vault.ArchiveCube(ctx, &pb.ArchiveCubeRequest{Name: name, Etag: etag})
}

// MergeCubes makes a new cube from req.Names (at least two, in req.Parent) and marks them MERGED.
func (c *Client) MergeCubes(ctx context.Context, req *pb.MergeCubesRequest) (*pb.MemCube, error) {
	return c.Vault.MergeCubes(ctx, req)
}
