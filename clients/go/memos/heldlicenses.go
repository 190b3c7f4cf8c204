package memos

import (
	"context"
	"iter"
	"strings"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
)

// HeldLicenseService: the buyer's side of the marketplace, on the node that imported a licensed release.

// HeldLicenseName is the name a buyer's node gives the license whose grant digest ("sha256:<hex>", as
// License.GrantDigest) the marketplace reported: "heldLicenses/<hex>".
func HeldLicenseName(grantDigest string) string {
	return "heldLicenses/" + strings.TrimPrefix(grantDigest, "sha256:")
}

// GetHeldLicense reads a held license, its state and its metered uses (its licensee and admins).
func (c *Client) GetHeldLicense(ctx context.Context, name string) (*pb.HeldLicense, error) {
	return c.HeldLicenses.GetHeldLicense(ctx, &pb.GetHeldLicenseRequest{Name: name})
}

// ListHeldLicenses lists the held licenses the caller may see, in name order, page by page as it is iterated.
func (c *Client) ListHeldLicenses(ctx context.Context, pageSize int32) iter.Seq2[*pb.HeldLicense, error] {
	return pages(func(token string) ([]*pb.HeldLicense, string, error) {
		resp, err := c.HeldLicenses.ListHeldLicenses(ctx, &pb.ListHeldLicensesRequest{PageSize: pageSize, PageToken: token})
		return resp.GetHeldLicenses(), resp.GetNextPageToken(), err
	})
}

// ImportRelease has the node pull a licensed release from the marketplace it follows, with the caller's token
// there (req.MarketplaceToken, used for this call only), and import it into req.Parent.
func (c *Client) ImportRelease(ctx context.Context, req *pb.ImportReleaseRequest) (*pb.ImportBundleResponse, error) {
	return c.HeldLicenses.ImportRelease(ctx, req)
}

// SyncMarketplaceLog follows the marketplace log now and acts on the revocations and yanks read (admins).
func (c *Client) SyncMarketplaceLog(ctx context.Context) (*pb.FollowedLog, error) {
	return c.HeldLicenses.SyncMarketplaceLog(ctx, &pb.SyncMarketplaceLogRequest{})
}

// ListFollowedLogs reports what the node has accepted of each marketplace log it follows (admins).
func (c *Client) ListFollowedLogs(ctx context.Context) ([]*pb.FollowedLog, error) {
	resp, err := c.HeldLicenses.ListFollowedLogs(ctx, &pb.ListFollowedLogsRequest{})
	return resp.GetLogs(), err
}
