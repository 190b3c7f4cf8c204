package verify

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// The protocol's one base64 rule (docs/protocol.md, "The strict grammar"): the standard alphabet with its '='
// padding, no whitespace or other character, and canonical (the unused bits of the last character are zero). A
// DSSE envelope's payload and sig may also use the URL-safe alphabet (never both in one text) and may leave the
// padding out; padding that is present must be exactly right. Go's decoder is not used on raw input: it skips
// CR and LF even in Strict mode.

func decodeProtocolBase64(value any, dsse bool) ([]byte, error) {
	text, ok := value.(string)
	if !ok {
		return nil, fmt.Errorf("base64 must be a string")
	}
	body := strings.TrimRight(text, "=")
	padding := len(text) - len(body)
	standard, urlSafe, mixed := true, true, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		alnum := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		standard = standard && (alnum || c == '+' || c == '/')
		urlSafe = urlSafe && (alnum || c == '-' || c == '_')
		mixed = mixed || !(alnum || c == '+' || c == '/' || c == '-' || c == '_')
	}
	switch {
	case standard:
	case dsse && urlSafe:
		body = strings.NewReplacer("-", "+", "_", "/").Replace(body)
	case dsse && !mixed:
		return nil, fmt.Errorf("base64 mixes the standard and URL-safe alphabets")
	default:
		return nil, fmt.Errorf("base64 holds a character outside its alphabet")
	}
	if len(body)%4 == 1 {
		return nil, fmt.Errorf("base64 text cannot be one character longer than a multiple of four")
	}
	missing := (4 - len(body)%4) % 4
	if padding != missing && !(dsse && padding == 0) {
		return nil, fmt.Errorf("base64 padding is wrong: %d '=' needed, %d given", missing, padding)
	}
	// Strict refuses non-zero unused bits: the canonical encoding only.
	data, err := base64.RawStdEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("base64 is not canonical: %v", err)
	}
	return data, nil
}

// decodeEnvelopeBase64 reads a DSSE payload or signature.
func decodeEnvelopeBase64(value any, what string) ([]byte, error) {
	data, err := decodeProtocolBase64(value, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	return data, nil
}

// decodeStdBase64 reads standard padded base64 (a trust root's keys).
func decodeStdBase64(value any, what string) ([]byte, error) {
	data, err := decodeProtocolBase64(value, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	return data, nil
}

// decodeCanonicalBase64 reads base64 as the C2SP text formats carry it: standard, padded, canonical.
func decodeCanonicalBase64(text string) ([]byte, bool) {
	data, err := decodeProtocolBase64(text, false)
	return data, err == nil
}
