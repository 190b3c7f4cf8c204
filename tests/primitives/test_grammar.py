"""The strict grammar's functions (docs/protocol.md, "The strict grammar"), each rule at its edges.

The vectors (tools/vectors/grammar.py) pin the same rules through whole documents; these tests pin the functions
other code builds on: ``decode_base64``, ``parse_time``, ``check_public_key``, ``ijson.loads`` and the whole-string
patterns of names and digests.
"""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime

import pytest

from memos_grpc.cli.bundle_inspect import public_key
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.interchange import ijson
from memos_grpc.marketplace import ijson as marketplace_ijson
from memos_grpc.primitives.canonical import parse_time
from memos_grpc.primitives.grammar import Base64Error, decode_base64
from memos_grpc.primitives.keys import PublicKeyError, SigningKey, check_public_key, verify_signature
from memos_grpc.store.blobs import parse_digest
from memos_grpc.store.names import check_id
from memos_grpc.vault.validation import check_labels

P = 2**255 - 19

#: The eight points of small order, as libsodium's blocklist writes them (each with its own encoding).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity, order 1
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # (0, -1), order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4, the other sign
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]


@pytest.mark.parametrize("hex_key", SMALL_ORDER)
def test_small_order_keys_are_refused_and_verify_nothing(hex_key: str) -> None:
    raw = bytes.fromhex(hex_key)
    with pytest.raises(PublicKeyError):
        check_public_key(raw)
    # R = the point itself, S = 0 satisfies [S]B = R + [k]A for the identity; OpenSSL accepts it for any message.
    assert not verify_signature(raw, raw + bytes(32), b"any message")


def test_non_canonical_and_off_curve_encodings_are_refused() -> None:
    for y in (P, P + 1, P + 18, 2**255 - 1):  # y >= p: the same y written a second way, or no field element
        with pytest.raises(PublicKeyError):
            check_public_key(y.to_bytes(32, "little"))
    with pytest.raises(PublicKeyError):  # x = 0 with the sign bit set: the identity written a second way
        check_public_key(bytes([1]) + bytes(30) + bytes([0x80]))
    with pytest.raises(PublicKeyError):  # y = 2 is not on the curve
        check_public_key(bytes([2]) + bytes(31))
    for wrong in (b"", bytes(31), bytes(33)):
        with pytest.raises(PublicKeyError):
            check_public_key(wrong)


def test_generated_keys_are_accepted_and_still_verify() -> None:
    for _ in range(200):
        key = SigningKey.generate()
        assert check_public_key(key.public_key) == key.public_key
        assert verify_signature(key.public_key, key.sign(b"m"), b"m")


@pytest.mark.parametrize(
    ("text", "dsse", "expected"),
    [
        ("", False, b""),
        ("Zg==", False, b"f"),
        ("Zm8=", False, b"fo"),
        ("Zm9v", False, b"foo"),
        ("+/+/", False, b"\xfb\xff\xbf"),
        ("Zg", True, b"f"),  # DSSE: padding may be left out
        ("-_-_", True, b"\xfb\xff\xbf"),  # DSSE: the URL-safe alphabet
        ("-_8=", True, b"\xfb\xff"),
    ],
)
def test_base64_accepted(text: str, dsse: bool, expected: bytes) -> None:
    assert decode_base64(text, dsse=dsse) == expected


@pytest.mark.parametrize(
    ("text", "dsse"),
    [
        ("Zg", False),  # padding required outside DSSE
        ("-_-_", False),  # URL-safe only in DSSE
        ("Zh==", False),  # non-zero unused bits
        ("Zh==", True),
        ("Zm9=", True),
        ("Zg=", True),  # padding present but short
        ("Zg===", True),
        ("Zm9v====", True),
        ("Z", True),  # one character past a multiple of four
        ("Zm9v\n", False),
        ("Zm 9v", False),
        ("Zm9v\r\n", True),
        ("Z=g=", False),  # '=' inside
        ("+_==", True),  # both alphabets
        ("Zg==\x00", False),
        (b"Zg==", False),  # not text
    ],
)
def test_base64_refused(text: object, dsse: bool) -> None:
    with pytest.raises(Base64Error):
        decode_base64(text, dsse=dsse)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T00:00:00Z", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T02:30:00+02:30", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-05-31T23:00:00-01:00", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T00:00:00-00:00", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T00:00:00.5Z", datetime(2026, 6, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        # Kept to the microsecond: the seventh and later digits are dropped, not rounded.
        ("2026-06-01T00:00:00.123456999Z", datetime(2026, 6, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_times_accepted(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-06-01T00:00Z",
        "2026-06-01T00Z",
        "20260601T000000Z",
        "2026-06-01 00:00:00Z",
        "2026-06-01t00:00:00Z",
        "2026-06-01T00:00:00z",
        "2026-06-01T24:00:00Z",
        "2026-06-01T00:60:00Z",
        "2026-06-01T00:00:60Z",
        "2025-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-06-00T00:00:00Z",
        "2026-06-01T00:00:00",
        "2026-06-01T00:00:00+0200",
        "2026-06-01T00:00:00+02",
        "2026-06-01T00:00:00+24:00",
        "2026-06-01T00:00:00+02:60",
        "2026-06-01T00:00:00.Z",
        "2026-06-01T00:00:00.1234567890Z",
        "2026-06-01T00:00:00Z\n",
        " 2026-06-01T00:00:00Z",
        "+2026-06-01T00:00:00Z",
        "12026-06-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
        "9999-12-31T23:59:59.5Z",  # after the last second a protobuf Timestamp holds
        "2026-06-01T00:00:00.\u0661Z",  # an Arabic-Indic digit
    ],
)
def test_times_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xef\xbb\xbf{}", "ENCODING"),
        ('{"a":1}'.encode("utf-16"), "ENCODING"),
        ('{"a":1}'.encode("utf-16-le"), "SYNTAX"),  # no BOM: NUL bytes between the characters
        (b'{"a":"\xe9"}', "ENCODING"),
        (b'{"a":"\\ud800"}', "ENCODING"),
        (b'{"\\udc00":1}', "ENCODING"),
        (b'{"a":1,"a":1}', "DUPLICATE_MEMBER"),
        (b'{"x":{"b":[{"c":1,"c":2}]}}', "DUPLICATE_MEMBER"),
        (b'{"x":[NaN]}', "NUMBER"),
        (b'{"x":Infinity}', "NUMBER"),
        (b'{"x":-Infinity}', "NUMBER"),
        (b'{"x":1.0}', "NUMBER"),
        (b'{"x":1e2}', "NUMBER"),
        (b'{"x":9007199254740992}', "NUMBER"),
        (b'{"x":-9007199254740992}', "NUMBER"),
        (b'{"x":' + b"9" * 5000 + b"}", "NUMBER"),
        (b'{"x":01}', "SYNTAX"),
        (b'{"x":1,}', "SYNTAX"),
        (b"[" * 100_000, "SYNTAX"),
    ],
)
def test_ijson_refuses(data: bytes, problem: str) -> None:
    with pytest.raises(ijson.IJsonError) as refused:
        ijson.loads(data)
    assert refused.value.problem == problem


def test_ijson_accepts_safe_integers_and_is_importable_where_it_was() -> None:
    value = ijson.loads(b'{"max":9007199254740991,"min":-9007199254740991,"s":"\\ud83d\\ude00","A":1,"a":2}')
    assert value == {"max": 2**53 - 1, "min": -(2**53 - 1), "s": "\U0001f600", "A": 1, "a": 2}
    assert marketplace_ijson.loads is ijson.loads


def test_names_and_digests_match_the_whole_string() -> None:
    # "$" matches before a trailing newline: a pattern applied with match and "$" let these through.
    assert parse_digest("sha256:" + "a" * 64) == "a" * 64
    with pytest.raises(InvalidArgumentError) as digest:
        parse_digest("sha256:" + "a" * 64 + "\n")
    assert digest.value.reason == "INVALID_DIGEST"
    with pytest.raises(InvalidArgumentError) as space:
        check_id("team\n", "space id")
    assert space.value.reason == "INVALID_NAME"
    with pytest.raises(InvalidArgumentError):
        check_labels({"topic\n": "x"})


def test_encoded_keys_round_trip_through_the_rule() -> None:
    key = SigningKey.generate()
    assert decode_base64(base64.b64encode(key.public_key).decode()) == key.public_key


def test_bundle_inspect_takes_only_acceptable_keys() -> None:
    # memos-grpc bundle inspect --trust-key reads a key as every verifier does.
    key = SigningKey.generate()
    assert public_key(key.public_key_b64).public_key == key.public_key
    for text in (base64.b64encode(bytes([1]) + bytes(31)).decode(), key.public_key_b64.rstrip("=")):
        with pytest.raises(argparse.ArgumentTypeError):
            public_key(text)
