"""Canonical JSON (RFC 8785 for the JSON this project signs) and RFC 3339 times.

Everything memos-grpc signs is built from strings, integers, booleans, null,
lists and objects with ASCII keys; for those, RFC 8785 is: keys sorted, no
insignificant whitespace, UTF-8, no escaping beyond what JSON requires.
Floats are refused so that no two languages can print a number differently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from memos_grpc.interchange.bounds import EARLIEST_TIME, LATEST_TIME


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of ``value``; raises ValueError on floats and non-ASCII keys."""
    _check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _check(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("canonical JSON here carries no floats; use an integer or a string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError(f"canonical JSON keys must be ASCII strings, not {key!r}")
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC to the second, e.g. ``2026-11-24T01:02:03Z`` (four-digit years: strftime drops the zeros)."""
    return when.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_time(text: str) -> datetime:
    """Parses an RFC 3339 time (``Z`` or an offset) within the protocol's bounds; raises ValueError otherwise."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"{str(text)[:40]!r} is not an RFC 3339 time")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text[:40]!r} has no time zone; write it in UTC with a trailing Z")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        in_utc = None
    if in_utc is None or not EARLIEST_TIME <= in_utc <= LATEST_TIME:
        raise ValueError(
            f"{text[:40]!r} is out of range: times are between {format_time(EARLIEST_TIME)} and "
            f"{format_time(LATEST_TIME)} in UTC"
        )
    return in_utc
