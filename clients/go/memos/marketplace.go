package memos

import (
	"context"
	"io"
	"iter"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// MarketplaceService (docs/marketplace.md): listings, their signed releases published from an io.Reader and
// downloaded into an io.Writer, licenses, and the events of the log as an iterator.

// CreateListing creates listings/{listingID}; the caller becomes its owner. listing carries the title (required),
// description, tags and publisher threshold.
func (c *Client) CreateListing(ctx context.Context, listingID string, listing *pb.Listing) (*pb.Listing, error) {
	return c.Marketplace.CreateListing(ctx, &pb.CreateListingRequest{ListingId: listingID, Listing: listing})
}

// GetListing reads a listing ("listings/{listing}").
func (c *Client) GetListing(ctx context.Context, name string) (*pb.Listing, error) {
	return c.Marketplace.GetListing(ctx, &pb.GetListingRequest{Name: name})
}

// Listings lists the listings a filter selects (docs/api.md), in name order, page by page as it is iterated.
func (c *Client) Listings(ctx context.Context, filter string, pageSize int32) iter.Seq2[*pb.Listing, error] {
	return pages(func(token string) ([]*pb.Listing, string, error) {
		resp, err := c.Marketplace.ListListings(ctx, &pb.ListListingsRequest{Filter: filter, PageSize: pageSize, PageToken: token})
		return resp.GetListings(), resp.GetNextPageToken(), err
	})
}

// SearchListings finds the listings nearest a text query, best first.
func (c *Client) SearchListings(ctx context.Context, req *pb.SearchListingsRequest) ([]*pb.ScoredListing, error) {
	resp, err := c.Marketplace.SearchListings(ctx, req)
	return resp.GetResults(), err
}

// UpdateListing writes the fields of listing named by paths (its owner); its etag, when set, must be current.
func (c *Client) UpdateListing(ctx context.Context, listing *pb.Listing, paths ...string) (*pb.Listing, error) {
	return c.Marketplace.UpdateListing(ctx, &pb.UpdateListingRequest{Listing: listing, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
}

// PublishRelease publishes the release bundle read from r; first names the listing (Parent), the release id and
// the terms JSON (and optionally the expected digest and size, or ValidateOnly), and its Chunk is ignored. The
// answer carries the release, its publish entry's tlog-proof@v1 text and the bundle's verification report.
func (c *Client) PublishRelease(ctx context.Context, first *pb.PublishReleaseRequest, r io.Reader) (*pb.PublishReleaseResponse, error) {
	msg := &pb.PublishReleaseRequest{Parent: first.GetParent(), ReleaseId: first.GetReleaseId(), TermsJson: first.GetTermsJson(),
		ExpectedDigest: first.GetExpectedDigest(), ExpectedSize: first.GetExpectedSize(), ValidateOnly: first.GetValidateOnly()}
	return upload(ctx, func(ctx context.Context) (grpc.ClientStreamingClient[pb.PublishReleaseRequest, pb.PublishReleaseResponse], error) {
		return c.Marketplace.PublishRelease(ctx)
	}, msg, func(m *pb.PublishReleaseRequest, chunk []byte) { m.Chunk = chunk },
		func() *pb.PublishReleaseRequest { return &pb.PublishReleaseRequest{} }, r)
}

// GetRelease reads a release ("listings/{listing}/releases/{release}"), yanked or not.
func (c *Client) GetRelease(ctx context.Context, name string) (*pb.Release, error) {
	return c.Marketplace.GetRelease(ctx, &pb.GetReleaseRequest{Name: name})
}

// Releases lists the releases of req.Parent, newest first (yanked ones with req.ShowYanked), following page
// tokens as it iterates from req.PageToken.
func (c *Client) Releases(ctx context.Context, req *pb.ListReleasesRequest) iter.Seq2[*pb.Release, error] {
	return pages(func(token string) ([]*pb.Release, string, error) {
		page := &pb.ListReleasesRequest{Parent: req.GetParent(), PageSize: req.GetPageSize(), Filter: req.GetFilter(),
			ShowYanked: req.GetShowYanked(), PageToken: token}
		if token == "" {
			page.PageToken = req.GetPageToken()
		}
		resp, err := c.Marketplace.ListReleases(ctx, page)
		return resp.GetReleases(), resp.GetNextPageToken(), err
	})
}

// DownloadRelease streams the bundle of a release into w and returns the release as the stream's first message
// describes it (size, digests, yank). license is a license of the release the caller acquired; the listing's
// owner and admins pass "". Verify the bytes offline with verify.VerifyBundle.
func (c *Client) DownloadRelease(ctx context.Context, name, license string, w io.Writer) (*pb.Release, error) {
	var release *pb.Release
	stream := received(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.DownloadReleaseResponse], error) {
		return c.Marketplace.DownloadRelease(ctx, &pb.DownloadReleaseRequest{Name: name, License: license})
	})
	_, err := drain(stream, func(msg *pb.DownloadReleaseResponse) []byte {
		if release == nil && msg.GetRelease() != nil {
			release = msg.GetRelease()
		}
		return msg.GetChunk()
	}, w)
	return release, err
}

// YankRelease yanks a release with a reason (its listing's owner); it stays acquirable and downloadable by name.
func (c *Client) YankRelease(ctx context.Context, name, reason string) (*pb.Release, error) {
	return c.Marketplace.YankRelease(ctx, &pb.YankReleaseRequest{Name: name, Reason: reason})
}

// AcquireLicense grants license.Release to license.Licensee (a principal as the buyer's node names it) for its key
// license.LicenseeKey; the answer carries the signed grant envelope and its tlog-proof@v1 text.
func (c *Client) AcquireLicense(ctx context.Context, license *pb.License) (*pb.License, error) {
	return c.Marketplace.AcquireLicense(ctx, &pb.AcquireLicenseRequest{License: license})
}

// GetLicense reads a license ("licenses/{license}").
func (c *Client) GetLicense(ctx context.Context, name string) (*pb.License, error) {
	return c.Marketplace.GetLicense(ctx, &pb.GetLicenseRequest{Name: name})
}

// Licenses lists the licenses the caller may see that a filter selects, page by page as it is iterated.
func (c *Client) Licenses(ctx context.Context, filter string, pageSize int32) iter.Seq2[*pb.License, error] {
	return pages(func(token string) ([]*pb.License, string, error) {
		resp, err := c.Marketplace.ListLicenses(ctx, &pb.ListLicensesRequest{Filter: filter, PageSize: pageSize, PageToken: token})
		return resp.GetLicenses(), resp.GetNextPageToken(), err
	})
}

// RevokeLicense revokes a license with a reason (the release's listing owner).
func (c *Client) RevokeLicense(ctx context.Context, name, reason string) (*pb.License, error) {
	return c.Marketplace.RevokeLicense(ctx, &pb.RevokeLicenseRequest{Name: name, Reason: reason})
}

// Subscribe yields the publish, yank and revoke events req selects, in log order, from req.StartIndex (resume with
// the last index seen + 1) or, unset, from now on. The stream follows the log until ranging stops or ctx ends.
func (c *Client) Subscribe(ctx context.Context, req *pb.SubscribeRequest) iter.Seq2[*pb.MarketplaceEvent, error] {
	return received(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.MarketplaceEvent], error) {
		return c.Marketplace.Subscribe(ctx, req)
	})
}
