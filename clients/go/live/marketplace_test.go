//go:build live

package live

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// The marketplace end to end across the two nodes. On the market: the owner's listing and its release, found by
// filter and by text; a buyer acquires a license for its key on main, whose grant and log proof verify offline
// under main's trust root, and downloads the release, which verifies offline too. On main: the release is pulled
// from the market and imported under the license, which main then holds; main follows the market's log and sees
// the owner's revocation. The yank, and the events of it all, resumed from a log index.
func TestMarketplace(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	r := publishedRelease(t)
	mainAdmin := tp.dialMain(t, tp.Main.AdminToken)
	_, mainRoot := trustRoot(t, c, mainAdmin)
	_, marketRoot := trustRoot(t, c, r.admin)
	logKey := logVerifier(t, tp)
	policy, err := verify.ParseLogPolicy(mainRoot.MarketplaceLogs[0])
	check(t, err)

	// The release as published: signed by the owner's key, its publish entry proven in the log.
	release := r.published.GetRelease()
	name := r.listing.GetName() + "/releases/1.0.0"
	if release.GetName() != name || release.GetState() != pb.Release_STATE_ACTIVE || release.GetCubeCount() != 3 ||
		release.GetPublisher() != r.ownerName || !slices.Equal(release.GetSignerKeys(), []string{r.ownerKey}) ||
		release.GetTerms().GetDigest() != r.termsDigest || release.GetLicense() != "CC-BY-4.0" {
		t.Fatalf("PublishRelease gave %v", release)
	}
	if !r.published.GetVerification().GetValid() || r.published.GetVerification().GetStatementDigest() != release.GetStatementDigest() {
		t.Fatalf("the publish's verification report: %v", r.published.GetVerification())
	}
	publishEntry := entryAt(t, c, r.admin, release.GetLogIndex())
	parsed, err := verify.ParseEntry(publishEntry)
	if err != nil || parsed.Type != "publish" || parsed.Subject != release.GetStatementDigest() {
		t.Fatalf("the publish entry %q: %+v, %v", publishEntry, parsed, err)
	}
	if report := verify.VerifyProof(publishEntry, r.published.GetTlogProof(), logKey, policy, time.Now().Unix(), 86400); !report.Valid() {
		t.Fatalf("the publish's tlog-proof does not verify offline: %v", report.Shortfalls)
	}
	// The same bytes again are the same release.
	again := must(r.owner.PublishRelease(c, &pb.PublishReleaseRequest{Parent: r.listing.GetName(), ReleaseId: "1.0.0",
		TermsJson: terms}, bytes.NewReader(r.bundle)))(t)
	if again.GetRelease().GetName() != name || again.GetRelease().GetLogIndex() != release.GetLogIndex() {
		t.Fatalf("publishing the same bytes again gave %v", again.GetRelease())
	}

	t.Run("listings", func(t *testing.T) {
		draft := must(r.owner.Marketplace.CreateListing(c, &pb.CreateListingRequest{ListingId: id("draft"),
			Listing: &pb.Listing{Title: "Only checked"}, ValidateOnly: true}))(t)
		if draft.GetName() != "listings/"+id("draft") {
			t.Fatalf("validate_only gave %q", draft.GetName())
		}
		_, err := r.owner.GetListing(c, draft.GetName())
		refused(t, err, codes.NotFound, "LISTING_NOT_FOUND")

		listing := must(r.owner.GetListing(c, r.listing.GetName()))(t)
		if listing.GetLatestRelease() != name || !slices.Equal(listing.GetPublisherKeys(), []string{r.ownerKey}) ||
			listing.GetOwner() != r.ownerName || listing.GetReleaseCount() != 1 || listing.GetLicense() != "CC-BY-4.0" {
			t.Fatalf("GetListing gave %v", listing)
		}
		listing.Description = "Three facts about the weather, checked"
		listing.Title = "not in the mask"
		updated := must(r.owner.UpdateListing(c, listing, "description"))(t)
		if updated.GetDescription() != listing.GetDescription() || updated.GetTitle() != r.listing.GetTitle() ||
			updated.GetEtag() == listing.GetEtag() {
			t.Fatalf("UpdateListing(description) gave %v", updated)
		}
		_, err = r.owner.UpdateListing(c, listing, "description")
		refused(t, err, codes.Aborted, "ETAG_MISMATCH")

		var names []string
		for found, err := range r.admin.Listings(c, `tags: "`+r.tag+`"`, 0) {
			check(t, err)
			names = append(names, found.GetName())
		}
		if !slices.Equal(names, []string{r.listing.GetName()}) {
			t.Fatalf("ListListings by tag gave %v", names)
		}
		results := must(r.admin.SearchListings(c, &pb.SearchListingsRequest{Text: "weather facts", Filter: `publisher = "` + r.ownerName + `"`}))(t)
		if len(results) != 1 || results[0].GetListing().GetName() != r.listing.GetName() || results[0].GetScore() <= 0 {
			t.Fatalf("SearchListings gave %v", results)
		}
		got := must(r.admin.GetRelease(c, name))(t)
		if got.GetStatementDigest() != release.GetStatementDigest() || got.GetBundleDigest() != release.GetBundleDigest() {
			t.Fatalf("GetRelease gave %v", got)
		}
		releases := collect(t, r.admin.Releases(c, &pb.ListReleasesRequest{Parent: r.listing.GetName()}))
		if len(releases) != 1 || releases[0].GetName() != name {
			t.Fatalf("ListReleases gave %v", releases)
		}
	})

	// The buyer: a principal of main with a key main keeps for it, and a principal of the same name on the market.
	mainBuyerName, mainBuyerToken := principal(t, c, mainAdmin, id("buyer"))
	buyerKey := must(mainAdmin.CreateSigningKey(c, mainBuyerName))(t)
	buyerName, marketBuyerToken := principal(t, c, r.admin, id("buyer"))
	buyerOnMarket := tp.dialMarket(t, marketBuyerToken)
	buyerOnMain := tp.dialMain(t, mainBuyerToken)
	if buyerName != mainBuyerName {
		t.Fatalf("the buyer is %s on the market and %s on main", buyerName, mainBuyerName)
	}

	license := must(buyerOnMarket.AcquireLicense(c, &pb.License{Release: name, Licensee: buyerName, LicenseeKey: buyerKey.GetKeyId()}))(t)
	if license.GetState() != pb.License_STATE_ACTIVE || license.GetAcquirer() != buyerName || license.GetTlogProof() == "" ||
		license.GetTerms().GetDigest() != r.termsDigest {
		t.Fatalf("AcquireLicense gave %v", license)
	}

	t.Run("grant verified offline", func(t *testing.T) {
		grant, err := verify.VerifyGrant(license.GetGrantEnvelope(), mainRoot.KeysFor("marketplace"), buyerName, buyerKey.GetKeyId(), time.Now())
		if err != nil {
			t.Fatalf("the grant does not verify offline under main's trust root: %v", err)
		}
		if grant.Release != name || "sha256:"+grant.StatementSHA256 != license.GetGrantDigest() || grant.LogOrigin != tp.Market.LogOrigin ||
			grant.PublishLogIndex != release.GetLogIndex() || grant.License != "CC-BY-4.0" || grant.ReleaseDigest != release.GetStatementDigest() {
			t.Fatalf("the verified grant says %+v", grant)
		}
		if decision := grant.Terms.Permits("export", 0, grant.NotBefore, time.Now()); decision.Allowed {
			t.Fatalf("the grant's terms permit export: %+v", decision)
		}
		// For another key the same grant is refused.
		if _, err := verify.VerifyGrant(license.GetGrantEnvelope(), mainRoot.KeysFor("marketplace"), buyerName, r.ownerKey, time.Now()); err == nil {
			t.Fatal("the grant verified for a key it does not name")
		}
		grantEntry := entryAt(t, c, r.admin, license.GetLogIndex())
		entry, err := verify.ParseEntry(grantEntry)
		if err != nil || entry.Type != "grant" || entry.Statement != license.GetGrantDigest() {
			t.Fatalf("the grant entry: %+v, %v", entry, err)
		}
		if report := verify.VerifyProof(grantEntry, license.GetTlogProof(), logKey, policy, time.Now().Unix(), 86400); !report.Valid() {
			t.Fatalf("the grant's tlog-proof does not verify offline: %v", report.Shortfalls)
		}
	})

	t.Run("download", func(t *testing.T) {
		var downloaded bytes.Buffer
		header := must(buyerOnMarket.DownloadRelease(c, name, license.GetName(), &downloaded))(t)
		sum := sha256.Sum256(downloaded.Bytes())
		if header.GetName() != name || header.GetSizeBytes() != int64(downloaded.Len()) ||
			header.GetBundleDigest() != "sha256:"+hex.EncodeToString(sum[:]) || !bytes.Equal(downloaded.Bytes(), r.bundle) {
			t.Fatalf("DownloadRelease: header %v, %d bytes", header, downloaded.Len())
		}
		report, err := verify.VerifyBundle(bytes.NewReader(downloaded.Bytes()), marketRoot.PolicyFor("node"), verify.DefaultLimits, time.Now())
		if err != nil || "sha256:"+report.StatementSHA256 != release.GetStatementDigest() || report.CubeCount != 3 {
			t.Fatalf("the download verified offline: %+v, %v", report, err)
		}
		_, err = buyerOnMarket.DownloadRelease(c, name, "", &bytes.Buffer{})
		refused(t, err, codes.PermissionDenied, "LICENSE_REQUIRED")

		read := must(buyerOnMarket.GetLicense(c, license.GetName()))(t)
		if read.GetGrantDigest() != license.GetGrantDigest() || !bytes.Equal(read.GetGrantEnvelope(), license.GetGrantEnvelope()) {
			t.Fatalf("GetLicense gave %v", read)
		}
		licenses := collect(t, buyerOnMarket.Licenses(c, `release = "`+name+`"`, 0))
		if len(licenses) != 1 || licenses[0].GetName() != license.GetName() {
			t.Fatalf("ListLicenses, as the buyer, gave %v", licenses)
		}
	})

	// On main: the release pulled from the market with the buyer's token there, imported under the license.
	bought := must(buyerOnMain.CreateSpace(c, id("bought"), nil))(t).GetName()
	imported := must(buyerOnMain.ImportRelease(c, &pb.ImportReleaseRequest{Parent: bought, License: license.GetName(),
		MarketplaceToken: marketBuyerToken}))(t)
	if imported.GetCreatedCount() != 3 || imported.GetVerification().GetStatementDigest() != release.GetStatementDigest() {
		t.Fatalf("ImportRelease created %d cubes; verification %v", imported.GetCreatedCount(), imported.GetVerification())
	}
	var texts []string
	for _, cube := range collect(t, buyerOnMain.Cubes(c, &pb.ListCubesRequest{Parent: bought})) {
		if cube.GetLicense().GetRelease() != name || cube.GetLicense().GetGrantDigest() != license.GetGrantDigest() {
			t.Fatalf("an imported cube carries license %v", cube.GetLicense())
		}
		texts = append(texts, cube.GetPlaintext().GetText())
	}
	slices.Sort(texts)
	if want := slices.Sorted(slices.Values(facts)); !slices.Equal(texts, want) {
		t.Fatalf("the bought space holds %q", texts)
	}
	_, err = buyerOnMain.ImportRelease(c, &pb.ImportReleaseRequest{Parent: bought, License: license.GetName()})
	refused(t, err, codes.InvalidArgument, "MISSING_MARKETPLACE_TOKEN")

	heldName := memos.HeldLicenseName(license.GetGrantDigest())
	held := must(buyerOnMain.GetHeldLicense(c, heldName))(t)
	if held.GetState() != pb.HeldLicenseState_HELD_LICENSE_STATE_ACTIVE || held.GetCubeCount() != 3 || held.GetRelease() != name ||
		held.GetLicenseeKeyId() != buyerKey.GetKeyId() || held.GetLogOrigin() != tp.Market.LogOrigin ||
		held.GetGrantLogIndex() != license.GetLogIndex() || !bytes.Equal(held.GetGrant(), license.GetGrantEnvelope()) {
		t.Fatalf("GetHeldLicense gave %v", held)
	}
	if uses := actionUses(held); uses["import"].GetUses() != 1 || uses["export"].GetAllowed() || uses["recall"].GetLimit() != 3 {
		t.Fatalf("the held license's uses: %v", held.GetActions())
	}
	heldNames := []string{}
	for h, err := range buyerOnMain.ListHeldLicenses(c, 0) {
		check(t, err)
		heldNames = append(heldNames, h.GetName())
	}
	if !slices.Equal(heldNames, []string{heldName}) {
		t.Fatalf("ListHeldLicenses, as the buyer, gave %v", heldNames)
	}
	// Export is prohibited by the terms: refused, with the reason.
	_, err = buyerOnMain.ExportBundle(c, &pb.ExportBundleRequest{Parent: bought}, &bytes.Buffer{})
	refused(t, err, codes.PermissionDenied, "LICENSE_ACTION_NOT_PERMITTED")

	// Main follows the market's log, then sees the owner's revocation once it syncs again.
	synced := must(mainAdmin.SyncMarketplaceLog(c))(t)
	if synced.GetOrigin() != tp.Market.LogOrigin || synced.GetLastErrorReason() != "" || synced.GetTreeSize() <= license.GetLogIndex() {
		t.Fatalf("SyncMarketplaceLog gave %v", synced)
	}
	followed := must(mainAdmin.ListFollowedLogs(c))(t)
	if len(followed) != 1 || followed[0].GetOrigin() != tp.Market.LogOrigin || followed[0].GetTreeSize() < synced.GetTreeSize() ||
		followed[0].GetSyncTime() == nil {
		t.Fatalf("ListFollowedLogs gave %v", followed)
	}
	_, err = buyerOnMain.SyncMarketplaceLog(c)
	refused(t, err, codes.PermissionDenied, "ADMIN_REQUIRED")

	revoked := must(r.owner.RevokeLicense(c, license.GetName(), "unpaid"))(t)
	if revoked.GetState() != pb.License_STATE_REVOKED || revoked.GetRevocation().GetReason() != "unpaid" {
		t.Fatalf("RevokeLicense gave %v", revoked)
	}
	_, err = r.owner.RevokeLicense(c, license.GetName(), "unpaid")
	refused(t, err, codes.FailedPrecondition, "LICENSE_ALREADY_REVOKED")
	// (Whether main still holds it as active until it syncs is not asserted: another client's suite on the same
	// servers may sync main at any moment.)
	must(mainAdmin.SyncMarketplaceLog(c))(t)
	after := must(buyerOnMain.GetHeldLicense(c, heldName))(t)
	if after.GetState() != pb.HeldLicenseState_HELD_LICENSE_STATE_REVOKED || after.GetStateReason() != "LICENSE_REVOKED" {
		t.Fatalf("after the sync, the held license is %v (%s)", after.GetState(), after.GetStateReason())
	}

	// The yank: out of lists and of the listing's latest, still readable by name.
	yanked := must(r.owner.YankRelease(c, name, "wrong units"))(t)
	if yanked.GetState() != pb.Release_STATE_YANKED || yanked.GetYank().GetReason() != "wrong units" {
		t.Fatalf("YankRelease gave %v", yanked)
	}
	if listed := collect(t, r.admin.Releases(c, &pb.ListReleasesRequest{Parent: r.listing.GetName()})); len(listed) != 0 {
		t.Fatalf("a yanked release is listed: %v", listed)
	}
	if listed := collect(t, r.admin.Releases(c, &pb.ListReleasesRequest{Parent: r.listing.GetName(), ShowYanked: true})); len(listed) != 1 ||
		listed[0].GetYank().GetLogIndex() != yanked.GetYank().GetLogIndex() {
		t.Fatalf("show_yanked lists %v", listed)
	}
	if listing := must(r.admin.GetListing(c, r.listing.GetName()))(t); listing.GetLatestRelease() != "" {
		t.Fatalf("the listing's latest release is still %q", listing.GetLatestRelease())
	}

	// The events of this listing from its publish entry, then resumed after it: the revoke and the yank, in log
	// order, each pointing at the entry it acts on.
	subscribe := func(from int64, count int) []*pb.MarketplaceEvent {
		var events []*pb.MarketplaceEvent
		for event, err := range r.admin.Subscribe(c, &pb.SubscribeRequest{Listings: []string{r.listing.GetName()}, StartIndex: &from}) {
			check(t, err)
			events = append(events, event)
			if len(events) == count {
				break
			}
		}
		return events
	}
	first := subscribe(release.GetLogIndex(), 1)
	if first[0].GetType() != pb.EventType_EVENT_TYPE_PUBLISH || first[0].GetLogIndex() != release.GetLogIndex() ||
		!bytes.Equal(first[0].GetEntry(), publishEntry) || first[0].GetRelease().GetState() != pb.Release_STATE_YANKED {
		t.Fatalf("the first event: %v", first[0])
	}
	resumed := subscribe(first[0].GetLogIndex()+1, 2)
	revoke, yank := resumed[0], resumed[1]
	if revoke.GetType() != pb.EventType_EVENT_TYPE_REVOKE || revoke.GetLicense() != license.GetName() ||
		revoke.GetRefIndex() != license.GetLogIndex() || revoke.GetRevocation().GetReason() != "unpaid" {
		t.Fatalf("the revoke event: %v", revoke)
	}
	if yank.GetType() != pb.EventType_EVENT_TYPE_YANK || yank.GetRefIndex() != release.GetLogIndex() ||
		yank.GetLogIndex() != yanked.GetYank().GetLogIndex() || yank.GetLogIndex() <= revoke.GetLogIndex() ||
		yank.GetTreeSize() <= yank.GetLogIndex() {
		t.Fatalf("the yank event: %v", yank)
	}
	if entry, err := verify.ParseEntry(yank.GetEntry()); err != nil || entry.Ref == nil || int64(*entry.Ref) != release.GetLogIndex() ||
		!strings.HasPrefix(entry.Type, "yank") {
		t.Fatalf("the yank event's entry: %+v, %v", entry, err)
	}
}

func actionUses(held *pb.HeldLicense) map[string]*pb.ActionUse {
	uses := map[string]*pb.ActionUse{}
	for _, use := range held.GetActions() {
		uses[use.GetAction()] = use
	}
	return uses
}
