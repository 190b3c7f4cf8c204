package verify

import (
	"strings"
)

// SPDX license expressions as terms carry them, checked as the reference checks them (license-expression's SPDX
// licensing, strict): ids known to SPDX (spdx_table.go) or LicenseRef-<idstring>, and the canonical form its
// renderer writes: ids spelled as in the SPDX list, operators in upper case, single spaces, and parentheses
// exactly around compound expressions nested in another.

type licenseNode struct {
	operator string // "", "WITH", "AND" or "OR"
	key      string // a symbol's id, canonical when known
	args     []*licenseNode
}

func (n *licenseNode) render(nested bool) string {
	switch n.operator {
	case "":
		return n.key
	case "WITH":
		return n.args[0].key + " WITH " + n.args[1].key
	}
	parts := make([]string, len(n.args))
	for i, arg := range n.args {
		parts[i] = arg.render(true)
	}
	text := strings.Join(parts, " "+n.operator+" ")
	if nested {
		return "(" + text + ")"
	}
	return text
}

func (n *licenseNode) symbols(into *[]string) {
	if n.operator == "" {
		*into = append(*into, n.key)
		return
	}
	for _, arg := range n.args {
		arg.symbols(into)
	}
}

type licenseParser struct {
	tokens []string
	pos    int
}

func tokenizeLicense(text string) []string {
	var tokens []string
	word := strings.Builder{}
	flush := func() {
		if word.Len() > 0 {
			tokens = append(tokens, word.String())
			word.Reset()
		}
	}
	for _, c := range text {
		switch {
		case c == '(' || c == ')':
			flush()
			tokens = append(tokens, string(c))
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			flush()
		default:
			word.WriteRune(c)
		}
	}
	flush()
	return tokens
}

func licenseOperator(token string) string {
	switch upper := strings.ToUpper(token); upper {
	case "AND", "OR", "WITH":
		return upper
	}
	return ""
}

func (p *licenseParser) peek() string {
	if p.pos < len(p.tokens) {
		return p.tokens[p.pos]
	}
	return ""
}

func (p *licenseParser) chain(operator string, operand func() (*licenseNode, bool)) (*licenseNode, bool) {
	first, ok := operand()
	if !ok {
		return nil, false
	}
	args := []*licenseNode{first}
	for p.pos < len(p.tokens) && licenseOperator(p.peek()) == operator {
		p.pos++
		next, ok := operand()
		if !ok {
			return nil, false
		}
		args = append(args, next)
	}
	if len(args) == 1 {
		return first, true
	}
	return &licenseNode{operator: operator, args: args}, true
}

func (p *licenseParser) or() (*licenseNode, bool) { return p.chain("OR", p.and) }

func (p *licenseParser) and() (*licenseNode, bool) { return p.chain("AND", p.with) }

// symbol reads one id: a known one by its canonical spelling, another as written.
func (p *licenseParser) symbol() (*licenseNode, bool) {
	token := p.peek()
	if token == "" || token == "(" || token == ")" || licenseOperator(token) != "" || !licenseKeyChars.MatchString(token) {
		return nil, false
	}
	p.pos++
	if key, ok := spdxNames[strings.ToLower(token)]; ok {
		return &licenseNode{key: key}, true
	}
	return &licenseNode{key: token}, true
}

func (p *licenseParser) with() (*licenseNode, bool) {
	if p.peek() == "(" {
		p.pos++
		inner, ok := p.or()
		if !ok || p.peek() != ")" {
			return nil, false
		}
		p.pos++
		return inner, true
	}
	license, ok := p.symbol()
	if !ok {
		return nil, false
	}
	if licenseOperator(p.peek()) != "WITH" {
		// An exception only ever follows WITH.
		return license, !spdxExceptions[license.key]
	}
	p.pos++
	exception, ok := p.symbol()
	if !ok || spdxExceptions[license.key] || !spdxExceptions[exception.key] {
		return nil, false
	}
	return &licenseNode{operator: "WITH", args: []*licenseNode{license, exception}}, true
}

// CheckLicenseExpression returns text if it is an SPDX expression of known ids in canonical form; the error's
// reason is TERMS_LICENSE_INVALID or TERMS_LICENSE_UNKNOWN.
func CheckLicenseExpression(value any) (string, error) {
	text, ok := value.(string)
	ascii := true
	for i := 0; i < len(text); i++ {
		ascii = ascii && text[i] < 0x80
	}
	if !ok || len(text) < 1 || len(text) > maxLicenseChars || !ascii {
		return "", fail("TERMS_LICENSE_INVALID",
			"license must be an SPDX license expression of 1 to %d ASCII characters", maxLicenseChars)
	}
	p := &licenseParser{tokens: tokenizeLicense(text)}
	if len(p.tokens) == 0 {
		return "", fail("TERMS_LICENSE_INVALID", "license is empty")
	}
	tree, ok := p.or()
	if !ok || p.pos != len(p.tokens) {
		return "", fail("TERMS_LICENSE_INVALID", "license %.80q is not an SPDX expression", text)
	}
	var symbols []string
	tree.symbols(&symbols)
	for _, key := range symbols {
		if _, known := spdxKnown[key]; !known && !licenseRef.MatchString(key) {
			return "", fail("TERMS_LICENSE_UNKNOWN",
				"%.80q is not an SPDX license id; write a custom license as LicenseRef-<id>", key)
		}
	}
	if rendered := tree.render(false); rendered != text {
		return "", fail("TERMS_LICENSE_INVALID", "license must be written in canonical SPDX form: %q", rendered)
	}
	return text, nil
}

// spdxKnown is the set of canonical ids.
var spdxKnown = func() map[string]struct{} {
	known := map[string]struct{}{}
	for _, key := range spdxNames {
		known[key] = struct{}{}
	}
	return known
}()
