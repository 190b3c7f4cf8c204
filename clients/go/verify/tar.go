package verify

import (
	"bytes"
	"fmt"
	"iter"
	"regexp"
	"strings"
	"unicode/utf8"
)

// A strict streaming ustar reader written for the protocol: archive/tar accepts most of what a bundle must not
// hold (links, devices, PAX and GNU headers, duplicates, non-zero padding, data after the end marker). It reads
// the input chunk by chunk, holding one block and one chunk; every check and its order follow docs/protocol.md.

const blockSize = 512

var zeroBlock = make([]byte, blockSize)

// octalField is a well-formed numeric field: digits, then NUL or space padding (leading spaces allowed).
var octalField = regexp.MustCompile(`^ *[0-7]*[ \x00]*$`)

var numericFields = []struct {
	name       string
	start, end int
}{{"mode", 100, 108}, {"uid", 108, 116}, {"gid", 116, 124}, {"size", 124, 136}, {"mtime", 136, 148}, {"devmajor", 329, 337}, {"devminor", 337, 345}}

// source hands out the input as slices of its chunks.
type source struct {
	next     func() ([]byte, bool)
	stop     func()
	buffer   []byte
	consumed int64
}

func newSource(chunks iter.Seq[[]byte]) *source {
	next, stop := iter.Pull(chunks)
	return &source{next: next, stop: stop}
}

// take returns up to limit bytes of the current chunk; empty only at the end of the input.
func (s *source) take(limit int64) []byte {
	for len(s.buffer) == 0 {
		chunk, ok := s.next()
		if !ok {
			return nil
		}
		s.buffer = chunk
	}
	n := int64(len(s.buffer))
	if n > limit {
		n = limit
	}
	piece := s.buffer[:n]
	s.buffer = s.buffer[n:]
	s.consumed += n
	return piece
}

// read returns exactly size bytes, or fewer only at the end of the input.
func (s *source) read(size int) []byte {
	out := make([]byte, 0, size)
	for len(out) < size {
		piece := s.take(int64(size - len(out)))
		if len(piece) == 0 {
			break
		}
		out = append(out, piece...)
	}
	return out
}

type tarLimits struct {
	maxEntryBytes, maxBundleBytes, maxEntries int64
}

type tarReader struct {
	src      *source
	limits   tarLimits
	names    map[string]bool
	dataLeft int64
	padLeft  int64
	current  string
}

type tarEntry struct {
	name string
	size int64
}

func (r *tarReader) truncated(where string) *Error {
	return fail("BUNDLE_TRUNCATED", "the bundle ends after %d bytes, %s; the upload or file was cut short", r.src.consumed, where)
}

// next reads the next header; nil without error at the end of the archive (after its checks).
func (r *tarReader) next() (*tarEntry, error) {
	if err := r.skip(); err != nil {
		return nil, err
	}
	header := r.src.read(blockSize)
	if len(header) < blockSize {
		if len(header) > 0 {
			return nil, r.truncated("inside an entry header")
		}
		return nil, r.truncated("before the end-of-archive marker (two zero blocks)")
	}
	if bytes.Equal(header, zeroBlock) {
		return nil, r.finishArchive()
	}
	entry, err := r.parse(header)
	if err != nil {
		return nil, err
	}
	r.current = entry.name
	r.dataLeft = entry.size
	r.padLeft = (blockSize - entry.size%blockSize) % blockSize
	return entry, nil
}

// stream hands the current entry's data to fn piece by piece (slices valid only during the call).
func (r *tarReader) stream(fn func([]byte)) error {
	for r.dataLeft > 0 {
		piece := r.src.take(r.dataLeft)
		if len(piece) == 0 {
			return r.truncated(fmt.Sprintf("inside the data of entry %q (%d bytes missing)", r.current, r.dataLeft))
		}
		r.dataLeft -= int64(len(piece))
		if fn != nil {
			fn(piece)
		}
	}
	if r.padLeft > 0 {
		padding := r.src.read(int(r.padLeft))
		if int64(len(padding)) < r.padLeft {
			return r.truncated(fmt.Sprintf("inside the padding after entry %q", r.current))
		}
		// Padding outside the signed data must be zero, or one bundle could have many byte-different archives.
		if !bytes.Equal(padding, zeroBlock[:len(padding)]) {
			return fail("BUNDLE_MALFORMED", "the padding after bundle entry %q is not zero", r.current)
		}
		r.padLeft = 0
	}
	return nil
}

func (r *tarReader) skip() error { return r.stream(nil) }

// readAll reads the current entry whole, for small entries (marker, envelope, cube).
func (r *tarReader) readAll(entry *tarEntry, limit int64) ([]byte, error) {
	if entry.size > limit {
		return nil, fail("BUNDLE_ENTRY_TOO_LARGE", "bundle entry %q is %d bytes, over the limit of %d for this kind of entry", entry.name, entry.size, limit)
	}
	out := make([]byte, 0, entry.size)
	err := r.stream(func(piece []byte) { out = append(out, piece...) })
	return out, err
}

func (r *tarReader) finishArchive() error {
	second := r.src.read(blockSize)
	if len(second) < blockSize {
		return r.truncated("inside the end-of-archive marker (two zero blocks)")
	}
	if !bytes.Equal(second, zeroBlock) {
		return fail("BUNDLE_MALFORMED", "the bundle has a zero block that is not followed by a second one")
	}
	// Trailing zeros (tar's record padding) are allowed; they count toward the limit, so an endless stream ends.
	// The first byte that is wrong decides, as if read one at a time: a non-zero byte within the limit is
	// BUNDLE_MALFORMED, a byte past it BUNDLE_TOO_LARGE. So the verdict never depends on the chunk sizes.
	limit := r.limits.maxBundleBytes
	for {
		start := r.src.consumed
		piece := r.src.take(1 << 62)
		if len(piece) == 0 {
			return nil
		}
		within := piece
		if room := limit - start; room < int64(len(piece)) {
			within = piece[:max(room, 0)]
		}
		for i, b := range within {
			if b != 0 {
				return fail("BUNDLE_MALFORMED", "the bundle has non-zero data after its end-of-archive marker (at byte %d)", start+int64(i))
			}
		}
		if r.src.consumed > limit {
			return fail("BUNDLE_TOO_LARGE", "the bundle continues past the limit of %d bytes after its end-of-archive marker", limit)
		}
	}
}

// number reads a numeric header field: NUL/space-terminated octal, or (when allowed) GNU base-256.
func number(field []byte, base256 bool) (int64, bool) {
	if base256 && field[0] == 0x80 {
		var n int64
		for _, b := range field[1:] {
			if n > (1<<62)>>8 {
				return 1 << 62, true // beyond any limit; reported as too large
			}
			n = n<<8 | int64(b)
		}
		return n, true
	}
	if i := bytes.IndexByte(field, 0); i >= 0 {
		field = field[:i]
	}
	digits := bytes.Trim(field, " ")
	var n int64
	for _, c := range digits {
		if c < '0' || c > '7' {
			return 0, false
		}
		if n > 1<<58 {
			return 1 << 62, true
		}
		n = n*8 + int64(c-'0')
	}
	return n, true
}

func headerSum(header []byte) int64 {
	var sum int64
	for i, b := range header {
		if i >= 148 && i < 156 {
			sum += ' '
		} else {
			sum += int64(b)
		}
	}
	return sum
}

func beforeNUL(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func (r *tarReader) parse(header []byte) (*tarEntry, error) {
	prefix, base := beforeNUL(header[345:500]), beforeNUL(header[:100])
	raw := base
	if len(prefix) > 0 {
		raw = append(append(append([]byte{}, prefix...), '/'), base...)
	}
	shown := strings.ToValidUTF8(string(raw), "\uFFFD")
	if stored, ok := number(header[148:156], false); !ok || stored != headerSum(header) {
		return nil, fail("BUNDLE_MALFORMED", "bundle entry %q has a bad header checksum", shown)
	}
	if string(header[257:263]) != "ustar\x00" || string(header[263:265]) != "00" {
		return nil, fail("BUNDLE_MALFORMED", "bundle entry %q is not a POSIX ustar header", shown)
	}
	for _, f := range numericFields {
		value := header[f.start:f.end]
		if value[0] != 0x80 && !octalField.Match(value) {
			return nil, fail("BUNDLE_MALFORMED", "bundle entry %q has a malformed %s field", shown, f.name)
		}
	}
	size, _ := number(header[124:136], true)
	if !utf8.Valid(raw) {
		return nil, fail("BUNDLE_MALFORMED", "bundle entry %q has a name that is not UTF-8", shown)
	}
	name := string(raw)
	if int64(len(r.names)) >= r.limits.maxEntries {
		return nil, fail("BUNDLE_TOO_MANY_ENTRIES", "bundle entry %q is past the limit of %d entries", name, r.limits.maxEntries)
	}
	if flag := header[156]; flag != '0' && flag != 0 {
		return nil, fail("BUNDLE_UNSAFE_ENTRY", "bundle entry %q is of type %q; bundles hold only regular files", name, flag)
	}
	if problem := pathProblem(name); problem != "" {
		return nil, fail("BUNDLE_UNSAFE_PATH", "bundle entry name %q %s", name, problem)
	}
	if r.names[name] {
		return nil, fail("BUNDLE_DUPLICATE_ENTRY", "bundle entry %q appears more than once", name)
	}
	r.names[name] = true
	if size > r.limits.maxEntryBytes {
		return nil, fail("BUNDLE_ENTRY_TOO_LARGE", "bundle entry %q claims %d bytes, over the limit of %d", name, size, r.limits.maxEntryBytes)
	}
	// Counted with the end-of-archive marker every bundle still needs, so a bundle that fits is accepted whole.
	total := r.src.consumed + size + (blockSize-size%blockSize)%blockSize + 2*blockSize
	if total > r.limits.maxBundleBytes {
		return nil, fail("BUNDLE_TOO_LARGE", "bundle entry %q (%d bytes) takes the bundle over the limit of %d", name, size, r.limits.maxBundleBytes)
	}
	return &tarEntry{name: name, size: size}, nil
}

// pathProblem says why name is not a safe relative path ("" if it is).
func pathProblem(name string) string {
	if name == "" {
		return "is empty"
	}
	if strings.HasPrefix(name, "/") {
		return "is an absolute path"
	}
	for _, c := range name {
		if c < 0x20 || (c >= 0x7f && c <= 0x9f) { // C0, DEL and C1 (U+009B is CSI)
			return "contains a control character"
		}
	}
	if strings.Contains(name, "\\") {
		return "contains a backslash"
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "has an empty, '.' or '..' path component"
		}
	}
	return ""
}
