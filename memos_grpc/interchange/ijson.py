"""Strict I-JSON (RFC 7493) reading for every JSON document of the protocol: DSSE envelopes, statements, trust
roots, terms and grant statements (docs/protocol.md, "The strict grammar").

One grammar, no leniency: UTF-8 without a byte order mark, no duplicate member names, no NaN or Infinity, numbers
only as integers without fraction or exponent within +-(2^53 - 1), and no unpaired surrogates in any string. Member
names are compared exactly (case-sensitive) by the callers; where a format ignores unknown members, they still follow
every rule here.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from memos_grpc.primitives.bounds import MAX_SAFE_INTEGER


class IJsonError(ValueError):
    """The bytes are not strict I-JSON; ``problem`` is ENCODING, SYNTAX, DUPLICATE_MEMBER or NUMBER."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def loads(data: bytes) -> Any:
    """The JSON value ``data`` holds, read strictly; raises IJsonError."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise IJsonError("ENCODING", "the JSON starts with a byte order mark; write UTF-8 without one")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IJsonError("ENCODING", f"the JSON is not UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_float=_fraction, parse_constant=_constant, parse_int=_integer
        )
    except json.JSONDecodeError as exc:
        raise IJsonError("SYNTAX", f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise IJsonError("SYNTAX", "the JSON nests too deeply") from exc
    _check_strings(value)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise IJsonError("DUPLICATE_MEMBER", f"member {name[:60]!r} appears twice in one object")
        document[name] = value
    return document


def _fraction(text: str) -> NoReturn:
    raise IJsonError("NUMBER", f"{text[:40]} is not an integer: numbers carry no fraction or exponent")


def _constant(text: str) -> NoReturn:
    raise IJsonError("NUMBER", f"{text} is not a JSON number")


def _integer(text: str) -> int:
    # Checked on the digits before int(): a long literal is refused without converting it.
    digits = text.removeprefix("-")
    if len(digits) > len(str(MAX_SAFE_INTEGER)) or int(digits) > MAX_SAFE_INTEGER:
        raise IJsonError("NUMBER", f"{text[:40]} is outside +-(2^53 - 1), the integers every JSON reader holds")
    return int(text)


def _check_strings(value: Any) -> None:
    """Refuses unpaired surrogates (``"\\ud800"``): JSON escapes allow them, UTF-8 and I-JSON do not."""
    if isinstance(value, str):
        _encodable(value)
    elif isinstance(value, dict):
        for name, item in value.items():
            _encodable(name)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise IJsonError("ENCODING", "a string holds an unpaired surrogate escape") from exc
