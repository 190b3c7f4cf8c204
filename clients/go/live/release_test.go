//go:build live

package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
)

// facts are the cubes of the published release.
var facts = []string{"Rain follows a falling barometer", "Fog forms over cold water at dawn", "Hail needs strong updrafts"}

// terms permit importing and searching freely and recalling three times, and prohibit export; a buyer's node
// must see a fresh checkpoint of the log every day.
const terms = `{"license":"CC-BY-4.0","permission":[{"action":"import"},` +
	`{"action":"recall","constraint":[{"leftOperand":"count","operator":"lteq","rightOperand":3}]},{"action":"search"}],` +
	`"prohibition":[{"action":"export"}],"maxOfflineSeconds":86400}`

// release is a release published on the market once per run, for the marketplace, log and witness tests.
type release struct {
	admin     *memos.Client // the market's admin
	owner     *memos.Client // the listing's owner on the market
	ownerName string
	// ownerKey is the id of the key the market keeps for the owner, which signed the release.
	ownerKey    string
	tag         string
	listing     *pb.Listing
	bundle      []byte
	termsDigest string
	published   *pb.PublishReleaseResponse
}

var (
	releaseOnce sync.Once
	published   *release
)

// publishedRelease is the run's release: the owner, a principal of the market with a key the market keeps for it,
// exports three facts from a space of the market as release 1.0.0 of a listing, and publishes it there.
func publishedRelease(t *testing.T) *release {
	t.Helper()
	tp := live(t)
	releaseOnce.Do(func() { published = publish(t, tp) })
	if published == nil {
		t.Fatal("publishing the run's release failed (see the first test that asked for it)")
	}
	return published
}

func publish(t *testing.T, tp *topology) *release {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	r := &release{admin: dial(nil, tp.Market.Address, marketOptions(tp, tp.Market.AdminToken)), tag: id("weather")}
	var ownerToken string
	r.ownerName, ownerToken = principal(t, c, r.admin, id("owner"))
	r.owner = dial(nil, tp.Market.Address, marketOptions(tp, ownerToken))
	key := must(r.owner.CreateSigningKey(c, r.ownerName))(t)
	r.ownerKey = key.GetKeyId()

	space := must(r.owner.CreateSpace(c, id("wares"), nil))(t).GetName()
	var requests []*pb.CreateCubeRequest
	for _, fact := range facts {
		requests = append(requests, plaintext(space, "", fact))
	}
	must(r.owner.BatchCreateCubes(c, space, requests...))(t)
	parsed, err := verify.ParseTerms([]byte(terms))
	check(t, err)
	r.termsDigest = "sha256:" + parsed.Digest()

	r.listing = must(r.owner.CreateListing(c, id("weather"), &pb.Listing{Title: "Weather facts " + run,
		Description: "Three facts about the weather, for the Go live suite", Tags: []string{r.tag}}))(t)
	var bundle bytes.Buffer
	must(r.owner.ExportBundle(c, &pb.ExportBundleRequest{Parent: space, Release: &pb.ReleaseInfo{
		Listing: r.listing.GetName(), Release: "1.0.0", License: "CC-BY-4.0", TermsDigest: r.termsDigest}}, &bundle))(t)
	r.bundle = bundle.Bytes()
	sum := sha256.Sum256(r.bundle)
	r.published = must(r.owner.PublishRelease(c, &pb.PublishReleaseRequest{Parent: r.listing.GetName(), ReleaseId: "1.0.0",
		TermsJson: terms, ExpectedDigest: "sha256:" + hex.EncodeToString(sum[:]), ExpectedSize: int64(len(r.bundle))},
		bytes.NewReader(r.bundle)))(t)
	return r
}

// marketOptions are the options of a TLS connection to the market with token.
func marketOptions(tp *topology, token string) []memos.Option {
	return []memos.Option{memos.WithCAFile(tp.CAFile), memos.WithServerName(serverName), memos.WithToken(token)}
}

// logVerifier is the market's log key, from the topology file.
func logVerifier(t *testing.T, tp *topology) verify.NoteVerifier {
	t.Helper()
	key, err := verify.ParseVKey(tp.Market.LogVKey)
	if err != nil || key.Name != tp.Market.LogOrigin {
		t.Fatalf("the topology's log vkey %q: %v (name %q)", tp.Market.LogVKey, err, key.Name)
	}
	return verify.NoteVerifier{Name: key.Name, KeyID: key.KeyID, PublicKey: key.PublicKey}
}

// entryAt reads one entry of the market's log.
func entryAt(t *testing.T, c context.Context, market *memos.Client, index int64) []byte {
	t.Helper()
	entries := must(market.GetEntries(c, index, 1))(t).GetEntries()
	if len(entries) != 1 || entries[0].GetIndex() != index {
		t.Fatalf("GetEntries(%d, 1) gave %v", index, entries)
	}
	return entries[0].GetData()
}
