package verify

import (
	"time"
	"unicode/utf8"
)

// TrustRootPayloadType is the payloadType of a trust root envelope.
const TrustRootPayloadType = "application/vnd.memos.trustroot+json"

const (
	trustRootType      = "https://memos-grpc.dev/TrustRoot/v1"
	maxThreshold       = 256
	maxTrustRootKeys   = 1024
	maxKeyNameChars    = 256
	maxMarketplaceLogs = 16
	maxLogPolicyBytes  = 16 * 1024
)

var roleNames = map[string]bool{"admin": true, "node": true, "publisher": true, "marketplace": true}

// Role is a role's keys and threshold.
type Role struct {
	KeyIDs    []string
	Threshold int
}

// TrustRoot is a parsed trust root payload.
type TrustRoot struct {
	Version         int64
	Expires         time.Time
	Keys            map[string]TrustedKey
	Roles           map[string]Role
	MarketplaceLogs []string
}

// KeysFor is the key set trusted for role, in the role's order.
func (t *TrustRoot) KeysFor(role string) *KeySet {
	set := NewKeySet()
	for _, id := range t.Roles[role].KeyIDs {
		if key, ok := t.Keys[id]; ok {
			set.Add(key)
		}
	}
	return set
}

// ThresholdFor is the role's threshold (1 for a role the root does not list).
func (t *TrustRoot) ThresholdFor(role string) int {
	if r, ok := t.Roles[role]; ok {
		return r.Threshold
	}
	return 1
}

func malformed(format string, args ...any) *Error {
	return fail("TRUST_ROOT_MALFORMED", format, args...)
}

// ParseTrustRoot parses a trust root payload strictly; every number and time must be within the protocol's bounds.
func ParseTrustRoot(payload []byte) (*TrustRoot, error) {
	document, err := parseJSON(payload)
	if err != nil {
		return nil, malformed("the trust root is malformed: %v", err)
	}
	obj, ok := document.(object)
	if !ok || obj["_type"] != trustRootType {
		return nil, malformed("a trust root needs _type %q", trustRootType)
	}
	version, ok := integerIn(obj["version"], 1, maxSafeInteger)
	if !ok {
		return nil, malformed("the trust root version must be an integer from 1 to %d", int64(maxSafeInteger))
	}
	rawKeys, ok := obj["keys"].(object)
	if !ok {
		return nil, malformed("keys must be a JSON object")
	}
	if len(rawKeys) > maxTrustRootKeys {
		return nil, malformed("the trust root lists %d keys; at most %d", len(rawKeys), maxTrustRootKeys)
	}
	root := &TrustRoot{Version: version, Keys: map[string]TrustedKey{}, Roles: map[string]Role{}}
	for kid, entry := range rawKeys {
		key, err := parseRootKey(kid, entry)
		if err != nil {
			return nil, err
		}
		root.Keys[kid] = key
	}
	rawRoles, ok := obj["roles"].(object)
	if !ok {
		return nil, malformed("roles must be a JSON object")
	}
	for name, entry := range rawRoles {
		if !roleNames[name] {
			return nil, malformed("role %.40q is not one of admin, node, publisher, marketplace", name)
		}
		role, err := parseRole(name, entry, root.Keys)
		if err != nil {
			return nil, err
		}
		root.Roles[name] = role
	}
	if len(root.Roles["admin"].KeyIDs) == 0 {
		return nil, malformed("a trust root needs an admin role with at least one key")
	}
	if logs, present := obj["marketplaceLogs"]; present {
		if root.MarketplaceLogs, err = parseMarketplaceLogs(logs); err != nil {
			return nil, err
		}
	}
	expires, ok := obj["expires"].(string)
	if !ok {
		return nil, malformed("expires must be an RFC 3339 time")
	}
	if root.Expires, err = ParseTime(expires); err != nil {
		return nil, malformed("expires: %v", err)
	}
	return root, nil
}

func parseRootKey(kid string, value any) (TrustedKey, error) {
	entry, ok := value.(object)
	if !ok {
		return TrustedKey{}, malformed("key %.80s must be a JSON object", kid)
	}
	if entry["keytype"] != "ed25519" {
		return TrustedKey{}, malformed("key %.80s is not an ed25519 key", kid)
	}
	public, err := decodeStdBase64(entry["public"], "public")
	if err != nil || !acceptablePublicKey(public) || KeyID(public) != kid {
		return TrustedKey{}, malformed("key %.80s: the key id is not the sha256 of the public key's SubjectPublicKeyInfo", kid)
	}
	key := TrustedKey{KeyID: kid, PublicKey: public}
	if value, present := entry["name"]; present {
		name, ok := value.(string)
		if !ok || utf8.RuneCountInString(name) > maxKeyNameChars {
			return TrustedKey{}, malformed("key %s: name must be a UTF-8 string of at most %d characters", kid, maxKeyNameChars)
		}
		key.Name = name
	}
	for _, field := range []struct {
		name string
		into **time.Time
	}{{"notBefore", &key.NotBefore}, {"notAfter", &key.NotAfter}, {"revokedAt", &key.RevokedAt}} {
		value := entry[field.name]
		if value == nil {
			continue // absent or null
		}
		text, ok := value.(string)
		if !ok {
			return TrustedKey{}, malformed("key %s: %s must be an RFC 3339 time", kid, field.name)
		}
		when, err := ParseTime(text)
		if err != nil {
			return TrustedKey{}, malformed("key %s: %s: %v", kid, field.name, err)
		}
		*field.into = &when
	}
	return key, nil
}

func parseRole(name string, value any, keys map[string]TrustedKey) (Role, error) {
	entry, ok := value.(object)
	if !ok {
		return Role{}, malformed("role %s must be a JSON object", name)
	}
	raw, ok := entry["keyids"].([]any)
	if !ok {
		return Role{}, malformed("role %s: keyids must be a list of key id strings", name)
	}
	role := Role{}
	seen := map[string]bool{}
	for _, item := range raw {
		id, ok := item.(string)
		if !ok {
			return Role{}, malformed("role %s: keyids must be a list of key id strings", name)
		}
		if _, known := keys[id]; !known {
			return Role{}, malformed("role %s names an unknown key", name)
		}
		if seen[id] {
			return Role{}, malformed("role %s lists a key twice", name)
		}
		seen[id] = true
		role.KeyIDs = append(role.KeyIDs, id)
	}
	// A role without keys keeps threshold 1: it trusts no one, whatever its threshold.
	highest := int64(min(maxThreshold, max(1, len(role.KeyIDs))))
	threshold, ok := integerIn(entry["threshold"], 1, highest)
	if !ok {
		return Role{}, malformed("role %s: threshold must be an integer from 1 to %d", name, highest)
	}
	role.Threshold = int(threshold)
	return role, nil
}

func parseMarketplaceLogs(value any) ([]string, error) {
	list, ok := value.([]any)
	if !ok || len(list) < 1 || len(list) > maxMarketplaceLogs {
		return nil, malformed("marketplaceLogs must be a list of 1 to %d logs", maxMarketplaceLogs)
	}
	var texts []string
	origins := map[string]bool{}
	for i, item := range list {
		entry, ok := item.(object)
		if !ok || len(entry) != 1 {
			return nil, malformed("marketplaceLogs[%d] must be an object with exactly one member, \"policy\"", i+1)
		}
		text, ok := entry["policy"].(string)
		if !ok || len(text) > maxLogPolicyBytes {
			return nil, malformed("marketplaceLogs[%d].policy must be the text of a C2SP tlog-policy of at most %d bytes", i+1, maxLogPolicyBytes)
		}
		policy, err := ParseLogPolicy(text)
		if err != nil {
			return nil, malformed("marketplaceLogs[%d].policy is refused: %v", i+1, err)
		}
		if len(policy.Logs) == 0 {
			return nil, malformed("marketplaceLogs[%d].policy names no log", i+1)
		}
		for _, log := range policy.Logs {
			if origins[log.Name] {
				return nil, malformed("two marketplace logs have the origin %.80q", log.Name)
			}
			origins[log.Name] = true
		}
		texts = append(texts, text)
	}
	return texts, nil
}

// VerifyRootUpdate checks a proposed trust root envelope against the current root. The proposal must be signed
// by a threshold of the current admin keys (checked before anything in it is parsed), parse within bounds, have
// exactly the next version, not be expired, and be signed by a threshold of its own admin keys.
func VerifyRootUpdate(current *TrustRoot, envelopeJSON []byte, now time.Time) (*TrustRoot, error) {
	envelope, err := ParseEnvelope(envelopeJSON)
	if err != nil {
		return nil, malformed("the trust root envelope is malformed: %v", err)
	}
	if envelope.PayloadType != TrustRootPayloadType {
		return nil, malformed("a trust root envelope has payloadType %q", TrustRootPayloadType)
	}
	if VerifyEnvelope(envelope, current.KeysFor("admin"), current.ThresholdFor("admin"), now).Shortfall != ShortfallNone {
		return nil, fail("TRUST_ROOT_THRESHOLD_NOT_MET", "the new trust root must be signed by %d current admin key(s)", current.ThresholdFor("admin"))
	}
	proposed, err := ParseTrustRoot(envelope.Payload)
	if err != nil {
		return nil, err
	}
	if proposed.Version <= current.Version {
		return nil, fail("TRUST_ROOT_ROLLBACK", "trust root version %d is not newer than the current %d", proposed.Version, current.Version)
	}
	if proposed.Version != current.Version+1 {
		return nil, fail("TRUST_ROOT_VERSION_SKIPPED", "trust root version %d skips versions after %d", proposed.Version, current.Version)
	}
	if !proposed.Expires.After(now) {
		return nil, fail("TRUST_ROOT_EXPIRED", "the new trust root expired at %s", proposed.Expires.Format(time.RFC3339))
	}
	if VerifyEnvelope(envelope, proposed.KeysFor("admin"), proposed.ThresholdFor("admin"), now).Shortfall != ShortfallNone {
		return nil, fail("TRUST_ROOT_THRESHOLD_NOT_MET", "the new trust root must also be signed by %d of its own admin key(s)", proposed.ThresholdFor("admin"))
	}
	return proposed, nil
}

// ParseTrustRootEnvelope reads a trust root from its envelope (GetTrustRoot's signed_envelope, a file a person
// handed over) as an anchor: its signatures are not checked, so it must come from a source already trusted.
func ParseTrustRootEnvelope(envelopeJSON []byte) (*TrustRoot, error) {
	envelope, err := ParseEnvelope(envelopeJSON)
	if err != nil {
		return nil, malformed("the trust root envelope is malformed: %v", err)
	}
	if envelope.PayloadType != TrustRootPayloadType {
		return nil, malformed("a trust root envelope has payloadType %q", TrustRootPayloadType)
	}
	return ParseTrustRoot(envelope.Payload)
}

// PolicyFor is the policy of a role of the root (a bundle from a node: "node"), with pinned key ids if any.
func (t *TrustRoot) PolicyFor(role string, requiredKeyIDs ...string) Policy {
	return Policy{Keys: t.KeysFor(role), Threshold: t.ThresholdFor(role), RequiredKeyIDs: requiredKeyIDs}
}
