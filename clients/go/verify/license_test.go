package verify

import "testing"

// License expressions and the reason the reference (license-expression's SPDX licensing, strict, in
// memos_grpc/marketplace/terms.py) gives each: known ids and aliases, canonical spelling, operator precedence and
// nesting, WITH and exceptions, and what does not parse. The vectors hold only a few of these.
func TestLicenseExpressions(t *testing.T) {
	for _, c := range []struct{ text, reason string }{
		{"MIT", ""},
		{"mit", "TERMS_LICENSE_INVALID"},
		{"MIT OR ISC", ""},
		{"MIT or ISC", "TERMS_LICENSE_INVALID"},
		{"MIT OR ISC OR Apache-2.0", ""},
		{"(MIT OR ISC) OR Apache-2.0", ""},
		{"MIT OR (ISC OR Apache-2.0)", ""},
		{"MIT AND ISC OR Apache-2.0", "TERMS_LICENSE_INVALID"},
		{"(MIT AND ISC) OR Apache-2.0", ""},
		{"MIT WITH Classpath-exception-2.0", ""},
		{"GPL-2.0-or-later WITH Classpath-exception-2.0", ""},
		{"(MIT)", "TERMS_LICENSE_INVALID"},
		{"LicenseRef-x", ""},
		{"licenseref-x", "TERMS_LICENSE_UNKNOWN"},
		{"LicenseRef-", "TERMS_LICENSE_UNKNOWN"},
		{"MIT AND (ISC AND Apache-2.0)", ""},
		{"MIT WITH MIT", "TERMS_LICENSE_INVALID"},
		{"Classpath-exception-2.0", "TERMS_LICENSE_INVALID"},
		{"Classpath-exception-2.0 OR MIT", "TERMS_LICENSE_INVALID"},
		{"MIT WITH Classpath-exception-2.0 WITH Classpath-exception-2.0", "TERMS_LICENSE_INVALID"},
		{"MIT OR", "TERMS_LICENSE_INVALID"},
		{"()", "TERMS_LICENSE_INVALID"},
		{"", "TERMS_LICENSE_INVALID"},
		{" ", "TERMS_LICENSE_INVALID"},
		{"DocumentRef-x:LicenseRef-y", "TERMS_LICENSE_UNKNOWN"},
		{"MIT+", "TERMS_LICENSE_UNKNOWN"},
		{"MIT  OR ISC", "TERMS_LICENSE_INVALID"},
		{"MIT-2.0", "TERMS_LICENSE_UNKNOWN"},
		{"(MIT OR ISC", "TERMS_LICENSE_INVALID"},
		{"MIT ISC", "TERMS_LICENSE_INVALID"},
		{"foo or bar", "TERMS_LICENSE_UNKNOWN"},
		{"foo OR bar", "TERMS_LICENSE_UNKNOWN"},
		{"MIT OR foo", "TERMS_LICENSE_UNKNOWN"},
		{"(MIT WITH Classpath-exception-2.0) OR ISC", "TERMS_LICENSE_INVALID"},
		{"MIT WITH Classpath-exception-2.0 OR ISC", ""},
		{"MIT OR ISC AND foo", "TERMS_LICENSE_UNKNOWN"},
		{"MIT AND OR ISC", "TERMS_LICENSE_INVALID"},
		{"OR", "TERMS_LICENSE_INVALID"},
		{"MIT (ISC)", "TERMS_LICENSE_INVALID"},
		{"MIT)", "TERMS_LICENSE_INVALID"},
		{"GPL-2.0-or-later-foo", "TERMS_LICENSE_UNKNOWN"},
		{"MIT/ISC", "TERMS_LICENSE_INVALID"},
		{"gpl-2.0+", "TERMS_LICENSE_INVALID"},
		{"GPL-2.0+", "TERMS_LICENSE_INVALID"},
		{"GPL-2.0 +", "TERMS_LICENSE_INVALID"},
		{"MIT,ISC", "TERMS_LICENSE_INVALID"},
		{"(MIT OR ISC) WITH Classpath-exception-2.0", "TERMS_LICENSE_INVALID"},
		{"MIT WITH foo", "TERMS_LICENSE_INVALID"},
		{"foo WITH bar", "TERMS_LICENSE_INVALID"},
		{"((MIT))", "TERMS_LICENSE_INVALID"},
		{"MIT AND ISC AND Apache-2.0 OR BSD-3-Clause", "TERMS_LICENSE_INVALID"},
		{"(MIT AND ISC AND Apache-2.0) OR BSD-3-Clause", ""},
		{"LicenseRef-scancode-3com-microcode", ""},
		{"Apache-2.0 WITH LLVM-exception", ""},
		{"apache-2.0", "TERMS_LICENSE_INVALID"},
		{"MIT OR ISC ", "TERMS_LICENSE_INVALID"},
		{"(GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT) AND Apache-2.0", ""},
		{"MIT AND (ISC OR foo", "TERMS_LICENSE_INVALID"},
		{"MIT WITH", "TERMS_LICENSE_INVALID"},
		{"WITH MIT", "TERMS_LICENSE_INVALID"},
		{"AND", "TERMS_LICENSE_INVALID"},
		{"MIT OR OR ISC", "TERMS_LICENSE_INVALID"},
		{"GPL-2.0-only", ""},
		{"GPL-2.0", "TERMS_LICENSE_INVALID"},
		{"MIT\tOR ISC", "TERMS_LICENSE_INVALID"},
		{"(MIT OR ISC) AND (Apache-2.0 OR BSD-2-Clause)", ""},
		{"MIT AND ISC", ""},
		{"foo", "TERMS_LICENSE_UNKNOWN"},
		{"LicenseRef-a.b-c", ""},
		{"CC-BY-4.0 OR LicenseRef-memstore-ai-1.0", ""},
		{"MIT OR ISC AND Apache-2.0 WITH LLVM-exception", "TERMS_LICENSE_INVALID"},
	} {
		reason := ""
		if _, err := CheckLicenseExpression(c.text); err != nil {
			reason = err.(*Error).Reason
		}
		if reason != c.reason {
			t.Errorf("%q: got %q, want %q", c.text, reason, c.reason)
		}
	}
}
