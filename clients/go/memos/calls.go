package memos

import (
	"context"
	"errors"
	"io"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// CreateSpace creates spaces/{spaceID}.
func (c *Client) CreateSpace(ctx context.Context, spaceID string, space *pb.Space) (*pb.Space, error) {
	return c.Governance.CreateSpace(ctx, &pb.CreateSpaceRequest{SpaceId: spaceID, Space: space})
}

// GetSpace reads a space by name ("spaces/{space}").
func (c *Client) GetSpace(ctx context.Context, name string) (*pb.Space, error) {
	return c.Governance.GetSpace(ctx, &pb.GetSpaceRequest{Name: name})
}

// Spaces lists every space the caller may see, page by page as it is iterated.
func (c *Client) Spaces(ctx context.Context, pageSize int32) iter.Seq2[*pb.Space, error] {
	return pages(func(token string) ([]*pb.Space, string, error) {
		resp, err := c.Governance.ListSpaces(ctx, &pb.ListSpacesRequest{PageSize: pageSize, PageToken: token})
		return resp.GetSpaces(), resp.GetNextPageToken(), err
	})
}

// CreateCube creates one cube under req.Parent.
func (c *Client) CreateCube(ctx context.Context, req *pb.CreateCubeRequest) (*pb.MemCube, error) {
	return c.Vault.CreateCube(ctx, req)
}

// BatchCreateCubes creates several cubes in one space, all or none.
func (c *Client) BatchCreateCubes(ctx context.Context, parent string, reqs ...*pb.CreateCubeRequest) ([]*pb.MemCube, error) {
	resp, err := c.Vault.BatchCreateCubes(ctx, &pb.BatchCreateCubesRequest{Parent: parent, Requests: reqs})
	return resp.GetCubes(), err
}

// GetCube reads a cube by name.
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

// SearchCubes runs a dense, lexical or hybrid search.
func (c *Client) SearchCubes(ctx context.Context, req *pb.SearchCubesRequest) (*pb.SearchCubesResponse, error) {
	return c.Vault.SearchCubes(ctx, req)
}

// Recall plans the memories for a query within a token budget.
func (c *Client) Recall(ctx context.Context, req *pb.RecallRequest) (*pb.RecallPlan, error) {
	return c.Scheduler.Recall(ctx, req)
}

// GetTrustRoot reads the trust root in force.
func (c *Client) GetTrustRoot(ctx context.Context) (*pb.TrustRoot, error) {
	return c.Governance.GetTrustRoot(ctx, &pb.GetTrustRootRequest{})
}

// UpdateTrustRoot proposes a signed trust root envelope.
func (c *Client) UpdateTrustRoot(ctx context.Context, signedEnvelope []byte, addNodeSignature bool) (*pb.TrustRoot, error) {
	return c.Governance.UpdateTrustRoot(ctx, &pb.UpdateTrustRootRequest{SignedEnvelope: signedEnvelope, AddNodeSignature: addNodeSignature})
}

// ExportBundle streams the bundle req describes into w; it returns the bytes written. Verify it offline with
// verify.VerifyBundle before trusting it.
func (c *Client) ExportBundle(ctx context.Context, req *pb.ExportBundleRequest, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Interchange.ExportBundle(ctx, req)
	if err != nil {
		return 0, err
	}
	var written int64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return written, nil
		}
		if err != nil {
			return written, err
		}
		n, err := w.Write(msg.GetChunk())
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
}

// importChunkBytes is the size of each ImportBundle message's chunk.
const importChunkBytes = 256 << 10

// ImportBundle streams a bundle from r into the space first.Parent; first carries the options of the first
// message (conflict policy, trust policy, license) and its Chunk is ignored.
func (c *Client) ImportBundle(ctx context.Context, first *pb.ImportBundleRequest, r io.Reader) (*pb.ImportBundleResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Interchange.ImportBundle(ctx)
	if err != nil {
		return nil, err
	}
	msg := &pb.ImportBundleRequest{Parent: first.GetParent(), ConflictPolicy: first.GetConflictPolicy(), TrustPolicy: first.GetTrustPolicy(), License: first.GetLicense()}
	buffer := make([]byte, importChunkBytes)
	for {
		n, readErr := io.ReadFull(r, buffer)
		if n > 0 || msg != nil {
			if msg == nil {
				msg = &pb.ImportBundleRequest{}
			}
			msg.Chunk = append([]byte(nil), buffer[:n]...)
			if err := stream.Send(msg); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server ended the call; its status comes with CloseAndRecv
				}
				return nil, err
			}
			msg = nil
		}
		if readErr == io.EOF || readErr == io.ErrUnexpectedEOF {
			break
		}
		if readErr != nil {
			return nil, readErr
		}
	}
	return stream.CloseAndRecv()
}

// pages turns a page-fetching function into an iterator over the items of every page.
func pages[T any](fetch func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			items, next, err := fetch(token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}
