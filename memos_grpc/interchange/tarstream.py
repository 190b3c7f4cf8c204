"""A streaming POSIX ustar writer and a strict streaming reader for bundle archives.

Neither side ever holds a whole entry or archive: the writer yields blocks around the caller's chunks, and the reader
yields slices of the input chunks. The reader accepts only regular files with safe, unique names, within limits.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator

from memos_grpc import reasons
from memos_grpc.errors import BundleError

BLOCK_SIZE = 512
END_OF_ARCHIVE = bytes(2 * BLOCK_SIZE)

_ZERO_BLOCK = bytes(BLOCK_SIZE)
_EMPTY = memoryview(b"")
_NAME_BYTES = 100
_PREFIX_BYTES = 155
_MAX_OCTAL_SIZE = 8**11
_MAGIC = b"ustar\x00"
_VERSION = b"00"
_OCTAL_DIGITS = b"01234567"
#: A well-formed octal field: digits, then NUL or space padding (leading spaces, as old writers put them).
_OCTAL_FIELD = re.compile(rb" *[0-7]*[ \x00]*")
# C0, DEL and C1 (U+0080-U+009F): a terminal acts on C1 as on C0 (U+009B is CSI), so names carry none of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# (field, start, end) of the numeric header fields the reader insists are well formed.
_NUMERIC_FIELDS = (
    ("mode", 100, 108),
    ("uid", 108, 116),
    ("gid", 116, 124),
    ("size", 124, 136),
    ("mtime", 136, 148),
    ("devmajor", 329, 337),
    ("devminor", 337, 345),
)
_KINDS = {
    b"1": "hard link",
    b"2": "symlink",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "FIFO",
    b"7": "contiguous file",
    b"x": "pax extended header",
    b"g": "pax global header",
    b"L": "GNU long name",
    b"K": "GNU long link name",
    b"S": "GNU sparse file",
    b"V": "GNU volume label",
    b"M": "GNU multi-volume continuation",
    b"D": "GNU dump directory",
}


@dataclasses.dataclass(frozen=True)
class TarLimits:
    """How much a reader accepts: per entry, in total (every byte of the stream), and in number of entries."""

    max_entry_bytes: int
    max_bundle_bytes: int
    max_entries: int

    def __post_init__(self) -> None:
        if min(self.max_entry_bytes, self.max_bundle_bytes, self.max_entries) < 0:
            raise ValueError(f"tar limits must not be negative: {self}")


def _path_problem(name: str) -> str | None:
    """Why ``name`` is not a safe relative path, or None if it is."""
    if not name:
        return "is empty"
    if name.startswith("/"):
        return "is an absolute path"
    if _CONTROL.search(name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"has a {part!r} path component" if part else "has an empty path component (leading, trailing or //)"
    return None


def entry_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file: mode 0o644, uid/gid 0, empty uname/gname, mtime 0, typeflag '0'.

    Deterministic (same name and size, same bytes). Names over 100 UTF-8 bytes use the ustar prefix field split at a
    '/' (prefix <=155 bytes); raise ValueError if it cannot fit. Sizes use 11 octal digits; raise ValueError if size
    >= 8 GiB. Names the reader would refuse raise ValueError too, so the writer cannot make an unreadable archive.
    """
    problem = _path_problem(name)
    if problem:
        raise ValueError(f"tar entry name {name!r} {problem}")
    if not 0 <= size < _MAX_OCTAL_SIZE:
        raise ValueError(f"tar entry {name!r} has size {size}; a ustar entry holds 0 to {_MAX_OCTAL_SIZE - 1} bytes")
    encoded = name.encode("utf-8")
    prefix = b""
    if len(encoded) > _NAME_BYTES:
        # The longest prefix that fits, as GNU tar and Python's tarfile choose, so the split is the usual one.
        cut = encoded.rfind(b"/", 0, _PREFIX_BYTES + 1)
        if cut <= 0 or len(encoded) - cut - 1 > _NAME_BYTES:
            raise ValueError(
                f"tar entry name {name!r} is {len(encoded)} UTF-8 bytes and has no '/' that splits it into a prefix "
                f"of at most {_PREFIX_BYTES} bytes and a name of at most {_NAME_BYTES}"
            )
        prefix, encoded = encoded[:cut], encoded[cut + 1 :]
    header = bytearray(BLOCK_SIZE)
    header[0 : len(encoded)] = encoded
    # mode, uid, gid, size, mtime, the checksum as spaces while it is summed, and the typeflag.
    header[100:157] = b"0000644\x00" + b"0000000\x00" * 2 + b"%011o\x00" % size + b"00000000000\x00" + b" " * 8 + b"0"
    # devmajor and devminor stay empty, as tarfile writes them for regular files: our headers match its byte for byte.
    header[257:265] = _MAGIC + _VERSION
    header[345 : 345 + len(prefix)] = prefix
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def entry_padding(size: int) -> bytes:
    """Zero bytes that pad an entry of this size to a whole block."""
    return bytes(-size % BLOCK_SIZE)


def file_entry(name: str, size: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Header, the data chunks as given, then padding. Raises ValueError if the chunks do not add up to size."""
    yield entry_header(name, size)
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > size:
            raise ValueError(f"tar entry {name!r} was declared as {size} bytes but its chunks hold more")
        yield chunk
    if total != size:
        raise ValueError(f"tar entry {name!r} was declared as {size} bytes but its chunks hold only {total}")
    if size % BLOCK_SIZE:
        yield entry_padding(size)


class _Source:
    """The input stream, one chunk at a time, handed out as memoryview slices."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = _EMPTY
        self._pos = 0
        self.consumed = 0

    def take(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes from the current chunk; empty only at the end of the stream."""
        buffer, pos = self._buffer, self._pos
        if pos >= len(buffer):
            buffer, pos = self._next_chunk(), 0
        end = min(pos + limit, len(buffer))
        self._pos = end
        self.consumed += end - pos
        return buffer if pos == 0 and end == len(buffer) else buffer[pos:end]

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer only if the stream ends first."""
        piece = self.take(size)
        if len(piece) == size:
            return piece.tobytes()
        gathered = bytearray(piece)
        while len(gathered) < size and (piece := self.take(size - len(gathered))):
            gathered += piece
        return bytes(gathered)

    def _next_chunk(self) -> memoryview:
        for chunk in self._chunks:
            if chunk:
                self._buffer = memoryview(chunk)
                return self._buffer
        self._buffer = _EMPTY
        return _EMPTY


@dataclasses.dataclass(eq=False)
class TarEntry:
    """One regular file of the archive; its data is read from the stream only through ``chunks`` or ``read_all``."""

    name: str
    size: int
    _reader: TarReader = dataclasses.field(repr=False)
    _started: bool = dataclasses.field(default=False, repr=False)

    def chunks(self) -> Iterator[memoryview]:
        """The entry's data, streamed; may be called once. Raises BundleError(BUNDLE_TRUNCATED) if it is cut short.

        The slices are views of the input chunks: copy them to keep them past the next step of the iteration.
        """
        if self._started:
            raise RuntimeError(f"the data of bundle entry {self.name!r} was already read; chunks() may be called once")
        if self._reader._current is not self:
            raise RuntimeError(f"the reader moved past bundle entry {self.name!r}; read its data before the next entry")
        self._started = True
        return self._stream()

    def read_all(self, limit: int) -> bytes:
        """The whole entry as bytes, for small entries (marker, envelope, cube); raises if size > limit."""
        if self.size > limit:
            raise BundleError(
                f"bundle entry {self.name!r} is {self.size} bytes, over the limit of {limit} for this kind of entry",
                reason=reasons.BUNDLE_ENTRY_TOO_LARGE,
            )
        return b"".join(self.chunks())

    def _stream(self) -> Iterator[memoryview]:
        reader = self._reader
        take = reader._source.take
        while True:
            # A caller may resume this generator after moving to the next entry; its bytes are not ours.
            if reader._current is not self:
                raise RuntimeError(f"the reader moved past bundle entry {self.name!r} while its data was being read")
            left = reader._data_left
            if not left:
                break
            piece = take(left)
            if not piece:
                raise reader._truncated(f"inside the data of entry {self.name!r} ({left} of {self.size} bytes missing)")
            reader._data_left = left - len(piece)
            yield piece
        reader._finish_entry()


class TarReader:
    """Reads a ustar stream strictly, entry by entry, never holding more than one block and one input chunk."""

    def __init__(self, chunks: Iterable[bytes], limits: TarLimits) -> None:
        self._source = _Source(chunks)
        self._limits = limits
        self._names: set[str] = set()
        self._current: TarEntry | None = None
        self._data_left = 0
        self._pad_left = 0
        self._started = False

    @property
    def bytes_read(self) -> int:
        """How many bytes of the input the reader has consumed so far."""
        return self._source.consumed

    def entries(self) -> Iterator[TarEntry]:
        """Yields each entry in order, skipping the data of entries the caller did not read.

        Ends after the end-of-archive marker, once the rest of the input is checked to be zero bytes. Validation
        order per header: end-of-archive, checksum/magic/fields, entry count, type, path, duplicate, size, total.
        """
        if self._started:
            raise RuntimeError("TarReader.entries() may be called once: the input stream is read as it goes")
        self._started = True
        while True:
            self._skip_entry()
            header = self._source.read(BLOCK_SIZE)
            if len(header) < BLOCK_SIZE:
                where = "inside an entry header" if header else "before the end-of-archive marker (two zero blocks)"
                raise self._truncated(where)
            if header == _ZERO_BLOCK:
                self._finish_archive()
                return
            entry = self._parse(header)
            self._current = entry
            self._data_left = entry.size
            self._pad_left = -entry.size % BLOCK_SIZE
            yield entry

    def _parse(self, header: bytes) -> TarEntry:
        prefix, base = header[345:500].split(b"\x00", 1)[0], header[:100].split(b"\x00", 1)[0]
        raw_name = prefix + b"/" + base if prefix else base
        stored = _number(header[148:156], base256=False)
        if stored != sum(header) - sum(header[148:156]) + 8 * ord(" "):
            raise BundleError(
                f"bundle entry {_shown(raw_name)} has a bad header checksum", reason=reasons.BUNDLE_MALFORMED
            )
        if header[257:263] != _MAGIC or header[263:265] != _VERSION:
            raise BundleError(
                f"bundle entry {_shown(raw_name)} is not a POSIX ustar header (magic {header[257:265]!r}, expected "
                f"{_MAGIC + _VERSION!r}); write bundles in ustar format",
                reason=reasons.BUNDLE_MALFORMED,
            )
        # Every entry pays this: a compiled pattern per field, and int() for the size alone.
        for field, start, end in _NUMERIC_FIELDS:
            value = header[start:end]
            if value[0] != 0x80 and not _OCTAL_FIELD.fullmatch(value):
                raise BundleError(
                    f"bundle entry {_shown(raw_name)} has a malformed {field} field", reason=reasons.BUNDLE_MALFORMED
                )
        size = _number(header[124:136])
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(
                f"bundle entry {_shown(raw_name)} has a name that is not UTF-8", reason=reasons.BUNDLE_MALFORMED
            ) from None
        limits = self._limits
        if len(self._names) >= limits.max_entries:
            raise BundleError(
                f"bundle entry {name!r} is past the limit of {limits.max_entries} entries",
                reason=reasons.BUNDLE_TOO_MANY_ENTRIES,
            )
        flag = header[156:157]
        if flag not in (b"0", b"\x00"):
            kind = _KINDS.get(flag, f"entry of type {flag!r}")
            raise BundleError(
                f"bundle entry {name!r} is a {kind}; bundles hold only regular files",
                reason=reasons.BUNDLE_UNSAFE_ENTRY,
            )
        problem = _path_problem(name)
        if problem:
            raise BundleError(f"bundle entry name {name!r} {problem}", reason=reasons.BUNDLE_UNSAFE_PATH)
        if name in self._names:
            raise BundleError(f"bundle entry {name!r} appears more than once", reason=reasons.BUNDLE_DUPLICATE_ENTRY)
        self._names.add(name)
        size = size or 0
        if size > limits.max_entry_bytes:
            raise BundleError(
                f"bundle entry {name!r} claims {size} bytes, over the limit of {limits.max_entry_bytes}",
                reason=reasons.BUNDLE_ENTRY_TOO_LARGE,
            )
        # Counted with the end-of-archive marker every bundle still needs, so a bundle that fits is accepted whole.
        total = self.bytes_read + size + (-size % BLOCK_SIZE) + len(END_OF_ARCHIVE)
        if total > limits.max_bundle_bytes:
            raise BundleError(
                f"bundle entry {name!r} ({size} bytes) takes the bundle to at least {total} bytes, over the limit of "
                f"{limits.max_bundle_bytes}",
                reason=reasons.BUNDLE_TOO_LARGE,
            )
        return TarEntry(name, size, self)

    def _skip_entry(self) -> None:
        if self._current is not None:
            for _ in self._current._stream():
                pass

    def _finish_entry(self) -> None:
        entry = self._current
        self._current = None
        if entry is None or not self._pad_left:
            return
        padding = self._source.read(self._pad_left)
        if len(padding) < self._pad_left:
            raise self._truncated(f"inside the padding after entry {entry.name!r}")
        # Padding outside the signed data must be zero, or one bundle could have many byte-different archives.
        if padding.count(0) != len(padding):
            raise BundleError(
                f"the padding after bundle entry {entry.name!r} is not zero", reason=reasons.BUNDLE_MALFORMED
            )
        self._pad_left = 0

    def _finish_archive(self) -> None:
        second = self._source.read(BLOCK_SIZE)
        if len(second) < BLOCK_SIZE:
            raise self._truncated("inside the end-of-archive marker (two zero blocks)")
        if second != _ZERO_BLOCK:
            raise BundleError(
                f"the bundle has a zero block at byte {self.bytes_read - 2 * BLOCK_SIZE} that is not followed by a "
                "second one; an archive ends with two zero blocks and nothing may follow but zeros",
                reason=reasons.BUNDLE_MALFORMED,
            )
        # Trailing zeros (tar's record padding) are allowed; they still count, so an endless stream cannot stall us.
        # The first byte that is wrong decides, as if read one at a time: a non-zero byte within the limit is
        # BUNDLE_MALFORMED, a byte past it BUNDLE_TOO_LARGE. So the verdict never depends on the chunk sizes.
        limit = self._limits.max_bundle_bytes
        while piece := self._source.take(1 << 62):
            start = self.bytes_read - len(piece)
            within = piece[: max(0, limit - start)].tobytes()
            if within.count(0) != len(within):
                raise BundleError(
                    f"the bundle has non-zero data after its end-of-archive marker (at byte "
                    f"{start + len(within) - len(within.lstrip(bytes(1)))})",
                    reason=reasons.BUNDLE_MALFORMED,
                )
            if self.bytes_read > limit:
                raise BundleError(
                    f"the bundle continues past the limit of {limit} bytes after its end-of-archive marker",
                    reason=reasons.BUNDLE_TOO_LARGE,
                )

    def _truncated(self, where: str) -> BundleError:
        return BundleError(
            f"the bundle ends after {self.bytes_read} bytes, {where}; the upload or file was cut short",
            reason=reasons.BUNDLE_TRUNCATED,
        )


def _shown(raw_name: bytes) -> str:
    """An entry name as error messages show it, whatever its bytes."""
    return repr(raw_name.decode("utf-8", "backslashreplace"))


def _number(field: bytes, *, base256: bool = True) -> int | None:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256; None if it is neither (or negative)."""
    if base256 and field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    # int() alone would take signs, underscores and '0o' prefixes.
    if digits.translate(None, _OCTAL_DIGITS):
        return None
    return int(digits, 8) if digits else 0
