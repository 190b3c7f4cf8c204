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
from datetime import datetime, timedelta

from memos_grpc.errors import FailedPreconditionError
from memos_grpc.governance.caller import Caller
from memos_grpc.store.blobs import parse_digest
from memos_grpc.store.database import Connection
from memos_grpc.store.names import space_name
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.context import VaultContext


def record_upload(cursor: Connection, space_id: str, principal: str, digest: str, now: datetime) -> None:
    """Records that ``principal`` holds the bytes of ``digest`` in ``space_id`` (as of ``now``)."""
    cursor.execute(
        "INSERT INTO blob_uploads VALUES (?, ?, ?, ?) ON CONFLICT (space_id, principal, digest) "
        "DO UPDATE SET upload_time = greatest(blob_uploads.upload_time, excluded.upload_time)",
        [space_id, principal, digest, now],
    )


def require_referenceable(
    cursor: Connection, context: VaultContext, caller: Caller, space_id: str, digests: Iterable[str]
) -> None:
    """Raises BLOB_NOT_FOUND unless ``caller`` may name every digest in a cube of ``space_id``."""
    now = context.clock()
    cutoff = now - timedelta(seconds=context.settings.blob_grace_seconds)
    readable_sql, readable_params = CubeVisibility(caller, context.catalog, space_id).sql(ranked=True)
    for digest in sorted(set(digests)):
        parse_digest(digest)
        uploaded = cursor.execute(
            "SELECT 1 FROM blob_uploads u JOIN blobs b ON b.digest = u.digest "
            "WHERE u.space_id = ? AND u.principal = ? AND u.digest = ? AND u.upload_time >= ?",
            [space_id, caller.principal, digest, cutoff],
        ).fetchone()
        if uploaded is not None:
            continue
        named = cursor.execute(
            "SELECT 1 FROM cubes WHERE space_id = ? AND blob_digest = ? "
            f"AND (expire_time IS NULL OR expire_time > ?) AND {readable_sql} LIMIT 1",
            [space_id, digest, now, *readable_params],
        ).fetchone()
        if named is not None:
            continue
        raise FailedPreconditionError(
            f"blob {digest} is not one you may name in {space_name(space_id)}: upload it there with WritePayload "
            f"first (a cube may name a blob its caller uploaded into the same space within blob_grace_seconds, "
            f"or one that a cube of the space you may read in full names already)",
            reason="BLOB_NOT_FOUND",
        )
