"""Release ids: SemVer 2.0.0 versions without build metadata, and their precedence.

The grammar is semver.org's (section 2, 9 and 11), matched whole; build metadata (``+...``) is refused
because it does not take part in precedence, so two ids differing only there would be one release.
"""

from __future__ import annotations

import re

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError

MAX_RELEASE_ID_CHARS = 63
_NUMBER = r"0|[1-9][0-9]*"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})(?:-({_PRE}(?:\.{_PRE})*))?")

#: A precedence key: (major, minor, patch, is-release, pre-release identifiers as (is-alpha, number, text)).
Key = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def check_release_id(value: str, field: str = "release_id") -> str:
    """``value`` if it is a SemVer 2.0.0 version without build metadata; INVALID_NAME otherwise."""
    if len(value) > MAX_RELEASE_ID_CHARS or _VERSION.fullmatch(value) is None:
        raise InvalidArgumentError(
            f"{field} {value[:80]!r} is not a SemVer 2.0.0 version without build metadata (such as 1.2.0 or "
            f"2.0.0-rc.1) of at most {MAX_RELEASE_ID_CHARS} characters",
            reason=reasons.INVALID_NAME,
        )
    return value


def precedence(value: str) -> Key:
    """Sorts as SemVer precedence: numbers numerically, a pre-release before its release, identifiers by rule 11."""
    match = _VERSION.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a SemVer version")
    major, minor, patch, pre = match.groups()
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in (pre.split(".") if pre else [])
    )
    return int(major), int(minor), int(patch), 0 if pre else 1, identifiers
