"""Cube CRUD: create (one or a batch), get, list, update and delete.

Checks and embedding happen on the calling thread before anything is queued;
the writer thread then checks what only the database can (space exists, id
free, etag current) and commits. Vectors reach hnswlib after the commit and
before the caller is answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from google.protobuf import field_mask_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2, vault_service_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import (
    AlreadyExistsError,
    EtagMismatchError,
    FailedPreconditionError,
    NotFoundError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.interface import CubeWrite, Preindexing
from memos_grpc.store.names import (
    check_id,
    cube_name,
    new_cube_id,
    new_uuids,
    parse_cube_name,
    parse_space_name,
    space_name,
)
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.removal import tombstone
from memos_grpc.store.rows import CubeRow, blob_digest, make_etag, memory_text, next_version, set_timestamp
from memos_grpc.store.vectors import BULK_ADD
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.blob_access import require_referenceable
from memos_grpc.vault.blob_headers import describe_stored_activation
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import (
    check_context,
    check_cube_fields,
    check_metadata,
    check_text,
    check_update_mask,
    check_vector,
    invalid,
    unit_vectors,
)


class Cubes:
    """MemCube create, get, list, update and delete within spaces.

    Validates and embeds on the calling thread, then commits through the store's cube writes
    (``store.cubes.CubeWrite``), which update the vector index and search catalog before returning. Thread-safe.
    Lifecycle changes (versions, freeze, archive, merge) are ``Lifecycle``'s.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context

    # -- create ----------------------------------------------------------------

    def create(
        self,
        parent: str,
        request: vault_service_pb2.CreateCubeRequest,
        caller: Caller,
        derived: bool = False,
        license_: cube_pb2.CubeLicense | None = None,
    ) -> cube_pb2.MemCube:
        """Creates one cube; ``caller`` is recorded as ``access.owner``.

        ``derived``: the server made the cube from the cubes its links name (``derivation.source_names``), which
        give it their labels as they are at the commit, so a label a source gained meanwhile is not missed.
        ``license_``: the license of the cubes it was made from, which the new one carries.
        """
        space_id = parse_space_name(parent, "parent")
        rows = self.prepare(space_id, [request], caller)
        if license_ is not None:
            rows[0].cube.license.CopyFrom(license_)
        if request.validate_only:
            with self._context.database.read() as cursor:
                self._context.require_space(cursor, space_id)
            return rows[0].cube
        return self._insert(space_id, rows, caller, derived)[0]

    def batch_create(
        self, request: vault_service_pb2.BatchCreateCubesRequest, caller: Caller
    ) -> list[cube_pb2.MemCube]:
        space_id = parse_space_name(request.parent, "parent")
        limit = self._context.settings.max_batch_size
        if not request.requests:
            raise invalid("requests is empty: send at least one cube", reasons.EMPTY_BATCH)
        if len(request.requests) > limit:
            raise invalid(
                f"batch has {len(request.requests)} cubes; the limit is {limit} (max_batch_size)",
                reasons.BATCH_TOO_LARGE,
            )
        for index, item in enumerate(request.requests):
            if item.parent and item.parent != request.parent:
                raise invalid(f"requests[{index}].parent {item.parent!r} differs from parent", reasons.PARENT_MISMATCH)
        requests = list(request.requests)
        given = unit_vectors([r.vector.values for r in requests], self._context.dimension)
        early = self._preindex(space_id, requests, given)
        try:
            rows = self.prepare(space_id, requests, caller, given)
            ids = [r.cube_id for r in rows]
            if len(set(ids)) != len(ids):
                raise invalid("the batch names the same cube_id twice", reasons.DUPLICATE_CUBE_ID)
        except BaseException:
            if early is not None:
                early.undo()
            raise
        if early is not None:
            for row, label in zip(rows, early.labels, strict=True):
                row.vec_id = label
        return self._insert(space_id, rows, caller, early=early)

    def _preindex(
        self,
        space_id: str,
        requests: Sequence[vault_service_pb2.CreateCubeRequest],
        given: Sequence[FloatArray | None],
    ) -> Preindexing | None:
        """Starts indexing a batch's own vectors before its cubes are built, when every cube brings a valid one:
        on two cores, hnswlib's add then runs beside the checks instead of after them (``CubeStore.preindex``)."""
        if len(requests) < BULK_ADD or not self._context.catalog.has_space(space_id):
            return None
        if not all(r.HasField("vector") for r in requests):
            return None
        vectors = [v for v in given if v is not None]
        if len(vectors) < len(requests):
            return None  # ``prepare`` refuses the batch, naming the vector
        cube_store = self._context.cube_store
        return cube_store.preindex(space_id, cube_store.new_labels(len(vectors)), np.stack(vectors))

    def prepare(
        self,
        space_id: str,
        requests: Sequence[vault_service_pb2.CreateCubeRequest],
        caller: Caller,
        given: Sequence[FloatArray | None] | None = None,
    ) -> list[CubeRow]:
        """Checks and builds the rows of new cubes (no vector labels yet); ``caller`` will own them.

        A blob a cube names is checked against what the caller may name before anything reads it. ``given``: the
        requests' own vectors as ``unit_vectors`` checked them, when the caller has already.
        """
        digests = [d for r in requests if (d := blob_digest(r.cube))]
        if digests:
            with self._context.database.read() as cursor:
                require_referenceable(cursor, self._context, caller, space_id, digests)
        self._check_links(space_id, [r.cube for r in requests], caller)
        now = self._context.clock()
        rows: list[CubeRow] = []
        to_embed: list[int] = []
        if given is None:
            given = unit_vectors([r.vector.values for r in requests], self._context.dimension)
        provenance_ids = new_uuids(len(requests))
        for index, request in enumerate(requests):
            cube_id = check_id(request.cube_id, "cube_id") if request.cube_id else new_cube_id()
            memory_type = check_cube_fields(request.cube, self._context.settings)
            cube = self._new_cube(space_id, cube_id, request.cube, memory_type, now, provenance_ids[index])
            cube.access.owner = caller.principal
            if cube.HasField("expire_time"):
                cube.expire_time_setter = caller.principal
            if cube.HasField("activation"):
                describe_stored_activation(cube.activation, self._context.blobs)
            vector: FloatArray | None = None
            if request.HasField("vector"):
                vector = given[index]
                if vector is None:  # refused: check it alone for the error
                    vector = check_vector(request.vector.values, self._context.dimension)
                cube.embedding_fingerprint = request.cube.embedding_fingerprint or "client"
            elif memory_type == cube_pb2.MEMORY_TYPE_PLAINTEXT or (
                memory_text(cube) and self._context.embedder.fingerprint
            ):
                # A cache's or an adapter's source text is searched like plaintext, when there is an embedder.
                to_embed.append(index)
                cube.embedding_fingerprint = self._context.embedder.fingerprint
            rows.append(CubeRow(space_id, cube_id, cube, None, vector))
        if to_embed:
            vectors = self._context.embedder.embed([memory_text(rows[i].cube) for i in to_embed])
            for i, vector in zip(to_embed, vectors, strict=True):
                rows[i].embedding = vector
        return rows

    def _check_links(self, space_id: str, cubes: Sequence[cube_pb2.MemCube], caller: Caller) -> None:
        """Refuses an adapter's ``source_cubes`` naming a cube of the space the caller may not see, as if it did
        not exist (labels flow along such links: ``derivation``)."""
        if not any(c.HasField("parametric") and c.parametric.source_cubes for c in cubes):
            return
        visibility = self._visibility(caller, space_id)
        for cube in cubes:
            missing = self._context.cube_store.hidden_sources(space_id, cube, visibility, self._context.clock())
            if missing:
                raise FailedPreconditionError(
                    f"parametric.source_cubes names {missing[0]}, which does not exist; name only cubes "
                    "the adapter was trained on",
                    reason=reasons.SOURCE_CUBE_NOT_FOUND,
                )

    @staticmethod
    def _new_cube(
        space_id: str,
        cube_id: str,
        given: cube_pb2.MemCube,
        memory_type: cube_pb2.MemoryType,
        now: datetime,
        provenance_id: str,
    ) -> cube_pb2.MemCube:
        cube = cube_pb2.MemCube()
        cube.CopyFrom(given)
        for output_only in (
            "create_time",
            "update_time",
            "last_use_time",
            "usage_count",
            "provenance_id",
            "merged_from",  # set by MergeCubes alone
            "license",  # set by a licensed import, and carried to what is derived from its cubes
            "expire_time_setter",
            "purge_time",
        ):
            cube.ClearField(output_only)
        cube.name = cube_name(space_id, cube_id)
        cube.type = memory_type
        cube.state = cube_pb2.LIFECYCLE_STATE_GENERATED
        cube.storage_mode = (
            cube_pb2.STORAGE_MODE_INLINE
            if memory_type == cube_pb2.MEMORY_TYPE_PLAINTEXT
            else cube_pb2.STORAGE_MODE_BLOB
        )
        cube.provenance_id = provenance_id
        cube.version = 1
        set_timestamp(cube.create_time, now)
        set_timestamp(cube.update_time, now)
        cube.etag = make_etag(cube.name, cube.version, now)
        return cube

    def _insert(
        self,
        space_id: str,
        rows: list[CubeRow],
        caller: Caller,
        derived: bool = False,
        *,
        early: Preindexing | None = None,
    ) -> list[cube_pb2.MemCube]:
        """Stores new cubes; ``early``: every row's vector, already being indexed under the rows' labels."""
        context = self._context
        if not context.catalog.has_space(space_id):
            if early is not None:
                early.undo()
            raise NotFoundError(f"space {space_name(space_id)} does not exist", reason=reasons.SPACE_NOT_FOUND)
        preindexed = early
        if preindexed is None:
            with_vectors = [row for row in rows if row.embedding is not None]
            labels = context.cube_store.new_labels(len(with_vectors))
            for row, label in zip(with_vectors, labels, strict=True):
                row.vec_id = label
            # Indexed while the writer commits: the catalog, filled only after the commit, decides what a search
            # may return, so a vector indexed early is never seen before its cube.
            vectors = [r.embedding for r in with_vectors if r.embedding is not None]
            preindexed = context.cube_store.preindex(space_id, labels, np.stack(vectors)) if vectors else None

        def change(write: CubeWrite) -> list[CubeRow]:
            apply_default_ttl(write.space(space_id), rows)
            for row in rows if derived else []:
                write.inherit_labels(space_id, row.cube)
            self.bind_blobs(write, rows, caller)
            write.create(rows)
            return rows

        try:
            # A derived cube is made by an operation's job: the request that started it concluded already.
            written = context.cube_store.write(change, context.clock(), preindexed=preindexed, concludes=not derived)
            return [r.cube for r in written]
        except AlreadyExistsError:
            self._raise_taken(space_id, [r.cube_id for r in rows])
            raise

    def _raise_taken(self, space_id: str, cube_ids: list[str]) -> None:
        taken = sorted(self._context.cube_store.taken(space_id, cube_ids))
        if taken:
            raise AlreadyExistsError(
                f"cube {cube_name(space_id, taken[0])} already exists", reason=reasons.CUBE_ALREADY_EXISTS
            )

    def bind_blobs(self, write: CubeWrite, rows: list[CubeRow], caller: Caller) -> None:
        """Checks ``caller`` may name every blob the rows name (``blob_access``), in the write's own
        transaction, and records each blob's true size and media type."""
        named: dict[str, set[str]] = {}
        for row in rows:
            if (digest := blob_digest(row.cube)) is not None:
                named.setdefault(row.space_id, set()).add(digest)
        for space_id, digests in named.items():  # one check per space, each digest once
            require_referenceable(write.cursor, self._context, caller, space_id, digests)
        for row in rows:
            digest = blob_digest(row.cube)
            if digest is None:
                continue
            found = write.blob_facts(digest)
            if found is None:  # a guard: a blob that a live cube names is never swept
                raise FailedPreconditionError(
                    f"blob {digest} has not been uploaded; send it with WritePayload first",
                    reason=reasons.BLOB_NOT_FOUND,
                )
            payload = row.cube.activation if row.cube.HasField("activation") else row.cube.parametric
            payload.blob.size_bytes, payload.blob.media_type = found

    # -- read ------------------------------------------------------------------

    def _visibility(self, viewer: Caller, space_id: str) -> CubeVisibility:
        return CubeVisibility(viewer, self._context.catalog, space_id)

    def get(self, name: str, viewer: Caller) -> cube_pb2.MemCube:
        """The cube, if it exists, has not expired, and ``viewer`` may see it (else NOT_FOUND).

        An expired cube ``viewer`` could see answers NOT_FOUND with reason CUBE_EXPIRED, naming when it expired
        and until when its tombstone is listed: an expiry is told from a deletion, and only to those who could
        see the cube.
        """
        space_id, cube_id = parse_cube_name(name)
        visibility = self._visibility(viewer, space_id)
        cube, alive = self._context.cube_store.visible(space_id, cube_id, visibility, self._context.clock())
        if not alive:
            stone = self._tombstone(cube)
            raise NotFoundError(
                f"cube {name} expired at {stone.expire_time.ToJsonString()}; its tombstone is listed "
                f"(ListCubes with show_expired) until {stone.purge_time.ToJsonString()}",
                reason=reasons.CUBE_EXPIRED,
            )
        return visibility.shown(cube)

    def _tombstone(self, cube: cube_pb2.MemCube) -> cube_pb2.MemCube:
        """The tombstone of an expired cube, as the sweeper stores it (or has stored it)."""
        return tombstone(cube, timedelta(seconds=self._context.settings.expired_retention_seconds))

    def sees(self, name: str, viewer: Caller) -> bool:
        """Whether ``viewer`` may see the cube (False too when it no longer exists)."""
        try:
            self.get(name, viewer)
        except NotFoundError:
            return False
        return True

    def visibility(self, viewer: Caller, space_id: str) -> CubeVisibility:
        return self._visibility(viewer, space_id)

    def list(self, request: vault_service_pb2.ListCubesRequest, viewer: Caller) -> tuple[list[cube_pb2.MemCube], str]:
        space_id = parse_space_name(request.parent, "parent")
        settings = self._context.settings
        size = page_size(request.page_size, settings.default_page_size, settings.max_page_size)
        compiled = compile_filter(request.filter, max_length=settings.max_filter_length)
        after = decode_token(request.page_token, request.parent, request.filter) or ""
        visibility = self._visibility(viewer, space_id)
        # With show_expired, expired cubes are listed too, each as its tombstone (AIP-164's show_deleted).
        rows = self._context.cube_store.page(
            space_id, after, size + 1, visibility, compiled, self._context.clock(), expired=request.show_expired
        )
        cubes = [visibility.shown(cube) if alive else self._tombstone(cube) for _, cube, alive in rows[:size]]
        next_token = ""
        if len(rows) > size:
            next_token = encode_token(rows[size - 1][0], request.parent, request.filter)
        return cubes, next_token

    # -- update and delete -----------------------------------------------------

    def update(self, request: vault_service_pb2.UpdateCubeRequest, viewer: Caller) -> cube_pb2.MemCube:
        space_id, cube_id = parse_cube_name(request.cube.name, "cube.name")
        paths = check_update_mask(list(request.update_mask.paths))
        given = request.cube
        check_metadata(given)
        new_vector: FloatArray | None = None
        text_changes = "plaintext.text" in paths or "plaintext" in paths
        plaintext_changes = text_changes or "plaintext.context" in paths
        if plaintext_changes:
            check_context(given.plaintext.context, self._context.settings)
        if text_changes:
            check_text(given.plaintext.text, self._context.settings)
            if request.HasField("vector"):
                new_vector = check_vector(request.vector.values, self._context.dimension)
            else:
                new_vector = self._context.embedder.embed([given.plaintext.text])[0]
        elif request.HasField("vector"):
            raise invalid("vector is set but update_mask does not change plaintext.text", reasons.INVALID_UPDATE_MASK)
        context = self._context
        now = context.clock()
        visibility = self._visibility(viewer, space_id)

        def change(write: CubeWrite) -> CubeRow:
            current = write.row(space_id, cube_id)
            if current is None:
                write.space(space_id)
                raise NotFoundError(f"cube {given.name} does not exist", reason=reasons.CUBE_NOT_FOUND)
            stored = current.cube
            if not visibility.allows_cube(stored):
                raise NotFoundError(f"cube {given.name} does not exist", reason=reasons.CUBE_NOT_FOUND)
            if given.etag and given.etag != stored.etag:
                raise EtagMismatchError(
                    f"etag {given.etag!r} is stale for {given.name}: it was changed since; get it again",
                    reason=reasons.ETAG_MISMATCH,
                )
            if stored.state == cube_pb2.LIFECYCLE_STATE_FROZEN:
                raise FailedPreconditionError(f"cube {given.name} is frozen", reason=reasons.CUBE_FROZEN)
            if plaintext_changes and stored.type != cube_pb2.MEMORY_TYPE_PLAINTEXT:
                raise invalid(
                    f"cube {given.name} is not plaintext: it has no text to update", reasons.INVALID_UPDATE_MASK
                )
            owner, labels_before = stored.access.owner, list(stored.sensitivity_labels)
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                given, stored, replace_message_field=True, replace_repeated_field=True
            )
            stored.access.owner = owner  # output only: an update never changes who created the cube
            if "expire_time" in paths:
                stored.expire_time_setter = viewer.principal if stored.HasField("expire_time") else ""
            next_version(stored, stored.version, now)
            if text_changes:
                stored.embedding_fingerprint = (
                    given.embedding_fingerprint or "client"
                    if request.HasField("vector")
                    else context.embedder.fingerprint
                )
            updated = CubeRow(space_id, cube_id, stored, current.vec_id, current.embedding)
            if new_vector is not None:
                updated.vec_id, updated.embedding = context.cube_store.new_labels(1)[0], new_vector
            write.follow_labels(space_id, stored, labels_before)
            write.replace(updated, current.vec_id)
            return updated

        return context.cube_store.write(change, now, concludes=True).cube

    def delete(self, name: str, etag: str, viewer: Caller) -> None:
        space_id, cube_id = parse_cube_name(name)
        context = self._context
        visibility = self._visibility(viewer, space_id)

        def change(write: CubeWrite) -> None:
            current = write.row(space_id, cube_id)
            if current is None or not visibility.allows_cube(current.cube):
                write.space(space_id)
                raise NotFoundError(f"cube {name} does not exist", reason=reasons.CUBE_NOT_FOUND)
            if etag and etag != current.cube.etag:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}: it was changed since; get it again",
                    reason=reasons.ETAG_MISMATCH,
                )
            if current.cube.state == cube_pb2.LIFECYCLE_STATE_FROZEN:
                raise FailedPreconditionError(f"cube {name} is frozen; unfreeze it first", reason=reasons.CUBE_FROZEN)
            write.remove(space_id, [cube_id])

        context.cube_store.write(change, context.clock(), concludes=True)


def apply_default_ttl(space: space_pb2.Space, rows: list[CubeRow]) -> None:
    """Gives each cube without an expire time the space's default TTL, counted from its creation."""
    if not space.HasField("default_ttl"):
        return
    ttl = space.default_ttl.ToTimedelta()
    for row in rows:
        if not row.cube.HasField("expire_time"):
            row.cube.expire_time.FromDatetime(row.cube.create_time.ToDatetime() + ttl)
            row.cube.expire_time_setter = space.name
