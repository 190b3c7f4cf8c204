package verify

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"
)

// C2SP tlog-checkpoint v1.0.0 note text, read as memos_grpc/transparency/checkpoint.py reads it (docs/marketplace.md,
// "Checkpoints"): ParseCheckpoint accepts exactly the text Checkpoint.Body writes.

const (
	maxOriginBytes     = 255
	maxExtensions      = 16
	maxExtensionBytes  = 1024
	checkpointRootSize = 32
)

// Checkpoint is one tree head: the log's origin, the tree size, the root hash and any extension lines.
type Checkpoint struct {
	Origin     string
	Size       uint64
	Root       []byte
	Extensions []string
}

// Body writes the checkpoint's note text.
func (c *Checkpoint) Body() string {
	lines := append([]string{c.Origin, strconv.FormatUint(c.Size, 10), base64.StdEncoding.EncodeToString(c.Root)},
		c.Extensions...)
	return strings.Join(lines, "\n") + "\n"
}

// parseDecimal reads an ASCII decimal without sign or leading zeros, at most maximum.
func parseDecimal(text string, maximum uint64) (uint64, bool) {
	if !decimal.MatchString(text) {
		return 0, false
	}
	value, err := strconv.ParseUint(text, 10, 64)
	return value, err == nil && value <= maximum
}

// ParseCheckpoint reads a note's text (final newline included); the error is an *Error with a CHECKPOINT_* reason.
func ParseCheckpoint(text string) (*Checkpoint, error) {
	if !utf8.ValidString(text) || strings.HasPrefix(text, "\ufeff") {
		return nil, fail("CHECKPOINT_MALFORMED", "the checkpoint is not UTF-8 without a byte order mark")
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fail("CHECKPOINT_MALFORMED", "the checkpoint does not end with a newline")
	}
	if hasControl(text, true) {
		return nil, fail("CHECKPOINT_MALFORMED", "the checkpoint holds a control character")
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return nil, fail("CHECKPOINT_MALFORMED", "a checkpoint has an origin, a tree size and a root hash line")
	}
	if len(lines)-3 > maxExtensions {
		return nil, fail("CHECKPOINT_EXTENSION_INVALID", "at most %d extension lines", maxExtensions)
	}
	size, ok := parseDecimal(lines[1], MaxTreeSize)
	if !ok {
		return nil, fail("CHECKPOINT_SIZE_INVALID", "tree size %q is not a decimal 0..%d without leading zeros",
			truncate(lines[1], 40), uint64(MaxTreeSize))
	}
	root, ok := decodeCanonicalBase64(lines[2])
	if !ok || len(root) != checkpointRootSize {
		return nil, fail("CHECKPOINT_ROOT_INVALID", "root hash is not %d bytes of padded standard base64",
			checkpointRootSize)
	}
	origin := lines[0]
	if origin == "" || origin != strings.TrimSpace(origin) || len(origin) > maxOriginBytes {
		return nil, fail("CHECKPOINT_ORIGIN_INVALID",
			"origin must be 1..%d bytes without control characters or leading or trailing space", maxOriginBytes)
	}
	extensions := lines[3:]
	for _, extension := range extensions {
		if extension == "" || len(extension) > maxExtensionBytes {
			return nil, fail("CHECKPOINT_EXTENSION_INVALID",
				"extension lines must be 1..%d bytes without control characters", maxExtensionBytes)
		}
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root, Extensions: append([]string{}, extensions...)}, nil
}
