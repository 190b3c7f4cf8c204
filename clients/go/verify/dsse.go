package verify

import (
	"fmt"
	"strconv"
	"time"
)

// StatementPayloadType is the payloadType of a bundle's statement (in-toto Statement v1).
const StatementPayloadType = "application/vnd.in-toto+json"

// maxSignatures bounds the signatures of one envelope (each is tried against every trusted key).
const maxSignatures = 256

// PAE is DSSE's pre-authentication encoding: "DSSEv1 SP len(type) SP type SP len(body) SP body".
func PAE(payloadType string, payload []byte) []byte {
	out := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(out, payload...)
}

// Signature is one DSSE signature; KeyID is only a hint.
type Signature struct {
	KeyID string
	Sig   []byte
}

// Envelope is a decoded DSSE envelope.
type Envelope struct {
	PayloadType string
	Payload     []byte
	Signatures  []Signature
}

// ParseEnvelope decodes envelope JSON strictly; unknown members are ignored.
func ParseEnvelope(data []byte) (*Envelope, error) {
	document, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("the envelope is not JSON: %v", err)
	}
	obj, ok := document.(object)
	if !ok {
		return nil, fmt.Errorf("the envelope is not a JSON object")
	}
	payloadType, ok := obj["payloadType"].(string)
	if !ok {
		return nil, fmt.Errorf("the envelope has no payloadType string")
	}
	payload, err := decodeEnvelopeBase64(obj["payload"], "payload")
	if err != nil {
		return nil, err
	}
	raw, ok := obj["signatures"].([]any)
	if !ok {
		return nil, fmt.Errorf("the envelope has no signatures list")
	}
	if len(raw) > maxSignatures {
		return nil, fmt.Errorf("the envelope carries %d signatures; at most %d", len(raw), maxSignatures)
	}
	envelope := &Envelope{PayloadType: payloadType, Payload: payload}
	for i, item := range raw {
		entry, ok := item.(object)
		if !ok {
			return nil, fmt.Errorf("signatures[%d] is not an object", i)
		}
		keyID := ""
		if value, present := entry["keyid"]; present {
			if keyID, ok = value.(string); !ok {
				return nil, fmt.Errorf("signatures[%d].keyid is not a string", i)
			}
		}
		sig, err := decodeEnvelopeBase64(entry["sig"], fmt.Sprintf("signatures[%d].sig", i))
		if err != nil {
			return nil, err
		}
		envelope.Signatures = append(envelope.Signatures, Signature{KeyID: keyID, Sig: sig})
	}
	return envelope, nil
}

// Shortfall says why too few signatures counted, in precedence order.
type Shortfall string

// The shortfalls, first that applies.
const (
	ShortfallNone             Shortfall = ""
	ShortfallSignatureInvalid Shortfall = "SIGNATURE_INVALID"
	ShortfallSignerRevoked    Shortfall = "SIGNER_REVOKED"
	ShortfallSignerExpired    Shortfall = "SIGNER_EXPIRED"
	ShortfallThresholdNotMet  Shortfall = "THRESHOLD_NOT_MET"
	ShortfallUntrustedSigner  Shortfall = "UNTRUSTED_SIGNER"
)

type signatureStatus int

const (
	statusCounted signatureStatus = iota
	statusDuplicateKey
	statusUnknownKey
	statusBadSignature
	statusKeyRevoked
	statusKeyExpired
)

// EnvelopeResult is what VerifyEnvelope found.
type EnvelopeResult struct {
	Shortfall   Shortfall
	Counted     int
	CountedKeys []string
}

// VerifyEnvelope checks each signature over the PAE against the trusted keys and counts distinct keys valid at
// now against threshold.
func VerifyEnvelope(envelope *Envelope, trusted *KeySet, threshold int, now time.Time) EnvelopeResult {
	message := PAE(envelope.PayloadType, envelope.Payload)
	var counted []string
	statuses := map[signatureStatus]bool{}
	for _, signature := range envelope.Signatures {
		statuses[checkOne(signature, message, trusted, now, &counted)] = true
	}
	result := EnvelopeResult{Counted: len(counted), CountedKeys: counted}
	if threshold >= 1 && len(counted) >= threshold {
		return result
	}
	switch {
	case statuses[statusBadSignature]:
		result.Shortfall = ShortfallSignatureInvalid
	case statuses[statusKeyRevoked]:
		result.Shortfall = ShortfallSignerRevoked
	case statuses[statusKeyExpired]:
		result.Shortfall = ShortfallSignerExpired
	case len(counted) > 0:
		result.Shortfall = ShortfallThresholdNotMet
	default:
		result.Shortfall = ShortfallUntrustedSigner
	}
	return result
}

func checkOne(signature Signature, message []byte, trusted *KeySet, now time.Time, counted *[]string) signatureStatus {
	// The keyid is a hint: the key it names first, then every other trusted key in order.
	hinted := trusted.byID[signature.KeyID]
	candidates := make([]*TrustedKey, 0, trusted.Len())
	if hinted != nil {
		candidates = append(candidates, hinted)
	}
	for _, id := range trusted.order {
		if key := trusted.byID[id]; key != hinted {
			candidates = append(candidates, key)
		}
	}
	for _, key := range candidates {
		if !verifySignature(key.PublicKey, signature.Sig, message) {
			continue
		}
		if key.revoked(now) {
			return statusKeyRevoked
		}
		if !key.validAt(now) {
			return statusKeyExpired
		}
		for _, id := range *counted {
			if id == key.KeyID {
				return statusDuplicateKey
			}
		}
		*counted = append(*counted, key.KeyID)
		return statusCounted
	}
	if hinted != nil {
		return statusBadSignature
	}
	return statusUnknownKey
}

// Error is a verification failure with its stable reason (the reasons of docs/protocol.md and the vectors).
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func fail(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Policy is which keys a statement must be signed by: keys, a threshold and any pinned key ids.
type Policy struct {
	Keys           *KeySet
	Threshold      int
	RequiredKeyIDs []string
}

// VerifyStatementEnvelope decodes a bundle's statement envelope and checks its signatures; it returns the
// verified payload, the only bytes that may be parsed afterwards.
func VerifyStatementEnvelope(data []byte, policy Policy, now time.Time) ([]byte, error) {
	envelope, err := statementEnvelope(data)
	if err != nil {
		return nil, err
	}
	result := VerifyEnvelope(envelope, policy.Keys, policy.Threshold, now)
	if result.Shortfall != ShortfallNone {
		return nil, fail("BUNDLE_"+string(result.Shortfall), "%d distinct trusted key(s) signed; %d are required", result.Counted, policy.Threshold)
	}
	for _, required := range policy.RequiredKeyIDs {
		found := false
		for _, id := range result.CountedKeys {
			found = found || id == required
		}
		if !found {
			return nil, fail("BUNDLE_REQUIRED_SIGNER_MISSING", "the trust policy requires a signature by key %s", required)
		}
	}
	return envelope.Payload, nil
}

func statementEnvelope(data []byte) (*Envelope, error) {
	envelope, err := ParseEnvelope(data)
	if err != nil {
		return nil, fail("BUNDLE_ENVELOPE_MALFORMED", "the envelope is malformed: %v", err)
	}
	if envelope.PayloadType != StatementPayloadType {
		return nil, fail("BUNDLE_PAYLOAD_TYPE_INVALID", "payloadType is %.80q; a bundle's is %q", envelope.PayloadType, StatementPayloadType)
	}
	return envelope, nil
}
