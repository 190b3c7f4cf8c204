//go:build live

package live

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// Peer exchange: main's admin makes main trust the market's node key (the next trust root, which the server signs
// with its node key, checked offline as an update of the one before), then main pulls a space of the market
// over TLS and imports it; the server verifies a bundle on request, and says why a tampered one is bad.
func TestInterchangePeerExchange(t *testing.T) {
	tp := live(t)
	c := ctx(t)
	admin := tp.dialMain(t, tp.Main.AdminToken)
	market := tp.dialMarket(t, tp.Market.AdminToken)

	peerSpace := must(market.CreateSpace(c, id("peer"), nil))(t).GetName()
	must(market.BatchCreateCubes(c, peerSpace, plaintext(peerSpace, "rain", "Rain follows a falling barometer"),
		plaintext(peerSpace, "fog", "Fog forms over cold water at dawn")))(t)
	_, marketRoot := trustRoot(t, c, market)
	marketNodeKey := marketRoot.Roles["node"].KeyIDs[0]

	before, updated, proposal := trustMarketNodeKey(t, c, admin, market, marketNodeKey)
	if !slices.Contains(updated.Roles["node"].KeyIDs, marketNodeKey) || updated.Version != before.Version+1 {
		t.Fatalf("the new trust root (version %d after %d) trusts node keys %v", updated.Version, before.Version,
			updated.Roles["node"].KeyIDs)
	}
	// The same version again is a rollback.
	_, err := admin.UpdateTrustRoot(c, proposal, true)
	refused(t, err, codes.InvalidArgument, "TRUST_ROOT_ROLLBACK")

	into := must(admin.CreateSpace(c, id("from-peer"), nil))(t).GetName()
	pulled := must(admin.ImportFromPeer(c, &pb.ImportFromPeerRequest{Parent: into, PeerTarget: tp.Market.Address,
		PeerToken: tp.Market.AdminToken, Selection: &pb.ExportBundleRequest{Parent: peerSpace},
		TrustPolicy: &pb.TrustPolicy{Role: pb.KeyRole_KEY_ROLE_NODE}}))(t)
	if pulled.GetCreatedCount() != 2 || !pulled.GetVerification().GetValid() || !counted(pulled.GetVerification(), marketNodeKey) {
		t.Fatalf("ImportFromPeer created %d cubes; verification %v", pulled.GetCreatedCount(), pulled.GetVerification())
	}
	var texts []string
	for _, cube := range collect(t, admin.Cubes(c, &pb.ListCubesRequest{Parent: into})) {
		texts = append(texts, cube.GetPlaintext().GetText())
	}
	slices.Sort(texts)
	if !slices.Equal(texts, []string{"Fog forms over cold water at dawn", "Rain follows a falling barometer"}) {
		t.Fatalf("the pulled space holds %q", texts)
	}

	// VerifyBundle: main's own export is valid; one byte changed in it is not, with the reason.
	var bundle bytes.Buffer
	must(admin.ExportBundle(c, &pb.ExportBundleRequest{Parent: into}, &bundle))(t)
	report := must(admin.VerifyBundle(c, nil, bytes.NewReader(bundle.Bytes())))(t)
	if !report.GetValid() || report.GetCubeCount() != 2 || !counted(report, report.GetExporterNode()) ||
		!slices.Contains(updated.Roles["node"].KeyIDs, report.GetExporterNode()) {
		t.Fatalf("VerifyBundle of a fresh export: %v", report)
	}
	tampered := bytes.Clone(bundle.Bytes())
	at := bytes.Index(tampered, []byte("Fog forms"))
	if at < 0 {
		t.Fatal("the bundle does not hold the fog fact's text")
	}
	tampered[at] ^= 0x20
	bad := must(admin.VerifyBundle(c, nil, bytes.NewReader(tampered)))(t)
	if bad.GetValid() || !strings.HasPrefix(bad.GetReason(), "BUNDLE_") {
		t.Fatalf("VerifyBundle of a tampered bundle: valid %v, reason %q", bad.GetValid(), bad.GetReason())
	}
	if _, err := verify.VerifyBundle(bytes.NewReader(tampered), updated.PolicyFor("node"), verify.DefaultLimits, time.Now()); err == nil ||
		err.(*verify.Error).Reason != bad.GetReason() {
		t.Fatalf("offline, the tampered bundle gives %v; the server said %s", err, bad.GetReason())
	}
}

func counted(report *pb.BundleVerification, keyID string) bool {
	for _, signature := range report.GetSignatures() {
		if signature.GetKeyId() == keyID && signature.GetStatus() == pb.SignatureCheck_STATUS_COUNTED {
			return true
		}
	}
	return false
}

// trustMarketNodeKey proposes main's next trust root, its current one with the market's node key added to the
// node role, for main to sign with its node key (an admin key of its first root). Another client may update the
// root at the same time: a proposal that lost the race is made again from the root then in force. It returns the
// root before, the root in force after (checked offline as an update of the one before), and the proposal sent.
func trustMarketNodeKey(t *testing.T, c context.Context, admin, market *memos.Client, keyID string) (*verify.TrustRoot, *verify.TrustRoot, []byte) {
	t.Helper()
	theirs := rootDocument(t, must(market.GetTrustRoot(c))(t))
	for attempt := 0; ; attempt++ {
		current := must(admin.GetTrustRoot(c))(t)
		before, err := verify.ParseTrustRootEnvelope(current.GetSignedEnvelope())
		check(t, err)
		ours := rootDocument(t, current)
		ours["version"] = json.Number(jsonInt(before.Version + 1))
		ours["keys"].(map[string]any)[keyID] = theirs["keys"].(map[string]any)[keyID]
		node := ours["roles"].(map[string]any)["node"].(map[string]any)
		if ids := node["keyids"].([]any); !slices.Contains(ids, any(keyID)) {
			node["keyids"] = append(ids, keyID)
		}
		var payload bytes.Buffer
		encoder := json.NewEncoder(&payload)
		encoder.SetEscapeHTML(false) // canonical JSON escapes only what JSON requires
		check(t, encoder.Encode(ours))
		proposal, err := json.Marshal(map[string]any{"payloadType": verify.TrustRootPayloadType,
			"payload": base64.StdEncoding.EncodeToString(bytes.TrimSuffix(payload.Bytes(), []byte("\n"))), "signatures": []any{}})
		check(t, err)
		answer, err := admin.UpdateTrustRoot(c, proposal, true)
		var refusal *memos.Error
		if errors.As(err, &refusal) && (refusal.Reason == "TRUST_ROOT_ROLLBACK" || refusal.Reason == "TRUST_ROOT_VERSION_SKIPPED") && attempt < 5 {
			continue
		}
		check(t, err)
		after, err := verify.VerifyRootUpdate(before, answer.GetSignedEnvelope(), time.Now())
		if err != nil {
			t.Fatalf("the new trust root does not verify offline as the update of version %d: %v", before.Version, err)
		}
		return before, after, proposal
	}
}

// rootDocument is the JSON document a trust root's envelope signs, numbers kept as written.
func rootDocument(t *testing.T, root *pb.TrustRoot) map[string]any {
	t.Helper()
	envelope, err := verify.ParseEnvelope(root.GetSignedEnvelope())
	check(t, err)
	decoder := json.NewDecoder(bytes.NewReader(envelope.Payload))
	decoder.UseNumber()
	var document map[string]any
	check(t, decoder.Decode(&document))
	return document
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
