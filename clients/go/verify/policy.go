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

// LogPolicy is a parsed tlog-policy (logs and the names it defines).
type LogPolicy struct {
	Logs      []NoteKey
	Witnesses map[string]NoteKey
	Groups    map[string]int
	Quorum    string
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

// ParseLogPolicy parses tlog-policy text.
func ParseLogPolicy(text string) (*LogPolicy, error) {
	if len(text) > 64*1024 {
		return nil, fmt.Errorf("the policy is too large")
	}
	if !utf8.ValidString(text) || strings.HasPrefix(text, "\uFEFF") {
		return nil, fmt.Errorf("the policy is not UTF-8 without a byte order mark")
	}
	for _, c := range text {
		if c != '\t' && c != '\n' && (c < 0x20 || c == 0x7f) {
			return nil, fmt.Errorf("the policy holds a control character")
		}
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("the policy does not end with a newline")
	}
	p := &LogPolicy{Witnesses: map[string]NoteKey{}, Groups: map[string]int{}}
	keys := map[string]bool{}
	quorumSet := false
	key := func(vkey string, wantType byte) (NoteKey, error) {
		k, err := ParseVKey(vkey)
		if err != nil {
			return k, err
		}
		if k.Type != wantType {
			return k, fmt.Errorf("key of the wrong signature type")
		}
		if keys[string(k.PublicKey)] {
			return k, fmt.Errorf("key listed twice")
		}
		keys[string(k.PublicKey)] = true
		return k, nil
	}
	define := func(name string) error {
		_, w := p.Witnesses[name]
		_, g := p.Groups[name]
		if name == "none" || w || g {
			return fmt.Errorf("%q is already defined", name)
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
				err = fmt.Errorf("too many logs")
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
				err = fmt.Errorf("too many witnesses")
				break
			}
			var k NoteKey
			if k, err = key(args[1], 0x04); err == nil {
				p.Witnesses[args[0]] = k
			}
		case keyword == "group" && len(args) >= 3:
			err = p.group(args[0], args[1], args[2:], define)
		case keyword == "quorum" && len(args) == 1:
			_, w := p.Witnesses[args[0]]
			_, g := p.Groups[args[0]]
			switch {
			case quorumSet:
				err = fmt.Errorf("a second quorum line")
			case args[0] != "none" && !w && !g:
				err = fmt.Errorf("quorum names %q, not defined above", args[0])
			default:
				p.Quorum, quorumSet = args[0], true
			}
		default:
			err = fmt.Errorf("not a log, witness, group or quorum line")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", number+1, err)
		}
	}
	if !quorumSet {
		return nil, fmt.Errorf("the policy has no quorum line")
	}
	return p, nil
}

func (p *LogPolicy) group(name, thresholdText string, members []string, define func(string) error) error {
	if err := define(name); err != nil {
		return err
	}
	if len(p.Groups) >= maxPolicyGroups {
		return fmt.Errorf("too many groups")
	}
	seen := map[string]bool{}
	for _, m := range members {
		_, w := p.Witnesses[m]
		_, g := p.Groups[m]
		if !w && !g {
			return fmt.Errorf("group %q names %q, not defined above", name, m)
		}
	}
	for _, m := range members {
		if seen[m] {
			return fmt.Errorf("group %q lists a member twice", name)
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
		return fmt.Errorf("group %q: threshold %.20q is not all, any or 1..%d", name, thresholdText, len(members))
	}
	p.Groups[name] = threshold
	return nil
}
