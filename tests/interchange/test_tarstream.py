"""The streaming ustar writer and reader of bundles: round trips, interop with tarfile, every refusal, bounded memory.

Error cases are tables of forged archives, each read in several chunkings and checked for its exact reason.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tarfile
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from memos_grpc.errors import BundleError
from memos_grpc.interchange import tarstream
from memos_grpc.interchange.tarstream import (
    BLOCK_SIZE,
    END_OF_ARCHIVE,
    TarLimits,
    TarReader,
    entry_header,
    entry_padding,
    file_entry,
)

LIMITS = TarLimits(max_entry_bytes=1000, max_bundle_bytes=100_000, max_entries=4)
ROOMY = TarLimits(max_entry_bytes=1 << 40, max_bundle_bytes=1 << 40, max_entries=1000)
ZERO = bytes(BLOCK_SIZE)


def entry(name: str, data: bytes) -> bytes:
    return b"".join(file_entry(name, len(data), [data]))


def archive(*entries: tuple[str, bytes]) -> bytes:
    return b"".join(entry(name, data) for name, data in entries) + END_OF_ARCHIVE


def chunked(data: bytes, size: int | None) -> list[bytes]:
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def read(chunks: Iterable[bytes], limits: TarLimits = LIMITS) -> list[tuple[str, bytes]]:
    return [(e.name, b"".join(bytes(c) for c in e.chunks())) for e in TarReader(chunks, limits).entries()]


def forged(*patches: tuple[int, bytes], size: int = 0, fix_checksum: bool = True) -> bytes:
    """The header of a regular file 'a.txt', with bytes overwritten at the given offsets."""
    header = bytearray(entry_header("a.txt", size))
    for offset, value in patches:
        header[offset : offset + len(value)] = value
    if fix_checksum:
        header[148:156] = b" " * 8
        header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def named(name: bytes, prefix: bytes = b"") -> bytes:
    return forged((0, name.ljust(100, b"\x00")), (345, prefix.ljust(155, b"\x00")))


def typed(flag: bytes) -> bytes:
    return forged((156, flag)) + END_OF_ARCHIVE


A = entry("a", b"0123456789")
ONE_TB = b"\x80" + (10**12).to_bytes(11, "big")
SMALL_BUNDLE = TarLimits(max_entry_bytes=1000, max_bundle_bytes=3000, max_entries=10)

# (id, archive, limits, reason, text the message must contain)
ERROR_CASES: list[tuple[str, bytes, TarLimits, str, str]] = [
    ("empty stream", b"", LIMITS, "BUNDLE_TRUNCATED", "end-of-archive"),
    ("half a header", A[:300], LIMITS, "BUNDLE_TRUNCATED", "header"),
    ("inside data", A[:517], LIMITS, "BUNDLE_TRUNCATED", "'a'"),
    ("inside padding", A[:600], LIMITS, "BUNDLE_TRUNCATED", "padding after entry 'a'"),
    ("no end marker", A, LIMITS, "BUNDLE_TRUNCATED", "end-of-archive"),
    ("one zero block", A + ZERO, LIMITS, "BUNDLE_TRUNCATED", "end-of-archive"),
    ("half the second zero block", A + ZERO + ZERO[:256], LIMITS, "BUNDLE_TRUNCATED", "end-of-archive"),
    ("bad checksum", forged((0, b"b"), fix_checksum=False) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "checksum"),
    ("non-octal checksum", forged((148, b"12345x\x00 "), fix_checksum=False), LIMITS, "BUNDLE_MALFORMED", "checksum"),
    ("GNU magic", forged((257, b"ustar  \x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "ustar"),
    ("v7 header, no magic", forged((257, bytes(8))) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "ustar"),
    ("wrong version", forged((263, b"01")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "ustar"),
    ("non-octal size", forged((124, b"0000000001x\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "size"),
    ("signed size", forged((124, b"-0000000001\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "size"),
    ("0o size", forged((124, b"0o000000001\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "size"),
    ("underscore size", forged((124, b"00000_00001\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "size"),
    ("negative base-256 size", forged((124, b"\xff" * 12)) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "size"),
    ("non-octal mode", forged((100, b"0000648\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "mode"),
    ("non-octal mtime", forged((136, b"zzzzzzzzzzz\x00")) + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "mtime"),
    ("name not UTF-8", named(b"caf\xe9") + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "UTF-8"),
    ("non-zero padding", A[:522] + b"\x01" + A[523:] + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "padding"),
    ("second block not zero", A + ZERO + b"\x01" + ZERO[1:], LIMITS, "BUNDLE_MALFORMED", "zero block"),
    ("entry after one zero block", A + ZERO + A + END_OF_ARCHIVE, LIMITS, "BUNDLE_MALFORMED", "zero block"),
    ("data after the end", A + END_OF_ARCHIVE + bytes(700) + b"x", LIMITS, "BUNDLE_MALFORMED", "after"),
    ("header after the end", A + END_OF_ARCHIVE + A, LIMITS, "BUNDLE_MALFORMED", "after"),
    ("empty name", named(b"") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "empty"),
    ("absolute", named(b"/etc/passwd") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "/etc/passwd"),
    ("dotdot", named(b"../evil") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'..'"),
    ("inner dotdot", named(b"a/../../b") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'..'"),
    ("only dotdot", named(b"..") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'..'"),
    ("only dot", named(b".") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'.'"),
    ("leading dot", named(b"./a") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'.'"),
    ("inner dot", named(b"a/./b") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "'.'"),
    ("double slash", named(b"a//b") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "empty"),
    ("trailing slash", named(b"a/") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "empty"),
    ("backslash", named(b"a\\b") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "backslash"),
    ("windows path", named(b"..\\x") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "backslash"),
    ("newline", named(b"a\nb") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "control"),
    ("escape", named(b"\x1b[31mred") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "control"),
    ("DEL", named(b"a\x7fb") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "control"),
    ("absolute prefix", named(b"x", prefix=b"/abs") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "absolute"),
    ("prefix, empty name", named(b"", prefix=b"dir") + END_OF_ARCHIVE, LIMITS, "BUNDLE_UNSAFE_PATH", "empty"),
    ("hard link", typed(b"1"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "hard link"),
    ("symlink", typed(b"2"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "symlink"),
    ("character device", typed(b"3"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "character device"),
    ("block device", typed(b"4"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "block device"),
    ("directory", typed(b"5"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "directory"),
    ("fifo", typed(b"6"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "FIFO"),
    ("contiguous", typed(b"7"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "contiguous"),
    ("pax header", typed(b"x"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "pax"),
    ("pax global header", typed(b"g"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "pax"),
    ("GNU long name", typed(b"L"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "GNU long name"),
    ("GNU long link", typed(b"K"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "GNU long link"),
    ("GNU sparse", typed(b"S"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "sparse"),
    ("unknown type", typed(b"Z"), LIMITS, "BUNDLE_UNSAFE_ENTRY", "'a.txt'"),
    ("duplicate", A + A + END_OF_ARCHIVE, LIMITS, "BUNDLE_DUPLICATE_ENTRY", "'a'"),
    ("duplicate via prefix", entry("d/x", b"") + named(b"x", prefix=b"d"), LIMITS, "BUNDLE_DUPLICATE_ENTRY", "d/x"),
    ("entry over limit", entry("big", bytes(1001)) + END_OF_ARCHIVE, LIMITS, "BUNDLE_ENTRY_TOO_LARGE", "1001 bytes"),
    ("8 GiB - 1 octal", forged((124, b"77777777777\x00")), LIMITS, "BUNDLE_ENTRY_TOO_LARGE", str(8**11 - 1)),
    ("1 TB base-256", forged((124, ONE_TB)), LIMITS, "BUNDLE_ENTRY_TOO_LARGE", str(10**12)),
    ("bundle over limit", archive(("a", bytes(1000)), ("b", bytes(1000))), SMALL_BUNDLE, "BUNDLE_TOO_LARGE", "'b'"),
    ("trailing zeros over limit", archive(("a", b"x")) + bytes(5000), SMALL_BUNDLE, "BUNDLE_TOO_LARGE", "3000"),
    ("too many entries", archive(*[(str(i), b"") for i in range(5)]), LIMITS, "BUNDLE_TOO_MANY_ENTRIES", "'4'"),
    # Validation order: the earlier check wins when a header breaks several rules.
    ("bad magic beats bad type", forged((257, b"GNUtar\x00\x00"), (156, b"2")), LIMITS, "BUNDLE_MALFORMED", "ustar"),
    (
        "count beats type",
        archive(*[(str(i), b"") for i in range(4)])[:-1024] + typed(b"2"),
        LIMITS,
        "BUNDLE_TOO_MANY_ENTRIES",
        "",
    ),
    ("type beats path", forged((0, b"../x\x00"), (156, b"2")), LIMITS, "BUNDLE_UNSAFE_ENTRY", "symlink"),
    ("path beats size", forged((0, b"/x\x00"), (124, ONE_TB)), LIMITS, "BUNDLE_UNSAFE_PATH", "absolute"),
    ("duplicate beats size", A + forged((0, b"a\x00"), (124, ONE_TB)), LIMITS, "BUNDLE_DUPLICATE_ENTRY", "'a'"),
    ("entry size beats total", entry("a", bytes(1001)), SMALL_BUNDLE, "BUNDLE_ENTRY_TOO_LARGE", "'a'"),
]


@pytest.mark.parametrize("chunk_size", [1, 100, None], ids=["1-byte", "100-byte", "whole"])
@pytest.mark.parametrize(
    ("data", "limits", "reason", "text"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_refused_with_reason(data: bytes, limits: TarLimits, reason: str, text: str, chunk_size: int | None) -> None:
    with pytest.raises(BundleError) as caught:
        read(chunked(data, chunk_size), limits)
    assert caught.value.reason == reason, caught.value.message
    assert text in caught.value.message


@pytest.mark.parametrize(
    ("data", "limits", "reason", "text"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_refused_with_reason_when_data_is_skipped(data: bytes, limits: TarLimits, reason: str, text: str) -> None:
    with pytest.raises(BundleError) as caught:
        for _ in TarReader([data], limits).entries():
            pass
    assert caught.value.reason == reason, caught.value.message


def test_every_reason_is_covered() -> None:
    source = Path(tarstream.__file__).read_text()
    raised = {
        k.value.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "reason"
        and isinstance(k.value, ast.Attribute)
        and isinstance(k.value.value, ast.Name)
        and k.value.value.id == "reasons"
    }
    assert raised == {reason for _, _, _, reason, _ in ERROR_CASES}


def test_huge_size_is_refused_before_any_data_is_read() -> None:
    pulled: list[int] = []

    def stream() -> Iterator[bytes]:
        yield forged((124, ONE_TB))
        pulled.append(1)
        yield bytes(1 << 20)

    with pytest.raises(BundleError) as caught:
        list(
            TarReader(stream(), TarLimits(max_entry_bytes=1 << 30, max_bundle_bytes=1 << 50, max_entries=10)).entries()
        )
    assert caught.value.reason == "BUNDLE_ENTRY_TOO_LARGE"
    assert not pulled


SIZES = [0, 1, 511, 512, 513, 100_000]
PAYLOADS = [(f"dir/entry-{size}.bin", bytes((i * 7 + size) % 251 for i in range(size))) for size in SIZES]


@pytest.mark.parametrize("chunk_size", [1, 7, 64 * 1024, None], ids=["1-byte", "7-byte", "64KiB", "one-chunk"])
def test_round_trip(chunk_size: int | None) -> None:
    data = archive(*PAYLOADS)
    reader = TarReader(chunked(data, chunk_size), ROOMY)
    got = [(e.name, e.size, b"".join(bytes(c) for c in e.chunks())) for e in reader.entries()]
    assert got == [(name, len(payload), payload) for name, payload in PAYLOADS]
    assert reader.bytes_read == len(data)


@pytest.mark.parametrize("size", SIZES)
def test_entry_layout(size: int) -> None:
    written = entry("x", bytes(size))
    assert len(written) % BLOCK_SIZE == 0
    assert len(written) == BLOCK_SIZE + size + len(entry_padding(size))
    assert len(entry_padding(size)) < BLOCK_SIZE


def test_header_is_deterministic() -> None:
    assert entry_header("a/b", 5) == entry_header("a/b", 5)
    assert entry_header("a/b", 5) != entry_header("a/b", 6)
    assert len(entry_header("a/b", 5)) == BLOCK_SIZE


LONG_NAMES = [
    "p" * 155 + "/" + "n" * 100,
    "cubes/" + "x" * 100,
    "a" * 100,
    "/".join(["segment"] * 30),
    "dir/" + "é" * 50,
]


@pytest.mark.parametrize(
    "name", LONG_NAMES, ids=["max-prefix-max-name", "short-prefix", "100-bytes", "many-parts", "utf8"]
)
def test_long_names_round_trip(name: str) -> None:
    assert read([archive((name, b"hi"))]) == [(name, b"hi")]


@pytest.mark.parametrize(
    "name",
    ["x" * 101, "p" * 156 + "/" + "n", "p/" + "n" * 101, "é" * 51, "/abs", "a/../b", "a\x00b", "a\\b", "a/", ""],
    ids=[
        "no-slash",
        "prefix-too-long",
        "name-too-long",
        "utf8-too-long",
        "absolute",
        "dotdot",
        "nul",
        "bs",
        "dir",
        "empty",
    ],
)
def test_writer_refuses_names(name: str) -> None:
    with pytest.raises(ValueError):
        entry_header(name, 0)


@pytest.mark.parametrize("size", [-1, 8**11], ids=["negative", "8GiB"])
def test_writer_refuses_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        entry_header("a", size)


@pytest.mark.parametrize(("declared", "chunks"), [(5, [b"abc"]), (2, [b"ab", b"c"])], ids=["short", "long"])
def test_file_entry_checks_the_size(declared: int, chunks: list[bytes]) -> None:
    with pytest.raises(ValueError):
        list(file_entry("a", declared, chunks))


@pytest.mark.parametrize(("name", "size"), [("a/b.txt", 1000), ("p" * 120 + "/name", 5), ("x", 0), ("é", 8**11 - 1)])
def test_header_matches_tarfile_byte_for_byte(name: str, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uname, info.gname = size, 0o644, 0, "", ""
    assert entry_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def test_tarfile_reads_what_we_write() -> None:
    names = [*LONG_NAMES, *(name for name, _ in PAYLOADS)]
    payloads = {name: name.encode() * 3 for name in names} | dict(PAYLOADS)
    with tarfile.open(fileobj=io.BytesIO(archive(*payloads.items())), mode="r:") as tar:
        members = tar.getmembers()
        assert [(m.name, m.size, m.type, m.mode, m.mtime) for m in members] == [
            (name, len(data), tarfile.REGTYPE, 0o644, 0) for name, data in payloads.items()
        ]
        for member in members:
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert extracted.read() == payloads[member.name]


def test_we_read_what_tarfile_writes() -> None:
    payloads = dict([*PAYLOADS, ("p" * 120 + "/name", b"prefixed"), ("empty", b"")])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in payloads.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.uname, info.gname = "someone", "staff"
            tar.addfile(info, io.BytesIO(data))
    written = buffer.getvalue()
    assert len(written) % tarfile.RECORDSIZE == 0  # so the trailing record padding is exercised
    assert read(chunked(written, 1000), ROOMY) == list(payloads.items())


@pytest.mark.parametrize("trailing", [0, 1, 511, 512, 10_000], ids=str)
def test_trailing_zeros_are_accepted(trailing: int) -> None:
    data = archive(("a", b"x")) + bytes(trailing)
    reader = TarReader(chunked(data, 300), LIMITS)
    assert [(e.name, e.read_all(10)) for e in reader.entries()] == [("a", b"x")]
    assert reader.bytes_read == len(data)


@pytest.mark.parametrize(
    ("non_zero_at", "reason"),
    [(0, "BUNDLE_MALFORMED"), (99, "BUNDLE_MALFORMED"), (100, "BUNDLE_TOO_LARGE"), (None, "BUNDLE_TOO_LARGE")],
    ids=["first-byte", "last-byte-within-limit", "first-byte-past-limit", "zeros-only"],
)
def test_the_first_wrong_byte_after_the_end_decides_at_every_chunking(non_zero_at: int | None, reason: str) -> None:
    """After the end-of-archive marker a non-zero byte within the limit is malformed, a byte past it too large."""
    archived = archive(("a", b"x"))
    trailing = bytearray(200)
    if non_zero_at is not None:
        trailing[non_zero_at] = 1
    limits = TarLimits(max_entry_bytes=10, max_bundle_bytes=len(archived) + 100, max_entries=4)
    for chunk_size in [None, *range(1, len(archived) + len(trailing) + 1, 7)]:
        with pytest.raises(BundleError) as raised:
            read(chunked(archived + trailing, chunk_size), limits)
        assert raised.value.reason == reason, chunk_size


def test_limits_are_inclusive() -> None:
    data = archive(("0", bytes(1000)), ("1", b""), ("2", b""), ("3", b""))
    exact = TarLimits(max_entry_bytes=1000, max_bundle_bytes=len(data), max_entries=4)
    assert [name for name, _ in read([data], exact)] == ["0", "1", "2", "3"]


@pytest.mark.parametrize("chunk_size", [100, None], ids=["100-byte", "whole"])
def test_every_strict_prefix_is_truncated(chunk_size: int | None) -> None:
    data = archive(("a", b""), ("b/c", b"hello"), ("d", bytes(600)))
    for end in range(len(data)):
        with pytest.raises(BundleError) as caught:
            read(chunked(data[:end], chunk_size), ROOMY)
        assert caught.value.reason == "BUNDLE_TRUNCATED", (end, caught.value.message)
    assert len(read(chunked(data, chunk_size), ROOMY)) == 3


def test_unread_and_partly_read_entries_are_skipped() -> None:
    data = archive(("a", bytes(5000)), ("b", b"x" * 3000), ("c", b"end"))
    reader = TarReader(chunked(data, 333), ROOMY)
    seen = {}
    for e in reader.entries():
        if e.name == "b":
            first = next(e.chunks())
            assert bytes(first) == b"x" * len(first)
        elif e.name == "c":
            seen[e.name] = e.read_all(10)
    assert seen == {"c": b"end"}
    assert reader.bytes_read == len(data)


def test_entry_data_is_read_once_and_in_order() -> None:
    entries = TarReader([archive(("a", b"1"), ("b", b"2"))], LIMITS).entries()
    first = next(entries)
    assert first.read_all(10) == b"1"
    with pytest.raises(RuntimeError):
        first.chunks()
    second = next(entries)
    stale = next(entries, None)
    assert stale is None
    with pytest.raises(RuntimeError):
        second.chunks()


def test_read_all_limit() -> None:
    (only,) = TarReader([archive(("a", bytes(100)))], LIMITS).entries()
    with pytest.raises(BundleError) as caught:
        only.read_all(99)
    assert caught.value.reason == "BUNDLE_ENTRY_TOO_LARGE"
    assert "'a'" in caught.value.message


@pytest.mark.parametrize("consume", [True, False], ids=["hashed", "skipped"])
def test_memory_stays_bounded(consume: bool) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    count = 200
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(block)

    def stream() -> Iterator[bytes]:
        yield from file_entry("big.bin", count * len(block), (block for _ in range(count)))
        yield from file_entry("small", 3, [b"abc"])
        yield END_OF_ARCHIVE

    tracemalloc.start()
    try:
        digests = {}
        for e in TarReader(stream(), ROOMY).entries():
            if consume:
                digest = hashlib.sha256()
                for piece in e.chunks():
                    digest.update(piece)
                digests[e.name] = digest.hexdigest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    if consume:
        assert digests == {"big.bin": expected.hexdigest(), "small": hashlib.sha256(b"abc").hexdigest()}
