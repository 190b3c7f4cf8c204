"""Import: verify a bundle stream and commit its cubes to a space in one transaction, or nothing.

Blobs are staged in temporary files as they stream in and cubes are held
parsed until the whole bundle has verified; only then are blobs moved into
the blob store and every cube written in a single DuckDB transaction, with
the conflict policy applied. Plaintext from a different embedder is embedded
again here; activation and parametric cubes keep their model fingerprint.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from google.protobuf.message import DecodeError

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, interchange_service_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import BundleError, FailedPreconditionError, MemosError, NotFoundError
from memos_grpc.governance.caller import Caller
from memos_grpc.interchange.bundle import BundleLimits, BundleReport, BundleVerifier, TrustPolicy
from memos_grpc.interchange.statement import Subject, cube_entry_name
from memos_grpc.settings import Settings
from memos_grpc.store.blobs import Blobs
from memos_grpc.store.database import Connection
from memos_grpc.store.derivation import drop_links
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.names import check_id, cube_name, new_cube_id, parse_cube_name, parse_space_name
from memos_grpc.store.rows import CubeRow, blob_digest, memory_text, next_version, set_timestamp
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.blob_headers import describe_activation
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import Cubes, apply_default_ttl
from memos_grpc.vault.validation import check_cube_fields, check_vector, invalid

log = logging.getLogger(__name__)

Action = interchange_service_pb2.ImportedCube.Action
#: Rows per Arrow table inserted by an import's transaction.
_INSERT_SLICE = 1000
_SKIP = interchange_service_pb2.CONFLICT_POLICY_SKIP
_NEW_VERSION = interchange_service_pb2.CONFLICT_POLICY_NEW_VERSION
_REPLACE = interchange_service_pb2.CONFLICT_POLICY_REPLACE


def bundle_limits(settings: Settings) -> BundleLimits:
    """The limits a server with these settings verifies bundles under."""
    return BundleLimits(
        max_entry_bytes=settings.max_payload_bytes,
        max_bundle_bytes=settings.bundle_max_bytes,
        max_entries=settings.bundle_max_entries,
        max_envelope_bytes=settings.bundle_max_envelope_bytes,
        max_cube_bytes=settings.bundle_max_cube_bytes,
    )


class ImportLicense(Protocol):
    """An admitted licensed import (marketplace/held.py): what its cubes carry, and its records."""

    @property
    def cube_license(self) -> cube_pb2.CubeLicense: ...

    def write(self, cursor: Connection) -> None:
        """Records the license and counts the import, inside the import's transaction."""
        ...

    def committed(self) -> None:
        """Called once the import's transaction committed."""
        ...

    def abandon(self) -> None:
        """Called when the import failed after admission (a no-op once committed)."""
        ...


@dataclass
class CubeChecks:
    """An EntrySink that checks each cube entry is a cube this server could store, and that its blob comes along.

    VerifyBundle uses it as it is (blobs are hashed and dropped); the importer's staging extends it.
    """

    settings: Settings
    #: Each checked cube with its memory type (kept only when importing).
    cubes: list[tuple[cube_pb2.MemCube, cube_pb2.MemoryType]] = field(default_factory=list)
    keep: bool = False
    carried: set[str] = field(default_factory=set)
    referenced: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def cube(self, subject: Subject, data: bytes) -> None:
        try:
            cube = cube_pb2.MemCube.FromString(data)
        except DecodeError as exc:
            raise BundleError(
                f"entry {subject.name!r} is not a MemCube: {exc}", reason=reasons.BUNDLE_CUBE_INVALID
            ) from exc
        if cube_entry_name(cube.provenance_id) != subject.name:
            raise BundleError(
                f"entry {subject.name!r} holds the cube with provenance id {cube.provenance_id[:80]!r}; "
                "a cube entry is named after its provenance id",
                reason=reasons.BUNDLE_CUBE_INVALID,
            )
        try:
            memory_type = check_cube_fields(cube, self.settings)
        except MemosError as exc:
            raise BundleError(
                f"cube {cube.provenance_id}: {exc.message}",
                reason=reasons.BUNDLE_CUBE_INVALID,
                metadata={"cause": exc.reason},
            ) from exc
        digest = blob_digest(cube)
        if digest:
            self.referenced.setdefault(digest, cube.provenance_id)
        self.count += 1
        if self.count > self.settings.bundle_max_cubes:
            # Imported cubes are held until the commit: their number bounds the memory an import takes.
            raise BundleError(
                f"the bundle carries more than {self.settings.bundle_max_cubes} cubes (bundle_max_cubes)",
                reason=reasons.BUNDLE_TOO_MANY_ENTRIES,
            )
        if self.keep:
            self.cubes.append((cube, memory_type))

    def blob(self, subject: Subject, chunks: Iterator[memoryview]) -> None:
        for _ in chunks:
            pass
        self.carried.add("sha256:" + subject.sha256)

    def finish(self) -> None:
        for digest, provenance_id in self.referenced.items():
            if digest not in self.carried:
                raise BundleError(
                    f"cube {provenance_id} refers to blob {digest}, which the bundle does not carry",
                    reason=reasons.BUNDLE_BLOB_MISSING,
                )


@dataclass
class _Staging(CubeChecks):
    """The importer's EntrySink: cubes checked and kept, blobs written to temporary files."""

    blobs: dict[str, tuple[Path, int]] = field(default_factory=dict)
    store: Blobs | None = None

    def blob(self, subject: Subject, chunks: Iterator[memoryview]) -> None:
        assert self.store is not None
        path = self.store.staging_path()
        digest = "sha256:" + subject.sha256
        self.blobs[digest] = (path, subject.size)
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        self.carried.add(digest)

    def discard(self) -> None:
        for path, _ in self.blobs.values():
            path.unlink(missing_ok=True)


@dataclass
class _Planned:
    row: CubeRow
    action: Action
    reembedded: bool
    #: The existing cube's vector label this import retires, if any.
    replaced_vec_id: int | None = None


@dataclass
class ImportResult:
    """What an import did: the bundle's verification report and, per cube, its new name and what was done with it."""

    report: BundleReport
    cubes: list[interchange_service_pb2.ImportedCube]


class Importer:
    """ImportBundle and peer pulls: checks a bundle stream against a trust policy and commits its cubes to a space.

    All or nothing: cubes commit in one transaction, only after the whole bundle verified, under the request's
    conflict policy. Raises ``BundleError`` (with the failing step's reason) for a bundle that does not verify.
    Whose keys are trusted is the ``TrustStore``'s; for marketplace releases the license book admits the import.
    """

    def __init__(self, context: VaultContext, cubes: Cubes) -> None:
        self._context = context
        self._cubes = cubes

    def import_bundle(
        self,
        parent: str,
        conflict_policy: int,
        policy: TrustPolicy | None,
        chunks: Iterable[bytes],
        caller: Caller,
        licensing: Callable[[BundleReport], ImportLicense] | None = None,
    ) -> ImportResult:
        """Verifies ``chunks`` as a bundle and imports its cubes into ``parent``, all or nothing.

        A marketplace release (a predicate naming a listing and a release) is imported only under a license:
        ``licensing`` admits the verified bundle (raising when it may not be imported) and the license it
        returns is carried by every imported cube and recorded in the import's transaction. ``policy`` is None
        then: the grant's signature, not the bundle's signers, is what the node trusts.
        """
        space_id = self._context_space(parent)
        if conflict_policy not in interchange_service_pb2.ConflictPolicy.values():
            raise invalid(f"conflict_policy {conflict_policy} is not a known value", reasons.INVALID_ENUM)
        staging = _Staging(self._context.settings, keep=True, store=self._context.blobs)
        now = self._context.clock()
        started = time.monotonic()
        try:
            report = BundleVerifier(chunks, policy, bundle_limits(self._context.settings), now, staging).run()
            license_ = self._license(report, licensing)
            try:
                rows, reembedded = self._plan(space_id, staging, report, caller, now)
                if license_ is not None:
                    for row in rows:
                        row.cube.license.CopyFrom(license_.cube_license)
                staging.cubes.clear()  # planned rows hold what is kept; the bundle's copies (with vectors) can go
                used = {d for r in rows if (d := blob_digest(r.cube))}
                blob_sizes = {d: size for d, (_, size) in staging.blobs.items() if d in used}
                for digest, (path, _) in staging.blobs.items():
                    if digest in used:  # a blob no cube refers to is verified but not kept
                        self._context.store.adopt_blob(path, digest)
                result = self._commit(space_id, rows, reembedded, blob_sizes, conflict_policy or _SKIP, now, license_)
            except BaseException:
                if license_ is not None:
                    license_.abandon()  # a no-op once the commit went through
                raise
        finally:
            staging.discard()
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator (a peer's stream): stop it now, not at garbage collection
                close()
        log.info(
            "imported bundle %s into %s: %d cubes, %d blobs (%d bytes) in %.1fs",
            report.statement_digest,
            parent,
            len(result),
            len(blob_sizes),
            report.bundle_bytes,
            time.monotonic() - started,
        )
        return ImportResult(report, result)

    @staticmethod
    def _license(
        report: BundleReport, licensing: Callable[[BundleReport], ImportLicense] | None
    ) -> ImportLicense | None:
        if licensing is not None:
            if not report:
                raise BundleError(report.message, reason=report.reason)
            return licensing(report)
        predicate = report.statement.predicate if report.statement is not None else {}
        if "listing" in predicate or "release" in predicate:
            raise FailedPreconditionError(
                f"the bundle is the marketplace release {predicate.get('listing')}/releases/"
                f"{predicate.get('release')}: import it with its license grant and proof (ReleaseLicense)",
                reason=reasons.RELEASE_LICENSE_REQUIRED,
            )
        return None

    def _context_space(self, parent: str) -> str:
        space_id = parse_space_name(parent, "parent")
        if not self._context.catalog.has_space(space_id):
            raise NotFoundError(f"space {parent} does not exist", reason=reasons.SPACE_NOT_FOUND)
        return space_id

    # -- before the transaction: checks and embeddings -----------------------------

    def _plan(
        self, space_id: str, staging: _Staging, report: BundleReport, caller: Caller, now: datetime
    ) -> tuple[list[CubeRow], set[int]]:
        context = self._context
        rows: list[CubeRow] = []
        to_embed: list[int] = []
        visibility = CubeVisibility(caller, context.catalog, space_id)
        for cube, memory_type in staging.cubes:
            digest = blob_digest(cube)
            imported = _imported_cube(cube, space_id, memory_type, caller, report.statement_digest, now)
            # Links into this space are followed by name (labels flow along them): keep only those to cubes
            # the importer may see; links to the source server's cubes stay as provenance.
            drop_links(imported, context.cube_store.hidden_sources(space_id, imported, visibility, now))
            if digest:
                payload = imported.activation if imported.HasField("activation") else imported.parametric
                payload.blob.size_bytes = staging.blobs[digest][1]
                if imported.HasField("activation"):
                    describe_activation(imported.activation, staging.blobs[digest][0])
            vector = self._reusable_vector(cube)
            if vector is None and memory_type != cube_pb2.MEMORY_TYPE_PLAINTEXT and memory_text(imported):
                if context.embedder.fingerprint:  # a cache's or an adapter's source text, searched like plaintext
                    to_embed.append(len(rows))
                    imported.embedding_fingerprint = context.embedder.fingerprint
            elif vector is None and memory_type == cube_pb2.MEMORY_TYPE_PLAINTEXT:
                if not context.embedder.fingerprint:
                    raise FailedPreconditionError(
                        f"cube {cube.provenance_id} has no vector this server can use, and this server has no "
                        "embedder (embedder = none) to embed its text",
                        reason=reasons.EMBEDDER_MISMATCH,
                    )
                to_embed.append(len(rows))
                imported.embedding_fingerprint = context.embedder.fingerprint
            rows.append(CubeRow(space_id, _cube_id(cube), imported, None, vector))
        # In batches: each embedder call has its own timeout, and a bundle may hold many thousand texts.
        step = context.settings.embed_batch_size * 4
        for first in range(0, len(to_embed), step):
            batch = to_embed[first : first + step]
            vectors = context.embedder.embed([memory_text(rows[i].cube) for i in batch])
            for i, vector in zip(batch, vectors, strict=True):
                rows[i].embedding = vector
        return rows, set(to_embed)

    def _reusable_vector(self, cube: cube_pb2.MemCube) -> FloatArray | None:
        """The bundle's vector, if this server's embedder made the same kind (else None: embed again)."""
        if not cube.embedding or len(cube.embedding) != self._context.dimension:
            return None
        local = self._context.embedder.fingerprint
        if local and cube.embedding_fingerprint != local:
            return None
        try:
            return check_vector(cube.embedding, self._context.dimension, "cube.embedding")
        except MemosError:
            return None

    # -- the transaction ----------------------------------------------------------

    def _commit(
        self,
        space_id: str,
        rows: list[CubeRow],
        reembedded: set[int],
        blob_sizes: dict[str, int],
        conflict_policy: int,
        now: datetime,
        license_: ImportLicense | None = None,
    ) -> list[interchange_service_pb2.ImportedCube]:
        context = self._context
        blob_rows = [(d, size, _media_type(rows, d), now) for d, size in sorted(blob_sizes.items())]

        def change(write: CubeWrite) -> list[_Planned]:
            space = write.space(space_id)
            existing = write.by_provenance(space_id, (r.cube.provenance_id for r in rows))
            taken = write.taken(space_id, (r.cube_id for r in rows))
            planned = _resolve(rows, existing, taken, conflict_policy, reembedded, now)
            written = [p.row for p in planned if p.action != Action.ACTION_SKIPPED]
            apply_default_ttl(space, [r for r in written if r.cube.version == 1])
            write.register_blobs(blob_rows)
            write.retire(
                space_id,
                [p.row.cube_id for p in planned if p.action in (Action.ACTION_REPLACED, Action.ACTION_NEW_VERSION)],
            )
            replaced = [p.row.cube_id for p in planned if p.action == Action.ACTION_REPLACED]
            # Another memory takes the id: the old one's history goes as DeleteCube takes it (versions,
            # operation records, blobs only it named), all but the blobs this import names again.
            named = {d for r in written if (d := blob_digest(r.cube))}
            write.remove(space_id, replaced, keep_blobs=named)
            write.forget_labels(space_id, [p.replaced_vec_id for p in planned if p.replaced_vec_id is not None])
            # Labels of cubes the space already held: indexed while the writer committed, never to be seen.
            write.forget_labels(
                space_id,
                [p.row.vec_id for p in planned if p.action == Action.ACTION_SKIPPED and p.row.vec_id is not None],
            )
            # In slices, all in this one transaction: the Arrow copy of a large import never exists whole.
            for first in range(0, len(written), _INSERT_SLICE):
                write.create(written[first : first + _INSERT_SLICE])
            if license_ is not None:
                license_.write(write.cursor)
                write.after_commit(license_.committed)
            return planned

        # Every vector gets its label now and goes into hnswlib while the writer commits (``CubeStore.preindex``).
        with_vectors = [r for r in rows if r.embedding is not None]
        labels = context.cube_store.new_labels(len(with_vectors))
        for row, label in zip(with_vectors, labels, strict=True):
            row.vec_id = label
        preindexed = (
            context.cube_store.preindex(
                space_id, labels, np.stack([r.embedding for r in with_vectors if r.embedding is not None])
            )
            if with_vectors
            else None
        )
        planned = context.cube_store.write(change, now, preindexed=preindexed)
        return [
            interchange_service_pb2.ImportedCube(
                provenance_id=p.row.cube.provenance_id,
                name=p.row.cube.name,
                action=p.action,
                reembedded=p.reembedded and p.action != Action.ACTION_SKIPPED,
            )
            for p in planned
        ]


def _resolve(
    rows: list[CubeRow],
    existing: dict[str, CubeRow],
    taken: set[str],
    conflict_policy: int,
    reembedded: set[int],
    now: datetime,
) -> list[_Planned]:
    """Applies the conflict policy: what happens to each cube, under which id."""
    planned: list[_Planned] = []
    claimed = set(taken)
    for index, row in enumerate(rows):
        found = existing.get(row.cube.provenance_id)
        if found is None:
            if row.cube_id in claimed:  # the id is another memory's here: give this one a new id
                row.cube_id = new_cube_id()
            claimed.add(row.cube_id)
            _rename(row, row.cube_id, 1, now)
            planned.append(_Planned(row, Action.ACTION_CREATED, index in reembedded))
            continue
        cube_id, vec_id, stored = found.cube_id, found.vec_id, found.cube
        if conflict_policy == _SKIP:
            row.cube_id = cube_id
            row.cube = stored
            planned.append(_Planned(row, Action.ACTION_SKIPPED, False))
            continue
        if stored.state == cube_pb2.LIFECYCLE_STATE_FROZEN:
            raise FailedPreconditionError(
                f"cube {stored.name} is frozen; the bundle cannot replace it or add a version (nothing was imported)",
                reason=reasons.CUBE_FROZEN,
            )
        row.cube_id = cube_id
        if conflict_policy == _NEW_VERSION:
            row.cube.create_time.CopyFrom(stored.create_time)
            _rename(row, cube_id, stored.version + 1, now)
            planned.append(_Planned(row, Action.ACTION_NEW_VERSION, index in reembedded, vec_id))
        else:
            _rename(row, cube_id, 1, now)
            planned.append(_Planned(row, Action.ACTION_REPLACED, index in reembedded, vec_id))
    return planned


def _rename(row: CubeRow, cube_id: str, version: int, now: datetime) -> None:
    row.cube.name = cube_name(row.space_id, cube_id)
    next_version(row.cube, version - 1, now)


def _cube_id(cube: cube_pb2.MemCube) -> str:
    """The cube's id at its source, kept when free here; a fresh one if it has none usable."""
    with contextlib.suppress(MemosError):
        return check_id(parse_cube_name(cube.name)[1], "cube id")
    return new_cube_id()


def _imported_cube(
    cube: cube_pb2.MemCube,
    space_id: str,
    memory_type: cube_pb2.MemoryType,
    caller: Caller,
    statement_digest: str,
    now: datetime,
) -> cube_pb2.MemCube:
    """The cube as this server stores it: provenance and payload kept, local bookkeeping fresh."""
    imported = cube_pb2.MemCube()
    imported.CopyFrom(cube)
    # A license is this node's to set (a licensed import): one named in a bundle is the source node's, or forged.
    for local_only in ("embedding", "usage_count", "last_use_time", "etag", "license"):
        imported.ClearField(local_only)
    imported.type = memory_type
    imported.source = cube_pb2.SOURCE_IMPORT
    imported.origin = statement_digest
    if not imported.HasField("create_time"):
        set_timestamp(imported.create_time, now)
    if imported.state in (cube_pb2.LIFECYCLE_STATE_UNSPECIFIED, cube_pb2.LIFECYCLE_STATE_EXPIRED):
        imported.state = cube_pb2.LIFECYCLE_STATE_GENERATED
    # Principal names are the source server's: they mean nothing here, so the importer owns the cube.
    imported.access.owner = caller.principal
    if imported.access.scope == cube_pb2.CubeAccess.SCOPE_PRINCIPALS:
        imported.access.scope = cube_pb2.CubeAccess.SCOPE_OWNER
    del imported.access.principals[:]
    imported.name = cube_name(space_id, "pending")
    return imported


def _media_type(rows: list[CubeRow], digest: str) -> str:
    for row in rows:
        if blob_digest(row.cube) == digest:
            payload = row.cube.activation if row.cube.HasField("activation") else row.cube.parametric
            return payload.blob.media_type or "application/octet-stream"
    return "application/octet-stream"
