package memos

import (
	"context"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
)

// TransparencyLogService and WitnessService: a marketplace's log, whose checkpoints, proofs and entries verify
// offline with package verify, and the C2SP tlog-witness add-checkpoint call.

// GetCheckpoint reads the latest published checkpoint; verify its Note (verify.OpenNote, verify.ParseCheckpoint).
func (c *Client) GetCheckpoint(ctx context.Context) (*pb.Checkpoint, error) {
	return c.Transparency.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
}

// GetInclusionProof proves entry index in the tree of treeSize entries (0: the latest published checkpoint, and
// then the answer also carries that checkpoint and the proof as tlog-proof@v1 text).
func (c *Client) GetInclusionProof(ctx context.Context, index, treeSize int64) (*pb.InclusionProof, error) {
	return c.Transparency.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: index, TreeSize: treeSize})
}

// GetConsistencyProof proves the tree of oldSize entries a prefix of the tree of newSize (0: the latest published).
func (c *Client) GetConsistencyProof(ctx context.Context, oldSize, newSize int64) (*pb.ConsistencyProof, error) {
	return c.Transparency.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{OldSize: oldSize, NewSize: newSize})
}

// GetEntries reads at most maxEntries entries from startIndex (0: the server's default), never past the published
// tree size, which the answer reports.
func (c *Client) GetEntries(ctx context.Context, startIndex int64, maxEntries int32) (*pb.GetEntriesResponse, error) {
	return c.Transparency.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: startIndex, MaxEntries: maxEntries})
}

// LogEntries yields the log's entries from startIndex on, a run at a time, until a run comes back empty (the
// published size reached).
func (c *Client) LogEntries(ctx context.Context, startIndex int64) iter.Seq2[*pb.LogEntry, error] {
	return func(yield func(*pb.LogEntry, error) bool) {
		next := startIndex
		for {
			resp, err := c.GetEntries(ctx, next, 0)
			if err != nil {
				yield(nil, err)
				return
			}
			if len(resp.GetEntries()) == 0 {
				return
			}
			for _, entry := range resp.GetEntries() {
				if !yield(entry, nil) {
					return
				}
				next = entry.GetIndex() + 1
			}
		}
	}
}

// AddCheckpoint asks a witness to cosign checkpoint (a signed note) given the size it last cosigned for the log
// (0 the first time) and a consistency proof from that size. On ABORTED WITNESS_SIZE_CONFLICT the *Error's
// Metadata["latest_size"] is the size to prove from.
func (c *Client) AddCheckpoint(ctx context.Context, oldSize int64, consistencyProof [][]byte, checkpoint string) (*pb.AddCheckpointResponse, error) {
	return c.Witness.AddCheckpoint(ctx, &pb.AddCheckpointRequest{OldSize: oldSize, ConsistencyProof: consistencyProof, Checkpoint: checkpoint})
}
