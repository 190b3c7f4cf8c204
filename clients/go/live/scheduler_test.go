//go:build live

package live

import (
	"errors"
	"testing"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"google.golang.org/grpc/codes"
)

// Transforms and their operations. A server without a model refuses what needs one (GetModel, plaintext to
// activation), saying why; a demotion (activation back to its source text) needs none, and runs as an operation
// that is watched to its end, read, and asked to cancel once done (it stays as it ended).
func TestScheduler(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	client := tp.dialMain(t, tp.Main.AdminToken)
	space := must(client.CreateSpace(c, id("scheduler"), nil))(t).GetName()
	text := must(client.CreateCube(c, plaintext(space, "fact", "Alice prefers green tea")))(t)

	model, err := client.GetModel(c)
	toActivation := &pb.TransformCubeRequest{Parent: space, Names: []string{text.GetName()},
		TargetType: pb.MemoryType_MEMORY_TYPE_ACTIVATION}
	var refusal *memos.Error
	if errors.As(err, &refusal) {
		refused(t, err, codes.FailedPrecondition, "MODEL_NOT_CONFIGURED")
		_, err = client.TransformCube(c, toActivation)
		refused(t, err, codes.FailedPrecondition, "MODEL_NOT_CONFIGURED")
	} else {
		check(t, err)
		if model.GetFingerprint() == "" || model.GetNumLayers() <= 0 || model.GetParameterCount() <= 0 {
			t.Fatalf("GetModel describes %v", model)
		}
		cached := must(client.TransformCube(c, toActivation))(t)
		if done := must(client.WaitOperation(c, cached.GetName()))(t); done.GetState() != pb.Operation_STATE_SUCCEEDED {
			t.Fatalf("plaintext to activation ended %v: %v", done.GetState(), done.GetError())
		}
	}

	cache := activationCube(t, client, space, "cache", "Bob was born on 3 May")
	started := must(client.TransformCube(c, &pb.TransformCubeRequest{Parent: space, Names: []string{cache.GetName()},
		TargetType: pb.MemoryType_MEMORY_TYPE_PLAINTEXT}))(t)
	if started.GetCreator() != "principals/admin" || started.GetRequest().GetNames()[0] != cache.GetName() {
		t.Fatalf("TransformCube started %v", started)
	}
	var states []pb.Operation_State
	var last *pb.Operation
	for operation, err := range client.WatchOperation(c, started.GetName()) {
		check(t, err)
		states = append(states, operation.GetState())
		last = operation
	}
	if last == nil || !last.GetDone() || last.GetState() != pb.Operation_STATE_SUCCEEDED || last.GetCube() != cache.GetName() {
		t.Fatalf("the watch ended on %v after states %v", last, states)
	}
	read := must(client.GetOperation(c, started.GetName()))(t)
	if read.GetState() != pb.Operation_STATE_SUCCEEDED || read.GetStep() != read.GetTotalSteps() || read.GetEndTime() == nil {
		t.Fatalf("GetOperation reads %v", read)
	}
	demoted := must(client.GetCube(c, cache.GetName()))(t)
	if demoted.GetType() != pb.MemoryType_MEMORY_TYPE_PLAINTEXT || demoted.GetPlaintext().GetText() != "Bob was born on 3 May" ||
		demoted.GetVersion() != cache.GetVersion()+1 {
		t.Fatalf("the demoted cube is %v, %q, version %d", demoted.GetType(), demoted.GetPlaintext().GetText(), demoted.GetVersion())
	}
	cancelled := must(client.CancelOperation(c, started.GetName()))(t)
	if cancelled.GetState() != pb.Operation_STATE_SUCCEEDED || cancelled.GetError() != nil {
		t.Fatalf("cancelling a finished operation changed it: %v", cancelled)
	}
	_, err = client.CancelOperation(c, space+"/operations/go-none")
	refused(t, err, codes.NotFound, "OPERATION_NOT_FOUND")
	// The demoted cube is plaintext now: demoting it again is not a transform there is.
	_, err = client.TransformCube(c, &pb.TransformCubeRequest{Parent: space, Names: []string{cache.GetName()},
		TargetType: pb.MemoryType_MEMORY_TYPE_PLAINTEXT})
	refused(t, err, codes.FailedPrecondition, "TRANSFORM_UNSUPPORTED")
}
