"""Bundle vectors: whole bundles (ustar bytes) through every verification step, well formed and forged.

The cubes are real serialized memos.v1.MemCube messages with fixed fields; malformed archives are built from
well-formed tarstream entries, with single header or data bytes patched where a case needs it.
"""

from __future__ import annotations

import json
from typing import Any

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.interchange.tarstream import END_OF_ARCHIVE, entry_header, entry_padding, file_entry
from tools.vectors.common import (
    DAY,
    KEY1,
    KEY2,
    KEY3,
    NOW,
    PREDICATE_TYPE,
    STATEMENT_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Json,
    b64,
    canonical,
    invalid,
    rfc3339,
    sha256_hex,
    signed,
    valid,
    vector,
)

Entry = tuple[str, bytes]
T = STATEMENT_PAYLOAD_TYPE

BLOB = b"memos test vector: the bytes of a tiny activation blob\n" * 2
BLOB_DIGEST = "sha256:" + sha256_hex(BLOB)
MODEL = "sha256:" + sha256_hex(b"memos test vector model")
LIMITS: Json = {
    "max_entry_bytes": 65536,
    "max_bundle_bytes": 1 << 20,
    "max_entries": 16,
    "max_envelope_bytes": 16384,
    "max_cube_bytes": 4096,
}


def _cube(provenance_id: str, **fields: Any) -> Entry:
    cube = cube_pb2.MemCube(
        provenance_id=provenance_id,
        source=cube_pb2.SOURCE_USER_INPUT,
        origin="memos test vectors",
        state=cube_pb2.LIFECYCLE_STATE_ACTIVATED,
        version=1,
        priority=50,
        **fields,
    )
    return f"cubes/{provenance_id}.pb", cube.SerializeToString(deterministic=True)


CUBES = [
    _cube(
        "vector-cube-1",
        type=cube_pb2.MEMORY_TYPE_PLAINTEXT,
        plaintext=cube_pb2.PlaintextPayload(text="The capital of France is Paris."),
        semantic_type=cube_pb2.SEMANTIC_TYPE_FACT,
        tags=["geography"],
    ),
    _cube(
        "vector-cube-2",
        type=cube_pb2.MEMORY_TYPE_PLAINTEXT,
        plaintext=cube_pb2.PlaintextPayload(text="Prefers answers in metric units."),
        semantic_type=cube_pb2.SEMANTIC_TYPE_PREFERENCE,
    ),
    _cube(
        "vector-cube-3",
        type=cube_pb2.MEMORY_TYPE_ACTIVATION,
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=BLOB_DIGEST, size_bytes=len(BLOB), media_type="application/vnd.safetensors"),
            model_fingerprint=MODEL,
            dtype="float32",
            shape=[1, 2, 4, 8],
            num_layers=2,
            num_heads=2,
            token_count=4,
        ),
    ),
]
ENTRIES = [*CUBES, ("blobs/sha256/" + sha256_hex(BLOB), BLOB)]

PREDICATE: Json = {
    "formatVersion": 1,
    "created": rfc3339(NOW - DAY),
    "exporter": {"principal": "principals/vector-exporter", "node": KEY1.key_id},
    "source": {"server": "vector-node", "space": "spaces/vectors", "filter": ""},
    "cubeCounts": {"activation": 1, "plaintext": 2},
    "embeddingFingerprint": "",
    "modelFingerprints": [MODEL],
    "redactions": [],
}


def statement(
    entries: list[Entry] = ENTRIES,
    *,
    predicate_type: str = PREDICATE_TYPE,
    size_delta: int = 0,
) -> bytes:
    """The canonical statement listing ``entries``; ``size_delta`` misstates the first entry's size."""
    subjects: list[Json] = []
    for index, (name, data) in enumerate(entries):
        size = len(data) + (size_delta if index == 0 else 0)
        subjects.append({"name": name, "digest": {"sha256": sha256_hex(data)}, "annotations": {"size": size}})
    document = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": predicate_type, "predicate": PREDICATE}
    return canonical(document)


STATEMENT = statement()
ENVELOPE = signed(T, STATEMENT, KEY1).encode()


def entry(name: str, data: bytes) -> bytes:
    return b"".join(file_entry(name, len(data), [data]))


def forged_entry(
    name: str, data: bytes = b"", *, typeflag: bytes = b"0", linkname: str = "", bad_checksum: bool = False
) -> bytes:
    """An entry whose header says what a well-behaved writer refuses to (any name, any type), checksum recomputed."""
    header = bytearray(entry_header("placeholder", len(data)))
    header[0:100] = name.encode().ljust(100, b"\0")
    header[156:157] = typeflag
    header[157:257] = linkname.encode().ljust(100, b"\0")
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % (sum(header) + (1 if bad_checksum else 0))
    return bytes(header) + data + entry_padding(len(data))


def archive(*items: Entry | bytes, end: bool = True) -> bytes:
    """Entries in order: (name, data) pairs written properly, or raw bytes of a forged entry."""
    parts = [item if isinstance(item, bytes) else entry(*item) for item in items]
    return b"".join(parts) + (END_OF_ARCHIVE if end else b"")


def bundle(
    envelope: bytes = ENVELOPE, entries: list[Entry] = ENTRIES, *extra: Entry | bytes, end: bool = True
) -> bytes:
    return archive(("memos-bundle", b"1\n"), ("statement.dsse.json", envelope), *entries, *extra, end=end)


def _case(
    case: str,
    description: str,
    data: bytes,
    expected: Json,
    *,
    trusted: list[Json] | None = None,
    threshold: int = 1,
    required: tuple[str, ...] = (),
    limits: Json | None = None,
) -> Json:
    inputs = {
        "now": rfc3339(NOW),
        "trusted_keys": [KEY1.trusted()] if trusted is None else trusted,
        "threshold": threshold,
        "required_key_ids": list(required),
        "limits": {**LIMITS, **(limits or {})},
        "bundle": b64(data),
    }
    return vector("bundle", case, description, inputs, expected)


def _ok(statement_bytes: bytes = STATEMENT, cubes: int = 3, blobs: int = 1) -> Json:
    return valid(statement_sha256=sha256_hex(statement_bytes), cube_count=cubes, blob_count=blobs)


def _with_byte_changed(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def _extended_statement() -> bytes:
    """STATEMENT with unknown fields at the top level, in the predicate and in a subject."""
    document = json.loads(STATEMENT)
    document["x-future"] = {"note": "unknown top-level fields are ignored"}
    document["predicate"]["futureField"] = ["ignored", 1]
    document["subject"][0]["uri"] = "memos://ignored"
    document["subject"][0]["annotations"]["mediaType"] = "application/vnd.memos.cube+protobuf"
    return canonical(document)


def valid_vectors() -> list[Json]:
    extended = _extended_statement()
    empty = statement([])
    whole = bundle()
    return [
        _case("valid", "Three cubes (two plaintext, one activation) and the activation's blob.", whole, _ok()),
        _case(
            "valid-two-signers",
            "Signed by two trusted keys, threshold 2, the second key pinned as required.",
            bundle(signed(T, STATEMENT, KEY1, KEY2).encode()),
            _ok(),
            trusted=[KEY1.trusted(), KEY2.trusted()],
            threshold=2,
            required=(KEY2.key_id,),
        ),
        _case(
            "valid-unknown-fields",
            "Unknown fields in the statement, its predicate and a subject are ignored.",
            bundle(signed(T, extended, KEY1).encode()),
            _ok(extended),
        ),
        _case(
            "valid-empty",
            "A bundle with no cubes: the statement lists no subjects.",
            bundle(signed(T, empty, KEY1).encode(), []),
            _ok(empty, 0, 0),
        ),
        _case(
            "valid-trailing-zero-record",
            "Zero bytes after the end-of-archive marker (tar's 10240-byte record padding) are allowed.",
            whole + bytes(-len(whole) % 10240),
            _ok(),
        ),
    ]


def archive_vectors() -> list[Json]:
    """Step 1: the tar itself."""
    whole = bundle()
    head = bundle(ENVELOPE, CUBES, end=False)
    padded_cube = bytearray(entry(*CUBES[0]))
    padded_cube[-1] = 1
    return [
        _case(
            "unsafe-path-dotdot",
            "An entry named '../evil.pb'.",
            bundle(ENVELOPE, ENTRIES, forged_entry("../evil.pb", b"x")),
            invalid("BUNDLE_UNSAFE_PATH"),
        ),
        _case(
            "unsafe-path-absolute",
            "An entry named '/tmp/evil.pb'.",
            bundle(ENVELOPE, ENTRIES, forged_entry("/tmp/evil.pb", b"x")),
            invalid("BUNDLE_UNSAFE_PATH"),
        ),
        _case(
            "symlink",
            "A symlink entry (typeflag '2') pointing at /etc/passwd.",
            bundle(ENVELOPE, ENTRIES, forged_entry("cubes/link.pb", typeflag=b"2", linkname="/etc/passwd")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _case(
            "device",
            "A character device entry (typeflag '3').",
            bundle(ENVELOPE, ENTRIES, forged_entry("cubes/device.pb", typeflag=b"3")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _case(
            "duplicate-entry",
            "The first cube entry appears twice.",
            bundle(ENVELOPE, ENTRIES, CUBES[0]),
            invalid("BUNDLE_DUPLICATE_ENTRY"),
        ),
        _case(
            "marker-missing",
            "The archive starts with the envelope: no memos-bundle marker.",
            archive(("statement.dsse.json", ENVELOPE), *ENTRIES),
            invalid("BUNDLE_MARKER_MISSING"),
        ),
        _case(
            "marker-version-2",
            "The marker reads '2\\n', a major version this format does not know.",
            archive(("memos-bundle", b"2\n"), ("statement.dsse.json", ENVELOPE), *ENTRIES),
            invalid("BUNDLE_VERSION_UNSUPPORTED"),
        ),
        _case(
            "envelope-not-second",
            "A cube entry comes between the marker and the envelope.",
            archive(("memos-bundle", b"1\n"), CUBES[0], ("statement.dsse.json", ENVELOPE), *ENTRIES[1:]),
            invalid("BUNDLE_ENVELOPE_MISSING"),
        ),
        _case(
            "truncated-in-data",
            "The stream ends ten bytes into the blob's data.",
            whole[: len(head) + 512 + 10],
            invalid("BUNDLE_TRUNCATED"),
        ),
        _case(
            "truncated-no-end-marker",
            "The stream ends after the last entry, without the two zero blocks.",
            whole[: -len(END_OF_ARCHIVE)],
            invalid("BUNDLE_TRUNCATED"),
        ),
        _case(
            "bad-header-checksum",
            "A cube entry's header checksum is off by one.",
            bundle(ENVELOPE, CUBES, forged_entry(ENTRIES[3][0], ENTRIES[3][1], bad_checksum=True)),
            invalid("BUNDLE_MALFORMED"),
        ),
        _case(
            "nonzero-padding",
            "The padding after a cube entry's data is not zero.",
            bundle(ENVELOPE, [], bytes(padded_cube), *ENTRIES[1:]),
            invalid("BUNDLE_MALFORMED"),
        ),
        _case(
            "data-after-end",
            "A non-zero block follows the end-of-archive marker.",
            whole + b"\x01" + bytes(511),
            invalid("BUNDLE_MALFORMED"),
        ),
    ]


def limit_vectors() -> list[Json]:
    whole = bundle()
    return [
        _case(
            "cube-too-large",
            "A cube entry is over max_cube_bytes.",
            whole,
            invalid("BUNDLE_ENTRY_TOO_LARGE"),
            limits={"max_cube_bytes": 32},
        ),
        _case(
            "envelope-too-large",
            "The envelope is over max_envelope_bytes.",
            whole,
            invalid("BUNDLE_ENTRY_TOO_LARGE"),
            limits={"max_envelope_bytes": 256},
        ),
        _case(
            "entry-too-large",
            "The envelope entry is one byte over max_entry_bytes, the limit for any entry.",
            whole,
            invalid("BUNDLE_ENTRY_TOO_LARGE"),
            limits={"max_entry_bytes": len(ENVELOPE) - 1},
        ),
        _case(
            "too-large",
            "The whole stream is one byte over max_bundle_bytes.",
            whole,
            invalid("BUNDLE_TOO_LARGE"),
            limits={"max_bundle_bytes": len(whole) - 1},
        ),
        # After the end-of-archive marker the first wrong byte decides: non-zero within the limit, or past it.
        _case(
            "data-after-end-then-over-limit",
            "A non-zero byte right after the end-of-archive marker, and the stream goes on past max_bundle_bytes.",
            whole + b"\x01" + bytes(1023),
            invalid("BUNDLE_MALFORMED"),
            limits={"max_bundle_bytes": len(whole) + 512},
        ),
        _case(
            "data-after-end-last-byte-within-limit",
            "Zeros after the end-of-archive marker, a non-zero byte as the last byte max_bundle_bytes allows, "
            "then more zeros past the limit.",
            whole + bytes(511) + b"\x01" + bytes(512),
            invalid("BUNDLE_MALFORMED"),
            limits={"max_bundle_bytes": len(whole) + 512},
        ),
        _case(
            "data-after-end-first-byte-over-limit",
            "Zeros after the end-of-archive marker up to max_bundle_bytes, then a non-zero byte just past it.",
            whole + bytes(512) + b"\x01" + bytes(511),
            invalid("BUNDLE_TOO_LARGE"),
            limits={"max_bundle_bytes": len(whole) + 512},
        ),
        _case(
            "zeros-after-end-over-limit",
            "Zero bytes after the end-of-archive marker run one byte past max_bundle_bytes.",
            whole + bytes(513),
            invalid("BUNDLE_TOO_LARGE"),
            limits={"max_bundle_bytes": len(whole) + 512},
        ),
        _case(
            "zeros-after-end-up-to-limit",
            "Zero bytes after the end-of-archive marker fill the stream to exactly max_bundle_bytes.",
            whole + bytes(512),
            _ok(),
            limits={"max_bundle_bytes": len(whole) + 512},
        ),
        _case(
            "too-many-entries",
            "Six entries (marker, envelope, three cubes, a blob) with max_entries 5.",
            whole,
            invalid("BUNDLE_TOO_MANY_ENTRIES"),
            limits={"max_entries": 5},
        ),
    ]


def signature_vectors() -> list[Json]:
    """Steps 2 and 3 inside a bundle."""
    text = ENVELOPE.decode()
    at = text.index('"payload":"') + len('"payload":"') + 40
    flipped = (text[:at] + ("B" if text[at] == "A" else "A") + text[at + 1 :]).encode()
    both = [KEY1.trusted(), KEY2.trusted()]
    return [
        _case(
            "envelope-payload-flipped",
            "One base64 character of the envelope's payload changed: still base64 and JSON, no longer what was signed.",
            bundle(flipped),
            invalid("BUNDLE_SIGNATURE_INVALID"),
        ),
        _case(
            "envelope-malformed",
            "The envelope entry is not JSON.",
            bundle(b'{"payloadType":'),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
        _case(
            "payload-type-invalid",
            "The statement is signed under payloadType application/json.",
            bundle(signed("application/json", STATEMENT, KEY1).encode()),
            invalid("BUNDLE_PAYLOAD_TYPE_INVALID"),
        ),
        _case(
            "untrusted-signer",
            "Signed by a key the policy does not trust.",
            bundle(signed(T, STATEMENT, KEY3).encode()),
            invalid("BUNDLE_UNTRUSTED_SIGNER"),
        ),
        _case(
            "signer-revoked",
            "The only signer was revoked before now.",
            bundle(),
            invalid("BUNDLE_SIGNER_REVOKED"),
            trusted=[KEY1.trusted(revoked_at=NOW - DAY)],
        ),
        _case(
            "signer-expired",
            "The only signer's notAfter is before now.",
            bundle(),
            invalid("BUNDLE_SIGNER_EXPIRED"),
            trusted=[KEY1.trusted(not_after=NOW - DAY)],
        ),
        _case(
            "threshold-not-met",
            "One of two trusted keys signs; the threshold is 2.",
            bundle(),
            invalid("BUNDLE_THRESHOLD_NOT_MET"),
            trusted=both,
            threshold=2,
        ),
        _case(
            "required-signer-missing",
            "The threshold is met, but the policy pins a key that did not sign.",
            bundle(),
            invalid("BUNDLE_REQUIRED_SIGNER_MISSING"),
            trusted=both,
            required=(KEY2.key_id,),
        ),
    ]


def content_vectors() -> list[Json]:
    """Steps 4 and 5: the statement, and the entries against it."""
    changed_cube = (CUBES[0][0], _with_byte_changed(CUBES[0][1], 5))
    misstated = statement(size_delta=1)
    wrong_type = statement(predicate_type="https://example.com/NotABundle/v1")
    stray = ("cubes/vector-cube-9.pb", CUBES[1][1])
    return [
        _case(
            "digest-mismatch",
            "One byte of a cube entry changed (same size).",
            bundle(ENVELOPE, [changed_cube, *ENTRIES[1:]]),
            invalid("BUNDLE_DIGEST_MISMATCH"),
        ),
        _case(
            "size-mismatch",
            "The signed statement gives the first cube one byte more than the entry holds.",
            bundle(signed(T, misstated, KEY1).encode()),
            invalid("BUNDLE_SIZE_MISMATCH"),
        ),
        _case(
            "unlisted-entry",
            "An extra well-formed cube entry that the statement does not list.",
            bundle(ENVELOPE, ENTRIES, stray),
            invalid("BUNDLE_UNLISTED_ENTRY"),
        ),
        _case(
            "missing-entry",
            "The statement lists the blob, the archive lacks it.",
            bundle(ENVELOPE, CUBES),
            invalid("BUNDLE_MISSING_ENTRY"),
        ),
        _case(
            "wrong-predicate-type",
            "A properly signed statement whose predicateType is not MemCubeBundle/v1.",
            bundle(signed(T, wrong_type, KEY1).encode()),
            invalid("BUNDLE_STATEMENT_INVALID"),
        ),
        _case(
            "statement-not-json",
            "A properly signed payload that is not JSON.",
            bundle(signed(T, b"not a statement", KEY1).encode()),
            invalid("BUNDLE_STATEMENT_INVALID"),
        ),
    ]


def bundle_vectors() -> list[Json]:
    return valid_vectors() + archive_vectors() + limit_vectors() + signature_vectors() + content_vectors()
