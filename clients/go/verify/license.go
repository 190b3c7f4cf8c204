package verify

import (
	"regexp"
	"sort"
	"strings"
)

// SPDX license expressions as terms carry them, read as the reference reads them: docs/marketplace.md says a
// license is "parsed with license-expression" (its SPDX licensing, strict), so this is that library's pipeline step
// by step, quirks included, because its verdicts on malformed text are the protocol's:
//
//  1. the text is cut into words, runs of whitespace and parentheses, lower-cased;
//  2. an Aho-Corasick automaton over words finds the known phrases (operators, parentheses, SPDX ids and aliases,
//     an alias spanning words: "GPL 2.0"), whitespace runs skipped between a phrase's words; a match's start is
//     counted back from its end by the phrase's own length, so it is off when the text spaces it otherwise;
//  3. overlapping matches are filtered (the longest, then the leftmost, wins), and each run of unmatched words
//     becomes one unknown symbol, its words joined by single spaces (an error if it holds a character a license
//     key cannot);
//  4. "<license> WITH <exception>" triples become one symbol (strict: an exception only after WITH, a license only
//     before it), and a WITH anywhere else is an error;
//  5. boolean.py's stack parser builds the tree: AND binds tighter than OR, a parenthesis keeps only the first
//     expression inside it, two symbols or two operators in a row are errors;
//  6. every symbol must be known (or LicenseRef-<idstring>): TERMS_LICENSE_UNKNOWN; then the text must equal the
//     tree's rendering: TERMS_LICENSE_INVALID. An error in steps 1 to 5 is TERMS_LICENSE_INVALID.

// licenseNode is a symbol (operator ""), a license WITH an exception, or an AND or OR of two or more nodes.
type licenseNode struct {
	operator  string // "", "WITH", "AND" or "OR"
	key       string // a symbol's id: canonical when known, else the words as written
	known     bool
	exception bool
	args      []*licenseNode
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

func (n *licenseNode) symbols(into *[]*licenseNode) {
	if n.operator == "" {
		*into = append(*into, n)
		return
	}
	for _, arg := range n.args {
		arg.symbols(into)
	}
}

// The kinds of a license token.
const (
	licenseSymbolToken = iota
	licenseUnmatched
	licenseAnd
	licenseOr
	licenseWith
	licenseOpen
	licenseClose
)

type licenseToken struct {
	start, end int // inclusive, in the text
	text       string
	kind       int
	symbol     *licenseNode // a symbol token's symbol
}

// licensePhrase is what the automaton yields for a known phrase: its length as added (single spaces), its kind and
// for an id or alias the symbol.
type licensePhrase struct {
	length int
	kind   int
	symbol *licenseNode
}

type licenseTrieNode struct {
	children map[string]*licenseTrieNode
	fail     *licenseTrieNode
	output   *licensePhrase
}

// licenseWhitespace is what the reference's tokenizer splits on in ASCII text: Python's \s, which includes the
// information separators 0x1c-0x1f.
func licenseWhitespace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)
}

// licensePieces cuts lower-cased text into words, whitespace runs and single parentheses.
func licensePieces(text string) []string {
	var pieces []string
	for i := 0; i < len(text); {
		j := i + 1
		switch c := text[i]; {
		case c == '(' || c == ')':
		case licenseWhitespace(c):
			for j < len(text) && licenseWhitespace(text[j]) {
				j++
			}
		default:
			for j < len(text) && !licenseWhitespace(text[j]) && text[j] != '(' && text[j] != ')' {
				j++
			}
		}
		pieces = append(pieces, strings.ToLower(text[i:j]))
		i = j
	}
	return pieces
}

func licenseWords(phrase string) []string {
	var words []string
	for _, piece := range licensePieces(phrase) {
		if !licenseWhitespace(piece[0]) {
			words = append(words, piece)
		}
	}
	return words
}

// licenseAutomaton is built once from the operators, parentheses and spdx_table.go.
var licenseAutomaton = func() *licenseTrieNode {
	root := &licenseTrieNode{children: map[string]*licenseTrieNode{}}
	known := map[string]bool{}
	add := func(phrase string, output *licensePhrase) {
		node := root
		for _, word := range licenseWords(phrase) {
			known[word] = true
			child, ok := node.children[word]
			if !ok {
				child = &licenseTrieNode{children: map[string]*licenseTrieNode{}}
				node.children[word] = child
			}
			node = child
		}
		node.output = output
	}
	for phrase, kind := range map[string]int{"and": licenseAnd, "or": licenseOr, "with": licenseWith, "(": licenseOpen, ")": licenseClose} {
		add(phrase, &licensePhrase{length: len(phrase), kind: kind})
	}
	for name, key := range spdxNames {
		spaced := strings.Join(strings.Fields(name), " ")
		symbol := &licenseNode{key: key, known: true, exception: spdxExceptions[key]}
		add(name, &licensePhrase{length: len(spaced), kind: licenseSymbolToken, symbol: symbol})
	}
	// Failure links, breadth first; a word no phrase starts with leads the root back to itself.
	var queue []*licenseTrieNode
	for word := range known {
		if child, ok := root.children[word]; ok {
			child.fail = root
			queue = append(queue, child)
		} else {
			root.children[word] = root
		}
	}
	for len(queue) > 0 {
		current := queue[0]
		queue = queue[1:]
		for word, node := range current.children {
			queue = append(queue, node)
			state := current.fail
			for state.children[word] == nil {
				state = state.fail
			}
			node.fail = state.children[word]
		}
	}
	return root
}()

// licenseMatches is the automaton's pass over the text (step 2): known phrases and unmatched words, by end.
func licenseMatches(text string) []licenseToken {
	root := licenseAutomaton
	state := root
	var tokens []licenseToken
	end := -1
	for _, piece := range licensePieces(text) {
		end += len(piece)
		if licenseWhitespace(piece[0]) {
			continue
		}
		start := end - len(piece) + 1
		if root.children[piece] == nil {
			state = root
			tokens = append(tokens, licenseToken{start: start, end: end, text: text[start : end+1], kind: licenseUnmatched})
			continue
		}
		for state.children[piece] == nil {
			state = state.fail
		}
		state = state.children[piece]
		yielded := false
		for match := state; match != nil; match = match.fail {
			if match.output != nil {
				from := end - match.output.length + 1
				tokens = append(tokens, licenseToken{start: from, end: end, text: pythonSlice(text, from, end+1),
					kind: match.output.kind, symbol: match.output.symbol})
				yielded = true
			}
		}
		if !yielded {
			tokens = append(tokens, licenseToken{start: start, end: end, text: text[start : end+1], kind: licenseUnmatched})
		}
	}
	return tokens
}

// pythonSlice is text[from:to] as Python slices it (a negative start counts from the end).
func pythonSlice(text string, from, to int) string {
	if from < 0 {
		from = max(len(text)+from, 0)
	}
	if from >= to {
		return ""
	}
	return text[from:to]
}

// filterOverlapping keeps, of overlapping matches, the longest (the leftmost of equals) and drops contained ones.
func filterOverlapping(tokens []licenseToken) []licenseToken {
	sort.SliceStable(tokens, func(i, j int) bool {
		a, b := tokens[i], tokens[j]
		if a.start != b.start {
			return a.start < b.start
		}
		return a.end-a.start > b.end-b.start
	})
	for i := 0; i < len(tokens)-1; i++ {
		for j := i + 1; j < len(tokens); {
			current, next := tokens[i], tokens[j]
			if next.start > current.end {
				break
			}
			if current.start <= next.start && next.end <= current.end {
				tokens = append(tokens[:j], tokens[j+1:]...)
				continue
			}
			overlap := (current.start <= next.start && next.start <= current.end) ||
				(current.start <= next.end && next.end <= current.end)
			if overlap {
				if current.end-current.start >= next.end-next.start {
					tokens = append(tokens[:j], tokens[j+1:]...)
					continue
				}
				tokens = append(tokens[:i], tokens[i+1:]...)
				break
			}
			j++
		}
	}
	return tokens
}

// licenseKey is the reference's check of a key it does not know: letters, digits, _ - : . + and whitespace.
var licenseKey = regexp.MustCompile(`^[-:A-Za-z0-9_.+ \t\n\v\f\r\x1c-\x1f]+$`)

// mergeUnknown turns each run of unmatched words into one unknown symbol (step 3).
func mergeUnknown(tokens []licenseToken) ([]licenseToken, bool) {
	var out, run []licenseToken
	flush := func() bool {
		if len(run) == 0 {
			return true
		}
		words := make([]string, len(run))
		for i, t := range run {
			words[i] = t.text
		}
		key := strings.Join(words, " ")
		if !licenseKey.MatchString(key) {
			return false
		}
		key = strings.Join(strings.FieldsFunc(key, func(r rune) bool { return r < 0x80 && licenseWhitespace(byte(r)) }), " ")
		out = append(out, licenseToken{start: run[0].start, end: run[len(run)-1].end, text: key, kind: licenseSymbolToken,
			symbol: &licenseNode{key: key}})
		run = nil
		return true
	}
	for _, t := range tokens {
		if t.kind == licenseUnmatched {
			run = append(run, t)
			continue
		}
		if !flush() {
			return nil, false
		}
		out = append(out, t)
	}
	return out, flush()
}

// groupWith joins "<license> WITH <exception>" triples into one symbol, strictly (step 4).
func groupWith(tokens []licenseToken) ([]licenseToken, bool) {
	isWith := func(triple []licenseToken) bool {
		return triple[0].kind == licenseSymbolToken && triple[1].kind == licenseWith && triple[2].kind == licenseSymbolToken
	}
	var groups [][]licenseToken
	if len(tokens) < 3 {
		for _, t := range tokens {
			groups = append(groups, []licenseToken{t})
		}
	} else {
		var triple []licenseToken
		for _, t := range tokens {
			if len(triple) == 3 {
				if isWith(triple) {
					groups = append(groups, triple)
					triple = nil
				} else {
					groups = append(groups, triple[:1:1])
					triple = triple[1:]
				}
			}
			triple = append(append([]licenseToken{}, triple...), t)
		}
		if len(triple) == 3 && isWith(triple) {
			groups = append(groups, triple)
		} else {
			for _, t := range triple {
				groups = append(groups, []licenseToken{t})
			}
		}
	}
	var out []licenseToken
	for _, group := range groups {
		if len(group) == 1 {
			t := group[0]
			if t.kind == licenseWith || (t.kind == licenseSymbolToken && t.symbol.exception) {
				return nil, false
			}
			out = append(out, t)
			continue
		}
		license, exception := group[0].symbol, group[2].symbol
		if license.exception || !exception.exception {
			return nil, false
		}
		out = append(out, licenseToken{start: group[0].start, end: group[2].end, kind: licenseSymbolToken,
			symbol: &licenseNode{operator: "WITH", args: []*licenseNode{license, exception}}})
	}
	return out, true
}

// licenseFrame is one level of boolean.py's parse stack: [parent, operation, args...].
type licenseFrame struct {
	parent    *licenseFrame
	operation int // 0 (none), licenseAnd, licenseOr or licenseOpen
	args      []*licenseNode
}

var licensePrecedence = map[int]int{licenseAnd: 10, licenseOr: 15, licenseOpen: 20}

// apply is boolean.py's AND(*args) or OR(*args): at least two arguments, each an expression.
func (f *licenseFrame) apply() (*licenseNode, bool) {
	if (f.operation != licenseAnd && f.operation != licenseOr) || len(f.args) < 2 {
		return nil, false
	}
	for _, arg := range f.args {
		if arg == nil {
			return nil, false
		}
	}
	operator := "AND"
	if f.operation == licenseOr {
		operator = "OR"
	}
	return &licenseNode{operator: operator, args: f.args}, true
}

// startOperation finishes the operations of lower precedence before operation (boolean.py's _start_operation).
func startOperation(ast *licenseFrame, operation int) (*licenseFrame, bool) {
	for {
		if ast.operation == 0 {
			ast.operation = operation
			return ast, true
		}
		precedence := licensePrecedence[ast.operation]
		if precedence > licensePrecedence[operation] {
			// [ast, op, ..., x] -> [[ast, op, ...], operation, x]; under a parenthesis the last item is the
			// parenthesis itself, which the reference moves as an argument (nil here): an error once applied.
			var last *licenseNode
			if len(ast.args) > 0 {
				last = ast.args[len(ast.args)-1]
				ast.args = ast.args[:len(ast.args)-1]
			} else {
				ast = &licenseFrame{parent: ast.parent, operation: 0}
			}
			return &licenseFrame{parent: ast, operation: operation, args: []*licenseNode{last}}, true
		}
		if precedence == licensePrecedence[operation] {
			return ast, true
		}
		node, ok := ast.apply()
		if !ok {
			return nil, false
		}
		if ast.parent == nil {
			return &licenseFrame{operation: operation, args: []*licenseNode{node}}, true
		}
		ast.parent.args = append(ast.parent.args, node)
		ast = ast.parent
	}
}

// parseLicenseTokens is boolean.py's parse (step 5).
func parseLicenseTokens(tokens []licenseToken) (*licenseNode, bool) {
	isOperator := func(kind int) bool { return kind == licenseAnd || kind == licenseOr }
	ast := &licenseFrame{}
	previous := -1
	for _, t := range tokens {
		if previous >= 0 {
			if previous == licenseSymbolToken && t.kind == licenseSymbolToken {
				return nil, false
			}
			if isOperator(previous) && (isOperator(t.kind) || t.kind == licenseClose) {
				return nil, false
			}
		} else if isOperator(t.kind) {
			return nil, false
		}
		switch t.kind {
		case licenseSymbolToken:
			ast.args = append(ast.args, t.symbol)
		case licenseAnd, licenseOr:
			var ok bool
			if ast, ok = startOperation(ast, t.kind); !ok {
				return nil, false
			}
		case licenseOpen:
			if previous >= 0 && !isOperator(previous) && previous != licenseOpen {
				return nil, false
			}
			ast = &licenseFrame{parent: ast, operation: licenseOpen}
		case licenseClose:
			for {
				if ast.parent == nil {
					return nil, false
				}
				if ast.operation == licenseOpen {
					// Only the first expression inside the parentheses is kept.
					if len(ast.args) == 0 {
						return nil, false
					}
					ast.parent.args = append(ast.parent.args, ast.args[0])
					ast = ast.parent
					break
				}
				node, ok := ast.apply()
				if !ok {
					return nil, false
				}
				ast.parent.args = append(ast.parent.args, node)
				ast = ast.parent
			}
		default:
			return nil, false
		}
		previous = t.kind
	}
	for {
		if ast.parent == nil {
			if ast.operation == 0 {
				if len(ast.args) != 1 || ast.args[0] == nil {
					return nil, false
				}
				return ast.args[0], true
			}
			return ast.apply()
		}
		node, ok := ast.apply()
		if !ok {
			return nil, false
		}
		ast.parent.args = append(ast.parent.args, node)
		ast = ast.parent
	}
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
	if strings.TrimFunc(text, func(r rune) bool { return licenseWhitespace(byte(r)) }) == "" {
		return "", fail("TERMS_LICENSE_INVALID", "license is empty")
	}
	tokens, ok := mergeUnknown(filterOverlapping(licenseMatches(text)))
	if ok {
		tokens, ok = groupWith(tokens)
	}
	var tree *licenseNode
	if ok {
		tree, ok = parseLicenseTokens(tokens)
	}
	if !ok {
		return "", fail("TERMS_LICENSE_INVALID", "license %.80q is not an SPDX expression", text)
	}
	var symbols []*licenseNode
	tree.symbols(&symbols)
	for _, symbol := range symbols {
		if !symbol.known && !licenseRef.MatchString(symbol.key) {
			return "", fail("TERMS_LICENSE_UNKNOWN",
				"%.80q is not an SPDX license id; write a custom license as LicenseRef-<id>", symbol.key)
		}
	}
	if rendered := tree.render(false); rendered != text {
		return "", fail("TERMS_LICENSE_INVALID", "license must be written in canonical SPDX form: %q", rendered)
	}
	return text, nil
}
