package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"iter"
	"regexp"
	"strings"
	"time"
)

const (
	markerName      = "memos-bundle"
	envelopeName    = "statement.dsse.json"
	maxMarkerBytes  = 64
	statementType   = "https://in-toto.io/Statement/v1"
	predicateType   = "https://memos-grpc.dev/MemCubeBundle/v1"
	readChunkBytes  = 64 << 10
	majorVersionStr = "1"
)

// Whole-string patterns (the protocol's patterns never match before a trailing newline).
var (
	hex64     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	cubeEntry = regexp.MustCompile(`^cubes/[A-Za-z0-9][A-Za-z0-9._-]{0,94}\.pb$`)
	blobEntry = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)
)

// Limits bound what a bundle may hold (bytes, except MaxEntries).
type Limits struct {
	MaxEntryBytes    int64
	MaxBundleBytes   int64
	MaxEntries       int64
	MaxEnvelopeBytes int64
	MaxCubeBytes     int64
}

// BundleReport is what a successful verification learned.
type BundleReport struct {
	// StatementSHA256 is the lowercase hex sha256 of the verified statement bytes.
	StatementSHA256 string
	Statement       []byte
	CubeCount       int
	BlobCount       int
}

type subject struct {
	name, sha256 string
	size         int64
}

// VerifyBundle verifies a bundle read from r, front to back, without holding it whole. A failure is an *Error
// whose Reason is the stable reason of the first step that failed.
func VerifyBundle(r io.Reader, policy Policy, limits Limits, now time.Time) (*BundleReport, error) {
	var readErr error
	chunks := func(yield func([]byte) bool) {
		for {
			buffer := make([]byte, readChunkBytes)
			n, err := r.Read(buffer)
			if n > 0 && !yield(buffer[:n]) {
				return
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}
	report, err := VerifyBundleChunks(chunks, policy, limits, now)
	if readErr != nil {
		return nil, readErr
	}
	return report, err
}

// VerifyBundleChunks verifies a bundle given as a sequence of chunks; the verdict does not depend on the split.
func VerifyBundleChunks(chunks iter.Seq[[]byte], policy Policy, limits Limits, now time.Time) (*BundleReport, error) {
	src := newSource(chunks)
	defer src.stop()
	reader := &tarReader{src: src, limits: tarLimits{limits.MaxEntryBytes, limits.MaxBundleBytes, limits.MaxEntries}, names: map[string]bool{}}
	report := &BundleReport{}
	marker, err := reader.next()
	if err != nil {
		return nil, err
	}
	if marker == nil || marker.name != markerName {
		return nil, fail("BUNDLE_MARKER_MISSING", "the first entry must be %q; this is not a memos bundle", markerName)
	}
	data, err := reader.readAll(marker, maxMarkerBytes)
	if err != nil {
		return nil, err
	}
	if err := checkMarker(data); err != nil {
		return nil, err
	}
	envelopeEntry, err := reader.next()
	if err != nil {
		return nil, err
	}
	if envelopeEntry == nil || envelopeEntry.name != envelopeName {
		return nil, fail("BUNDLE_ENVELOPE_MISSING", "the second entry must be %q", envelopeName)
	}
	data, err = reader.readAll(envelopeEntry, limits.MaxEnvelopeBytes)
	if err != nil {
		return nil, err
	}
	payload, err := VerifyStatementEnvelope(data, policy, now)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	report.StatementSHA256, report.Statement = hex.EncodeToString(sum[:]), payload
	subjects, order, err := parseStatement(payload, max(0, limits.MaxEntries-2))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		entry, err := reader.next()
		if err != nil {
			return nil, err
		}
		if entry == nil {
			break
		}
		want, listed := subjects[entry.name]
		if !listed {
			return nil, fail("BUNDLE_UNLISTED_ENTRY", "entry %.120q is not listed in the signed statement", entry.name)
		}
		if entry.size != want.size {
			return nil, fail("BUNDLE_SIZE_MISMATCH", "entry %q holds %d bytes; the statement says %d", entry.name, entry.size, want.size)
		}
		digest := sha256.New()
		if strings.HasPrefix(entry.name, "blobs/") {
			if err := reader.stream(func(piece []byte) { digest.Write(piece) }); err != nil {
				return nil, err
			}
			report.BlobCount++
		} else {
			data, err := reader.readAll(entry, limits.MaxCubeBytes)
			if err != nil {
				return nil, err
			}
			digest.Write(data)
			report.CubeCount++
		}
		if actual := hex.EncodeToString(digest.Sum(nil)); actual != want.sha256 {
			return nil, fail("BUNDLE_DIGEST_MISMATCH", "entry %q has sha256 %s; the signed statement says %s", entry.name, actual, want.sha256)
		}
		seen[entry.name] = true
	}
	for _, name := range order {
		if !seen[name] {
			return nil, fail("BUNDLE_MISSING_ENTRY", "entries the statement lists are missing, e.g. %q", name)
		}
	}
	return report, nil
}

// checkMarker reads "<major>[.<minor>]" (surrounding whitespace ignored); only major version 1 is read.
func checkMarker(data []byte) error {
	var text strings.Builder
	for _, b := range data {
		if b < 0x80 {
			text.WriteByte(b)
		} else {
			text.WriteRune('\uFFFD')
		}
	}
	// The whitespace Python's str.strip removes from ASCII text.
	trimmed := strings.Trim(text.String(), " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")
	major, _, _ := strings.Cut(trimmed, ".")
	if major == "" || strings.Trim(major, "0123456789") != "" {
		return fail("BUNDLE_MARKER_MISSING", "the format marker reads %.20q, not a version", trimmed)
	}
	if digits := strings.TrimLeft(major, "0"); digits != majorVersionStr {
		return fail("BUNDLE_VERSION_UNSUPPORTED", "bundle format version %s is not supported; this verifier reads version 1", major)
	}
	return nil
}

func statementInvalid(format string, args ...any) *Error {
	return fail("BUNDLE_STATEMENT_INVALID", format, args...)
}

// parseStatement parses verified statement bytes; unknown members are ignored.
func parseStatement(payload []byte, maxSubjects int64) (map[string]subject, []string, error) {
	document, err := parseJSON(payload)
	if err != nil {
		return nil, nil, statementInvalid("the statement is not JSON: %v", err)
	}
	obj, ok := document.(object)
	if !ok {
		return nil, nil, statementInvalid("the statement is not a JSON object")
	}
	if t, _ := obj["_type"].(string); t != statementType || obj["_type"] == nil {
		return nil, nil, statementInvalid("the statement's _type must be %q", statementType)
	}
	if t, _ := obj["predicateType"].(string); t != predicateType {
		return nil, nil, statementInvalid("the statement's predicateType must be %q", predicateType)
	}
	raw, ok := obj["subject"].([]any)
	predicate, present := obj["predicate"]
	if _, isObject := predicate.(object); !ok || (present && !isObject) {
		return nil, nil, statementInvalid("the statement needs a subject list and a predicate object")
	}
	if int64(len(raw)) > maxSubjects {
		return nil, nil, fail("BUNDLE_TOO_MANY_ENTRIES", "the statement lists %d entries; the limit is %d", len(raw), maxSubjects)
	}
	subjects := map[string]subject{}
	var order []string
	for i, item := range raw {
		s, err := parseSubject(i, item)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := subjects[s.name]; dup {
			return nil, nil, statementInvalid("the statement lists %q twice", s.name)
		}
		subjects[s.name] = s
		order = append(order, s.name)
	}
	return subjects, order, nil
}

func parseSubject(index int, item any) (subject, error) {
	obj, _ := item.(object)
	digest, _ := obj["digest"].(object)
	annotations, _ := obj["annotations"].(object)
	nameValue, hasName := obj["name"]
	shaValue, hasSHA := digest["sha256"]
	sizeValue, hasSize := annotations["size"]
	if obj == nil || digest == nil || annotations == nil || !hasName || !hasSHA || !hasSize {
		return subject{}, statementInvalid("subject[%d] needs name, digest.sha256 and annotations.size", index)
	}
	name, nameOK := nameValue.(string)
	sha, shaOK := shaValue.(string)
	if !nameOK || !shaOK || !hex64.MatchString(sha) {
		return subject{}, statementInvalid("subject[%d] has a bad name or sha256", index)
	}
	size, ok := integerIn(sizeValue, 0, maxSafeInteger)
	if !ok {
		return subject{}, statementInvalid("subject[%d] size must be an integer from 0 to %d", index, int64(maxSafeInteger))
	}
	blob := blobEntry.FindStringSubmatch(name)
	if blob == nil && !cubeEntry.MatchString(name) {
		return subject{}, statementInvalid("subject[%d] names %.120q; entries are cubes/<provenance-id>.pb or blobs/sha256/<hex>", index, name)
	}
	if blob != nil && blob[1] != sha {
		return subject{}, statementInvalid("subject[%d]: a blob's name must be its own sha256", index)
	}
	return subject{name: name, sha256: sha, size: size}, nil
}

// DefaultLimits are a server's default import limits (docs/configuration.md): 64 GiB in all, 250,000 entries,
// a 64 MiB envelope, 1 MiB cubes and 4 GiB for any one entry (max_payload_bytes).
var DefaultLimits = Limits{
	MaxEntryBytes:    4 << 30,
	MaxBundleBytes:   64 << 30,
	MaxEntries:       250_000,
	MaxEnvelopeBytes: 64 << 20,
	MaxCubeBytes:     1 << 20,
}
