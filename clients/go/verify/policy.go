package verify

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// C2SP tlog-policy, as far as a trust root's marketplaceLogs need it: the text parses under the grammar of
// docs/marketplace.md ("Log policies"), and its log keys are known.

const (
	maxPolicyLogs      = 64
	maxPolicyWitnesses = 64
	maxPolicyGroups    = 64
	maxNoteKeyName     = 255
)

var (
	vkeyPattern  = regexp.MustCompile(`^([^+]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$`)
	decimal      = regexp.MustCompile(`^(0|[1-9][0-9]{0,18})$`)
	policySpaces = regexp.MustCompile(`[ \t]+`)
)

// NoteKey is a C2SP note verifier key: its name, 4-byte key id, signature type and Ed25519 key.
type NoteKey struct {
	Name      string
	KeyID     []byte
	Type      byte
	PublicKey []byte
}

// LogPolicy is a parsed tlog-policy: its logs, the witnesses it names (WitnessOrder: in the order defined), the
// k-of-n groups over them and the quorum (a witness or group name, or "none").
type LogPolicy struct {
	Logs         []NoteKey
	Witnesses    map[string]NoteKey
	WitnessOrder []string
	Groups       map[string]PolicyGroup
	Quorum       string
}

// PolicyGroup is at least Threshold of Members (witness or group names).
type PolicyGroup struct {
	Threshold int
	Members   []string
}

// Satisfied reports whether the witnesses named (each with a verified cosignature) meet the quorum.
func (p *LogPolicy) Satisfied(cosigned []string) bool {
	signed := map[string]bool{}
	for _, name := range cosigned {
		signed[name] = true
	}
	memo := map[string]bool{}
	var witnessed func(name string) bool
	witnessed = func(name string) bool {
		if found, ok := memo[name]; ok {
			return found
		}
		group, ok := p.Groups[name]
		if !ok {
			_, known := p.Witnesses[name]
			memo[name] = known && signed[name]
		} else {
			count := 0
			for _, member := range group.Members {
				if witnessed(member) {
					count++
				}
			}
			memo[name] = count >= group.Threshold
		}
		return memo[name]
	}
	return p.Quorum == "none" || witnessed(p.Quorum)
}

func validKeyName(name string) bool {
	if name == "" || len(name) > maxNoteKeyName || strings.Contains(name, "+") {
		return false
	}
	for _, c := range name {
		if unicode.IsSpace(c) || c < 0x20 {
			return false
		}
	}
	return true
}

// ParseVKey reads "<name>+<hex key id>+<base64(type || key)>" of an Ed25519 key of type 0x01 or 0x04.
func ParseVKey(text string) (NoteKey, error) {
	m := vkeyPattern.FindStringSubmatch(text)
	if m == nil || !validKeyName(m[1]) {
		return NoteKey{}, fmt.Errorf("%q is not a verifier key", text)
	}
	raw, ok := decodeCanonicalBase64(m[3])
	if !ok || len(raw) != 33 || (raw[0] != 0x01 && raw[0] != 0x04) || !acceptablePublicKey(raw[1:]) {
		return NoteKey{}, fmt.Errorf("verifier key %q is not an Ed25519 key of type 0x01 or 0x04", m[1])
	}
	sum := sha256.Sum256(append([]byte(m[1]+"\n"), raw...))
	if fmt.Sprintf("%x", sum[:4]) != m[2] {
		return NoteKey{}, fmt.Errorf("verifier key %q names the wrong key id", m[1])
	}
	return NoteKey{Name: m[1], KeyID: sum[:4], Type: raw[0], PublicKey: raw[1:]}, nil
}

// ParseLogPolicy parses tlog-policy text as memos_grpc/transparency/policy.py does; the error is an *Error with a
// POLICY_* reason, at the first line that breaks a rule.
func ParseLogPolicy(text string) (*LogPolicy, error) {
	if utf8.RuneCountInString(text) > 64*1024 {
		return nil, fail("POLICY_TOO_LARGE", "the policy is over %d bytes", 64*1024)
	}
	if !utf8.ValidString(text) || strings.HasPrefix(text, "\uFEFF") {
		return nil, fail("POLICY_MALFORMED", "the policy is not UTF-8 without a byte order mark")
	}
	for _, c := range text {
		if c != '\t' && c != '\n' && (c < 0x20 || c == 0x7f) {
			return nil, fail("POLICY_MALFORMED", "the policy holds a control character other than tab and newline")
		}
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fail("POLICY_MALFORMED", "the policy does not end with a newline")
	}
	p := &LogPolicy{Witnesses: map[string]NoteKey{}, Groups: map[string]PolicyGroup{}}
	keys := map[string]bool{}
	quorumSet := false
	key := func(vkey string, wantType byte) (NoteKey, error) {
		k, err := ParseVKey(vkey)
		if err != nil {
			return k, fail("POLICY_KEY_INVALID", "%v", err)
		}
		if k.Type != wantType {
			return k, fail("POLICY_KEY_INVALID", "key has signature type 0x%02x; 0x%02x expected", k.Type, wantType)
		}
		// Duplicates are the same public key, whatever the name (C2SP tlog-policy).
		if keys[string(k.PublicKey)] {
			return k, fail("POLICY_KEY_DUPLICATE", "key is listed twice")
		}
		keys[string(k.PublicKey)] = true
		return k, nil
	}
	define := func(name string) error {
		_, w := p.Witnesses[name]
		_, g := p.Groups[name]
		if name == "none" || w || g {
			return fail("POLICY_NAME_DUPLICATE", "%q is already defined", name)
		}
		return nil
	}
	for number, line := range strings.Split(text[:len(text)-1], "\n") {
		line = strings.Trim(line, " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words := policySpaces.Split(line, -1)
		keyword, args := words[0], words[1:]
		var err error
		switch {
		case keyword == "log" && (len(args) == 1 || len(args) == 2):
			if len(p.Logs) >= maxPolicyLogs {
				err = fail("POLICY_TOO_LARGE", "more than %d logs", maxPolicyLogs)
				break
			}
			var k NoteKey
			if k, err = key(args[0], 0x01); err == nil {
				p.Logs = append(p.Logs, k)
			}
		case keyword == "witness" && (len(args) == 2 || len(args) == 3):
			if err = define(args[0]); err != nil {
				break
			}
			if len(p.Witnesses) >= maxPolicyWitnesses {
				err = fail("POLICY_TOO_LARGE", "more than %d witnesses", maxPolicyWitnesses)
				break
			}
			var k NoteKey
			if k, err = key(args[1], 0x04); err == nil {
				p.Witnesses[args[0]] = k
				p.WitnessOrder = append(p.WitnessOrder, args[0])
			}
		case keyword == "group" && len(args) >= 3:
			err = p.group(args[0], args[1], args[2:], define)
		case keyword == "quorum" && len(args) == 1:
			_, w := p.Witnesses[args[0]]
			_, g := p.Groups[args[0]]
			switch {
			case quorumSet:
				err = fail("POLICY_QUORUM_INVALID", "a second quorum line")
			case args[0] != "none" && !w && !g:
				err = fail("POLICY_NAME_UNDEFINED", "quorum names %q, not defined above", args[0])
			default:
				p.Quorum, quorumSet = args[0], true
			}
		default:
			err = fail("POLICY_MALFORMED", "expected 'log <vkey> [<url>]', 'witness <name> <vkey> [<url>]', "+
				"'group <name> all|any|<k> <name>...' or 'quorum <name>'")
		}
		if err != nil {
			refused := err.(*Error)
			return nil, fail(refused.Reason, "line %d: %s", number+1, refused.Message)
		}
	}
	if !quorumSet {
		return nil, fail("POLICY_QUORUM_INVALID", "the policy has no quorum line")
	}
	return p, nil
}

func (p *LogPolicy) group(name, thresholdText string, members []string, define func(string) error) error {
	if err := define(name); err != nil {
		return err
	}
	if len(p.Groups) >= maxPolicyGroups {
		return fail("POLICY_TOO_LARGE", "more than %d groups", maxPolicyGroups)
	}
	seen := map[string]bool{}
	for _, m := range members {
		_, w := p.Witnesses[m]
		_, g := p.Groups[m]
		if !w && !g {
			return fail("POLICY_NAME_UNDEFINED", "group %q names %q, not a witness or group defined above", name, m)
		}
	}
	for _, m := range members {
		if seen[m] {
			return fail("POLICY_NAME_DUPLICATE", "group %q lists a member twice", name)
		}
		seen[m] = true
	}
	threshold := 0
	switch thresholdText {
	case "all":
		threshold = len(members)
	case "any":
		threshold = 1
	default:
		if decimal.MatchString(thresholdText) {
			if n, err := strconv.ParseInt(thresholdText, 10, 64); err == nil && n <= int64(len(members)) {
				threshold = int(n)
			}
		}
	}
	if threshold < 1 {
		return fail("POLICY_THRESHOLD_INVALID", "group %q: threshold %.20q is not all, any or 1..%d", name,
			thresholdText, len(members))
	}
	p.Groups[name] = PolicyGroup{Threshold: threshold, Members: append([]string{}, members...)}
	return nil
}
