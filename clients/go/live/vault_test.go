//go:build live

package live

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"google.golang.org/grpc/codes"
)

// opaqueBlob is a payload blob in no format the server reads: it stores it as it is.
var opaqueBlob = bytes.Repeat([]byte("\x00 go live suite cache bytes \xff"), 4096)

// A blob written in chunks and read back whole and by range, under an activation cube that names it.
func TestVaultPayloads(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	client := tp.dialMain(t, tp.Main.AdminToken)
	space := must(client.CreateSpace(c, id("payloads"), nil))(t).GetName()

	cube := activationCube(t, client, space, "cache", "Alice prefers green tea")
	if cube.GetStorageMode() != pb.StorageMode_STORAGE_MODE_BLOB || cube.GetType() != pb.MemoryType_MEMORY_TYPE_ACTIVATION {
		t.Fatalf("the activation cube is stored as %v, type %v", cube.GetStorageMode(), cube.GetType())
	}
	var whole bytes.Buffer
	n := must(client.ReadPayload(c, &pb.ReadPayloadRequest{Name: cube.GetName()}, &whole))(t)
	if n != int64(len(opaqueBlob)) || !bytes.Equal(whole.Bytes(), opaqueBlob) {
		t.Fatalf("ReadPayload gave back %d bytes of %d, equal: %v", n, len(opaqueBlob), bytes.Equal(whole.Bytes(), opaqueBlob))
	}
	var part bytes.Buffer
	must(client.ReadPayload(c, &pb.ReadPayloadRequest{Name: cube.GetName(), ReadOffset: 1000, ReadLimit: 300}, &part))(t)
	if !bytes.Equal(part.Bytes(), opaqueBlob[1000:1300]) {
		t.Fatalf("a ranged read gave %d bytes, not bytes 1000..1300", part.Len())
	}

	// A digest the bytes do not hash to: refused, nothing stored.
	_, err := client.WritePayload(c, &pb.WritePayloadRequest{Parent: space, ExpectedDigest: "sha256:" + hex.EncodeToString(make([]byte, 32))},
		bytes.NewReader(opaqueBlob))
	refused(t, err, codes.InvalidArgument, "PAYLOAD_DIGEST_MISMATCH")
	// A plaintext cube has no blob to read.
	text := must(client.CreateCube(c, plaintext(space, "text", "Bob was born on 3 May")))(t)
	_, err = client.ReadPayload(c, &pb.ReadPayloadRequest{Name: text.GetName()}, &bytes.Buffer{})
	refused(t, err, codes.FailedPrecondition, "NO_PAYLOAD_BLOB")
}

// activationCube uploads opaqueBlob and makes an activation cube of it, with sourceText to demote it to.
func activationCube(t *testing.T, client *memos.Client, space, cubeID, sourceText string) *pb.MemCube {
	t.Helper()
	c := ctx(t)
	sum := sha256.Sum256(opaqueBlob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	blob := must(client.WritePayload(c, &pb.WritePayloadRequest{Parent: space, ExpectedDigest: digest,
		ExpectedSize: int64(len(opaqueBlob)), MediaType: "application/octet-stream"}, bytes.NewReader(opaqueBlob)))(t)
	if blob.GetDigest() != digest || blob.GetSizeBytes() != int64(len(opaqueBlob)) {
		t.Fatalf("WritePayload stored %v, want %s of %d bytes", blob, digest, len(opaqueBlob))
	}
	return must(client.CreateCube(c, &pb.CreateCubeRequest{Parent: space, CubeId: cubeID, Cube: &pb.MemCube{
		Payload: &pb.MemCube_Activation{Activation: &pb.ActivationPayload{Blob: blob,
			ModelFingerprint: "go-live-model@sha256:" + hex.EncodeToString(make([]byte, 32)), SourceText: sourceText}}}}))(t)
}

// A cube's life: validated without being stored, versions and a rollback, frozen and unfrozen, archived (out of
// search unless asked), merged, deleted under its etag.
func TestVaultLifecycle(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	client := tp.dialMain(t, tp.Main.AdminToken)
	space := must(client.CreateSpace(c, id("lifecycle"), nil))(t).GetName()

	draft := plaintext(space, "draft", "The offsite is in Lisbon")
	draft.ValidateOnly = true
	checked := must(client.CreateCube(c, draft))(t)
	if checked.GetName() != space+"/cubes/draft" {
		t.Fatalf("validate_only gave %q", checked.GetName())
	}
	_, err := client.GetCube(c, space+"/cubes/draft")
	refused(t, err, codes.NotFound, "CUBE_NOT_FOUND")

	// Three versions of one note, then the first again as the fourth.
	note := must(client.CreateCube(c, plaintext(space, "note", "The offsite is in Lisbon")))(t)
	note.Payload = &pb.MemCube_Plaintext{Plaintext: &pb.PlaintextPayload{Text: "The offsite is in Porto"}}
	note = must(client.UpdateCube(c, note, "plaintext.text"))(t)
	note.Tags = []string{"travel"}
	note = must(client.UpdateCube(c, note, "tags"))(t)
	versions := collect(t, client.CubeVersions(c, note.GetName(), 2))
	var numbers []int64
	for _, version := range versions {
		numbers = append(numbers, version.GetVersion())
	}
	if !slices.Equal(numbers, []int64{3, 2, 1}) || versions[2].GetName() != note.GetName()+"/versions/1" {
		t.Fatalf("the versions, newest first by pages of 2: %v (first named %q)", numbers, versions[len(versions)-1].GetName())
	}
	first := must(client.GetCube(c, note.GetName()+"/versions/1"))(t)
	if first.GetPlaintext().GetText() != "The offsite is in Lisbon" {
		t.Fatalf("version 1 reads %q", first.GetPlaintext().GetText())
	}
	_, err = client.RollbackCube(c, note.GetName(), 1, first.GetEtag()) // an old version's etag is not the cube's
	refused(t, err, codes.Aborted, "ETAG_MISMATCH")
	rolled := must(client.RollbackCube(c, note.GetName(), 1, note.GetEtag()))(t)
	if rolled.GetVersion() != 4 || rolled.GetPlaintext().GetText() != "The offsite is in Lisbon" ||
		rolled.GetProvenanceId() != note.GetProvenanceId() {
		t.Fatalf("the rollback gave version %d, text %q", rolled.GetVersion(), rolled.GetPlaintext().GetText())
	}

	// Frozen: every change refused until unfrozen.
	frozen := must(client.FreezeCube(c, rolled.GetName(), rolled.GetEtag()))(t)
	if frozen.GetState() != pb.LifecycleState_LIFECYCLE_STATE_FROZEN {
		t.Fatalf("FreezeCube left state %v", frozen.GetState())
	}
	frozen.Priority = 50
	_, err = client.UpdateCube(c, frozen, "priority")
	refused(t, err, codes.FailedPrecondition, "CUBE_FROZEN")
	thawed := must(client.UnfreezeCube(c, frozen.GetName(), frozen.GetEtag()))(t)
	if thawed.GetState() != rolled.GetState() {
		t.Fatalf("UnfreezeCube gave state %v, not %v as before", thawed.GetState(), rolled.GetState())
	}

	// Archived: out of search unless asked for.
	archived := must(client.ArchiveCube(c, thawed.GetName(), thawed.GetEtag()))(t)
	if archived.GetState() != pb.LifecycleState_LIFECYCLE_STATE_ARCHIVED {
		t.Fatalf("ArchiveCube left state %v", archived.GetState())
	}
	search := &pb.SearchCubesRequest{Parent: space, Query: &pb.SearchCubesRequest_Text{Text: "where is the offsite"}}
	if hits := must(client.SearchCubes(c, search))(t).GetResults(); len(hits) != 0 {
		t.Fatalf("an archived cube was found: %v", hits)
	}
	search.IncludeArchived = true
	if hits := must(client.SearchCubes(c, search))(t).GetResults(); len(hits) != 1 || hits[0].GetCube().GetName() != archived.GetName() {
		t.Fatalf("include_archived found %v", hits)
	}

	// Merged: a new cube from two, which become MERGED.
	a := must(client.CreateCube(c, plaintext(space, "tea", "Alice prefers green tea")))(t)
	b := must(client.CreateCube(c, plaintext(space, "sugar", "Alice takes no sugar")))(t)
	merged := must(client.MergeCubes(c, &pb.MergeCubesRequest{Parent: space, Names: []string{a.GetName(), b.GetName()},
		CubeId: "alice-tea", Cube: &pb.MemCube{Payload: &pb.MemCube_Plaintext{Plaintext: &pb.PlaintextPayload{
			Text: "Alice prefers green tea, without sugar"}}}}))(t)
	if merged.GetName() != space+"/cubes/alice-tea" || !slices.Equal(merged.GetMergedFrom(), []string{a.GetName(), b.GetName()}) {
		t.Fatalf("MergeCubes gave %q from %v", merged.GetName(), merged.GetMergedFrom())
	}
	if source := must(client.GetCube(c, a.GetName()))(t); source.GetState() != pb.LifecycleState_LIFECYCLE_STATE_MERGED {
		t.Fatalf("a merged source is %v", source.GetState())
	}

	// Deleted: a stale etag refused, the current one accepted, and the cube gone.
	err = client.DeleteCube(c, merged.GetName(), note.GetEtag())
	refused(t, err, codes.Aborted, "ETAG_MISMATCH")
	check(t, client.DeleteCube(c, merged.GetName(), merged.GetEtag()))
	_, err = client.GetCube(c, merged.GetName())
	refused(t, err, codes.NotFound, "CUBE_NOT_FOUND")
}
