package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sort"
	"strings"
	"time"
)

// License grants (docs/marketplace.md, "License grants"), verified as memos_grpc/marketplace/grants.py verifies
// them: a DSSE envelope signed by a trusted marketplace key whose in-toto statement grants one release to one
// licensee. The first failure is the reason, in the order: the envelope's form, its payloadType, the signature,
// the statement's predicateType, the statement and predicate, the terms, the licensee, then the window.

// GrantPredicateType is the predicateType of a grant's statement.
const GrantPredicateType = "https://memos-grpc.dev/LicenseGrant/v1"

const maxGrantBytes = 256 * 1024

const semverIdent = `(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`

var (
	releaseName = regexp.MustCompile(`^listings/[a-z][a-z0-9-]{0,62}/releases/` +
		`(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-` + semverIdent + `(?:\.` + semverIdent + `)*)?$`)
	principalName = regexp.MustCompile(`^principals/[a-z][a-z0-9-]{0,62}$`)
	logOrigin     = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)
)

// Grant is what a verified grant says.
type Grant struct {
	Release           string
	ReleaseDigest     string
	License           string
	LogOrigin         string
	LicenseePrincipal string
	LicenseeKeyID     string
	Terms             *Terms
	NotBefore         time.Time
	NotAfter          time.Time
	PublishLogIndex   int64
	// StatementSHA256 is the hex sha256 of the statement bytes the marketplace signed.
	StatementSHA256 string
	Signer          string
}

func grantError(reason, format string, args ...any) *Error { return fail(reason, format, args...) }

// VerifyGrant checks a grant for one licensee at now; the error is an *Error with a GRANT_* reason.
func VerifyGrant(data []byte, trusted *KeySet, principal, keyID string, now time.Time) (*Grant, error) {
	if len(data) > maxGrantBytes {
		return nil, grantError("GRANT_MALFORMED", "the grant is %d bytes; at most %d", len(data), maxGrantBytes)
	}
	envelope, err := ParseEnvelope(data)
	if err != nil {
		return nil, grantError("GRANT_MALFORMED", "the grant is not a DSSE envelope: %v", err)
	}
	if envelope.PayloadType != StatementPayloadType {
		return nil, grantError("GRANT_MALFORMED", "the grant's payloadType must be %q", StatementPayloadType)
	}
	checked := VerifyEnvelope(envelope, trusted, 1, now)
	if checked.Shortfall != ShortfallNone {
		reason := map[Shortfall]string{
			ShortfallSignatureInvalid: "GRANT_SIGNATURE_INVALID",
			ShortfallSignerRevoked:    "GRANT_SIGNER_REVOKED",
			ShortfallSignerExpired:    "GRANT_SIGNER_EXPIRED",
		}[checked.Shortfall]
		if reason == "" {
			reason = "GRANT_UNTRUSTED_SIGNER"
		}
		return nil, grantError(reason, "the grant is not signed by a trusted marketplace key")
	}
	grant, err := readGrantStatement(envelope.Payload, checked.CountedKeys[0])
	if err != nil {
		return nil, err
	}
	if grant.LicenseePrincipal != principal || grant.LicenseeKeyID != keyID {
		return grant, grantError("GRANT_OTHER_LICENSEE", "the grant licenses %s, not %s", grant.LicenseePrincipal,
			principal)
	}
	if now.Before(grant.NotBefore) {
		return grant, grantError("GRANT_NOT_YET_VALID", "the grant is valid from %s", grant.NotBefore)
	}
	if !now.Before(grant.NotAfter) {
		return grant, grantError("GRANT_EXPIRED", "the grant expired at %s", grant.NotAfter)
	}
	return grant, nil
}

func grantMalformed(format string, args ...any) error {
	return grantError("GRANT_MALFORMED", format, args...)
}

func exactly(doc object, where string, members ...string) error {
	var unknown, missing []string
	for name := range doc {
		if !containsString(members, name) {
			unknown = append(unknown, name)
		}
	}
	for _, name := range members {
		if _, ok := doc[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(unknown) > 0 || len(missing) > 0 {
		sort.Strings(unknown)
		return grantMalformed("%s must hold exactly %s; unknown: %.60q; missing: %s", where,
			strings.Join(members, ", "), unknown, strings.Join(missing, ", "))
	}
	return nil
}

func grantTime(predicate object, field string) (time.Time, error) {
	text, ok := predicate[field].(string)
	if !ok {
		return time.Time{}, grantMalformed("predicate.%s must be an RFC 3339 UTC time to the second", field)
	}
	when, err := ParseTime(text)
	if err != nil || when.UTC().Format("2006-01-02T15:04:05Z") != text {
		return time.Time{}, grantMalformed("predicate.%s must be an RFC 3339 UTC time to the second", field)
	}
	return when, nil
}

func readGrantStatement(payload []byte, signer string) (*Grant, error) {
	document, err := parseIJSON(payload)
	if err != nil {
		return nil, grantMalformed("the grant's statement is not strict I-JSON: %v", err)
	}
	statement, ok := document.(object)
	if !ok {
		return nil, grantMalformed("the grant's statement is not a JSON object")
	}
	if predicateType, _ := statement["predicateType"].(string); predicateType != GrantPredicateType {
		return nil, grantError("GRANT_PREDICATE_TYPE_INVALID", "the statement's predicateType must be %q",
			GrantPredicateType)
	}
	if err := exactly(statement, "the statement", "_type", "subject", "predicateType", "predicate"); err != nil {
		return nil, err
	}
	if kind, _ := statement["_type"].(string); kind != statementType {
		return nil, grantMalformed("the statement's _type must be %q", statementType)
	}
	grant := &Grant{Signer: signer}
	subjects, ok := statement["subject"].([]any)
	if !ok || len(subjects) != 1 {
		return nil, grantMalformed("the statement's subject must be a list of exactly one release")
	}
	subject, ok := subjects[0].(object)
	if !ok {
		return nil, grantMalformed("the statement's subject must be a list of exactly one release")
	}
	if err := exactly(subject, "subject[0]", "name", "digest"); err != nil {
		return nil, err
	}
	name, _ := subject["name"].(string)
	if !releaseName.MatchString(name) || len(name[strings.LastIndex(name, "/")+1:]) > 64 {
		return nil, grantMalformed("subject[0].name must be listings/<listing>/releases/<semver>")
	}
	digest, ok := subject["digest"].(object)
	if !ok {
		return nil, grantMalformed("subject[0].digest must be an object")
	}
	if err := exactly(digest, "subject[0].digest", "sha256"); err != nil {
		return nil, err
	}
	sha, _ := digest["sha256"].(string)
	if !hex64.MatchString(sha) {
		return nil, grantMalformed("subject[0].digest.sha256 must be 64 lowercase hex digits")
	}
	grant.Release, grant.ReleaseDigest = name, "sha256:"+sha
	predicate, ok := statement["predicate"].(object)
	if !ok {
		return nil, grantMalformed("the predicate must be an object")
	}
	if err := exactly(predicate, "the predicate", "license", "logOrigin", "licensee", "terms", "notBefore",
		"notAfter", "publishLogIndex"); err != nil {
		return nil, err
	}
	licensee, ok := predicate["licensee"].(object)
	if !ok {
		return nil, grantMalformed("predicate.licensee must be an object")
	}
	if err := exactly(licensee, "predicate.licensee", "principal", "keyId"); err != nil {
		return nil, err
	}
	principal, _ := licensee["principal"].(string)
	if !principalName.MatchString(principal) {
		return nil, grantMalformed("predicate.licensee.principal must be principals/<id>")
	}
	keyID, _ := licensee["keyId"].(string)
	if !hex64.MatchString(keyID) {
		return nil, grantMalformed("predicate.licensee.keyId must be a key id: 64 lowercase hex digits")
	}
	grant.LicenseePrincipal, grant.LicenseeKeyID = principal, keyID
	origin, _ := predicate["logOrigin"].(string)
	if !logOrigin.MatchString(origin) {
		return nil, grantMalformed("predicate.logOrigin must be 1 to 255 printable ASCII characters")
	}
	grant.LogOrigin = origin
	if grant.NotBefore, err = grantTime(predicate, "notBefore"); err != nil {
		return nil, err
	}
	if grant.NotAfter, err = grantTime(predicate, "notAfter"); err != nil {
		return nil, err
	}
	if !grant.NotBefore.Before(grant.NotAfter) {
		return nil, grantMalformed("predicate.notBefore must be before predicate.notAfter")
	}
	index, ok := integerIn(predicate["publishLogIndex"], 0, maxSafeInteger)
	if !ok {
		return nil, grantMalformed("predicate.publishLogIndex must be an integer from 0 to 2^53 - 1")
	}
	grant.PublishLogIndex = index
	terms, err := TermsFromJSON(predicate["terms"])
	if err != nil {
		refused := err.(*Error)
		reason := "GRANT_TERMS_INVALID"
		if refused.Reason == "TERMS_UNKNOWN_MEMBER" {
			reason = "GRANT_TERMS_UNKNOWN_MEMBER"
		}
		return nil, grantError(reason, "the grant's terms are refused (%s): %s", refused.Reason, refused.Message)
	}
	if license, _ := predicate["license"].(string); license != terms.License {
		return nil, grantMalformed("predicate.license must be the terms' license")
	}
	grant.Terms, grant.License = terms, terms.License
	sum := sha256.Sum256(payload)
	grant.StatementSHA256 = hex.EncodeToString(sum[:])
	return grant, nil
}
