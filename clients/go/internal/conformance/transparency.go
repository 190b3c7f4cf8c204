package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/memos-grpc/memos-grpc/clients/go/verify"
)

// One runner per kind beyond envelope, bundle and trust_root_update, as testdata/vectors/README.md says to run
// it; each returns the whole outcome, what the vector compares beside the verdict in Extra.

func runMerkle(in fields) Outcome {
	switch operation := in.text("operation"); operation {
	case "hashes":
		var leaves [][]byte
		var leafHex []string
		for _, entry := range in.byteList("entries") {
			leaf := verify.LeafHash(entry)
			leaves = append(leaves, leaf)
			leafHex = append(leafHex, hex.EncodeToString(leaf))
		}
		nodes := []any{}
		for level := 0; 1<<level <= len(leaves); level++ {
			for index := 0; index < len(leaves)>>level; index++ {
				subtree := leaves[index<<level : (index+1)<<level]
				nodes = append(nodes, map[string]any{
					"level": level, "index": index, "hash": hex.EncodeToString(verify.RootFromLeaves(subtree)),
				})
			}
		}
		roots := []string{}
		for size := 0; size <= len(leaves); size++ {
			roots = append(roots, hex.EncodeToString(verify.RootFromLeaves(leaves[:size])))
		}
		if leafHex == nil {
			leafHex = []string{}
		}
		return Outcome{Valid: true, Extra: map[string]any{"leaf_hashes": leafHex, "nodes": nodes, "roots": roots}}
	case "inclusion":
		proof := in.byteList("proof")
		err := verify.VerifyInclusion(in.bytes("leaf_hash"), in.treeInteger("index"), in.treeInteger("size"), proof,
			in.bytes("root"))
		return verdict(err)
	case "consistency":
		proof := in.byteList("proof")
		err := verify.VerifyConsistency(in.treeInteger("old_size"), in.treeInteger("new_size"), in.bytes("old_root"),
			in.bytes("new_root"), proof)
		return verdict(err)
	default:
		panic(badRequest{fmt.Errorf("inputs.operation %q is not hashes, inclusion or consistency", operation)})
	}
}

func verdict(err error) Outcome {
	if err != nil {
		return failed(err)
	}
	return Outcome{Valid: true}
}

func runEntry(in fields) Outcome {
	data := in.bytes("entry")
	entry, err := verify.ParseEntry(data)
	if err != nil {
		return failed(err)
	}
	// One form per entry: what ParseEntry accepts, Encode writes back byte for byte.
	if !bytes.Equal(entry.Encode(), data) {
		panic("a parsed entry does not encode back to its bytes")
	}
	var ref any
	if entry.Ref != nil {
		ref = *entry.Ref
	}
	return Outcome{Valid: true, Extra: map[string]any{"type": entry.Type, "subject": entry.Subject,
		"statement": entry.Statement, "signer": entry.Signer, "ref": ref}}
}

func noteVerifier(text string, name string) verify.NoteVerifier {
	key, err := verify.ParseVKey(text)
	if err != nil {
		panic(badRequest{fmt.Errorf("%s: %v", name, err)})
	}
	return verify.NoteVerifier{Name: key.Name, KeyID: key.KeyID, PublicKey: key.PublicKey}
}

func runNote(in fields) Outcome {
	note := in.text("note")
	var verifiers []verify.NoteVerifier
	for _, vkey := range in.texts("verifiers") {
		verifiers = append(verifiers, noteVerifier(vkey, "inputs.verifiers[]"))
	}
	opened, err := verify.OpenNote(note, verifiers)
	if err != nil {
		return failed(err)
	}
	return Outcome{Valid: true, Extra: map[string]any{"verified_by": opened.VerifiedBy}}
}

func runCheckpoint(in fields) Outcome {
	text := in.text("text")
	checkpoint, err := verify.ParseCheckpoint(text)
	if err != nil {
		return failed(err)
	}
	if checkpoint.Body() != text {
		panic("a parsed checkpoint does not write back the same text")
	}
	return Outcome{Valid: true, Extra: map[string]any{
		// A decimal string: sizes reach 2^63 - 1, past what a double holds.
		"size":       strconv.FormatUint(checkpoint.Size, 10),
		"origin":     checkpoint.Origin,
		"root":       base64.StdEncoding.EncodeToString(checkpoint.Root),
		"extensions": checkpoint.Extensions,
	}}
}

func runCosignature(in fields) Outcome {
	note, maxAge := in.text("note"), in.count("max_age_seconds")
	now := timeInput(in.text("now"), "now").Unix()
	witness := noteVerifier(in.text("witness"), "inputs.witness")
	timestamp, err := verify.VerifyCosigned(note, witness, now, maxAge)
	if err != nil {
		return failed(err)
	}
	return Outcome{Valid: true, Extra: map[string]any{"timestamp": timestamp}}
}

func runTlogPolicy(in fields) Outcome {
	text, cosigned := in.text("policy"), in.texts("cosigned")
	policy, err := verify.ParseLogPolicy(text)
	if err != nil {
		return failed(err)
	}
	return Outcome{Valid: true, Extra: map[string]any{"satisfied": policy.Satisfied(cosigned)}}
}

func runTlogProof(in fields) Outcome {
	entry, proof := in.bytes("entry"), in.text("proof")
	log := noteVerifier(in.text("log"), "inputs.log")
	now, maxAge := timeInput(in.text("now"), "now").Unix(), in.count("max_age_seconds")
	// The policy says whom the verifier trusts: one that does not parse is the caller's mistake.
	policy, err := verify.ParseLogPolicy(in.text("policy"))
	if err != nil {
		panic(badRequest{fmt.Errorf("inputs.policy: %v", err)})
	}
	report := verify.VerifyProof(entry, proof, log, policy, now, maxAge)
	if !report.Valid() {
		return Outcome{Reason: report.Reason()}
	}
	return Outcome{Valid: true, Extra: map[string]any{"index": report.Index}}
}

type check struct {
	action    string
	usesSoFar int64
	now       time.Time
}

// checksInput reads every check before any is decided, so a malformed one is a bad request whatever its place.
func checksInput(in fields) []check {
	var checks []check
	for _, item := range in.list("checks") {
		object, ok := item.(map[string]any)
		if !ok {
			panic(badRequest{fmt.Errorf("a check is not an object")})
		}
		f := fields(object)
		checks = append(checks, check{f.text("action"), f.count("uses_so_far"), timeInput(f.text("now"), "checks[].now")})
	}
	return checks
}

func decisions(terms *verify.Terms, grantedAt time.Time, checks []check) []any {
	found := []any{}
	for _, c := range checks {
		decision := terms.Permits(c.action, c.usesSoFar, grantedAt, c.now)
		var remaining any
		if decision.Remaining != nil {
			remaining = *decision.Remaining
		}
		found = append(found, map[string]any{"allowed": decision.Allowed, "reason": decision.Reason,
			"remaining": remaining})
	}
	return found
}

func runTerms(in fields) Outcome {
	data := in.bytes("terms")
	var checks []check
	var grantedAt time.Time
	if in.has("checks") {
		checks = checksInput(in)
		grantedAt = timeInput(in.text("granted_at"), "granted_at")
	}
	terms, err := verify.ParseTerms(data)
	if err != nil {
		return failed(err)
	}
	permitted := []string{}
	for _, p := range terms.Permissions {
		permitted = append(permitted, p.Action)
	}
	extra := map[string]any{"digest": terms.Digest(), "license": terms.License, "permitted": permitted}
	if in.has("checks") {
		extra["decisions"] = decisions(terms, grantedAt, checks)
	}
	return Outcome{Valid: true, Extra: extra}
}

func trustedKeys(in fields) *verify.KeySet {
	keys := verify.NewKeySet()
	for _, item := range in.list("trusted_keys") {
		object, ok := item.(map[string]any)
		if !ok {
			panic(badRequest{fmt.Errorf("inputs.trusted_keys holds an item that is not an object")})
		}
		f := fields(object)
		key := verify.TrustedKey{KeyID: f.text("key_id"), PublicKey: decodeB64(f.get("public_key"),
			"trusted_keys[].public_key")}
		for name, into := range map[string]**time.Time{"not_before": &key.NotBefore, "not_after": &key.NotAfter,
			"revoked_at": &key.RevokedAt} {
			if f.has(name) {
				when := timeInput(f.text(name), "trusted_keys[]."+name)
				*into = &when
			}
		}
		keys.Add(key)
	}
	return keys
}

func runGrant(in fields) Outcome {
	trusted := trustedKeys(in)
	text, now := in.text("grant"), timeInput(in.text("now"), "now")
	principal, keyID := in.text("licensee_principal"), in.text("licensee_key_id")
	checks := checksInput(in)
	grant, err := verify.VerifyGrant([]byte(text), trusted, principal, keyID, now)
	if err != nil {
		return failed(err)
	}
	// Decisions run on the grant's terms from its notBefore, the time the license began.
	return Outcome{Valid: true, StatementSHA256: grant.StatementSHA256, Extra: map[string]any{
		"statement_sha256":  grant.StatementSHA256,
		"release":           grant.Release,
		"publish_log_index": grant.PublishLogIndex,
		"decisions":         decisions(grant.Terms, grant.NotBefore, checks),
	}}
}
