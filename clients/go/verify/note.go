package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// C2SP signed-note v1.0.0 with Ed25519 keys, opened as memos_grpc/transparency/note.py opens it (docs/marketplace.md,
// "Signed notes"): signatures from unknown keys are ignored, one from a known key that does not verify refuses the
// note, and a note no known key verified is refused.

// Signature type bytes: plain Ed25519 note signatures and timestamped witness cosignatures.
const (
	NoteEd25519Type  = 0x01
	CosignatureType  = 0x04
	noteKeyIDBytes   = 4
	maxNoteSigs      = 100
	maxNoteBytes     = 1 << 20
	maxNoteSigBytes  = 8192
	noteSignatureTag = "\u2014 "
)

// NoteVerifier is a known key: signature lines with this name and key id must verify with PublicKey.
type NoteVerifier struct {
	Name      string
	KeyID     []byte
	PublicKey []byte
}

// NoteSignature is one signature line: the key name, the 4-byte key id and the signature after it.
type NoteSignature struct {
	Name      string
	KeyID     []byte
	Signature []byte
}

// SignedNote is an opened note: its text (final newline included), its signature lines, and the names of the
// known keys whose signature verified, in the order of their first line.
type SignedNote struct {
	Text       string
	Signatures []NoteSignature
	VerifiedBy []string
}

func noteError(reason, format string, args ...any) *Error { return fail(reason, format, args...) }

// hasControl: a C0 control character (below U+0020), a newline counted only when not allowed.
func hasControl(text string, allowNewline bool) bool {
	for _, r := range text {
		if r < 0x20 && !(allowNewline && r == '\n') {
			return true
		}
	}
	return false
}

// KeyIDFor is sha256(name || 0x0A || type || public key)[:4].
func KeyIDFor(name string, signatureType byte, public []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{signatureType})
	h.Write(public)
	return h.Sum(nil)[:noteKeyIDBytes]
}

func base64Chars(text string) bool {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return text != ""
}

// ParseNote reads the note's text and signature lines by the grammar, verifying no signature.
func ParseNote(note string) (*SignedNote, error) {
	if utf8.RuneCountInString(note) > maxNoteBytes || len(note) > maxNoteBytes {
		return nil, noteError("NOTE_TOO_LARGE", "the note is over %d bytes", maxNoteBytes)
	}
	if !utf8.ValidString(note) {
		return nil, noteError("NOTE_MALFORMED", "the note is not valid UTF-8")
	}
	if strings.HasPrefix(note, "\ufeff") {
		return nil, noteError("NOTE_MALFORMED", "the note starts with a byte order mark")
	}
	if hasControl(note, true) {
		return nil, noteError("NOTE_MALFORMED", "the note holds a control character other than newline (a CR, a tab?)")
	}
	if !strings.HasSuffix(note, "\n") {
		return nil, noteError("NOTE_MALFORMED", "the note does not end with a newline")
	}
	split := strings.LastIndex(note, "\n\n")
	if split < 0 {
		return nil, noteError("NOTE_MALFORMED", "the note has no blank line before its signatures")
	}
	body, block := note[:split+1], note[split+2:]
	if strings.Trim(body, "\n") == "" || strings.HasPrefix(body, "\n") || strings.Contains(body, "\n\n") {
		return nil, noteError("NOTE_MALFORMED", "the note text is empty or holds a blank line")
	}
	if block == "" {
		return nil, noteError("NOTE_MALFORMED", "the note has no signature lines")
	}
	lines := strings.Split(block[:len(block)-1], "\n")
	if len(lines) > maxNoteSigs {
		return nil, noteError("NOTE_TOO_MANY_SIGNATURES", "the note carries %d signature lines; at most %d",
			len(lines), maxNoteSigs)
	}
	parsed := &SignedNote{Text: body}
	for i, line := range lines {
		signature, err := parseSignatureLine(i+1, line)
		if err != nil {
			return nil, err
		}
		parsed.Signatures = append(parsed.Signatures, signature)
	}
	return parsed, nil
}

func parseSignatureLine(number int, line string) (NoteSignature, error) {
	malformed := func(format string, args ...any) (NoteSignature, error) {
		return NoteSignature{}, noteError("NOTE_SIGNATURE_MALFORMED", format, args...)
	}
	rest, ok := strings.CutPrefix(line, noteSignatureTag)
	parts := strings.Split(rest, " ")
	if !ok || len(parts) != 2 || parts[0] == "" || !base64Chars(parts[1]) {
		return malformed("signature line %d is not '\u2014 <key name> <base64>'", number)
	}
	if !validKeyName(parts[0]) {
		return malformed("signature line %d has an invalid key name", number)
	}
	raw, ok := decodeCanonicalBase64(parts[1])
	if !ok {
		return malformed("signature line %d is not standard padded base64", number)
	}
	if len(raw) <= noteKeyIDBytes || len(raw) > maxNoteSigBytes {
		return malformed("signature line %d decodes to %d bytes; a key id and 1 to %d signature bytes expected",
			number, len(raw), maxNoteSigBytes-noteKeyIDBytes)
	}
	return NoteSignature{Name: parts[0], KeyID: raw[:noteKeyIDBytes], Signature: raw[noteKeyIDBytes:]}, nil
}

// OpenNote parses the note and verifies it against the known keys; the error is an *Error with a NOTE_* reason.
func OpenNote(note string, verifiers []NoteVerifier) (*SignedNote, error) {
	known := map[string]NoteVerifier{}
	for _, candidate := range verifiers {
		pair := candidate.Name + "\x00" + string(candidate.KeyID)
		if found, ok := known[pair]; ok && !bytes.Equal(found.PublicKey, candidate.PublicKey) {
			// Two keys under one name and id: whoever configured them made a mistake we cannot resolve.
			return nil, noteError("NOTE_VERIFIER_AMBIGUOUS", "two verifier keys share the name %q and key id %x",
				candidate.Name, candidate.KeyID)
		}
		known[pair] = candidate
	}
	parsed, err := ParseNote(note)
	if err != nil {
		return nil, err
	}
	message := []byte(parsed.Text)
	for number, signature := range parsed.Signatures {
		verifier, ok := known[signature.Name+"\x00"+string(signature.KeyID)]
		if !ok {
			continue
		}
		// Every line from a known key is checked, repeats included: a bad one refuses the note.
		if !verifySignature(verifier.PublicKey, signature.Signature, message) {
			return nil, noteError("NOTE_SIGNATURE_INVALID", "signature line %d by known key %s+%x does not verify",
				number+1, signature.Name, signature.KeyID)
		}
		if !containsString(parsed.VerifiedBy, verifier.Name) {
			parsed.VerifiedBy = append(parsed.VerifiedBy, verifier.Name)
		}
	}
	if len(parsed.VerifiedBy) == 0 {
		return nil, noteError("NOTE_UNVERIFIED", "no known key signed the note")
	}
	return parsed, nil
}

// FormatVKey writes a verifier key.
func FormatVKey(name string, keyID []byte, signatureType byte, public []byte) string {
	return fmt.Sprintf("%s+%x+%s", name, keyID, base64.StdEncoding.EncodeToString(append([]byte{signatureType}, public...)))
}
