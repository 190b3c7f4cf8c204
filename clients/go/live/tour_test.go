//go:build live

package live

import (
	"bytes"
	"slices"
	"testing"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// The tour of the README over mTLS and a token: a space, a batch of memories, a search, pages, an update with a
// mask and an etag, a refused call and its reason, a bundle exported, verified offline and imported, a recall.
func TestTour(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	client := tp.dialMain(t, tp.Main.AdminToken)

	space := must(client.CreateSpace(c, id("tour"), nil))(t)
	parent := space.GetName()
	if parent != "spaces/"+id("tour") {
		t.Fatalf("CreateSpace named the space %q", parent)
	}
	facts := map[string]string{"tea": "Alice prefers green tea", "birthday": "Bob was born on 3 May",
		"offsite": "The offsite is in Lisbon"}
	created := must(client.BatchCreateCubes(c, parent, plaintext(parent, "tea", facts["tea"], "tour"),
		plaintext(parent, "birthday", facts["birthday"], "tour"), plaintext(parent, "offsite", facts["offsite"], "tour")))(t)
	if len(created) != 3 || created[0].GetName() != parent+"/cubes/tea" || created[0].GetVersion() != 1 {
		t.Fatalf("BatchCreateCubes gave %d cubes, the first %q version %d", len(created), created[0].GetName(), created[0].GetVersion())
	}

	// Search: the tea fact answers the question about Alice's drink, first.
	found := must(client.SearchCubes(c, &pb.SearchCubesRequest{Parent: parent,
		Query: &pb.SearchCubesRequest_Text{Text: "what does Alice drink?"}, TopK: 2}))(t)
	if len(found.GetResults()) != 2 || found.GetResults()[0].GetCube().GetName() != parent+"/cubes/tea" {
		t.Fatalf("the search did not find the tea fact first: %v", found.GetResults())
	}
	if found.GetResults()[0].GetScore() <= found.GetResults()[1].GetScore() {
		t.Errorf("results are not best first: %v", found.GetResults())
	}

	// Pages of two: the first page has two cubes and a token, and the iterator follows it to all three.
	first := must(client.Vault.ListCubes(c, &pb.ListCubesRequest{Parent: parent, PageSize: 2}))(t)
	if len(first.GetCubes()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("a page of 2 held %d cubes, next token %q", len(first.GetCubes()), first.GetNextPageToken())
	}
	var listed []string
	for _, cube := range collect(t, client.Cubes(c, &pb.ListCubesRequest{Parent: parent, PageSize: 2})) {
		listed = append(listed, cube.GetName())
	}
	want := []string{parent + "/cubes/birthday", parent + "/cubes/offsite", parent + "/cubes/tea"}
	if !slices.Equal(listed, want) {
		t.Fatalf("paging by 2 listed %v, want %v (name order)", listed, want)
	}

	// An update with a mask changes only the masked field, and gives a new etag and version.
	tea := must(client.GetCube(c, parent+"/cubes/tea"))(t)
	tea.Tags = []string{"tour", "drinks"}
	tea.Priority = 90 // not in the mask: must stay as it was
	updated := must(client.UpdateCube(c, tea, "tags"))(t)
	if !slices.Equal(updated.GetTags(), []string{"tour", "drinks"}) || updated.GetPriority() != created[0].GetPriority() ||
		updated.GetPlaintext().GetText() != facts["tea"] {
		t.Fatalf("the masked update gave tags %v, priority %d, text %q", updated.GetTags(), updated.GetPriority(),
			updated.GetPlaintext().GetText())
	}
	if updated.GetEtag() == tea.GetEtag() || updated.GetVersion() != tea.GetVersion()+1 {
		t.Fatalf("the update kept etag %q / version %d", updated.GetEtag(), updated.GetVersion())
	}
	// The same etag again is stale: refused with the server's reason, and nothing changes.
	_, err := client.UpdateCube(c, tea, "tags")
	stale := refused(t, err, codes.Aborted, "ETAG_MISMATCH")
	if stale.Message == "" {
		t.Error("the refusal carries no message")
	}
	if again := must(client.GetCube(c, tea.GetName()))(t); again.GetEtag() != updated.GetEtag() {
		t.Fatalf("a refused update changed the cube's etag to %q", again.GetEtag())
	}

	// Export, verified offline against main's trust root, then imported into a second space.
	var bundle bytes.Buffer
	n := must(client.ExportBundle(c, &pb.ExportBundleRequest{Parent: parent}, &bundle))(t)
	if n != int64(bundle.Len()) || n == 0 {
		t.Fatalf("ExportBundle reported %d bytes and wrote %d", n, bundle.Len())
	}
	_, anchor := trustRoot(t, c, client)
	report, err := verify.VerifyBundle(bytes.NewReader(bundle.Bytes()), anchor.PolicyFor("node"), verify.DefaultLimits, time.Now())
	if err != nil {
		t.Fatalf("the exported bundle does not verify offline: %v", err)
	}
	if report.CubeCount != 3 || len(report.StatementSHA256) != 64 {
		t.Fatalf("the offline report: %d cubes, statement %q", report.CubeCount, report.StatementSHA256)
	}
	copySpace := must(client.CreateSpace(c, id("tour-copy"), nil))(t).GetName()
	imported := must(client.ImportBundle(c, &pb.ImportBundleRequest{Parent: copySpace}, bytes.NewReader(bundle.Bytes())))(t)
	if imported.GetCreatedCount() != 3 || !imported.GetVerification().GetValid() ||
		imported.GetVerification().GetStatementDigest() != "sha256:"+report.StatementSHA256 {
		t.Fatalf("the import created %d cubes; verification %v", imported.GetCreatedCount(), imported.GetVerification())
	}
	copied := collect(t, client.Cubes(c, &pb.ListCubesRequest{Parent: copySpace}))
	if len(copied) != 3 {
		t.Fatalf("the copy holds %d cubes", len(copied))
	}

	// Recall: a plan within the budget, the tea fact in it.
	plan := must(client.Recall(c, &pb.RecallRequest{Parent: parent, Query: "Alice's drink", TokenBudget: 64}))(t)
	if len(plan.GetItems()) == 0 || plan.GetTokensUsed() > 64 || plan.GetTokenBudget() != 64 {
		t.Fatalf("recall gave %d items in %d of %d tokens", len(plan.GetItems()), plan.GetTokensUsed(), plan.GetTokenBudget())
	}
	if plan.GetItems()[0].GetCube().GetName() != parent+"/cubes/tea" {
		t.Errorf("recall put %q first, not the tea fact", plan.GetItems()[0].GetCube().GetName())
	}
}

// The market takes TLS without a client certificate, with a token; without a token it refuses, saying why.
func TestMarketOverTLS(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	market := tp.dialMarket(t, tp.Market.AdminToken)
	root, anchor := trustRoot(t, c, market)
	if len(anchor.Roles["marketplace"].KeyIDs) == 0 || len(root.GetLogPolicies()) == 0 {
		t.Fatalf("the market's trust root names marketplace keys %v and %d log policies",
			anchor.Roles["marketplace"].KeyIDs, len(root.GetLogPolicies()))
	}
	policy, err := verify.ParseLogPolicy(root.GetLogPolicies()[0])
	if err != nil || len(policy.Logs) != 1 || policy.Logs[0].Name != tp.Market.LogOrigin {
		t.Fatalf("the market's log policy: %v, %v", policy, err)
	}

	anonymous := tp.dialMarket(t, "")
	_, err = anonymous.GetTrustRoot(c)
	refused(t, err, codes.Unauthenticated, "MISSING_CREDENTIAL")
	// On main, the client certificate alone is no credential either: it is registered to no principal.
	_, err = tp.dialMain(t, "").GetTrustRoot(c)
	refused(t, err, codes.Unauthenticated, "UNKNOWN_CERTIFICATE")
}
