//go:build live

package live

import (
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// Principals, credentials and keys on main: created, read, listed, revoked, erased and deleted, each step seen
// from the principal's side too.
func TestGovernancePrincipals(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	admin := tp.dialMain(t, tp.Main.AdminToken)

	created := must(admin.CreatePrincipal(c, id("agent"), &pb.Principal{Kind: pb.Principal_KIND_AGENT, DisplayName: "Go agent"}))(t)
	name := created.GetName()
	if created.GetKind() != pb.Principal_KIND_AGENT || created.GetDisplayName() != "Go agent" || created.GetAdmin() {
		t.Fatalf("CreatePrincipal gave %v", created)
	}
	_, err := admin.CreatePrincipal(c, id("agent"), nil)
	refused(t, err, codes.AlreadyExists, "PRINCIPAL_ALREADY_EXISTS")
	listed := false
	for principal, err := range admin.Principals(c, 2) {
		check(t, err)
		listed = listed || principal.GetName() == name
	}
	if !listed {
		t.Fatalf("ListPrincipals, paged by 2, does not list %s", name)
	}

	credential := must(admin.CreateCredential(c, name, &pb.Credential{Description: "live suite"}))(t)
	agent := tp.dialMain(t, credential.GetToken())
	self := must(agent.GetPrincipal(c, name))(t)
	if self.GetName() != name || self.GetEtag() == "" {
		t.Fatalf("the principal reads itself as %v", self)
	}
	// Not an admin: another principal is not its to read, nor the principal list.
	_, err = agent.GetPrincipal(c, "principals/admin")
	refusal := refusedAnyOf(t, err, codes.PermissionDenied, codes.NotFound)
	if refusal.Reason == "" {
		t.Fatalf("the refusal carries no reason: %v", refusal)
	}

	// A key the principal holds itself: registered, its id the sha256 of its SubjectPublicKeyInfo.
	public, _, err := ed25519.GenerateKey(rand.Reader)
	check(t, err)
	key := must(agent.RegisterPublicKey(c, name, &pb.PublicKey{PublicKey: public}))(t)
	if key.GetKeyId() != verify.KeyID(public) || key.GetAlgorithm() != "ed25519" {
		t.Fatalf("RegisterPublicKey gave key id %q (want %q), algorithm %q", key.GetKeyId(), verify.KeyID(public), key.GetAlgorithm())
	}
	// A key the server keeps for it: a different key, registered to it too.
	kept := must(admin.CreateSigningKey(c, name))(t)
	if len(kept.GetPublicKey()) != ed25519.PublicKeySize || kept.GetKeyId() != verify.KeyID(kept.GetPublicKey()) {
		t.Fatalf("CreateSigningKey gave %v", kept)
	}
	keys := []string{}
	for _, k := range must(admin.GetPrincipal(c, name))(t).GetPublicKeys() {
		keys = append(keys, k.GetKeyId())
	}
	if !slices.Contains(keys, key.GetKeyId()) || !slices.Contains(keys, kept.GetKeyId()) {
		t.Fatalf("the principal's keys %v lack %s or %s", keys, key.GetKeyId(), kept.GetKeyId())
	}

	// What it owns: a space with two cubes, then erased with everything it made.
	space := must(agent.CreateSpace(c, id("agent-space"), nil))(t).GetName()
	must(agent.BatchCreateCubes(c, space, plaintext(space, "one", "The agent's first note"),
		plaintext(space, "two", "The agent's second note")))(t)

	// Its credential revoked: the very next call is refused.
	revoked := must(admin.RevokeCredential(c, credential.GetName()))(t)
	if revoked.GetRevokeTime() == nil {
		t.Fatalf("RevokeCredential gave no revoke_time: %v", revoked)
	}
	_, err = agent.GetPrincipal(c, name)
	refused(t, err, codes.Unauthenticated, "TOKEN_REVOKED")

	erased := must(admin.ErasePrincipalData(c, name))(t)
	if erased.GetSpacesRemoved() != 1 || erased.GetCubesRemoved() != 2 || erased.GetVectorsRemoved() != 2 {
		t.Fatalf("ErasePrincipalData reported %v", erased)
	}
	_, err = admin.GetSpace(c, space)
	refused(t, err, codes.NotFound, "SPACE_NOT_FOUND")

	check(t, admin.DeletePrincipal(c, name))
	_, err = admin.GetPrincipal(c, name)
	refused(t, err, codes.NotFound, "PRINCIPAL_NOT_FOUND")
}

// refusedAnyOf asserts err is a refusal with one of codes (and returns it).
func refusedAnyOf(t *testing.T, err error, allowed ...codes.Code) *memos.Error {
	t.Helper()
	refusal, ok := err.(*memos.Error)
	if !ok || !slices.Contains(allowed, refusal.Code) {
		t.Fatalf("wanted a refusal with one of %v, got %v", allowed, err)
	}
	return refusal
}

// Spaces: updated under a mask and an etag, shared by an access policy (checked from the reader's side), deleted;
// the audit log records it all and its hash chain verifies.
func TestGovernanceSpacesAndAudit(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	admin := tp.dialMain(t, tp.Main.AdminToken)
	readerName, readerToken := principal(t, c, admin, id("reader"))
	reader := tp.dialMain(t, readerToken)

	space := must(admin.CreateSpace(c, id("shared"), &pb.Space{DisplayName: "Shared", Description: "before"}))(t)
	name := space.GetName()
	if space.GetOwner() != "principals/admin" || space.GetVectorDimension() <= 0 {
		t.Fatalf("CreateSpace gave owner %q, dimension %d", space.GetOwner(), space.GetVectorDimension())
	}
	space.Description = "after"
	space.DisplayName = "not in the mask"
	updated := must(admin.UpdateSpace(c, space, "description"))(t)
	if updated.GetDescription() != "after" || updated.GetDisplayName() != "Shared" || updated.GetEtag() == space.GetEtag() {
		t.Fatalf("UpdateSpace(description) gave %v", updated)
	}
	_, err := admin.UpdateSpace(c, space, "description") // space still carries the etag before the update
	refused(t, err, codes.Aborted, "ETAG_MISMATCH")
	if got := must(admin.GetSpace(c, name))(t); got.GetDescription() != "after" {
		t.Fatalf("GetSpace reads description %q", got.GetDescription())
	}

	// Not shared yet: the reader does not see it.
	_, err = reader.GetSpace(c, name)
	refused(t, err, codes.NotFound, "SPACE_NOT_FOUND")
	policy := must(admin.GetAccessPolicy(c, name))(t)
	if policy.GetResource() != name || !holds(policy, pb.Role_ROLE_OWNER, "principals/admin") {
		t.Fatalf("GetAccessPolicy gave %v", policy)
	}
	// (A space whose policy was never set has an empty policy etag, which checks nothing.)
	shared := &pb.AccessPolicy{Etag: policy.GetEtag(), Bindings: append(policy.GetBindings(),
		&pb.AccessBinding{Role: pb.Role_ROLE_VIEWER, Members: []string{readerName}})}
	set := must(admin.SetAccessPolicy(c, name, shared))(t)
	if set.GetEtag() == "" || !holds(set, pb.Role_ROLE_VIEWER, readerName) || !holds(set, pb.Role_ROLE_OWNER, "principals/admin") {
		t.Fatalf("SetAccessPolicy gave %v", set)
	}
	shared.Etag = set.GetEtag()
	again := must(admin.SetAccessPolicy(c, name, shared))(t)
	if again.GetEtag() == set.GetEtag() {
		t.Fatalf("setting the policy again kept its etag %q", again.GetEtag())
	}
	_, err = admin.SetAccessPolicy(c, name, shared) // shared carries the etag before the last change
	refused(t, err, codes.Aborted, "ETAG_MISMATCH")
	if seen := must(reader.GetSpace(c, name))(t); seen.GetName() != name {
		t.Fatalf("the viewer reads %q", seen.GetName())
	}
	// A viewer reads, but does not write.
	_, err = reader.CreateCube(c, plaintext(name, "intruder", "A viewer's note"))
	refused(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
	listedSpaces := []string{}
	for s, err := range reader.Spaces(c, 0) {
		check(t, err)
		listedSpaces = append(listedSpaces, s.GetName())
	}
	if !slices.Contains(listedSpaces, name) {
		t.Fatalf("ListSpaces, as the viewer, lacks %s: %v", name, listedSpaces)
	}

	// Deleting: refused while it holds a cube, unless forced.
	must(admin.CreateCube(c, plaintext(name, "keep", "A note that keeps the space")))(t)
	refused(t, admin.DeleteSpace(c, name, false, ""), codes.FailedPrecondition, "SPACE_NOT_EMPTY")
	check(t, admin.DeleteSpace(c, name, true, ""))
	_, err = admin.GetSpace(c, name)
	refused(t, err, codes.NotFound, "SPACE_NOT_FOUND")

	// The audit log: this space's story, in sequence order, and a chain that verifies.
	events := collect(t, admin.AuditEvents(c, `resource = "`+name+`"`, 0))
	var outcomes []string
	for i, event := range events {
		outcomes = append(outcomes, event.GetMethod()+" "+event.GetOutcome().String()+" "+event.GetReason())
		if i > 0 && (event.GetSequence() <= events[i-1].GetSequence() || event.GetPreviousHash() == "") {
			t.Fatalf("audit events out of order or unchained: %v after %v", event, events[i-1])
		}
	}
	for _, want := range []string{
		"/memos.v1.GovernanceService/UpdateSpace OUTCOME_OK ",
		"/memos.v1.GovernanceService/UpdateSpace OUTCOME_FAILED ETAG_MISMATCH",
		"/memos.v1.GovernanceService/SetAccessPolicy OUTCOME_OK ",
		"/memos.v1.VaultService/CreateCube OUTCOME_DENIED ROLE_REQUIRED",
		"/memos.v1.GovernanceService/DeleteSpace OUTCOME_FAILED SPACE_NOT_EMPTY",
		"/memos.v1.GovernanceService/DeleteSpace OUTCOME_OK ",
	} {
		if !slices.Contains(outcomes, want) {
			t.Errorf("the audit log of %s lacks %q: %q", name, want, outcomes)
		}
	}
	verified := must(admin.VerifyAuditLog(c))(t)
	if !verified.GetVerified() || verified.GetEventsChecked() < int64(len(events)) || verified.GetFirstBrokenSequence() != 0 {
		t.Fatalf("VerifyAuditLog: %v", verified)
	}
	// Admins only.
	_, err = reader.VerifyAuditLog(c)
	refused(t, err, codes.PermissionDenied, "ADMIN_REQUIRED")
}

func holds(policy *pb.AccessPolicy, role pb.Role, member string) bool {
	for _, binding := range policy.GetBindings() {
		if binding.GetRole() == role && slices.Contains(binding.GetMembers(), member) {
			return true
		}
	}
	return false
}
