"""Canonical JSON (RFC 8785 for the JSON this project signs) and RFC 3339 times.

Everything memos-grpc signs is built from strings, integers, booleans, null,
lists and objects with ASCII keys; for those, RFC 8785 is: keys sorted, no
insignificant whitespace, UTF-8, no escaping beyond what JSON requires.
Floats are refused so that no two languages can print a number differently.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from memos_grpc.primitives.bounds import EARLIEST_TIME, LATEST_TIME


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


#: The protocol's one RFC 3339 profile (docs/protocol.md, "The strict grammar"): four-digit year, "T", seconds,
#: an optional fraction of 1 to 9 digits, and "Z" or a numeric offset. Uppercase only; nothing else.
_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<zone>Z|[+-](?P<zone_hour>[0-9]{2}):(?P<zone_minute>[0-9]{2}))"
)


def parse_time(text: str) -> datetime:
    """Parses a time in the protocol's RFC 3339 profile within its bounds, in UTC; raises ValueError otherwise.

    ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)``: a real date, hour 00-23, minute 00-59, second 00-59
    (no leap second), offset hours 00-23 and minutes 00-59. The fraction has 1 to 9 digits and is kept to the
    microsecond (the digits past the sixth are dropped), so every implementation compares times alike.
    """
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{str(text)[:40]!r} is not an RFC 3339 time of the form YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)"
        )
    if int(match["hour"]) > 23 or int(match["minute"]) > 59 or int(match["second"]) > 59:
        raise ValueError(f"{text[:40]!r} is not a time of day (hour 00-23, minute and second 00-59)")
    if match["zone"] != "Z" and (int(match["zone_hour"]) > 23 or int(match["zone_minute"]) > 59):
        raise ValueError(f"{text[:40]!r} has an offset outside -23:59..+23:59")
    try:
        day = datetime.strptime(match["date"], "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(f"{text[:40]!r} does not name a real date") from exc
    offset = timedelta(0)
    if match["zone"] != "Z":
        offset = timedelta(hours=int(match["zone_hour"]), minutes=int(match["zone_minute"]))
        offset = -offset if match["zone"].startswith("-") else offset
    microsecond = int((match["fraction"] or "0").ljust(6, "0")[:6])
    local = day.replace(
        hour=int(match["hour"]), minute=int(match["minute"]), second=int(match["second"]), microsecond=microsecond
    )
    try:
        in_utc = local.replace(tzinfo=timezone(offset)).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        in_utc = None
    if in_utc is None or not EARLIEST_TIME <= in_utc <= LATEST_TIME:
        raise ValueError(
            f"{text[:40]!r} is out of range: times are between {format_time(EARLIEST_TIME)} and "
            f"{format_time(LATEST_TIME)} in UTC"
        )
    return in_utc
