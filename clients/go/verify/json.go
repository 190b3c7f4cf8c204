package verify

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The protocol's JSON (docs/protocol.md, "One strict grammar"): I-JSON (RFC 7493) in UTF-8 without a byte order
// mark; no duplicate member names; no lone surrogates; no NaN or Infinity; member names matched exactly. It is
// decoded here by hand rather than through encoding/json, whose struct decoding matches names case-insensitively
// and lets a later duplicate overwrite an earlier one.

// object is a JSON object; its members are looked up by their exact names.
type object map[string]any

// number is a JSON number as written; integers are read from the text so nothing is rounded.
type jsonNumber string

const maxDepth = 512

type jsonParser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON decodes one JSON document strictly.
func parseJSON(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("not UTF-8")
	}
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		return nil, fmt.Errorf("starts with a byte order mark")
	}
	p := &jsonParser{data: data}
	p.space()
	value, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, fmt.Errorf("extra data at byte %d", p.pos)
	}
	return value, nil
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) fail(what string) error {
	return fmt.Errorf("%s at byte %d", what, p.pos)
}

func (p *jsonParser) value() (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		for _, lit := range []struct {
			text  string
			value any
		}{{"true", true}, {"false", false}, {"null", nil}} {
			if len(p.data)-p.pos >= len(lit.text) && string(p.data[p.pos:p.pos+len(lit.text)]) == lit.text {
				p.pos += len(lit.text)
				return lit.value, nil
			}
		}
		return nil, p.fail("unexpected character")
	}
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail("nested too deeply")
	}
	return nil
}

func (p *jsonParser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // {
	result := object{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return result, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("expected a member name")
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		if _, seen := result[name]; seen {
			return nil, p.fail(fmt.Sprintf("duplicate member name %q", name))
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		p.space()
		value, err := p.value()
		if err != nil {
			return nil, err
		}
		result[name] = value
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == '}' {
			p.pos++
			return result, nil
		}
		return nil, p.fail("expected ',' or '}'")
	}
}

func (p *jsonParser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // [
	result := []any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return result, nil
	}
	for {
		p.space()
		value, err := p.value()
		if err != nil {
			return nil, err
		}
		result = append(result, value)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == ']' {
			p.pos++
			return result, nil
		}
		return nil, p.fail("expected ',' or ']'")
	}
}

func hexValue(b []byte) (rune, bool) {
	v, err := strconv.ParseUint(string(b), 16, 16)
	return rune(v), err == nil && len(b) == 4
}

func (p *jsonParser) string() (string, error) {
	p.pos++ // "
	var out []byte
	for {
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(out), nil
		case c < 0x20:
			return "", p.fail("control character in a string")
		case c != '\\':
			out = append(out, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.data) {
			return "", p.fail("unterminated escape")
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := p.escapedRune()
			if err != nil {
				return "", err
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.fail("bad escape")
		}
	}
}

// escapedRune reads the hex of a \u escape (the "\u" already read), joining a surrogate pair; a lone surrogate
// is refused (it has no UTF-8 form).
func (p *jsonParser) escapedRune() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.fail("short \\u escape")
	}
	r, ok := hexValue(p.data[p.pos : p.pos+4])
	if !ok {
		return 0, p.fail("bad \\u escape")
	}
	p.pos += 4
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	if r >= 0xDC00 || p.pos+6 > len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
		return 0, p.fail("lone surrogate")
	}
	low, ok := hexValue(p.data[p.pos+2 : p.pos+6])
	if !ok || low < 0xDC00 || low > 0xDFFF {
		return 0, p.fail("lone surrogate")
	}
	p.pos += 6
	return utf16.DecodeRune(r, low), nil
}

func (p *jsonParser) number() (any, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.fail("bad number")
	}
	// I-JSON as the protocol profiles it: integers only, within +-(2^53 - 1), wherever they appear.
	if p.pos < len(p.data) && (p.data[p.pos] == '.' || p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		return nil, p.fail("a number with a fraction or exponent")
	}
	text := jsonNumber(p.data[start:p.pos])
	if _, ok := integerIn(text, -maxSafeInteger, maxSafeInteger); !ok {
		return nil, p.fail("an integer outside +-(2^53 - 1)")
	}
	return text, nil
}

// integerIn reports whether value is a JSON integer (no fraction, no exponent) within [low, high], and its value.
func integerIn(value any, low, high int64) (int64, bool) {
	text, ok := value.(jsonNumber)
	if !ok {
		return 0, false
	}
	for i, c := range []byte(text) {
		if !(c >= '0' && c <= '9') && !(i == 0 && c == '-') {
			return 0, false
		}
	}
	if len(text) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil || n < low || n > high {
		return 0, false
	}
	return n, true
}

// maxSafeInteger is 2^53 - 1, the largest integer every JSON implementation holds exactly.
const maxSafeInteger = 1<<53 - 1
