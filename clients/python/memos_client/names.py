"""Resource names: ``spaces/{space}`` and ``spaces/{space}/cubes/{cube}``.

The helpers accept a bare id ("notes") or a full name ("spaces/notes") for a
space and build full names; the server validates the ids themselves.
"""

from __future__ import annotations

SPACES = "spaces/"
CUBES = "/cubes/"


def space_name(space: str) -> str:
    """``spaces/{space}`` for a space id or name; a cube name gives its space."""
    if not space:
        raise ValueError("a space id or name is required")
    if space.startswith(SPACES):
        return space.partition(CUBES)[0]
    if "/" in space:
        raise ValueError(f"not a space id or name: {space!r}")
    return SPACES + space


def cube_name(space: str, cube_id: str) -> str:
    """``spaces/{space}/cubes/{cube_id}``."""
    return f"{space_name(space)}{CUBES}{cube_id}"
