"""Resource names (AIP-122): parsing and checking ``spaces/{space}`` and ``spaces/{space}/cubes/{cube}``."""

from __future__ import annotations

import re
import uuid

from memos_grpc.errors import InvalidArgumentError

ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ID_RULE = "1..63 characters of lowercase letters, digits and '-', starting with a letter"


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.match(value):
        raise InvalidArgumentError(f"{what} {value[:80]!r} is invalid: use {_ID_RULE}", reason="INVALID_NAME")
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
            f"{field} {name[:120]!r} is not a space name of the form spaces/{{space}}", reason="INVALID_NAME"
        )
    return check_id(parts[1], "space id")


def parse_cube_name(name: str, field: str = "name") -> tuple[str, str]:
    """Returns (space id, cube id) of ``spaces/{space}/cubes/{cube}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "spaces" or parts[2] != "cubes":
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a cube name of the form spaces/{{space}}/cubes/{{cube}}",
            reason="INVALID_NAME",
        )
    return check_id(parts[1], "space id"), check_id(parts[3], "cube id")


def new_cube_id() -> str:
    return "c" + uuid.uuid4().hex


def operation_name(space_id: str, operation_id: str) -> str:
    return f"spaces/{space_id}/operations/{operation_id}"


def parse_operation_name(name: str, field: str = "name") -> tuple[str, str]:
    """Returns (space id, operation id) of ``spaces/{space}/operations/{operation}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "spaces" or parts[2] != "operations":
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not an operation name of the form spaces/{{space}}/operations/{{operation}}",
            reason="INVALID_NAME",
        )
    return check_id(parts[1], "space id"), check_id(parts[3], "operation id")


def new_operation_id() -> str:
    return "op" + uuid.uuid4().hex
