package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A release's terms (docs/marketplace.md, "Terms"), read as memos_grpc/marketplace/terms.py reads them: strict
// I-JSON with ODRL 2.2 names, an SPDX license expression of known ids in canonical form, and the check a buyer's
// governance runs per use.

// TermsActions are the actions terms may name.
var TermsActions = []string{"import", "recall", "search", "export", "transform", "redistribute"}

const (
	maxTermsBytes       = 64 * 1024
	maxLicenseChars     = 512
	maxPriceLabelChars  = 256
	maxMaxOfflineSecond = 366 * 86400
	maxElapsedSeconds   = 36500 * 86400
)

var (
	termsDateTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`)
	termsElapsed  = regexp.MustCompile(`^P(?:(0|[1-9][0-9]{0,8})D)?(?:(T)(?:(0|[1-9][0-9]{0,8})H)?(?:(0|[1-9][0-9]{0,8})M)?(?:(0|[1-9][0-9]{0,8})S)?)?$`)
	licenseRef    = regexp.MustCompile(`^LicenseRef-[A-Za-z0-9.-]{1,200}$`)
)

// Permission is one permitted action and its limits (nil: not limited that way).
type Permission struct {
	Action  string
	Count   *int64
	Until   *time.Time
	Elapsed *time.Duration
}

// Terms are parsed terms; Raw is the bytes they were read from.
type Terms struct {
	Raw          []byte
	License      string
	Permissions  []Permission
	Prohibitions []string
}

// Decision says whether one more use is allowed; Remaining is the uses left after it (nil: no count limit).
type Decision struct {
	Allowed   bool
	Reason    string
	Remaining *int64
}

func termsError(reason, format string, args ...any) *Error { return fail(reason, format, args...) }

// ParseTerms reads terms from their bytes; the error is an *Error with a TERMS_* reason.
func ParseTerms(data []byte) (*Terms, error) {
	if len(data) > maxTermsBytes {
		return nil, termsError("TERMS_TOO_LARGE", "the terms are %d bytes; at most %d", len(data), maxTermsBytes)
	}
	document, err := parseIJSON(data)
	if err != nil {
		refused := err.(*ijsonError)
		reason := map[string]string{"ENCODING": "TERMS_ENCODING_INVALID", "DUPLICATE_MEMBER": "TERMS_DUPLICATE_MEMBER",
			"NUMBER": "TERMS_NUMBER_INVALID"}[refused.problem]
		if reason == "" {
			reason = "TERMS_JSON_INVALID"
		}
		return nil, termsError(reason, "the terms are not strict I-JSON: %s", refused.message)
	}
	terms, err := TermsFromJSON(document)
	if err != nil {
		return nil, err
	}
	terms.Raw = data
	return terms, nil
}

// TermsFromJSON reads terms from a JSON value already read strictly (a grant's terms).
func TermsFromJSON(document any) (*Terms, error) {
	doc, ok := document.(object)
	if !ok {
		return nil, termsError("TERMS_JSON_INVALID", "the terms must be a JSON object")
	}
	if err := termsMembers(doc, "the terms", "license", "permission", "prohibition", "priceLabel",
		"maxOfflineSeconds"); err != nil {
		return nil, err
	}
	for _, name := range []string{"license", "permission", "maxOfflineSeconds"} {
		if _, ok := doc[name]; !ok {
			return nil, termsError("TERMS_MISSING_MEMBER", "the terms need %q", name)
		}
	}
	license, err := CheckLicenseExpression(doc["license"])
	if err != nil {
		return nil, err
	}
	terms := &Terms{License: license}
	if terms.Permissions, err = termsPermissions(doc["permission"]); err != nil {
		return nil, err
	}
	if value, ok := doc["prohibition"]; ok {
		if terms.Prohibitions, err = termsProhibitions(value); err != nil {
			return nil, err
		}
	}
	var both []string
	for _, p := range terms.Permissions {
		if containsString(terms.Prohibitions, p.Action) {
			both = append(both, p.Action)
		}
	}
	if len(both) > 0 {
		sort.Strings(both)
		return nil, termsError("TERMS_CONFLICT", "%s is both permitted and prohibited", strings.Join(both, ", "))
	}
	if label, ok := doc["priceLabel"]; ok && label != nil {
		text, ok := label.(string)
		count := utf8.RuneCountInString(text)
		if !ok || count < 1 || count > maxPriceLabelChars || hasLabelControl(text) {
			return nil, termsError("TERMS_VALUE_INVALID",
				"priceLabel must be 1 to %d characters of text without control characters", maxPriceLabelChars)
		}
	}
	if _, ok := integerIn(doc["maxOfflineSeconds"], 1, maxMaxOfflineSecond); !ok {
		return nil, termsError("TERMS_VALUE_INVALID", "maxOfflineSeconds must be an integer from 1 to %d",
			maxMaxOfflineSecond)
	}
	return terms, nil
}

// hasLabelControl: a C0, DEL or C1 control character, which has no place in a label shown to people.
func hasLabelControl(text string) bool {
	for _, r := range text {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

func termsMembers(doc object, where string, allowed ...string) error {
	var unknown []string
	for name := range doc {
		if !containsString(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return termsError("TERMS_UNKNOWN_MEMBER", "%s hold unknown member(s) %.60q; the members are %s (names are "+
			"case-sensitive)", where, unknown[0], strings.Join(allowed, ", "))
	}
	return nil
}

func termsAction(value any, where string) (string, error) {
	action, ok := value.(string)
	if !ok || !containsString(TermsActions, action) {
		return "", termsError("TERMS_ACTION_UNKNOWN", "%s.action must be one of %s", where,
			strings.Join(TermsActions, ", "))
	}
	return action, nil
}

func termsPermissions(value any) ([]Permission, error) {
	list, ok := value.([]any)
	if !ok {
		return nil, termsError("TERMS_VALUE_INVALID", "permission must be a list of {action, constraint} objects")
	}
	var permissions []Permission
	for index, item := range list {
		where := "permission[" + itoa(index) + "]"
		doc, ok := item.(object)
		if !ok {
			return nil, termsError("TERMS_VALUE_INVALID", "%s must be an object", where)
		}
		if err := termsMembers(doc, where, "action", "constraint"); err != nil {
			return nil, err
		}
		if _, ok := doc["action"]; !ok {
			return nil, termsError("TERMS_MISSING_MEMBER", "%s needs 'action'", where)
		}
		action, err := termsAction(doc["action"], where)
		if err != nil {
			return nil, err
		}
		for _, p := range permissions {
			if p.Action == action {
				return nil, termsError("TERMS_ACTION_REPEATED", "%s is permitted twice; give it one permission", action)
			}
		}
		permission := Permission{Action: action}
		if constraint, present := doc["constraint"]; present {
			if err := termsConstrain(&permission, constraint, where); err != nil {
				return nil, err
			}
		}
		permissions = append(permissions, permission)
	}
	return permissions, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func constraintError(format string, args ...any) error {
	return termsError("TERMS_CONSTRAINT_INVALID", format, args...)
}

func termsConstrain(permission *Permission, value any, where string) error {
	// An empty list would be a second way to write "no constraint": absent is the one way.
	list, ok := value.([]any)
	if !ok || len(list) == 0 {
		return constraintError("%s.constraint must be a non-empty list (or absent)", where)
	}
	seen := map[string]bool{}
	for _, item := range list {
		at := where + ".constraint[]"
		doc, ok := item.(object)
		if !ok {
			return constraintError("%s must be an object", at)
		}
		if err := termsMembers(doc, at, "leftOperand", "operator", "rightOperand"); err != nil {
			return err
		}
		for _, name := range []string{"leftOperand", "operator", "rightOperand"} {
			if _, ok := doc[name]; !ok {
				return termsError("TERMS_MISSING_MEMBER", "%s needs %q", at, name)
			}
		}
		operand, _ := doc["leftOperand"].(string)
		if !containsString([]string{"count", "dateTime", "elapsedTime"}, operand) {
			return constraintError("%s.leftOperand must be one of count, dateTime, elapsedTime", at)
		}
		if operator, _ := doc["operator"].(string); operator != "lteq" {
			return constraintError("%s.operator must be 'lteq'", at)
		}
		if seen[operand] {
			return constraintError("%s limits %s twice", where, operand)
		}
		seen[operand] = true
		right := doc["rightOperand"]
		switch operand {
		case "count":
			count, ok := integerIn(right, 1, maxSafeInteger)
			if !ok {
				return constraintError("%s: a count is an integer from 1 to 2^53 - 1", at)
			}
			permission.Count = &count
		case "dateTime":
			text, _ := right.(string)
			when, err := ParseTime(text)
			if !termsDateTime.MatchString(text) || err != nil || when.UTC().Format("2006-01-02T15:04:05Z") != text {
				return constraintError("%s: a dateTime is an RFC 3339 UTC time to the second", at)
			}
			permission.Until = &when
		default:
			elapsed, err := ParseElapsedTime(right, at)
			if err != nil {
				return err
			}
			permission.Elapsed = &elapsed
		}
	}
	return nil
}

// ParseElapsedTime reads an ISO 8601 duration of the subset PnDTnHnMnS, from 1 second to 36,500 days.
func ParseElapsedTime(value any, at string) (time.Duration, error) {
	text, _ := value.(string)
	m := termsElapsed.FindStringSubmatch(text)
	invalid := constraintError("%s: an elapsedTime is an ISO 8601 duration PnDTnHnMnS, like P30D", at)
	if m == nil {
		return 0, invalid
	}
	var seconds int64
	parts := 0
	for i, unit := range map[int]int64{1: 86400, 3: 3600, 4: 60, 5: 1} {
		if m[i] != "" {
			n, _ := parseDecimal(m[i], 1<<40)
			seconds += int64(n) * unit
			parts++
		}
	}
	// "P" alone, or "T" with nothing after it, is no duration.
	if parts == 0 || (m[2] != "" && m[3] == "" && m[4] == "" && m[5] == "") {
		return 0, invalid
	}
	if seconds < 1 || seconds > maxElapsedSeconds {
		return 0, constraintError("%s: an elapsedTime is from 1 second to 36500 days", at)
	}
	return time.Duration(seconds) * time.Second, nil
}

func termsProhibitions(value any) ([]string, error) {
	// A non-empty list when present: absent is the one way to prohibit nothing explicitly.
	list, ok := value.([]any)
	if !ok || len(list) == 0 {
		return nil, termsError("TERMS_VALUE_INVALID", "prohibition must be a non-empty list of {action} objects (or absent)")
	}
	var actions []string
	for _, item := range list {
		where := "prohibition[]"
		doc, ok := item.(object)
		if !ok {
			return nil, termsError("TERMS_VALUE_INVALID", "%s must be an object", where)
		}
		if err := termsMembers(doc, where, "action"); err != nil {
			return nil, err
		}
		if _, ok := doc["action"]; !ok {
			return nil, termsError("TERMS_MISSING_MEMBER", "%s needs 'action'", where)
		}
		action, err := termsAction(doc["action"], where)
		if err != nil {
			return nil, err
		}
		if containsString(actions, action) {
			return nil, termsError("TERMS_ACTION_REPEATED", "%s is prohibited twice", action)
		}
		actions = append(actions, action)
	}
	return actions, nil
}

// Digest is the hex sha256 of the bytes the terms were read from.
func (t *Terms) Digest() string {
	sum := sha256.Sum256(t.Raw)
	return hex.EncodeToString(sum[:])
}

// Permits says whether the licensee may use the cubes for action once more, having used them usesSoFar times;
// grantedAt is the grant's start, from which elapsedTime runs. Every limit is inclusive (ODRL lteq).
func (t *Terms) Permits(action string, usesSoFar int64, grantedAt, now time.Time) Decision {
	zero := int64(0)
	if containsString(t.Prohibitions, action) {
		return Decision{false, "TERMS_ACTION_PROHIBITED", &zero}
	}
	var permission *Permission
	for i := range t.Permissions {
		if t.Permissions[i].Action == action {
			permission = &t.Permissions[i]
		}
	}
	if permission == nil {
		return Decision{false, "TERMS_ACTION_NOT_PERMITTED", &zero}
	}
	if permission.Until != nil && now.After(*permission.Until) {
		return Decision{false, "TERMS_DATETIME_PASSED", &zero}
	}
	if permission.Elapsed != nil && now.Sub(grantedAt) > *permission.Elapsed {
		return Decision{false, "TERMS_ELAPSED_TIME_PASSED", &zero}
	}
	if permission.Count == nil {
		return Decision{true, "", nil}
	}
	if usesSoFar >= *permission.Count {
		return Decision{false, "TERMS_COUNT_EXHAUSTED", &zero}
	}
	remaining := *permission.Count - usesSoFar - 1
	return Decision{true, "", &remaining}
}
