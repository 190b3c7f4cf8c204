package conformance

import (
	"bytes"
	"encoding/json"
	"math/big"
	"unicode/utf8"
)

// Reading a request line as the Python reference reads it (docs/conformance.md, "The protocol"): JSON in UTF-8
// whose strings are Unicode text, member names matched exactly. encoding/json alone would differ: it turns bytes
// that are not UTF-8 and escaped lone surrogates into U+FFFD, and it matches struct fields ignoring case, so the
// verifier would be handed another input than the line names.

// maxRequestInteger is the largest chunk size, threshold, limit, use count or age a request may give: 2^53 - 1, the
// largest integer every JSON reader holds exactly.
const maxRequestInteger = 1<<53 - 1

// unicodeText reports whether line is UTF-8 and every \u escape in it that names a surrogate is half of a pair.
// Outside strings JSON has no backslash, so the escapes are found by reading the line left to right.
func unicodeText(line []byte) bool {
	if !utf8.Valid(line) {
		return false
	}
	for i := 0; i < len(line); i++ {
		if line[i] != '\\' {
			continue
		}
		if i+1 >= len(line) || line[i+1] != 'u' {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		unit, ok := hexUnit(line, i+2)
		if !ok {
			return true // not JSON: the decoder refuses it
		}
		i += 5
		switch {
		case unit >= 0xDC00 && unit <= 0xDFFF:
			return false // a low surrogate with no high one before it
		case unit >= 0xD800 && unit <= 0xDBFF:
			if i+2 >= len(line) || line[i+1] != '\\' || line[i+2] != 'u' {
				return false
			}
			low, ok := hexUnit(line, i+3)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hexUnit reads the four hex digits at line[at:].
func hexUnit(line []byte, at int) (rune, bool) {
	if at+4 > len(line) {
		return 0, false
	}
	var unit rune
	for _, c := range line[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			unit = unit<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			unit = unit<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			unit = unit<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return unit, true
}

// object decodes raw as a JSON object, its members by their exact names; nil if raw is not an object.
func object(raw json.RawMessage) map[string]json.RawMessage {
	var members map[string]json.RawMessage
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return nil
	}
	return members
}

// stringMember is members[name] if it is there and a JSON string.
func stringMember(members map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := members[name]
	var text string
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
		return "", false
	}
	return text, true
}

// chunkMember is the request's chunk: 0 when absent, else an integer from 0 to maxRequestInteger written without a
// fraction or exponent (null, 97.0 and "97" are not chunks).
func chunkMember(members map[string]json.RawMessage) (int, bool) {
	raw, ok := members["chunk"]
	if !ok {
		return 0, true
	}
	var number json.Number
	if json.Unmarshal(raw, &number) != nil || len(raw) == 0 || raw[0] == '"' {
		return 0, false
	}
	value, exact := new(big.Int).SetString(string(number), 10)
	if !exact || value.Sign() < 0 || value.Cmp(big.NewInt(maxRequestInteger)) > 0 {
		return 0, false
	}
	return int(value.Int64()), true
}

// readRequest reads one request line: its id ("" when it cannot be read), the vector, the chunk, and whether
// the line is a request this implementation can run (false: BAD_REQUEST).
func readRequest(line []byte) (id string, vector Vector, chunk int, ok bool) {
	if !unicodeText(line) {
		return "", Vector{}, 0, false
	}
	request := object(line)
	id, hasID := stringMember(request, "id")
	if request == nil || !hasID {
		return "", Vector{}, 0, false
	}
	members := object(request["vector"])
	kind, hasKind := stringMember(members, "kind")
	inputs := object(members["inputs"])
	chunk, chunkOK := chunkMember(request)
	if members == nil || !hasKind || inputs == nil || !chunkOK {
		return id, Vector{}, 0, false
	}
	name, _ := stringMember(members, "name")
	return id, Vector{Name: name, Kind: kind, Inputs: members["inputs"]}, chunk, true
}
