package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// Inputs the vectors do not cover, where verifiers in different languages were found to disagree: each must be
// refused by the strict grammar (docs/protocol.md), with the reason of the step that reads it.

var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func testKey(t *testing.T) (ed25519.PrivateKey, Policy) {
	seed := sha256.Sum256([]byte("memos-vector-key-1"))
	private := ed25519.NewKeyFromSeed(seed[:])
	public := private.Public().(ed25519.PublicKey)
	if KeyID(public) != "5d75ea20ac6926828bcd8d75f382af7830aaaa3b88b7c91ebcd40a1a97efa864" {
		t.Fatalf("key id %s differs from testdata/vectors/README.md", KeyID(public))
	}
	return private, Policy{Keys: NewKeySet(TrustedKey{KeyID: KeyID(public), PublicKey: public}), Threshold: 1}
}

// envelopeText writes a signed statement envelope whose JSON text is made by layout from the three base64 values.
func envelopeText(t *testing.T, layout string) (string, Policy) {
	private, policy := testKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	sig := ed25519.Sign(private, PAE(StatementPayloadType, payload))
	r := strings.NewReplacer("PAYLOAD", base64.StdEncoding.EncodeToString(payload), "SIG", base64.StdEncoding.EncodeToString(sig),
		"TYPE", StatementPayloadType)
	return r.Replace(layout), policy
}

const goodLayout = `{"payload":"PAYLOAD","payloadType":"TYPE","signatures":[{"keyid":"","sig":"SIG"}]}`

func TestEnvelopeStrictJSON(t *testing.T) {
	if text, policy := envelopeText(t, goodLayout); true {
		if _, err := VerifyStatementEnvelope([]byte(text), policy, testNow); err != nil {
			t.Fatalf("the well-formed envelope is refused: %v", err)
		}
	}
	cases := map[string]string{
		"byte order mark":           "\ufeff" + goodLayout,
		"duplicate member":          `{"payload":"PAYLOAD","payloadType":"TYPE","payloadType":"TYPE","signatures":[{"sig":"SIG"}]}`,
		"member name in capitals":   `{"payload":"PAYLOAD","PAYLOADTYPE":"TYPE","signatures":[{"sig":"SIG"}]}`,
		"NaN among unknown members": `{"x":NaN,"payload":"PAYLOAD","payloadType":"TYPE","signatures":[{"sig":"SIG"}]}`,
		"lone surrogate":            `{"x":"\ud800","payload":"PAYLOAD","payloadType":"TYPE","signatures":[{"sig":"SIG"}]}`,
		"CR LF inside base64":       `{"payload":"PAYLOAD","payloadType":"TYPE","signatures":[{"sig":"SIG\r\n"}]}`,
		"trailing data":             goodLayout + `{}`,
		"keyid null":                `{"payload":"PAYLOAD","payloadType":"TYPE","signatures":[{"keyid":null,"sig":"SIG"}]}`,
	}
	for name, layout := range cases {
		text, policy := envelopeText(t, layout)
		_, err := VerifyStatementEnvelope([]byte(text), policy, testNow)
		if e, ok := err.(*Error); !ok || e.Reason != "BUNDLE_ENVELOPE_MALFORMED" {
			t.Errorf("%s: got %v, want BUNDLE_ENVELOPE_MALFORMED", name, err)
		}
	}
	// UTF-16 is not UTF-8: the same document in UTF-16LE is refused.
	text, policy := envelopeText(t, goodLayout)
	utf16 := make([]byte, 0, 2*len(text))
	for _, b := range []byte(text) {
		utf16 = append(utf16, b, 0)
	}
	if _, err := VerifyStatementEnvelope(utf16, policy, testNow); err == nil || err.(*Error).Reason != "BUNDLE_ENVELOPE_MALFORMED" {
		t.Errorf("UTF-16: got %v", err)
	}
}

func TestIntegersAndTimes(t *testing.T) {
	for _, text := range []string{"1.0", "1e0", "9007199254740992", "-9007199254740992", "-1", "true", `"1"`} {
		value, err := parseJSON([]byte(text))
		if err != nil {
			continue
		}
		if _, ok := integerIn(value, 1, maxSafeInteger); ok {
			t.Errorf("%s read as an integer in [1, 2^53-1]", text)
		}
	}
	if value, _ := parseJSON([]byte("9007199254740991")); value != nil {
		if n, ok := integerIn(value, 1, maxSafeInteger); !ok || n != maxSafeInteger {
			t.Errorf("2^53-1 not read exactly: %d %v", n, ok)
		}
	}
	for _, text := range []string{"2026-06-01T00:00Z", "2026-06-01T00Z", "20260601T000000Z", "2026-06-01 00:00:00Z",
		"2026-06-01T24:00:00Z", "2026-06-01t00:00:00z", "2026-06-01T00:00:00Z\n", "0000-12-31T23:59:59Z"} {
		if _, err := ParseTime(text); err == nil {
			t.Errorf("time %q accepted", text)
		}
	}
	for _, text := range []string{"2026-06-01T00:00:00Z", "2026-06-01T02:00:00.123456789+02:00", "9999-12-31T23:59:59Z"} {
		if _, err := ParseTime(text); err != nil {
			t.Errorf("time %q refused: %v", text, err)
		}
	}
}

func TestPatternsMatchWholeStrings(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, item := range []string{
		`{"name":"cubes/x.pb\n","digest":{"sha256":"` + hex + `"},"annotations":{"size":1}}`,
		`{"name":"cubes/x.pb","digest":{"sha256":"` + hex + `\n"},"annotations":{"size":1}}`,
		`{"name":"cubes/x.pb","digest":{"sha256":"` + hex + `"},"annotations":{"size":1.0}}`,
	} {
		statement := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://memos-grpc.dev/MemCubeBundle/v1",` +
			`"predicate":{},"subject":[` + item + `]}`
		if _, _, err := parseStatement([]byte(statement), 10); err == nil || err.(*Error).Reason != "BUNDLE_STATEMENT_INVALID" {
			t.Errorf("%s: got %v, want BUNDLE_STATEMENT_INVALID", item, err)
		}
	}
}
