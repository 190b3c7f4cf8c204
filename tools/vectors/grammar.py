"""The strict grammar's vectors (docs/protocol.md, "The strict grammar"), positive and negative, in existing kinds.

One case per rule and per input on which implementations were seen to disagree: I-JSON (byte order mark, UTF-16,
NaN and fractions among unknown fields, duplicate and differently cased member names, integers past 2^53),
whole-string patterns (a trailing newline), the RFC 3339 profile, the base64 rule, weak Ed25519 public keys
(small order, non-canonical) and the tar cases (PAX and GNU headers, GNU magic, base-256 numbers, names that are
not UTF-8 or hold C0 or C1 control characters). Bytes are written out here, not produced by memos_grpc.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tools.vectors.bundles import ENTRIES, ENVELOPE, LIMITS, STATEMENT, archive, bundle
from tools.vectors.common import (
    KEY1,
    KEY2,
    KEY4,
    NOW,
    STATEMENT_PAYLOAD_TYPE,
    Json,
    b64,
    envelope_json,
    invalid,
    pae,
    rfc3339,
    sha256_hex,
    signed,
    valid,
    vector,
)
from tools.vectors.envelopes import PAYLOAD
from tools.vectors.grants import CHECKS, LICENSEE, MARKETPLACE, grant_statement
from tools.vectors.tlog import LOG
from tools.vectors.trust_roots import T as ROOT_TYPE
from tools.vectors.trust_roots import root

T = STATEMENT_PAYLOAD_TYPE
ENVELOPE_MALFORMED = invalid("BUNDLE_ENVELOPE_MALFORMED")
STATEMENT_INVALID = invalid("BUNDLE_STATEMENT_INVALID")
ROOT_MALFORMED = invalid("TRUST_ROOT_MALFORMED")

# Ed25519 (RFC 8032 5.1): the field prime and the curve constant d, to find the keys below from the spec alone.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
#: The identity point (order 1): OpenSSL verifies R = identity, S = 0 by this key over every message.
IDENTITY_KEY = bytes([1]) + bytes(31)
#: A point of order 8 (the torsion point libsodium's blocklist starts with).
ORDER_8_KEY = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
#: A point of order 4: y = 0 with the sign bit set.
ORDER_4_KEY = bytes(31) + bytes([0x80])


def _non_canonical_key() -> bytes:
    """The encoding of y + p for the smallest y in 2..18 that is on the curve: a large-order point, written y >= p."""
    for y in range(2, 19):
        u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
        if pow(u * pow(v, _P - 2, _P) % _P, (_P - 1) // 2, _P) == 1:
            return (y + _P).to_bytes(32, "little")
    raise AssertionError("no y in 2..18 is on the curve")


NON_CANONICAL_KEY = _non_canonical_key()


def spki_key_id(raw: bytes) -> str:
    """The key id of a raw Ed25519 public key: sha256 of its DER SubjectPublicKeyInfo (RFC 8410)."""
    return sha256_hex(bytes.fromhex("302a300506032b6570032100") + raw)


def _weak_trusted(raw: bytes, name: str) -> Json:
    return {"key_id": spki_key_id(raw), "public_key": b64(raw), "name": name}


# -- envelope kind: the envelope's JSON and base64 ------------------------------------------------------------------


def _env(case: str, description: str, envelope: str, expected: Json, trusted: list[Json] | None = None) -> Json:
    inputs = {
        "now": rfc3339(NOW),
        "trusted_keys": [KEY1.trusted()] if trusted is None else trusted,
        "threshold": 1,
        "required_key_ids": [],
        "envelope": envelope,
    }
    return vector("envelope", f"grammar-{case}", description, inputs, expected)


def _fields(**override: Any) -> dict[str, str]:
    """The envelope's members as JSON texts (name -> value text), in the order written."""
    signature = KEY1.signature(T, PAYLOAD)
    fields = {
        "payload": json.dumps(b64(PAYLOAD)),
        "payloadType": json.dumps(T),
        "signatures": json.dumps([signature], separators=(",", ":")),
    }
    fields.update(override)
    return fields


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in members) + "}"


def _with_unknown(value_text: str) -> str:
    return _object([*_fields().items(), ("x-future", value_text)])


def _payload_b64_changed(text: str) -> str:
    return _object([*_fields(payload=json.dumps(text)).items()])


def envelope_grammar_vectors() -> list[Json]:
    ok = valid(payload_sha256=sha256_hex(PAYLOAD))
    payload_text = b64(PAYLOAD)
    body, padding = payload_text.rstrip("="), len(payload_text) - len(payload_text.rstrip("="))
    # The last character with a non-zero unused bit: decodes to the same bytes in a lenient decoder.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-1])
    loose = body[:-1] + alphabet[last | 1] + "=" * padding
    fields = _fields()
    return [
        _env(
            "valid-max-safe-integer",
            "An unknown member holds 2^53 - 1, the largest integer allowed.",
            _with_unknown("9007199254740991"),
            ok,
        ),
        _env(
            "valid-negative-max-safe-integer",
            "An unknown member holds -(2^53 - 1).",
            _with_unknown("-9007199254740991"),
            ok,
        ),
        _env(
            "byte-order-mark",
            "A valid envelope preceded by a UTF-8 byte order mark (U+FEFF).",
            "\ufeff" + signed(T, PAYLOAD, KEY1),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "nan-in-unknown-member",
            "NaN in a member no reader knows: not JSON, wherever it is.",
            _with_unknown("NaN"),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "infinity-in-unknown-member",
            "-Infinity in an unknown member.",
            _with_unknown("[-Infinity]"),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "fraction-in-unknown-member",
            "1.0 in an unknown member: numbers are integers without a fraction.",
            _with_unknown("1.0"),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "exponent-in-unknown-member",
            "1e2 in an unknown member: numbers carry no exponent.",
            _with_unknown("1e2"),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "integer-past-2-53",
            "2^53 in an unknown member: past what every JSON reader holds exactly.",
            _with_unknown("9007199254740992"),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "lone-surrogate",
            "An unpaired surrogate escape (\\ud800) in an unknown member.",
            _with_unknown('"\\ud800"'),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "duplicate-member",
            "payloadType twice, both times the same value.",
            _object([("payloadType", fields["payloadType"]), *fields.items()]),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "member-name-case",
            "PAYLOADTYPE instead of payloadType: member names are matched exactly.",
            _object([("PAYLOADTYPE" if n == "payloadType" else n, v) for n, v in fields.items()]),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "base64-crlf",
            "The payload's base64 with CR LF in the middle: base64 holds no whitespace.",
            _payload_b64_changed(payload_text[:40] + "\r\n" + payload_text[40:]),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "base64-space",
            "The payload's base64 with a space in the middle.",
            _payload_b64_changed(payload_text[:40] + " " + payload_text[40:]),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "base64-nonzero-trailing-bits",
            "The payload's last base64 character has a non-zero unused bit: not the canonical encoding.",
            _payload_b64_changed(loose),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "base64-short-padding",
            "The payload's padding is one '=' short (padding present must be exact).",
            _payload_b64_changed(body + "=" * (padding - 1)) if padding == 2 else _payload_b64_changed(body + "=="),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "base64-extra-padding",
            "The payload's base64 followed by four more '='.",
            _payload_b64_changed(payload_text + "===="),
            ENVELOPE_MALFORMED,
        ),
        _env(
            "small-order-key",
            "The trusted key is the identity point and the signature R = identity, S = 0, which OpenSSL accepts "
            "for every message: a small-order key verifies nothing.",
            envelope_json(T, PAYLOAD, [{"keyid": spki_key_id(IDENTITY_KEY), "sig": b64(IDENTITY_KEY + bytes(32))}]),
            invalid("BUNDLE_SIGNATURE_INVALID"),
            trusted=[_weak_trusted(IDENTITY_KEY, "identity")],
        ),
        _env(
            "non-canonical-r-small-order-key",
            "The identity key again, R = the identity written as y + p and S = 0: lenient decoders of R accept it.",
            envelope_json(
                T,
                PAYLOAD,
                [{"keyid": spki_key_id(IDENTITY_KEY), "sig": b64((1 + _P).to_bytes(32, "little") + bytes(32))}],
            ),
            invalid("BUNDLE_SIGNATURE_INVALID"),
            trusted=[_weak_trusted(IDENTITY_KEY, "identity")],
        ),
        _env(
            "signature-s-not-reduced",
            "KEY1's valid signature with S + L for S (L the group order): the same equation holds, but S >= L.",
            envelope_json(T, PAYLOAD, [{"keyid": KEY1.key_id, "sig": b64(_unreduced(KEY1.sign(pae(T, PAYLOAD))))}]),
            invalid("BUNDLE_SIGNATURE_INVALID"),
        ),
        # At most MAX_SIGNATURES (256) signatures on one envelope, counted before any is tried.
        _env(
            "valid-256-signatures",
            "KEY1's signature 256 times, the most an envelope may carry; it counts once.",
            envelope_json(T, PAYLOAD, [KEY1.signature(T, PAYLOAD)] * 256),
            valid(payload_sha256=sha256_hex(PAYLOAD)),
        ),
        _env(
            "257-signatures",
            "KEY1's signature 257 times: one past MAX_SIGNATURES.",
            envelope_json(T, PAYLOAD, [KEY1.signature(T, PAYLOAD)] * 257),
            invalid("BUNDLE_ENVELOPE_MALFORMED"),
        ),
    ]


def _unreduced(signature: bytes) -> bytes:
    """``signature`` with S replaced by S + L, where L = 2^252 + 27742317777372353535851937790883648493."""
    s = int.from_bytes(signature[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    return signature[:32] + s.to_bytes(32, "little")


# -- bundle kind: statement JSON and patterns, envelope bytes, tar ---------------------------------------------------


def _bundle(case: str, description: str, data: bytes, expected: Json, limits: Json | None = None) -> Json:
    inputs = {
        "now": rfc3339(NOW),
        "trusted_keys": [KEY1.trusted()],
        "threshold": 1,
        "required_key_ids": [],
        "limits": {**LIMITS, **(limits or {})},
        "bundle": b64(data),
    }
    return vector("bundle", f"grammar-{case}", description, inputs, expected)


def _statement_bundle(payload: bytes) -> bytes:
    return bundle(signed(T, payload, KEY1).encode())


def _replaced(data: bytes, old: bytes, new: bytes) -> bytes:
    if data.count(old) != 1:
        raise AssertionError(f"{old!r} is not in the bytes exactly once")
    return data.replace(old, new)


def _header(
    name: bytes, size: int, *, typeflag: bytes = b"0", magic: bytes = b"ustar\x0000", size_field: bytes = b""
) -> bytes:
    """A ustar header for any name bytes, type, magic and size field, its checksum computed (POSIX ustar, by hand)."""
    header = bytearray(512)
    header[0 : len(name)] = name
    header[100:136] = b"0000644\x00" + b"0000000\x00" * 2 + (size_field or b"%011o\x00" % size)
    header[136:148] = b"00000000000\x00"
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:265] = magic
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def _raw_entry(name: bytes, data: bytes = b"", **header: Any) -> bytes:
    return _header(name, len(data), **header) + data + bytes(-len(data) % 512)


def _with_field(data: bytes, entry_name: str, start: int, value: bytes) -> bytes:
    """``data`` with the header of ``entry_name`` changed at ``start`` and its checksum recomputed."""
    at = data.index(entry_name.encode().ljust(100, b"\x00"))
    header = bytearray(data[at : at + 512])
    header[start : start + len(value)] = value
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    return data[:at] + bytes(header) + data[at + 512 :]


def _base256_checksum(data: bytes, entry_name: str) -> bytes:
    """``data`` with the header checksum of ``entry_name`` written right, but as GNU base-256 (0x80, 7 bytes)."""
    at = data.index(entry_name.encode().ljust(100, b"\x00"))
    header = bytearray(data[at : at + 512])
    # The checksum counts its own field as eight spaces, whatever the field holds.
    header[148:156] = b" " * 8
    header[148:156] = b"\x80" + sum(header).to_bytes(7, "big")
    return data[:at] + bytes(header) + data[at + 512 :]


def bundle_grammar_vectors() -> list[Json]:
    ok = valid(statement_sha256=sha256_hex(STATEMENT), cube_count=3, blob_count=1)
    blob_name, blob = ENTRIES[-1]
    digest = sha256_hex(blob).encode()
    cube_name = ENTRIES[0][0].encode()
    # A cube's digest: a blob's also appears in its name, which would refuse the change for another reason.
    cube_digest = sha256_hex(ENTRIES[0][1]).encode()
    envelope_entry = ("statement.dsse.json", ENVELOPE.decode().encode("utf-16"))
    with_latin1 = _replaced(ENVELOPE, b'"payloadType"', b'"x-caf\xe9":0,"payloadType"')
    base256_size = b"\x80" + len(blob).to_bytes(11, "big")
    huge = b"\x80" + (1 << 40).to_bytes(11, "big")
    return [
        # JSON, in the signed statement (its bytes are signed as they are, so the verifier reads them strictly).
        _bundle(
            "statement-byte-order-mark",
            "The signed statement starts with a UTF-8 byte order mark.",
            _statement_bundle(b"\xef\xbb\xbf" + STATEMENT),
            STATEMENT_INVALID,
        ),
        _bundle(
            "statement-duplicate-member",
            "The signed statement has _type twice.",
            _statement_bundle(b'{"_type":"https://in-toto.io/Statement/v1",' + STATEMENT[1:]),
            STATEMENT_INVALID,
        ),
        _bundle(
            "statement-nan-in-predicate",
            "The signed statement's predicate holds NaN in an unknown member.",
            _statement_bundle(_replaced(STATEMENT, b'"formatVersion":1', b'"formatVersion":1,"x":NaN')),
            STATEMENT_INVALID,
        ),
        _bundle(
            "statement-size-fraction",
            "A subject's size written with a fraction (N.0).",
            _statement_bundle(_replaced(STATEMENT, b'"size":%d}' % len(blob), b'"size":%d.0}' % len(blob))),
            STATEMENT_INVALID,
        ),
        # A subject's size is 0 to 2^53 - 1: within it, the size is compared with the entry's.
        _bundle(
            "statement-size-negative",
            "A subject's size is -1.",
            _statement_bundle(_replaced(STATEMENT, b'"size":%d}' % len(blob), b'"size":-1}')),
            STATEMENT_INVALID,
        ),
        _bundle(
            "statement-size-max-safe-integer",
            "A subject's size is 2^53 - 1, within its bound: the entry's size does not match it.",
            _statement_bundle(_replaced(STATEMENT, b'"size":%d}' % len(blob), b'"size":%d}' % (2**53 - 1))),
            invalid("BUNDLE_SIZE_MISMATCH"),
        ),
        _bundle(
            "statement-member-name-case",
            "A subject's digest under SHA256 instead of sha256.",
            _statement_bundle(_replaced(STATEMENT, b'{"sha256":"%s"}' % digest, b'{"SHA256":"%s"}' % digest)),
            STATEMENT_INVALID,
        ),
        # Patterns match the whole string: a trailing newline is not "$".
        _bundle(
            "statement-digest-newline",
            "A cube subject's sha256 is 64 hex digits and a newline.",
            _statement_bundle(_replaced(STATEMENT, b'"%s"' % cube_digest, b'"%s\\n"' % cube_digest)),
            STATEMENT_INVALID,
        ),
        _bundle(
            "statement-name-newline",
            "A subject's name is cubes/<id>.pb and a newline.",
            _statement_bundle(_replaced(STATEMENT, b'"%s"' % cube_name, b'"%s\\n"' % cube_name)),
            STATEMENT_INVALID,
        ),
        # The envelope entry's bytes.
        _bundle(
            "envelope-utf16",
            "The envelope entry is the same JSON in UTF-16 with a byte order mark.",
            archive(("memos-bundle", b"1\n"), envelope_entry, *ENTRIES),
            ENVELOPE_MALFORMED,
        ),
        _bundle(
            "envelope-not-utf8",
            "The envelope entry holds a Latin-1 byte in an unknown member's name.",
            bundle(with_latin1),
            ENVELOPE_MALFORMED,
        ),
        # tar.
        _bundle(
            "tar-valid-base256-size",
            "The blob's size field is GNU base-256 (0x80, then 11 bytes big-endian).",
            _with_field(bundle(), blob_name, 124, base256_size),
            ok,
        ),
        _bundle(
            "tar-base256-size-over-limit",
            "A base-256 size of 2^40 bytes: refused on the header's word alone.",
            bundle(ENVELOPE, ENTRIES, _header(b"cubes/huge.pb", 0, size_field=huge), end=False),
            invalid("BUNDLE_ENTRY_TOO_LARGE"),
        ),
        _bundle(
            "tar-negative-base256-size",
            "A base-256 size with the sign byte 0xff (negative).",
            _with_field(bundle(), blob_name, 124, b"\xff" * 12),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-base256-size-first-byte-0x81",
            "A base-256 size whose first byte is 0x81: GNU tar would read its low bits as part of the number; only "
            "0x80 starts a base-256 number here.",
            _with_field(bundle(), blob_name, 124, b"\x81" + len(blob).to_bytes(11, "big")),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-base256-size-first-byte-0xc0",
            "A base-256 size whose first byte is 0xc0 (GNU's sign bit set: a negative number).",
            _with_field(bundle(), blob_name, 124, b"\xc0" + len(blob).to_bytes(11, "big")),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-valid-base256-mtime",
            "The blob's mtime field is GNU base-256 (0x80, then 11 bytes big-endian).",
            _with_field(bundle(), blob_name, 136, b"\x80" + (1 << 40).to_bytes(11, "big")),
            ok,
        ),
        _bundle(
            "tar-negative-base256-uid",
            "The blob's uid field is GNU base-256 with the sign byte 0xff (negative).",
            _with_field(bundle(), blob_name, 108, b"\xff" * 8),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-base256-checksum",
            "The blob's header checksum written in base-256: the checksum is octal only.",
            _base256_checksum(bundle(), blob_name),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-pax-header",
            "A PAX extended header ('x') before an entry.",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"././@PaxHeader", b"20 path=cubes/a.pb\n", typeflag=b"x")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _bundle(
            "tar-pax-global-header",
            "A PAX global header ('g').",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"pax_global_header", b"20 path=cubes/a.pb\n", typeflag=b"g")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _bundle(
            "tar-gnu-long-name",
            "A GNU long name header ('L') with the ustar magic.",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"././@LongLink", b"cubes/a.pb\x00", typeflag=b"L")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _bundle(
            "tar-gnu-long-link",
            "A GNU long link name header ('K') with the ustar magic.",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"././@LongLink", b"target\x00", typeflag=b"K")),
            invalid("BUNDLE_UNSAFE_ENTRY"),
        ),
        _bundle(
            "tar-gnu-long-name-gnu-magic",
            "A GNU long name header as GNU tar writes it, magic 'ustar  \\0'.",
            bundle(
                ENVELOPE, ENTRIES, _raw_entry(b"././@LongLink", b"cubes/a.pb\x00", typeflag=b"L", magic=b"ustar  \x00")
            ),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-gnu-magic",
            "A regular file whose header has the GNU magic 'ustar  \\0' (the old GNU format).",
            _with_field(bundle(), blob_name, 257, b"ustar  \x00"),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-name-not-utf8",
            "An entry name holding the byte 0xe9 (Latin-1 e-acute): not UTF-8.",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"cubes/caf\xe9.pb", b"x")),
            invalid("BUNDLE_MALFORMED"),
        ),
        _bundle(
            "tar-name-c0-control",
            "An entry name holding U+001B (escape).",
            bundle(ENVELOPE, ENTRIES, _raw_entry(b"cubes/\x1b[31m.pb", b"x")),
            invalid("BUNDLE_UNSAFE_PATH"),
        ),
        _bundle(
            "tar-name-c1-control",
            "An entry name holding U+009B (CSI, a C1 control character).",
            bundle(ENVELOPE, ENTRIES, _raw_entry("cubes/\x9b31m.pb".encode(), b"x")),
            invalid("BUNDLE_UNSAFE_PATH"),
        ),
        _bundle(
            "tar-name-next-line",
            "An entry name holding U+0085 (NEL, a C1 control character).",
            bundle(ENVELOPE, ENTRIES, _raw_entry("cubes/a\x85b.pb".encode(), b"x")),
            invalid("BUNDLE_UNSAFE_PATH"),
        ),
        _bundle(
            "tar-name-non-ascii-letter",
            "An entry name holding U+00E9 in UTF-8: a safe name, so the entry is refused only as unlisted.",
            bundle(ENVELOPE, ENTRIES, _raw_entry("cubes/café.pb".encode(), b"x")),
            invalid("BUNDLE_UNLISTED_ENTRY"),
        ),
    ]


# -- trust_root_update kind: trust root JSON, times, base64 and keys -------------------------------------------------


def _root_case(case: str, description: str, proposed: bytes, expected: Json, *, raw: bool = False) -> Json:
    """``proposed`` (a payload, or with ``raw`` a whole envelope text) as version 2 after version 1 by KEY1."""
    inputs = {
        "now": rfc3339(NOW),
        "current_root": signed(ROOT_TYPE, root(1, (KEY1,)), KEY1),
        "proposed_root": proposed.decode() if raw else signed(ROOT_TYPE, proposed, KEY1),
    }
    return vector("trust_root_update", f"grammar-{case}", description, inputs, expected)


def _next_root() -> Json:
    document: Json = json.loads(root(2, (KEY1,)))
    return document


def _dump(document: Json) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _with_expires(expires: str) -> bytes:
    document = _next_root()
    document["expires"] = expires
    return _dump(document)


def _with_node_key(raw: bytes, public: str | None = None) -> bytes:
    document = _next_root()
    kid = spki_key_id(raw)
    document["keys"][kid] = {"keytype": "ed25519", "public": b64(raw) if public is None else public, "name": "weak"}
    document["roles"]["node"]["keyids"] = sorted([*document["roles"]["node"]["keyids"], kid])
    return _dump(document)


def _with_log_key(raw: bytes) -> bytes:
    kid = hashlib.sha256(LOG.encode() + b"\n\x01" + raw).digest()[:4]
    document = _next_root()
    document["marketplaceLogs"] = [{"policy": f"log {LOG}+{kid.hex()}+{b64(bytes([1]) + raw)}\nquorum none\n"}]
    return _dump(document)


def _key_public_changed(text: str) -> str:
    """A key's base64 with a non-zero unused bit in its last character (before the one '=')."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return text[:-2] + alphabet[alphabet.index(text[-2]) | 1] + "="


def trust_root_grammar_vectors() -> list[Json]:
    two = valid(version=2)
    payload = root(2, (KEY1,))
    key2_public = b64(KEY2.public_key)
    expires = rfc3339(NOW.replace(year=NOW.year + 1))
    day = expires[:10]
    times = [
        ("time-no-seconds", f"{day}T00:00Z", "Minutes without seconds (T00:00Z)."),
        ("time-hour-only", f"{day}T00Z", "An hour alone (T00Z)."),
        ("time-basic-format", day.replace("-", "") + "T000000Z", "The ISO 8601 basic format (no separators)."),
        ("time-space-separator", f"{day} 00:00:00Z", "A space instead of T."),
        ("time-lowercase", f"{day}t00:00:00z", "Lowercase t and z."),
        ("time-hour-24", f"{day}T24:00:00Z", "Hour 24 (the end of the day in ISO 8601, not in this profile)."),
        ("time-leap-second", f"{day}T23:59:60Z", "Second 60 (a leap second)."),
        ("time-impossible-date", "2027-02-30T00:00:00Z", "February 30."),
        ("time-fraction-10-digits", f"{day}T00:00:00.0000000001Z", "A fraction of ten digits."),
        ("time-fraction-empty", f"{day}T00:00:00.Z", "A decimal point with no digits."),
        ("time-no-zone", f"{day}T00:00:00", "No zone."),
        ("time-offset-no-colon", f"{day}T00:00:00+0000", "An offset without its colon."),
        ("time-offset-hour-24", f"{day}T00:00:00+24:00", "An offset of 24 hours."),
        ("time-trailing-newline", f"{day}T00:00:00Z\n", "A newline after the time."),
        ("time-fullwidth-digit", "\uff12" + expires[1:], "A fullwidth digit 2 (U+FF12): digits are ASCII."),
    ]
    return [
        _root_case(
            "valid-time-fraction-offset",
            "expires with 9 fraction digits and a +02:00 offset.",
            _with_expires(f"{day}T02:00:00.123456789+02:00"),
            two,
        ),
        _root_case(
            "valid-time-negative-zero-offset",
            "expires with the offset -00:00.",
            _with_expires(f"{day}T00:00:00-00:00"),
            two,
        ),
        *[_root_case(case, f"expires: {text}", _with_expires(value), ROOT_MALFORMED) for case, value, text in times],
        _root_case(
            "byte-order-mark",
            "The signed trust root starts with a UTF-8 byte order mark.",
            b"\xef\xbb\xbf" + payload,
            ROOT_MALFORMED,
        ),
        _root_case(
            "duplicate-member",
            "version twice in the signed trust root.",
            b'{"version":2,' + payload[1:],
            ROOT_MALFORMED,
        ),
        _root_case(
            "version-fraction", "version 2.0.", payload.replace(b'"version":2', b'"version":2.0'), ROOT_MALFORMED
        ),
        _root_case(
            "nan-in-unknown-member",
            "NaN in an unknown member of the trust root.",
            payload[:-1] + b',"x-future":NaN}',
            ROOT_MALFORMED,
        ),
        _root_case(
            "member-name-case",
            "Version instead of version.",
            payload.replace(b'"version"', b'"Version"'),
            ROOT_MALFORMED,
        ),
        _root_case(
            "envelope-byte-order-mark",
            "The trust root's envelope starts with a byte order mark.",
            ("\ufeff" + signed(ROOT_TYPE, payload, KEY1)).encode(),
            ROOT_MALFORMED,
            raw=True,
        ),
        _root_case(
            "valid-public-key",
            "A node key added as the protocol writes it: standard base64 with its padding.",
            _with_node_key(KEY2.public_key),
            two,
        ),
        _root_case(
            "public-key-unpadded",
            "A key's public is base64 without its '=' (padding is required here).",
            _with_node_key(KEY2.public_key, key2_public.rstrip("=")),
            ROOT_MALFORMED,
        ),
        _root_case(
            "public-key-url-safe",
            "A key's public in the URL-safe alphabet (only DSSE fields allow it).",
            _with_node_key(KEY2.public_key, key2_public.replace("+", "-").replace("/", "_")),
            ROOT_MALFORMED if "+" in key2_public or "/" in key2_public else two,
        ),
        _root_case(
            "public-key-nonzero-trailing-bits",
            "A key's public with a non-zero unused bit in its base64.",
            _with_node_key(KEY2.public_key, _key_public_changed(key2_public)),
            ROOT_MALFORMED,
        ),
        _root_case(
            "public-key-identity",
            "A node key that is the identity point 0100..00 (small order).",
            _with_node_key(IDENTITY_KEY),
            ROOT_MALFORMED,
        ),
        _root_case("public-key-order-8", "A node key of order 8.", _with_node_key(ORDER_8_KEY), ROOT_MALFORMED),
        _root_case(
            "public-key-order-4",
            "A node key of order 4 (y = 0, sign bit set).",
            _with_node_key(ORDER_4_KEY),
            ROOT_MALFORMED,
        ),
        _root_case(
            "public-key-non-canonical",
            "A node key whose y is written as y + p (y >= p, not canonical).",
            _with_node_key(NON_CANONICAL_KEY),
            ROOT_MALFORMED,
        ),
        _root_case(
            "valid-log-key",
            "A marketplace log whose key is an ordinary Ed25519 key.",
            _with_log_key(KEY4.public_key),
            two,
        ),
        _root_case(
            "log-key-identity",
            "A marketplace log whose key is the identity point (small order).",
            _with_log_key(IDENTITY_KEY),
            ROOT_MALFORMED,
        ),
    ]


# -- grant kind: the grant envelope and statement, and the marketplace key ---------------------------------------


def grant_grammar_vectors() -> list[Json]:
    def case(name: str, description: str, grant: str, expected: Json, trusted: list[Json] | None = None) -> Json:
        inputs = {
            "now": rfc3339(NOW),
            "trusted_keys": [MARKETPLACE.trusted()] if trusted is None else trusted,
            "licensee_principal": LICENSEE,
            "licensee_key_id": KEY2.key_id,
            "grant": grant,
            "checks": CHECKS,
        }
        return vector("grant", f"grammar-{name}", description, inputs, expected)

    payload = grant_statement()
    not_after = json.loads(payload)["predicate"]["notAfter"]
    return [
        case(
            "byte-order-mark",
            "The marketplace's valid grant envelope preceded by a UTF-8 byte order mark.",
            "\ufeff" + signed(T, payload, MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        case(
            "time-no-seconds",
            "The grant's notAfter without seconds (T00:00Z), signed by the marketplace.",
            signed(T, payload.replace(not_after.encode(), not_after[:16].encode() + b"Z"), MARKETPLACE),
            invalid("GRANT_MALFORMED"),
        ),
        case(
            "small-order-key",
            "The trusted marketplace key is the identity point and the signature R = identity, S = 0.",
            envelope_json(T, payload, [{"keyid": spki_key_id(IDENTITY_KEY), "sig": b64(IDENTITY_KEY + bytes(32))}]),
            invalid("GRANT_SIGNATURE_INVALID"),
            trusted=[_weak_trusted(IDENTITY_KEY, "identity")],
        ),
    ]


# -- tlog-policy kind: log and witness keys --------------------------------------------------------------------------


def policy_grammar_vectors() -> list[Json]:
    def case(name: str, description: str, raw: bytes, expected: Json) -> Json:
        kid = hashlib.sha256(LOG.encode() + b"\n\x01" + raw).digest()[:4]
        text = f"log {LOG}+{kid.hex()}+{b64(bytes([1]) + raw)}\nquorum none\n"
        return vector("tlog-policy", f"grammar-{name}", description, {"policy": text, "cosigned": []}, expected)

    refused = invalid("POLICY_KEY_INVALID")
    return [
        case("valid-log-key", "An ordinary Ed25519 log key.", KEY4.public_key, valid(satisfied=True)),
        case("log-key-identity", "The log key is the identity point.", IDENTITY_KEY, refused),
        case("log-key-order-8", "The log key has order 8.", ORDER_8_KEY, refused),
        case("log-key-non-canonical", "The log key's y is written as y + p.", NON_CANONICAL_KEY, refused),
    ]


def grammar_vectors() -> list[Json]:
    return (
        envelope_grammar_vectors()
        + bundle_grammar_vectors()
        + trust_root_grammar_vectors()
        + grant_grammar_vectors()
        + policy_grammar_vectors()
    )
