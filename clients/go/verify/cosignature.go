package verify

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// C2SP tlog-cosignature v1.0.1 with Ed25519, checked as memos_grpc/transparency/cosignature.py checks it: the signed
// message is "cosignature/v1\ntime <unix seconds>\n" and the checkpoint's note text; the line carries
// base64(key id || 8-byte big-endian timestamp || signature), the key id of signature type 0x04.

const (
	cosignatureTimestampBytes = 8
	cosignatureBytes          = cosignatureTimestampBytes + 64
	maxTimestamp              = 1<<63 - 1
)

// CosignatureStatus is how one known witness's cosignature line fared.
type CosignatureStatus int

// FRESH: verified and within the allowed age; STALE: older; FUTURE: dated after now; INVALID: does not verify.
const (
	CosignatureFresh CosignatureStatus = iota
	CosignatureStale
	CosignatureFuture
	CosignatureInvalid
)

// CosignatureResult is the outcome of one cosignature line by a known witness, under the caller's label.
type CosignatureResult struct {
	Label     string
	Status    CosignatureStatus
	Timestamp int64
	Message   string
}

// CosignedMessage is what an Ed25519 cosigner signs.
func CosignedMessage(checkpointText string, timestamp int64) []byte {
	return []byte("cosignature/v1\ntime " + strconv.FormatInt(timestamp, 10) + "\n" + checkpointText)
}

// VerifyCosignature is the cosignature's timestamp if it verifies with witness (a note key of type 0x04).
func VerifyCosignature(checkpointText string, signature NoteSignature, witness NoteVerifier) (int64, error) {
	if signature.Name != witness.Name || !bytes.Equal(signature.KeyID, witness.KeyID) {
		return 0, fail("COSIGNATURE_KEY_MISMATCH", "the signature line is by %s+%x, not %s", signature.Name,
			signature.KeyID, witness.Name)
	}
	if len(signature.Signature) != cosignatureBytes {
		return 0, fail("COSIGNATURE_INVALID", "cosignature by %s is %d bytes after its key id; %d expected",
			witness.Name, len(signature.Signature), cosignatureBytes)
	}
	timestamp := binary.BigEndian.Uint64(signature.Signature[:cosignatureTimestampBytes])
	if timestamp > maxTimestamp {
		return 0, fail("COSIGNATURE_INVALID", "cosignature by %s has a timestamp over 2**63 - 1", witness.Name)
	}
	message := CosignedMessage(checkpointText, int64(timestamp))
	if !verifySignature(witness.PublicKey, signature.Signature[cosignatureTimestampBytes:], message) {
		return 0, fail("COSIGNATURE_INVALID", "cosignature by %s does not verify", witness.Name)
	}
	return int64(timestamp), nil
}

// LabeledWitness is a known witness key under a label (a policy's witness name).
type LabeledWitness struct {
	Label string
	Key   NoteVerifier
}

// CheckCosignatures gives one result per signature line made under a known witness's name and key id (other lines
// are ignored), witness by witness; fresh means now - maxAge <= timestamp <= now, in unix seconds.
func CheckCosignatures(checkpointText string, signatures []NoteSignature, witnesses []LabeledWitness, now,
	maxAge int64) []CosignatureResult {
	var results []CosignatureResult
	for _, witness := range witnesses {
		for _, signature := range signatures {
			if signature.Name != witness.Key.Name || !bytes.Equal(signature.KeyID, witness.Key.KeyID) {
				continue
			}
			timestamp, err := VerifyCosignature(checkpointText, signature, witness.Key)
			if err != nil {
				results = append(results, CosignatureResult{witness.Label, CosignatureInvalid, 0, err.(*Error).Message})
				continue
			}
			status := CosignatureFresh
			if timestamp > now {
				status = CosignatureFuture
			} else if now-timestamp > maxAge {
				status = CosignatureStale
			}
			results = append(results, CosignatureResult{witness.Label, status, timestamp, ""})
		}
	}
	return results
}

// VerifyCosigned is the time of the witness's fresh cosignature on the checkpoint note. Only the note's grammar is
// checked, not the log's signature: a line under the witness's name and key id must be there
// (COSIGNATURE_MISSING), every such line must verify (COSIGNATURE_INVALID), and one must be fresh
// (COSIGNATURE_STALE, COSIGNATURE_FUTURE). A note that does not parse gives its NOTE_* reason.
func VerifyCosigned(note string, witness NoteVerifier, now, maxAge int64) (int64, error) {
	parsed, err := ParseNote(note)
	if err != nil {
		return 0, err
	}
	results := CheckCosignatures(parsed.Text, parsed.Signatures, []LabeledWitness{{witness.Name, witness}}, now, maxAge)
	if len(results) == 0 {
		return 0, fail("COSIGNATURE_MISSING", "no cosignature by %s", witness.Name)
	}
	for _, result := range results {
		if result.Status == CosignatureInvalid {
			return 0, fail("COSIGNATURE_INVALID", "%s", result.Message)
		}
	}
	fresh, found, future := int64(0), false, false
	for _, result := range results {
		if result.Status == CosignatureFresh && (!found || result.Timestamp > fresh) {
			fresh, found = result.Timestamp, true
		}
		future = future || result.Status == CosignatureFuture
	}
	if found {
		return fresh, nil
	}
	if future {
		return 0, fail("COSIGNATURE_FUTURE", "the cosignature by %s is dated after now", witness.Name)
	}
	return 0, fail("COSIGNATURE_STALE", "the cosignature by %s is older than %d s", witness.Name, maxAge)
}
