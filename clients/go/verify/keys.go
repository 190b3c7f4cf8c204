package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// spkiPrefix is the DER SubjectPublicKeyInfo of an Ed25519 key up to the raw key (RFC 8410).
var spkiPrefix = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}

// KeyID is the lowercase hex sha256 of the key's DER SubjectPublicKeyInfo.
func KeyID(public []byte) string {
	sum := sha256.Sum256(append(append([]byte{}, spkiPrefix...), public...))
	return hex.EncodeToString(sum[:])
}

// TrustedKey is a key trusted for a purpose, with its optional validity window and revocation time.
type TrustedKey struct {
	KeyID     string
	PublicKey []byte
	Name      string
	NotBefore *time.Time
	NotAfter  *time.Time
	RevokedAt *time.Time
}

func (k *TrustedKey) revoked(now time.Time) bool {
	return k.RevokedAt != nil && !now.Before(*k.RevokedAt)
}

// validAt: inside its window and not revoked.
func (k *TrustedKey) validAt(now time.Time) bool {
	if k.revoked(now) {
		return false
	}
	if k.NotBefore != nil && now.Before(*k.NotBefore) {
		return false
	}
	return !(k.NotAfter != nil && !now.Before(*k.NotAfter))
}

func verifySignature(public, signature, message []byte) bool {
	if len(public) != ed25519.PublicKeySize || len(signature) != ed25519.SignatureSize {
		return false // ed25519.Verify panics on a key of the wrong length
	}
	if !acceptablePublicKey(public) {
		return false // a small-order or non-canonical key verifies nothing, whichever path brought it here
	}
	return ed25519.Verify(ed25519.PublicKey(public), message, signature)
}

// KeySet is an ordered set of trusted keys by key id (a later key with the same id replaces the earlier one in
// its place, as a Python dict does).
type KeySet struct {
	order []string
	byID  map[string]*TrustedKey
}

// NewKeySet builds a key set from keys in order.
func NewKeySet(keys ...TrustedKey) *KeySet {
	set := &KeySet{byID: map[string]*TrustedKey{}}
	for i := range keys {
		set.Add(keys[i])
	}
	return set
}

// Add puts a key in the set.
func (s *KeySet) Add(key TrustedKey) {
	if _, ok := s.byID[key.KeyID]; !ok {
		s.order = append(s.order, key.KeyID)
	}
	k := key
	s.byID[key.KeyID] = &k
}

// Len is the number of keys.
func (s *KeySet) Len() int { return len(s.order) }
