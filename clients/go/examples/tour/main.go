// Command tour is the README's five-minute tour of the Go client: a space, a batch of memories, a search, pages,
// an update with a mask and an etag, a refused call and its reason, a bundle exported, verified offline and
// imported, and a recall. MEMOS_SERVER (default 127.0.0.1:50051), MEMOS_TOKEN, MEMOS_CA (a CA file: TLS; unset:
// plaintext, for a server on localhost without certificates), and MEMOS_CERT with MEMOS_KEY (a client
// certificate, for a server that asks for one: mTLS). The live suite (../../live) runs the same tour, asserting
// each step.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := os.Getenv("MEMOS_SERVER")
	if server == "" {
		server = "127.0.0.1:50051"
	}
	opts := []memos.Option{memos.WithToken(os.Getenv("MEMOS_TOKEN"))}
	if ca := os.Getenv("MEMOS_CA"); ca != "" {
		opts = append(opts, memos.WithCAFile(ca))
		if cert := os.Getenv("MEMOS_CERT"); cert != "" {
			opts = append(opts, memos.WithClientCert(cert, os.Getenv("MEMOS_KEY")))
		}
	} else {
		opts = append(opts, memos.WithPlaintext())
	}
	client, err := memos.Dial(ctx, server, opts...)
	check(err)
	defer client.Close()

	space := fmt.Sprintf("go-tour-%d", time.Now().Unix())
	_, err = client.CreateSpace(ctx, space, nil)
	check(err)
	parent := "spaces/" + space
	text := func(id, s string) *pb.CreateCubeRequest {
		return &pb.CreateCubeRequest{Parent: parent, CubeId: id, Cube: &pb.MemCube{
			Payload: &pb.MemCube_Plaintext{Plaintext: &pb.PlaintextPayload{Text: s}}, Tags: []string{"tour"}}}
	}
	cubes, err := client.BatchCreateCubes(ctx, parent,
		text("tea", "Alice prefers green tea"), text("birthday", "Bob was born on 3 May"), text("offsite", "The offsite is in Lisbon"))
	check(err)
	fmt.Println("created", len(cubes), "cubes")

	found, err := client.SearchCubes(ctx, &pb.SearchCubesRequest{Parent: parent, Query: &pb.SearchCubesRequest_Text{Text: "what does Alice drink?"}, TopK: 2})
	check(err)
	for _, hit := range found.GetResults() {
		fmt.Printf("%.2f %s\n", hit.GetScore(), hit.GetCube().GetPlaintext().GetText())
	}

	for cube, err := range client.Cubes(ctx, &pb.ListCubesRequest{Parent: parent, PageSize: 2}) {
		check(err)
		fmt.Println("listed", cube.GetName(), cube.GetEtag())
	}

	tea, err := client.GetCube(ctx, parent+"/cubes/tea")
	check(err)
	tea.Tags = []string{"tour", "drinks"}
	tea.Priority = 90                                   // not in the mask: left as it is
	updated, err := client.UpdateCube(ctx, tea, "tags") // tea carries the etag it was read with
	check(err)
	fmt.Println("updated tags:", updated.GetTags(), "priority:", updated.GetPriority(), "version:", updated.GetVersion())
	_, err = client.UpdateCube(ctx, tea, "tags") // the same etag again: the cube changed since
	var refused *memos.Error
	if errors.As(err, &refused) {
		fmt.Println("refused:", refused.Code, refused.Reason)
	} else {
		log.Fatalf("a stale etag was not refused: %v", err)
	}

	var bundle bytes.Buffer
	n, err := client.ExportBundle(ctx, &pb.ExportBundleRequest{Parent: parent}, &bundle)
	check(err)
	root, err := client.GetTrustRoot(ctx)
	check(err)
	anchor, err := verify.ParseTrustRootEnvelope(root.GetSignedEnvelope())
	check(err)
	report, err := verify.VerifyBundle(bytes.NewReader(bundle.Bytes()), anchor.PolicyFor("node"), verify.DefaultLimits, time.Now())
	check(err)
	fmt.Printf("exported %d bytes; verified offline: %d cubes, statement sha256 %s\n", n, report.CubeCount, report.StatementSHA256)

	copySpace := space + "-copy"
	_, err = client.CreateSpace(ctx, copySpace, nil)
	check(err)
	imported, err := client.ImportBundle(ctx, &pb.ImportBundleRequest{Parent: "spaces/" + copySpace}, &bundle)
	check(err)
	fmt.Println("imported:", imported.GetCreatedCount())

	plan, err := client.Recall(ctx, &pb.RecallRequest{Parent: parent, Query: "Alice's drink", TokenBudget: 64})
	check(err)
	fmt.Println("recalled", len(plan.GetItems()), "items in", plan.GetTokensUsed(), "tokens")
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
