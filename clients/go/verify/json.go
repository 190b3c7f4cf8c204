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
	// ijson: classify refusals as the reference's I-JSON reader does (ijsonError), which finds a duplicate member
	// when its object closes and a lone surrogate only after the whole document parsed.
	ijson     bool
	problem   string
	surrogate bool
}

// ijsonError is a refusal with the reference's problem: ENCODING, SYNTAX, DUPLICATE_MEMBER or NUMBER.
type ijsonError struct {
	problem string
	message string
}

func (e *ijsonError) Error() string { return e.message }

// parseIJSON decodes one document strictly, as parseJSON, and says which rule a refused one breaks.
func parseIJSON(data []byte) (any, error) {
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		return nil, &ijsonError{"ENCODING", "the JSON starts with a byte order mark"}
	}
	if !utf8.Valid(data) {
		return nil, &ijsonError{"ENCODING", "the JSON is not UTF-8"}
	}
	p := &jsonParser{data: data, ijson: true}
	p.space()
	value, err := p.value()
	if err == nil {
		p.space()
		if p.pos != len(p.data) {
			err = p.fail("extra data")
		}
	}
	if err != nil {
		problem := p.problem
		if problem == "" {
			problem = "SYNTAX"
		}
		return nil, &ijsonError{problem, err.Error()}
	}
	if p.surrogate {
		return nil, &ijsonError{"ENCODING", "a string holds an unpaired surrogate escape"}
	}
	return value, nil
}

// refuse records the problem of a refusal in ijson mode.
func (p *jsonParser) refuse(problem, what string) error {
	p.problem = problem
	return p.fail(what)
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
		if p.ijson {
			for _, constant := range []string{"NaN", "Infinity"} {
				if len(p.data)-p.pos >= len(constant) && string(p.data[p.pos:p.pos+len(constant)]) == constant {
					return nil, p.refuse("NUMBER", constant+" is not a JSON number")
				}
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
	duplicate := ""
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
		if _, seen := result[name]; seen && !p.ijson {
			return nil, p.fail(fmt.Sprintf("duplicate member name %q", name))
		} else if seen && duplicate == "" {
			duplicate = name
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
			if duplicate != "" {
				return nil, p.refuse("DUPLICATE_MEMBER", fmt.Sprintf("member %.60q appears twice in one object", duplicate))
			}
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
		return p.loneSurrogate()
	}
	low, ok := hexValue(p.data[p.pos+2 : p.pos+6])
	if !ok || low < 0xDC00 || low > 0xDFFF {
		return p.loneSurrogate()
	}
	p.pos += 6
	return utf16.DecodeRune(r, low), nil
}

// loneSurrogate refuses a lone surrogate, or in ijson mode notes it for after the parse (the escape that
// follows, if any, is read on its own).
func (p *jsonParser) loneSurrogate() (rune, error) {
	if !p.ijson {
		return 0, p.fail("lone surrogate")
	}
	p.surrogate = true
	return utf8.RuneError, nil
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
		if p.ijson && len(p.data)-p.pos >= 8 && string(p.data[p.pos:p.pos+8]) == "Infinity" {
			return nil, p.refuse("NUMBER", "-Infinity is not a JSON number")
		}
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.fail("bad number")
	}
	// I-JSON as the protocol profiles it: integers only, within +-(2^53 - 1), wherever they appear.
	if p.pos < len(p.data) && (p.data[p.pos] == '.' || p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		if p.ijson && !p.fractionOrExponent() {
			return nil, p.fail("a number followed by " + string(p.data[p.pos]))
		}
		return nil, p.refuse("NUMBER", "a number with a fraction or exponent")
	}
	text := jsonNumber(p.data[start:p.pos])
	if _, ok := integerIn(text, -maxSafeInteger, maxSafeInteger); !ok {
		return nil, p.refuse("NUMBER", "an integer outside +-(2^53 - 1)")
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

// fractionOrExponent reports whether a fraction (".digits") or an exponent ("e[+-]digits") follows: a "." or "e"
// without digits ends the number there, and what follows is a syntax error, not a number the profile refuses.
func (p *jsonParser) fractionOrExponent() bool {
	at := p.pos
	digitAt := func(i int) bool { return i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' }
	if p.data[at] == '.' {
		return digitAt(at + 1)
	}
	if at+1 < len(p.data) && (p.data[at+1] == '+' || p.data[at+1] == '-') {
		at++
	}
	return digitAt(at + 1)
}
