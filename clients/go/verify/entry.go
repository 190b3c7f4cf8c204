package verify

import (
	"regexp"
	"strconv"
	"strings"
)

// The memstore-entry/v1 line format of docs/marketplace.md ("Log entries"), read as
// memos_grpc/marketplace/entries.py reads it: ParseEntry accepts exactly the bytes Entry.Encode writes.

// EntryHeader is the first line of every entry of this version.
const EntryHeader = "memstore-entry/v1"

// MaxEntryBytes bounds an entry; MaxLogIndex is the largest log index (a tree holds at most 2^63 - 1 leaves).
const (
	MaxEntryBytes = 64 * 1024
	MaxLogIndex   = 1<<63 - 2
)

var (
	entryTypes        = []string{"publish", "grant", "yank", "revoke", "key"}
	entryDigest       = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	entryKeyID        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	entryDecimal      = regexp.MustCompile(`^(0|[1-9][0-9]{0,18})$`)
	entryOtherVersion = regexp.MustCompile(`^memstore-entry/v[0-9]{1,9}$`)
)

// Entry is one log entry; Ref is the log index a yank or revoke acts on, nil for every other type.
type Entry struct {
	Type      string
	Subject   string
	Statement string
	Signer    string
	Ref       *uint64
}

func refType(kind string) bool { return kind == "yank" || kind == "revoke" }

// Encode writes the entry's one form.
func (e *Entry) Encode() []byte {
	lines := []string{EntryHeader, "type " + e.Type, "subject " + e.Subject, "statement " + e.Statement,
		"signer " + e.Signer}
	if e.Ref != nil {
		lines = append(lines, "ref "+strconv.FormatUint(*e.Ref, 10))
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// ParseEntry reads an entry by the one grammar; the error is an *Error with an ENTRY_* reason.
func ParseEntry(data []byte) (*Entry, error) {
	if len(data) > MaxEntryBytes {
		return nil, fail("ENTRY_TOO_LARGE", "the entry is %d bytes; at most %d", len(data), MaxEntryBytes)
	}
	for i, b := range data {
		if b >= 0x80 {
			return nil, fail("ENTRY_MALFORMED", "the entry is not ASCII (byte %d)", i)
		}
	}
	text := string(data)
	if strings.Contains(text, "\r") {
		return nil, fail("ENTRY_MALFORMED", `lines end with "\n" alone; the entry holds a "\r"`)
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fail("ENTRY_MALFORMED", `the entry must end with "\n"`)
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if lines[0] != EntryHeader {
		if entryOtherVersion.MatchString(lines[0]) {
			return nil, fail("ENTRY_VERSION_UNSUPPORTED", "%q is not %q", lines[0], EntryHeader)
		}
		return nil, fail("ENTRY_MALFORMED", "the first line must be %q", EntryHeader)
	}
	var values []string
	for number, field := range []string{"type", "subject", "statement", "signer"} {
		line := number + 2
		if len(lines) < line || !strings.HasPrefix(lines[line-1], field+" ") {
			return nil, fail("ENTRY_MALFORMED", "line %d must be '%s <value>'", line, field)
		}
		values = append(values, lines[line-1][len(field)+1:])
	}
	entry := &Entry{Type: values[0], Subject: values[1], Statement: values[2], Signer: values[3]}
	if !containsString(entryTypes, entry.Type) {
		return nil, fail("ENTRY_TYPE_INVALID", "type %q is not one of %s", truncate(entry.Type, 40),
			strings.Join(entryTypes, ", "))
	}
	if !entryDigest.MatchString(entry.Subject) {
		return nil, fail("ENTRY_DIGEST_INVALID", "subject must be sha256:<64 lowercase hex digits>")
	}
	if !entryDigest.MatchString(entry.Statement) {
		return nil, fail("ENTRY_DIGEST_INVALID", "statement must be sha256:<64 lowercase hex digits>")
	}
	if !entryKeyID.MatchString(entry.Signer) {
		return nil, fail("ENTRY_SIGNER_INVALID", "signer must be a key id: 64 lowercase hex digits")
	}
	extra := 5
	if refType(entry.Type) {
		if len(lines) < 6 {
			return nil, fail("ENTRY_REF_MISSING", "a %s entry needs a line 6 'ref <log index>'", entry.Type)
		}
		if !strings.HasPrefix(lines[5], "ref ") {
			return nil, fail("ENTRY_MALFORMED", "line 6 must be 'ref <log index>'")
		}
		text := lines[5][4:]
		ref, err := strconv.ParseUint(text, 10, 64)
		if !entryDecimal.MatchString(text) || err != nil || ref > MaxLogIndex {
			return nil, fail("ENTRY_REF_INVALID",
				"ref %q must be decimal without sign or leading zeros, 0 to %d", truncate(text, 40), uint64(MaxLogIndex))
		}
		entry.Ref = &ref
		extra = 6
	} else if len(lines) > 5 && strings.HasPrefix(lines[5], "ref ") {
		return nil, fail("ENTRY_REF_UNEXPECTED", "a %s entry carries no ref line", entry.Type)
	}
	if len(lines) > extra {
		return nil, fail("ENTRY_MALFORMED", "a %s entry has %d lines; this one has %d", entry.Type, extra, len(lines))
	}
	return entry, nil
}

func containsString(list []string, value string) bool {
	for _, item := range list {
		if item == value {
			return true
		}
	}
	return false
}

func truncate(text string, n int) string {
	if len(text) > n {
		return text[:n]
	}
	return text
}
