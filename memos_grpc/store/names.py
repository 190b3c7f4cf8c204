"""Resource names (AIP-122): parsing and checking ``spaces/{space}`` and ``spaces/{space}/cubes/{cube}``."""

from __future__ import annotations

import os
import re
import uuid

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError

ID_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,62}")
_ID_RULE = "1..63 characters of lowercase letters, digits and '-', starting with a letter"


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise InvalidArgumentError(f"{what} {value[:80]!r} is invalid: use {_ID_RULE}", reason=reasons.INVALID_NAME)
    return value


def space_name(space_id: str) -> str:
    return f"spaces/{space_id}"


def cube_name(space_id: str, cube_id: str) -> str:
    return f"spaces/{space_id}/cubes/{cube_id}"


def parse_space_name(name: str, field: str = "name") -> str:
    """Returns the space id of ``spaces/{space}``."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "spaces":
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a space name of the form spaces/{{space}}", reason=reasons.INVALID_NAME
        )
    return check_id(parts[1], "space id")


def _parse_in_space(name: str, field: str, collection: str, kind: str) -> tuple[str, str]:
    """Returns (space id, id) of ``spaces/{space}/{collection}/{id}``."""
    noun = kind.split()[-1]
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "spaces" or parts[2] != collection:
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not {kind} name of the form spaces/{{space}}/{collection}/{{{noun}}}",
            reason=reasons.INVALID_NAME,
        )
    return check_id(parts[1], "space id"), check_id(parts[3], f"{noun} id")


def parse_cube_name(name: str, field: str = "name") -> tuple[str, str]:
    """Returns (space id, cube id) of ``spaces/{space}/cubes/{cube}``."""
    return _parse_in_space(name, field, "cubes", "a cube")


def new_cube_id() -> str:
    return "c" + uuid.uuid4().hex


def new_uuids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs from one read of the system's random source: a read per UUID was a
    measurable share of building a batch of cubes."""
    data = os.urandom(16 * count)
    return [str(uuid.UUID(bytes=data[at : at + 16], version=4)) for at in range(0, 16 * count, 16)]


def operation_name(space_id: str, operation_id: str) -> str:
    return f"spaces/{space_id}/operations/{operation_id}"


def parse_operation_name(name: str, field: str = "name") -> tuple[str, str]:
    """Returns (space id, operation id) of ``spaces/{space}/operations/{operation}``."""
    return _parse_in_space(name, field, "operations", "an operation")


def new_operation_id() -> str:
    return "op" + uuid.uuid4().hex
