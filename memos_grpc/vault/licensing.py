"""The store's question about licensed cubes: may an action use a license's cubes now, and counting a use.

Cubes imported from a marketplace release carry their held license (``MemCube.license``). Search, Recall, export
and transforms ask a ``UsageGate`` which licenses an action may not use now (their cubes are left out before
ranking), and count one use per license and request of what they return. The buyer's license book
(``marketplace/held.py``) is the gate; until it is wired in, ``OpenGate`` lets everything through.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.store.database import Connection

#: The uses terms can limit that the vault meters (docs/marketplace.md, "Terms").
RECALL, SEARCH, EXPORT, TRANSFORM, IMPORT = "recall", "search", "export", "transform", "import"


class UseReservation(Protocol):
    """Uses reserved by ``UsageGate.reserve``: counted with the action's own write, on their own, or given back."""

    def write(self, cursor: Connection) -> None:
        """Counts the uses (durably, audited) inside the caller's write transaction."""
        ...

    def committed(self) -> None:
        """Called once the transaction ``write`` was called in committed."""
        ...

    def commit(self) -> None:
        """Counts the uses in a transaction of their own."""
        ...

    def release(self) -> None:
        """Gives back what was not counted (the action failed after its license check); then a no-op."""
        ...


class UsageGate(Protocol):
    """The vault's view of held licenses: which ones an action (search, recall, export, transform) may use now.

    Implemented by the buyer's license book (``marketplace.held``) or ``OpenGate``; must be safe to call from any
    RPC thread. Refusals are ``MemosError``s from ``require`` and ``reserve``, never from ``blocked``.
    """

    def blocked(self, action: str) -> frozenset[str]:
        """The held license ids whose cubes ``action`` may not use now (left out of results, refused by name)."""
        ...

    def use(self, action: str, license_ids: Collection[str], principal: str) -> frozenset[str]:
        """Counts one use of each license for ``action`` (durably, audited); returns those refused instead."""
        ...

    def require(self, action: str, license_ids: Collection[str], principal: str) -> None:
        """Counts one use of each license, or counts none and raises the first refusal (a MemosError)."""
        ...

    def reserve(self, action: str, license_ids: Collection[str], principal: str) -> UseReservation:
        """As ``require``, but the uses are only reserved: an action that can still fail after its license check
        counts them once it succeeds (``write`` in its transaction, or ``commit``) and ``release``s them if not."""
        ...


class OpenGate:
    """The gate of a node that holds no license: nothing is blocked or counted."""

    def blocked(self, action: str) -> frozenset[str]:
        return frozenset()

    def use(self, action: str, license_ids: Collection[str], principal: str) -> frozenset[str]:
        return frozenset()

    def require(self, action: str, license_ids: Collection[str], principal: str) -> None:
        return None

    def reserve(self, action: str, license_ids: Collection[str], principal: str) -> UseReservation:
        return _Nothing()


class _Nothing:
    """The reservation of an open gate: nothing to count or give back."""

    def write(self, cursor: Connection) -> None:
        return None

    def committed(self) -> None:
        return None

    def commit(self) -> None:
        return None

    def release(self) -> None:
        return None


def derived_license(sources: Iterable[cube_pb2.MemCube]) -> cube_pb2.CubeLicense | None:
    """The license a cube made from ``sources`` carries (a merge, an adapter): theirs, or None when none has one.

    What is derived from licensed memory stays under its license, so its uses are metered as the sources' are;
    sources under two different licenses cannot be combined, as no one license would then cover the result.
    """
    found = {cube.license.held_license: cube.license for cube in sources if cube.license.held_license}
    if len(found) > 1:
        raise FailedPreconditionError(
            f"the cubes are under different licenses ({', '.join(sorted(found))}): a cube derived from them "
            "would be under none of them alone; derive from the cubes of one license at a time",
            reason=reasons.LICENSES_MIXED,
        )
    return next(iter(found.values()), None)


def license_id(license_: cube_pb2.CubeLicense) -> str:
    """The held license id a cube's license names (``heldLicenses/{id}``)."""
    return license_.held_license.rpartition("/")[2]
