package verify

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// C2SP tlog-proof@v1 files verified offline, as memos_grpc/transparency/proof.py verifies them (docs/marketplace.md,
// "Proof files"): the entry is in the log at the proof's index under a checkpoint the log signed and a fresh quorum
// of the policy's witnesses cosigned. Shortfalls are reported in the order format, log signature, inclusion,
// cosignature, quorum, freshness; the first one's reason is the verdict.

const (
	tlogProofHeader    = "c2sp.org/tlog-proof@v1"
	maxPathHashes      = 63
	maxProofExtra      = 4096
	tlogProofMalformed = "TLOG_PROOF_MALFORMED"
)

var (
	proofIndexLine = regexp.MustCompile(`^index ([0-9]+)$`)
	proofExtraLine = regexp.MustCompile(`^extra ([A-Za-z0-9+/=]+)$`)
)

// TlogProof is a parsed proof file: the entry's index, its inclusion path, the signed checkpoint note verbatim and
// the optional, unauthenticated extra bytes.
type TlogProof struct {
	Index      uint64
	Path       [][]byte
	Checkpoint string
	Extra      []byte
}

// ProofShortfall is one check a proof did not pass.
type ProofShortfall struct {
	Check   string
	Reason  string
	Message string
}

// ProofReport is what VerifyProof found; the proof holds when Shortfalls is empty.
type ProofReport struct {
	Shortfalls []ProofShortfall
	Index      uint64
	Checkpoint *Checkpoint
	Fresh      []string
	Aged       []string
}

// Valid reports whether nothing fell short.
func (r *ProofReport) Valid() bool { return len(r.Shortfalls) == 0 }

// Reason is the first shortfall's reason ("" when verified).
func (r *ProofReport) Reason() string {
	if len(r.Shortfalls) == 0 {
		return ""
	}
	return r.Shortfalls[0].Reason
}

// ParseTlogProof reads a proof file; the checkpoint note is split off and checked by VerifyProof.
func ParseTlogProof(text string) (*TlogProof, error) {
	malformed := func(format string, args ...any) (*TlogProof, error) {
		return nil, fail(tlogProofMalformed, format, args...)
	}
	if utf8.RuneCountInString(text) > maxNoteBytes+8192 {
		return malformed("the proof file is too large")
	}
	if !utf8.ValidString(text) || strings.HasPrefix(text, "\ufeff") {
		return malformed("the proof is not UTF-8 without a byte order mark")
	}
	if hasControl(text, true) {
		return malformed("the proof holds a control character other than newline (a CR?)")
	}
	head, checkpoint, found := strings.Cut(text, "\n\n")
	if !found || checkpoint == "" {
		return malformed("no blank line followed by the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != tlogProofHeader {
		return malformed("the first line is not %q", tlogProofHeader)
	}
	proof := &TlogProof{Checkpoint: checkpoint}
	position := 1
	if position < len(lines) && strings.HasPrefix(lines[position], "extra") {
		var extra []byte
		ok := false
		if m := proofExtraLine.FindStringSubmatch(lines[position]); m != nil {
			extra, ok = decodeCanonicalBase64(m[1])
		}
		if !ok || len(extra) == 0 || len(extra) > maxProofExtra {
			return malformed("the extra line is not 'extra <base64 of 1..%d bytes>'", maxProofExtra)
		}
		proof.Extra = extra
		position++
	}
	ok := false
	if position < len(lines) {
		if m := proofIndexLine.FindStringSubmatch(lines[position]); m != nil {
			proof.Index, ok = parseDecimal(m[1], MaxTreeSize)
		}
	}
	if !ok {
		return malformed("no 'index <decimal 0..%d without leading zeros>' line", uint64(MaxTreeSize))
	}
	hashes := lines[position+1:]
	if len(hashes) > maxPathHashes {
		return malformed("the inclusion path has %d hashes; at most %d", len(hashes), maxPathHashes)
	}
	for number, line := range hashes {
		digest, ok := decodeCanonicalBase64(line)
		if !ok || len(digest) != HashSize {
			return malformed("path hash %d is not %d bytes of padded standard base64", number+1, HashSize)
		}
		proof.Path = append(proof.Path, digest)
	}
	return proof, nil
}

// VerifyProof checks a proof file for entry against the log key (whose name must be the checkpoint's origin), the
// policy and its witnesses; now and maxAge in unix seconds (a cosignature counts when now - maxAge <= its time
// <= now). It never fails: the report lists every shortfall.
func VerifyProof(entry []byte, proofText string, log NoteVerifier, policy *LogPolicy, now, maxAge int64) *ProofReport {
	proof, err := ParseTlogProof(proofText)
	if err != nil {
		return &ProofReport{Shortfalls: []ProofShortfall{{"FORMAT", tlogProofMalformed, err.(*Error).Message}}}
	}
	report := &ProofReport{Index: proof.Index}
	note, err := OpenNote(proof.Checkpoint, []NoteVerifier{log})
	if err != nil {
		refused := err.(*Error)
		shortfall := ProofShortfall{"FORMAT", tlogProofMalformed, "checkpoint: " + refused.Message}
		if refused.Reason == "NOTE_SIGNATURE_INVALID" || refused.Reason == "NOTE_UNVERIFIED" {
			shortfall = ProofShortfall{"LOG_SIGNATURE", "TLOG_PROOF_LOG_SIGNATURE_INVALID", shortfall.Message}
		}
		report.Shortfalls = []ProofShortfall{shortfall}
		return report
	}
	checkpoint, err := ParseCheckpoint(note.Text)
	if err != nil {
		report.Shortfalls = []ProofShortfall{{"FORMAT", tlogProofMalformed, "checkpoint: " + err.(*Error).Message}}
		return report
	}
	report.Checkpoint = checkpoint
	if checkpoint.Origin != log.Name {
		report.Shortfalls = []ProofShortfall{{"LOG_SIGNATURE", "TLOG_PROOF_ORIGIN_MISMATCH",
			"the checkpoint's origin is not the log key's name"}}
		return report
	}
	if err := VerifyInclusion(LeafHash(entry), proof.Index, checkpoint.Size, proof.Path, checkpoint.Root); err != nil {
		refused := err.(*Error)
		report.Shortfalls = append(report.Shortfalls, ProofShortfall{"INCLUSION", "TLOG_PROOF_INCLUSION_INVALID",
			refused.Reason + ": " + refused.Message})
	}
	var witnesses []LabeledWitness
	for _, name := range policy.WitnessOrder {
		key := policy.Witnesses[name]
		witnesses = append(witnesses, LabeledWitness{name, NoteVerifier{key.Name, key.KeyID, key.PublicKey}})
	}
	results := CheckCosignatures(note.Text, note.Signatures, witnesses, now, maxAge)
	for _, r := range results {
		if r.Status == CosignatureInvalid {
			report.Shortfalls = append(report.Shortfalls, ProofShortfall{"COSIGNATURE",
				"TLOG_PROOF_COSIGNATURE_INVALID", "witness " + r.Label + ": " + r.Message})
		}
	}
	for _, r := range results {
		if r.Status == CosignatureFresh && !containsString(report.Fresh, r.Label) {
			report.Fresh = append(report.Fresh, r.Label)
		}
	}
	var aged []CosignatureResult
	for _, r := range results {
		if r.Status == CosignatureStale || r.Status == CosignatureFuture {
			aged = append(aged, r)
			if !containsString(report.Fresh, r.Label) && !containsString(report.Aged, r.Label) {
				report.Aged = append(report.Aged, r.Label)
			}
		}
	}
	if !policy.Satisfied(report.Fresh) {
		if policy.Satisfied(append(append([]string{}, report.Fresh...), report.Aged...)) {
			future := true
			for _, r := range aged {
				if containsString(report.Aged, r.Label) && r.Status != CosignatureFuture {
					future = false
				}
			}
			reason := "TLOG_PROOF_COSIGNATURE_STALE"
			if future {
				reason = "TLOG_PROOF_COSIGNATURE_FUTURE"
			}
			report.Shortfalls = append(report.Shortfalls, ProofShortfall{"FRESHNESS", reason,
				"the quorum is met only with cosignatures dated in the future or too old"})
		} else {
			report.Shortfalls = append(report.Shortfalls, ProofShortfall{"QUORUM", "TLOG_PROOF_QUORUM_NOT_MET",
				"fresh cosignatures do not meet the quorum " + policy.Quorum})
		}
	}
	return report
}
