"""Which blobs a caller may name in a cube: content addressing is storage, never permission.

A cube of space S made or changed by caller P may name blob D only if

- P uploaded D into S (``WritePayload`` with parent S, or a payload the server made for P there, such
  as a transform's cache or adapter) within ``blob_grace_seconds``, or
- a live cube of S that P may read in full (visible to P and not redacted for P) names D already.

Anything else is refused exactly as a blob nobody uploaded is, so a refusal never tells whether
someone else holds those bytes. Blobs stay deduplicated on disk; only the right to name one is
per space and principal.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.governance.caller import Caller
from memos_grpc.store.blobs import parse_digest
from memos_grpc.store.database import Connection
from memos_grpc.store.names import space_name
from memos_grpc.store.uploads import named_by_readable_cube, uploaded_since
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.context import VaultContext


def require_referenceable(
    cursor: Connection, context: VaultContext, caller: Caller, space_id: str, digests: Iterable[str]
) -> None:
    """Raises BLOB_NOT_FOUND unless ``caller`` may name every digest in a cube of ``space_id``."""
    now = context.clock()
    cutoff = now - timedelta(seconds=context.settings.blob_grace_seconds)
    visibility = CubeVisibility(caller, context.catalog, space_id)
    for digest in sorted(set(digests)):
        parse_digest(digest)
        if uploaded_since(cursor, space_id, caller.principal, digest, cutoff):
            continue
        if named_by_readable_cube(cursor, space_id, digest, now, visibility):
            continue
        raise FailedPreconditionError(
            f"blob {digest} is not one you may name in {space_name(space_id)}: upload it there with WritePayload "
            f"first (a cube may name a blob its caller uploaded into the same space within blob_grace_seconds, "
            f"or one that a cube of the space you may read in full names already)",
            reason=reasons.BLOB_NOT_FOUND,
        )
