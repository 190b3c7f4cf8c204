//go:build live

package live

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// openCheckpoint verifies a checkpoint's note offline with the market's log key and parses its body, which must
// agree with the parsed copy the server sent.
func openCheckpoint(t *testing.T, tp *topology, checkpoint *pb.Checkpoint) *verify.Checkpoint {
	t.Helper()
	note, err := verify.OpenNote(checkpoint.GetNote(), []verify.NoteVerifier{logVerifier(t, tp)})
	if err != nil {
		t.Fatalf("the checkpoint's note does not verify offline with the log key: %v", err)
	}
	body, err := verify.ParseCheckpoint(note.Text)
	if err != nil {
		t.Fatalf("the checkpoint's body: %v", err)
	}
	if body.Origin != tp.Market.LogOrigin || int64(body.Size) != checkpoint.GetSize() || !bytes.Equal(body.Root, checkpoint.GetRootHash()) ||
		checkpoint.GetOrigin() != body.Origin {
		t.Fatalf("the signed checkpoint says %s %d %x; the server's copy %s %d %x", body.Origin, body.Size, body.Root,
			checkpoint.GetOrigin(), checkpoint.GetSize(), checkpoint.GetRootHash())
	}
	return body
}

// The market's log, checked offline: its checkpoint's signature, its entries hashing to the checkpoint's root, an
// entry's inclusion proof, a consistency proof from an older size, and the tlog-proof@v1 text of an entry.
func TestTransparencyLog(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	r := publishedRelease(t)
	market := tp.dialMarket(t, tp.Market.AdminToken)

	checkpoint := must(market.GetCheckpoint(c))(t)
	body := openCheckpoint(t, tp, checkpoint)
	size := int64(body.Size)
	publishIndex := r.published.GetRelease().GetLogIndex()
	if size <= publishIndex {
		t.Fatalf("the checkpoint covers %d entries, not the publish entry %d", size, publishIndex)
	}

	// Every entry up to the checkpoint, read a run at a time: each parses, and their tree is the checkpoint's.
	var leaves [][]byte
	var entries [][]byte
	for entry, err := range market.LogEntries(c, 0) {
		check(t, err)
		if entry.GetIndex() != int64(len(entries)) {
			t.Fatalf("GetEntries gave index %d after %d entries", entry.GetIndex(), len(entries))
		}
		if _, err := verify.ParseEntry(entry.GetData()); err != nil {
			t.Fatalf("entry %d does not parse: %v", entry.GetIndex(), err)
		}
		entries = append(entries, entry.GetData())
		leaves = append(leaves, verify.LeafHash(entry.GetData()))
		if int64(len(entries)) == size {
			break
		}
	}
	if int64(len(leaves)) != size || !bytes.Equal(verify.RootFromLeaves(leaves), body.Root) {
		t.Fatalf("%d entries read; their root is not the checkpoint's", len(leaves))
	}
	run := must(market.GetEntries(c, size, 0))(t)
	if run.GetTreeSize() < size {
		t.Fatalf("GetEntries reports a published size %d below the checkpoint's %d", run.GetTreeSize(), size)
	}

	// Inclusion of the publish entry in this checkpoint's tree.
	inclusion := must(market.GetInclusionProof(c, publishIndex, size))(t)
	if !bytes.Equal(inclusion.GetEntry(), entries[publishIndex]) || inclusion.GetTreeSize() != size {
		t.Fatalf("GetInclusionProof(%d, %d) gave entry %q in %d", publishIndex, size, inclusion.GetEntry(), inclusion.GetTreeSize())
	}
	if err := verify.VerifyInclusion(verify.LeafHash(inclusion.GetEntry()), uint64(publishIndex), uint64(size), inclusion.GetHashes(), body.Root); err != nil {
		t.Fatalf("the inclusion proof does not verify offline: %v", err)
	}
	// With tree size 0: the latest checkpoint, and the proof as tlog-proof@v1 text under the log's policy.
	latest := must(market.GetInclusionProof(c, publishIndex, 0))(t)
	policy, err := verify.ParseLogPolicy(must(market.GetTrustRoot(c))(t).GetLogPolicies()[0])
	check(t, err)
	report := verify.VerifyProof(entries[publishIndex], latest.GetTlogProof(), logVerifier(t, tp), policy, time.Now().Unix(), 86400)
	if !report.Valid() || int64(report.Index) != publishIndex || int64(report.Checkpoint.Size) != latest.GetCheckpoint().GetSize() {
		t.Fatalf("the tlog-proof text does not verify offline: %+v", report)
	}
	// Another entry's proof does not prove this entry.
	if report := verify.VerifyProof(entries[0], latest.GetTlogProof(), logVerifier(t, tp), policy, time.Now().Unix(), 86400); publishIndex != 0 && report.Valid() {
		t.Fatal("the publish entry's proof verified for entry 0")
	}

	// Consistency from the tree just after the publish to the checkpoint's.
	old := publishIndex + 1
	consistency := must(market.GetConsistencyProof(c, old, size))(t)
	if err := verify.VerifyConsistency(uint64(old), uint64(size), verify.RootFromLeaves(leaves[:old]), body.Root, consistency.GetHashes()); err != nil {
		t.Fatalf("the consistency proof %d -> %d does not verify offline: %v", old, size, err)
	}
	toLatest := must(market.GetConsistencyProof(c, old, 0))(t)
	latestBody := openCheckpoint(t, tp, toLatest.GetCheckpoint())
	if err := verify.VerifyConsistency(uint64(old), latestBody.Size, verify.RootFromLeaves(leaves[:old]), latestBody.Root, toLatest.GetHashes()); err != nil {
		t.Fatalf("the consistency proof to the latest checkpoint does not verify offline: %v", err)
	}

	// Past the published size: refused, with the reason.
	_, err = market.GetInclusionProof(c, size+1_000_000, 0)
	refusal := refusedAnyOf(t, err, codes.InvalidArgument, codes.OutOfRange)
	if refusal.Reason == "" {
		t.Fatalf("the refusal has no reason: %v", refusal)
	}
}

// Main witnesses the market's log (C2SP tlog-witness add-checkpoint): it cosigns the market's checkpoint from the
// size it last cosigned (found, as the protocol has it, from a conflict's latest_size), then a newer checkpoint
// with the consistency proof the market serves; a stale old size is refused with the size to prove from.
func TestWitness(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	r := publishedRelease(t)
	market := tp.dialMarket(t, tp.Market.AdminToken)
	witness := tp.dialMain(t, tp.Main.AdminToken)

	first := cosign(t, c, tp, market, witness)
	if first.size == 0 {
		t.Fatal("the market's log is empty after a publish")
	}
	// The log grows (a license acquired by the owner for itself): the new checkpoint is cosigned from the last.
	must(r.owner.AcquireLicense(c, &pb.License{Release: r.published.GetRelease().GetName(), Licensee: r.ownerName,
		LicenseeKey: r.ownerKey}))(t)
	second := cosign(t, c, tp, market, witness)
	if second.size <= first.size || second.from < first.size {
		t.Fatalf("the second cosigning went from %d to %d, after %d", second.from, second.size, first.size)
	}
	if second.from != 0 && second.from != second.size && len(second.proof) == 0 {
		t.Fatalf("a cosigning from %d to %d took an empty consistency proof", second.from, second.size)
	}

	// Old size 0 once the witness has cosigned: a conflict that says where it stands.
	_, err := witness.AddCheckpoint(c, 0, nil, second.note)
	conflict := refused(t, err, codes.Aborted, "WITNESS_SIZE_CONFLICT")
	if latest, err := strconv.ParseInt(conflict.Metadata["latest_size"], 10, 64); err != nil || latest < second.size {
		t.Fatalf("the conflict's latest_size is %q, after cosigning %d", conflict.Metadata["latest_size"], second.size)
	}
	// A checkpoint that no key of a witnessed log signed: the note's origin is not one main witnesses.
	forged := strings.Replace(second.note, tp.Market.LogOrigin+"\n", "go.example/"+run+"\n", 1)
	_, err = witness.AddCheckpoint(c, 0, nil, forged)
	refused(t, err, codes.NotFound, "WITNESS_UNKNOWN_LOG")
}

// cosigned is one AddCheckpoint that the witness accepted.
type cosigned struct {
	from, size int64
	proof      [][]byte
	note       string
}

// cosign has main cosign the market's latest checkpoint. The old size starts at 0 and, when the witness has
// cosigned this log before (this suite's earlier call, or another client's), comes from the conflict's
// latest_size. The cosignature lines are checked offline: appended to the note, they keep the log's signature
// valid and follow the tlog-cosignature grammar; with the witness's vkey in the topology file, they verify.
func cosign(t *testing.T, c context.Context, tp *topology, market, witness *memos.Client) cosigned {
	t.Helper()
	var from int64
	for attempt := 0; attempt < 5; attempt++ {
		checkpoint := must(market.GetCheckpoint(c))(t)
		body := openCheckpoint(t, tp, checkpoint)
		if from > checkpoint.GetSize() {
			continue // another client had a newer checkpoint cosigned; the market serves it by now
		}
		var proof [][]byte
		if from != 0 && from != checkpoint.GetSize() {
			consistency := must(market.GetConsistencyProof(c, from, checkpoint.GetSize()))(t)
			proof = consistency.GetHashes()
		}
		answer, err := witness.AddCheckpoint(c, from, proof, checkpoint.GetNote())
		var refusal *memos.Error
		if errors.As(err, &refusal) && refusal.Reason == "WITNESS_SIZE_CONFLICT" {
			from, err = strconv.ParseInt(refusal.Metadata["latest_size"], 10, 64)
			check(t, err)
			continue
		}
		check(t, err)
		if answer.GetSize() != checkpoint.GetSize() || answer.GetCosignatures() == "" {
			t.Fatalf("AddCheckpoint answered size %d, cosignatures %q", answer.GetSize(), answer.GetCosignatures())
		}
		checkCosignatures(t, tp, checkpoint.GetNote()+answer.GetCosignatures(), body)
		return cosigned{from: from, size: checkpoint.GetSize(), proof: proof, note: checkpoint.GetNote()}
	}
	t.Fatal("the witness kept answering WITNESS_SIZE_CONFLICT")
	return cosigned{}
}

// checkCosignatures checks a note with the witness's lines appended, offline.
func checkCosignatures(t *testing.T, tp *topology, note string, body *verify.Checkpoint) {
	t.Helper()
	opened, err := verify.OpenNote(note, []verify.NoteVerifier{logVerifier(t, tp)})
	if err != nil || opened.Text != body.Body() {
		t.Fatalf("with the cosignatures appended, the note no longer opens under the log key: %v", err)
	}
	var witnessLines []verify.NoteSignature
	for _, signature := range opened.Signatures {
		if signature.Name != tp.Market.LogOrigin {
			witnessLines = append(witnessLines, signature)
		}
	}
	// A tlog-cosignature v1.0.1 line: key id, 8-byte timestamp, 64-byte Ed25519 signature.
	if len(witnessLines) != 1 || len(witnessLines[0].Signature) != 8+64 {
		t.Fatalf("the witness's lines: %+v", witnessLines)
	}
	if tp.Main.WitnessVKey == "" {
		t.Logf("the topology file gives no main.witness_vkey: the cosignature by %q is checked for its form, not its signature",
			witnessLines[0].Name)
		return
	}
	key, err := verify.ParseVKey(tp.Main.WitnessVKey)
	check(t, err)
	now := time.Now().Unix()
	when, err := verify.VerifyCosigned(note, verify.NoteVerifier{Name: key.Name, KeyID: key.KeyID, PublicKey: key.PublicKey}, now+5, 600)
	if err != nil || when > now+5 || when < now-600 {
		t.Fatalf("the witness's cosignature does not verify offline: %v (time %d)", err, when)
	}
}
