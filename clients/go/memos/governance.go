package memos

import (
	"context"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// GovernanceService: spaces and who may use them, principals and their credentials and keys, the audit log and
// the trust root.

// CreateSpace creates spaces/{spaceID}; the caller becomes its owner. space may be nil.
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

// UpdateSpace writes the fields of space named by paths. The space's etag, when set, makes the update
// conditional (ABORTED ETAG_MISMATCH when it is stale).
func (c *Client) UpdateSpace(ctx context.Context, space *pb.Space, paths ...string) (*pb.Space, error) {
	return c.Governance.UpdateSpace(ctx, &pb.UpdateSpaceRequest{Space: space, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
}

// DeleteSpace deletes a space; force also deletes its cubes (without it a space holding cubes is refused). etag,
// when not empty, must be the space's current one.
func (c *Client) DeleteSpace(ctx context.Context, name string, force bool, etag string) error {
	_, err := c.Governance.DeleteSpace(ctx, &pb.DeleteSpaceRequest{Name: name, Force: force, Etag: etag})
	return err
}

// GetAccessPolicy reads who may do what in a space (its owners).
func (c *Client) GetAccessPolicy(ctx context.Context, space string) (*pb.AccessPolicy, error) {
	return c.Governance.GetAccessPolicy(ctx, &pb.GetAccessPolicyRequest{Resource: space})
}

// SetAccessPolicy replaces a space's access policy whole; the policy's etag, when set, must be current.
func (c *Client) SetAccessPolicy(ctx context.Context, space string, policy *pb.AccessPolicy) (*pb.AccessPolicy, error) {
	return c.Governance.SetAccessPolicy(ctx, &pb.SetAccessPolicyRequest{Resource: space, Policy: policy})
}

// CreatePrincipal creates principals/{principalID} (admins). principal may be nil.
func (c *Client) CreatePrincipal(ctx context.Context, principalID string, principal *pb.Principal) (*pb.Principal, error) {
	return c.Governance.CreatePrincipal(ctx, &pb.CreatePrincipalRequest{PrincipalId: principalID, Principal: principal})
}

// GetPrincipal reads a principal (admins, or the principal itself).
func (c *Client) GetPrincipal(ctx context.Context, name string) (*pb.Principal, error) {
	return c.Governance.GetPrincipal(ctx, &pb.GetPrincipalRequest{Name: name})
}

// Principals lists the principals (admins), page by page as it is iterated.
func (c *Client) Principals(ctx context.Context, pageSize int32) iter.Seq2[*pb.Principal, error] {
	return pages(func(token string) ([]*pb.Principal, string, error) {
		resp, err := c.Governance.ListPrincipals(ctx, &pb.ListPrincipalsRequest{PageSize: pageSize, PageToken: token})
		return resp.GetPrincipals(), resp.GetNextPageToken(), err
	})
}

// DeletePrincipal deletes a principal, its credentials and its roles (admins).
func (c *Client) DeletePrincipal(ctx context.Context, name string) error {
	_, err := c.Governance.DeletePrincipal(ctx, &pb.DeletePrincipalRequest{Name: name})
	return err
}

// CreateCredential creates a bearer credential for the principal parent; its Token is set only in this answer.
// credential (expiry, description) may be nil.
func (c *Client) CreateCredential(ctx context.Context, parent string, credential *pb.Credential) (*pb.Credential, error) {
	return c.Governance.CreateCredential(ctx, &pb.CreateCredentialRequest{Parent: parent, Credential: credential})
}

// RevokeCredential revokes a credential ("principals/{p}/credentials/{c}"); it stops working on the next call.
func (c *Client) RevokeCredential(ctx context.Context, name string) (*pb.Credential, error) {
	return c.Governance.RevokeCredential(ctx, &pb.RevokeCredentialRequest{Name: name})
}

// ErasePrincipalData removes everything a principal owns from every store and reports the counts (admins).
func (c *Client) ErasePrincipalData(ctx context.Context, name string) (*pb.ErasePrincipalDataResponse, error) {
	return c.Governance.ErasePrincipalData(ctx, &pb.ErasePrincipalDataRequest{Name: name})
}

// AuditEvents lists the audit events a filter selects (docs/security.md), in sequence order (admins).
func (c *Client) AuditEvents(ctx context.Context, filter string, pageSize int32) iter.Seq2[*pb.AuditEvent, error] {
	return pages(func(token string) ([]*pb.AuditEvent, string, error) {
		resp, err := c.Governance.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{Filter: filter, PageSize: pageSize, PageToken: token})
		return resp.GetEvents(), resp.GetNextPageToken(), err
	})
}

// VerifyAuditLog walks the audit log's hash chain (admins).
func (c *Client) VerifyAuditLog(ctx context.Context) (*pb.VerifyAuditLogResponse, error) {
	return c.Governance.VerifyAuditLog(ctx, &pb.VerifyAuditLogRequest{})
}

// GetTrustRoot reads the trust root in force. Check it offline with verify.ParseTrustRootEnvelope.
func (c *Client) GetTrustRoot(ctx context.Context) (*pb.TrustRoot, error) {
	return c.Governance.GetTrustRoot(ctx, &pb.GetTrustRootRequest{})
}

// UpdateTrustRoot proposes the next trust root, a DSSE envelope (JSON) signed by the admin keys; with
// addNodeSignature the server adds its node key's signature first (admins).
func (c *Client) UpdateTrustRoot(ctx context.Context, signedEnvelope []byte, addNodeSignature bool) (*pb.TrustRoot, error) {
	return c.Governance.UpdateTrustRoot(ctx, &pb.UpdateTrustRootRequest{SignedEnvelope: signedEnvelope, AddNodeSignature: addNodeSignature})
}

// CreateSigningKey has the server make and keep an Ed25519 key for the principal parent; the bundles it exports
// are then signed by that key too.
func (c *Client) CreateSigningKey(ctx context.Context, parent string) (*pb.PublicKey, error) {
	return c.Governance.CreateSigningKey(ctx, &pb.CreateSigningKeyRequest{Parent: parent})
}

// RegisterPublicKey registers an Ed25519 public key (32 raw bytes in key.PublicKey) that the principal parent
// holds itself; the answer carries its key id.
func (c *Client) RegisterPublicKey(ctx context.Context, parent string, key *pb.PublicKey) (*pb.PublicKey, error) {
	return c.Governance.RegisterPublicKey(ctx, &pb.RegisterPublicKeyRequest{Parent: parent, PublicKey: key})
}
