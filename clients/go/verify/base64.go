package verify

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// decodeEnvelopeBase64 reads a DSSE payload or signature: standard or URL-safe base64 (not both), padded or not.
// Characters outside the alphabet (whitespace included: Go's decoder skips CR and LF) are refused before
// decoding. Padding follows the reference implementation: none is needed; after a whole group of four any
// number of '=' may follow, after two data characters at most two, after three at most one.
func decodeEnvelopeBase64(value any, what string) ([]byte, error) {
	text, ok := value.(string)
	if !ok {
		return nil, fmt.Errorf("%s must be a base64 string", what)
	}
	if strings.ContainsAny(text, "-_") {
		if strings.ContainsAny(text, "+/") {
			return nil, fmt.Errorf("%s mixes standard and URL-safe base64 alphabets", what)
		}
		text = strings.NewReplacer("-", "+", "_", "/").Replace(text)
	}
	return decodeLooseBase64(text, what)
}

func decodeLooseBase64(text, what string) ([]byte, error) {
	data := strings.TrimRight(text, "=")
	pad := len(text) - len(data)
	for i := 0; i < len(data); i++ {
		if !isBase64Char(data[i]) {
			return nil, fmt.Errorf("%s is not valid base64", what)
		}
	}
	switch len(data) % 4 {
	case 0:
		if len(data) == 0 && pad > 0 {
			return nil, fmt.Errorf("%s is only padding", what)
		}
	case 1:
		return nil, fmt.Errorf("%s is not valid base64 (length)", what)
	case 2:
		if pad > 2 {
			return nil, fmt.Errorf("%s has too much padding", what)
		}
	case 3:
		if pad > 1 {
			return nil, fmt.Errorf("%s has too much padding", what)
		}
	}
	// Unused low bits of the last character are ignored, as by the reference (base64.StdEncoding is not Strict).
	return base64.RawStdEncoding.DecodeString(data)
}

func isBase64Char(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// decodeStdBase64 reads standard base64 as a trust root's keys carry it (the standard alphabet only).
func decodeStdBase64(value any, what string) ([]byte, error) {
	text, ok := value.(string)
	if !ok {
		return nil, fmt.Errorf("%s must be a base64 string", what)
	}
	// Padding is required to complete the last group, as the reference's decoder requires it.
	if len(text)%4 != 0 {
		return nil, fmt.Errorf("%s is not padded base64", what)
	}
	return decodeLooseBase64(text, what)
}

// decodeCanonicalBase64 reads base64 as the C2SP text formats carry it: standard, padded, no whitespace, and
// canonical (it re-encodes to the same text).
func decodeCanonicalBase64(text string) ([]byte, bool) {
	data, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || base64.StdEncoding.EncodeToString(data) != text {
		return nil, false
	}
	return data, true
}
