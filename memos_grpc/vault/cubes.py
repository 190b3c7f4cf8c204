"""Cube CRUD: create (one or a batch), get, list, update and delete.

Checks and embedding happen on the calling thread before anything is queued;
the writer thread then checks what only the database can (space exists, id
free, etag current) and commits. Vectors reach hnswlib after the commit and
before the caller is answered.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np
from google.protobuf import field_mask_pb2

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2, vault_service_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import (
    AlreadyExistsError,
    EtagMismatchError,
    FailedPreconditionError,
    NotFoundError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.store.catalog_rows import catalog_entries
from memos_grpc.store.database import IDS, Connection, id_list
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.names import check_id, cube_name, new_cube_id, parse_cube_name, parse_space_name, space_name
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.removal import Removed, forget_removed, remove_cubes, tombstone
from memos_grpc.store.rows import (
    CubeRow,
    blob_digest,
    insert_rows,
    make_etag,
    memory_text,
    set_timestamp,
    vector_from_bytes,
)
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.blob_access import require_referenceable
from memos_grpc.vault.blob_headers import describe_activation
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.derivation import follow_labels, hidden_sources, inherit_labels
from memos_grpc.vault.validation import (
    check_context,
    check_cube_fields,
    check_metadata,
    check_text,
    check_update_mask,
    check_vector,
    invalid,
)

#: SQL that leaves out cubes past their expire time (they vanish at once), and with them their tombstones.
LIVE = "(expire_time IS NULL OR expire_time > ?)"


class Cubes:
    """MemCube create, get, list, update and delete within spaces, and the issuer of vector labels.

    Validates and embeds on the calling thread, then commits through the database's writer and updates the
    vector index and search catalog before returning. Thread-safe; labels come from ``new_vec_ids`` under a lock
    and are never reused. Lifecycle changes (versions, freeze, archive, merge) are ``Lifecycle``'s.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        with context.database.read() as cursor:
            row = cursor.execute(
                "SELECT greatest(coalesce(max(vec_id), 0), "
                "coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'last_vec_id'), 0)) FROM cubes"
            ).fetchone()
        # A label an index file holds was issued, even if its write never committed (vectors are indexed
        # while the writer commits, and an index may be saved in between): never issue it again.
        self._last_vec_id = max(int(row[0]) if row else 0, context.indexes.max_label())
        self._vec_id_lock = threading.Lock()

    def new_vec_ids(self, count: int) -> list[int]:
        """Labels never issued before (any thread); ``record_vec_ids`` makes them durable.

        Labels must never be reused, even after the highest ones are deleted or their write was lost:
        an index file may hold a label's old vector, and a search answers by label.
        """
        with self._vec_id_lock:
            first = self._last_vec_id + 1
            self._last_vec_id += count
        return list(range(first, first + count))

    @staticmethod
    def record_vec_ids(cursor: Connection, vec_ids: list[int]) -> None:
        """Raises the durable high-water mark of labels, in the caller's transaction."""
        if vec_ids:
            cursor.execute(
                "INSERT INTO meta VALUES ('last_vec_id', ?) ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(greatest(CAST(meta.value AS BIGINT), CAST(excluded.value AS BIGINT)) AS VARCHAR)",
                [str(max(vec_ids))],
            )

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
            raise invalid("requests is empty: send at least one cube", "EMPTY_BATCH")
        if len(request.requests) > limit:
            raise invalid(
                f"batch has {len(request.requests)} cubes; the limit is {limit} (max_batch_size)",
                "BATCH_TOO_LARGE",
            )
        for index, item in enumerate(request.requests):
            if item.parent and item.parent != request.parent:
                raise invalid(f"requests[{index}].parent {item.parent!r} differs from parent", "PARENT_MISMATCH")
        rows = self.prepare(space_id, list(request.requests), caller)
        ids = [r.cube_id for r in rows]
        if len(set(ids)) != len(ids):
            raise invalid("the batch names the same cube_id twice", "DUPLICATE_CUBE_ID")
        return self._insert(space_id, rows, caller)

    def prepare(
        self, space_id: str, requests: Sequence[vault_service_pb2.CreateCubeRequest], caller: Caller
    ) -> list[CubeRow]:
        """Checks and builds the rows of new cubes (no vector labels yet); ``caller`` will own them.

        A blob a cube names is checked against what the caller may name before anything reads it.
        """
        digests = [d for r in requests if (d := blob_digest(r.cube))]
        if digests:
            with self._context.database.read() as cursor:
                require_referenceable(cursor, self._context, caller, space_id, digests)
        self._check_links(space_id, [r.cube for r in requests], caller)
        now = self._context.clock()
        rows: list[CubeRow] = []
        to_embed: list[int] = []
        for index, request in enumerate(requests):
            cube_id = check_id(request.cube_id, "cube_id") if request.cube_id else new_cube_id()
            memory_type = check_cube_fields(request.cube, self._context.settings)
            cube = self._new_cube(space_id, cube_id, request.cube, memory_type, now)
            cube.access.owner = caller.principal
            if cube.HasField("expire_time"):
                cube.expire_time_setter = caller.principal
            if cube.HasField("activation"):
                describe_activation(cube.activation, self._context.blobs.path_for(cube.activation.blob.digest))
            vector: FloatArray | None = None
            if request.HasField("vector"):
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
        visible_sql, visible_params = self._visibility(caller, space_id).sql()
        with self._context.database.read() as cursor:
            for cube in cubes:
                missing = hidden_sources(cursor, space_id, cube, self._context.clock(), visible_sql, visible_params)
                if missing:
                    raise FailedPreconditionError(
                        f"parametric.source_cubes names {missing[0]}, which does not exist; name only cubes "
                        "the adapter was trained on",
                        reason="SOURCE_CUBE_NOT_FOUND",
                    )

    @staticmethod
    def _new_cube(
        space_id: str, cube_id: str, given: cube_pb2.MemCube, memory_type: int, now: datetime
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
        cube.type = memory_type  # type: ignore[assignment]
        cube.state = cube_pb2.LIFECYCLE_STATE_GENERATED
        cube.storage_mode = (
            cube_pb2.STORAGE_MODE_INLINE
            if memory_type == cube_pb2.MEMORY_TYPE_PLAINTEXT
            else cube_pb2.STORAGE_MODE_BLOB
        )
        cube.provenance_id = str(uuid.uuid4())
        cube.version = 1
        set_timestamp(cube.create_time, now)
        set_timestamp(cube.update_time, now)
        cube.etag = make_etag(cube.name, cube.version, now)
        return cube

    def _insert(
        self, space_id: str, rows: list[CubeRow], caller: Caller, derived: bool = False
    ) -> list[cube_pb2.MemCube]:
        context = self._context
        if not context.catalog.has_space(space_id):
            raise NotFoundError(f"space {space_name(space_id)} does not exist", reason="SPACE_NOT_FOUND")
        with_vectors = [row for row in rows if row.embedding is not None]
        vec_ids = self.new_vec_ids(len(with_vectors))
        for row, vec_id in zip(with_vectors, vec_ids, strict=True):
            row.vec_id = vec_id

        def apply(cursor: Connection) -> list[CubeRow]:
            found = cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
            if found is None:
                raise NotFoundError(f"space {space_name(space_id)} does not exist", reason="SPACE_NOT_FOUND")
            apply_default_ttl(space_pb2.Space.FromString(found[0]), rows)
            for row in rows if derived else []:
                inherit_labels(cursor, space_id, row.cube)
            self.bind_blobs(cursor, rows, caller)
            self.record_vec_ids(cursor, vec_ids)
            try:
                insert_rows(cursor, rows)
            except duckdb.ConstraintException as exc:
                # The primary key caught a taken id; the caller names it once this is rolled back.
                raise AlreadyExistsError("a cube id is taken", reason="CUBE_ALREADY_EXISTS") from exc
            return rows

        def after_commit(written: list[CubeRow]) -> None:
            context.catalog.put(space_id, catalog_entries(written))

        committed = context.database.submit(apply, after_commit)
        index = context.indexes.get(space_id)
        if with_vectors:
            # Index while the writer commits: the catalog, filled only after the commit, decides
            # what a search may return, so a vector indexed early is never seen before its cube.
            index.add(vec_ids, np.stack([r.embedding for r in with_vectors if r.embedding is not None]))
        try:
            return [r.cube for r in committed.result()]
        except AlreadyExistsError:
            index.delete(vec_ids)
            self._raise_taken(space_id, [r.cube_id for r in rows])
            raise
        except BaseException:
            index.delete(vec_ids)
            raise

    def _raise_taken(self, space_id: str, cube_ids: list[str]) -> None:
        with self._context.database.read() as cursor:
            taken = cursor.execute(
                f"SELECT cube_id FROM cubes WHERE space_id = ? AND cube_id IN {IDS} LIMIT 1",
                [space_id, id_list(cube_ids)],
            ).fetchone()
        if taken is not None:
            raise AlreadyExistsError(
                f"cube {cube_name(space_id, taken[0])} already exists", reason="CUBE_ALREADY_EXISTS"
            )

    def bind_blobs(self, cursor: Connection, rows: list[CubeRow], caller: Caller) -> None:
        """Checks ``caller`` may name every blob the rows name (``blob_access``), in the write's own
        transaction, and records each blob's true size and media type."""
        named: dict[str, set[str]] = {}
        for row in rows:
            if (digest := blob_digest(row.cube)) is not None:
                named.setdefault(row.space_id, set()).add(digest)
        for space_id, digests in named.items():  # one check per space, each digest once
            require_referenceable(cursor, self._context, caller, space_id, digests)
        for row in rows:
            digest = blob_digest(row.cube)
            if digest is None:
                continue
            found = cursor.execute("SELECT size_bytes, media_type FROM blobs WHERE digest = ?", [digest]).fetchone()
            if found is None:  # a guard: a blob that a live cube names is never swept
                raise FailedPreconditionError(
                    f"blob {digest} has not been uploaded; send it with WritePayload first",
                    reason="BLOB_NOT_FOUND",
                )
            payload = row.cube.activation if row.cube.HasField("activation") else row.cube.parametric
            payload.blob.size_bytes, payload.blob.media_type = int(found[0]), str(found[1])

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
        visibility_sql, visibility_params = visibility.sql()
        now = self._context.clock()
        with self._context.database.read() as cursor:
            row = cursor.execute(
                f"SELECT cube_pb, {LIVE} FROM cubes WHERE space_id = ? AND cube_id = ? AND {visibility_sql}",
                [now, space_id, cube_id, *visibility_params],
            ).fetchone()
            if row is None:
                self._context.require_space(cursor, space_id)
                raise NotFoundError(f"cube {name} does not exist", reason="CUBE_NOT_FOUND")
        cube = cube_pb2.MemCube.FromString(row[0])
        if not row[1]:
            stone = self._tombstone(cube)
            raise NotFoundError(
                f"cube {name} expired at {stone.expire_time.ToJsonString()}; its tombstone is listed "
                f"(ListCubes with show_expired) until {stone.purge_time.ToJsonString()}",
                reason="CUBE_EXPIRED",
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
        visibility_sql, visibility_params = visibility.sql()
        # With show_expired, expired cubes are listed too, each as its tombstone (AIP-164's show_deleted).
        now = self._context.clock()
        live, live_params = ("TRUE", []) if request.show_expired else (LIVE, [now])
        with self._context.database.read() as cursor:
            self._context.require_space(cursor, space_id)
            rows = cursor.execute(
                f"SELECT cube_id, cube_pb, {LIVE} FROM cubes WHERE space_id = ? AND cube_id > ? AND {live} "
                f"AND {visibility_sql} AND ({compiled.sql}) ORDER BY cube_id LIMIT ?",
                [now, space_id, after, *live_params, *visibility_params, *compiled.params, size + 1],
            ).fetchall()
        cubes = [
            visibility.shown(cube_pb2.MemCube.FromString(blob))
            if alive
            else self._tombstone(cube_pb2.MemCube.FromString(blob))
            for _, blob, alive in rows[:size]
        ]
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
            raise invalid("vector is set but update_mask does not change plaintext.text", "INVALID_UPDATE_MASK")
        context = self._context
        now = context.clock()
        visibility = self._visibility(viewer, space_id)

        def apply(cursor: Connection) -> tuple[CubeRow, int | None, list[CubeRow]]:
            row = cursor.execute(
                f"SELECT cube_pb, vec_id, embedding FROM cubes WHERE space_id = ? AND cube_id = ? AND {LIVE}",
                [space_id, cube_id, now],
            ).fetchone()
            if row is None:
                context.require_space(cursor, space_id)
                raise NotFoundError(f"cube {given.name} does not exist", reason="CUBE_NOT_FOUND")
            stored = cube_pb2.MemCube.FromString(row[0])
            if not visibility.allows_cube(stored):
                raise NotFoundError(f"cube {given.name} does not exist", reason="CUBE_NOT_FOUND")
            if given.etag and given.etag != stored.etag:
                raise EtagMismatchError(
                    f"etag {given.etag!r} is stale for {given.name}: it was changed since; get it again",
                    reason="ETAG_MISMATCH",
                )
            if stored.state == cube_pb2.LIFECYCLE_STATE_FROZEN:
                raise FailedPreconditionError(f"cube {given.name} is frozen", reason="CUBE_FROZEN")
            if plaintext_changes and stored.type != cube_pb2.MEMORY_TYPE_PLAINTEXT:
                raise invalid(f"cube {given.name} is not plaintext: it has no text to update", "INVALID_UPDATE_MASK")
            owner, labels_before = stored.access.owner, list(stored.sensitivity_labels)
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                given, stored, replace_message_field=True, replace_repeated_field=True
            )
            stored.access.owner = owner  # output only: an update never changes who created the cube
            if "expire_time" in paths:
                stored.expire_time_setter = viewer.principal if stored.HasField("expire_time") else ""
            stored.version += 1
            set_timestamp(stored.update_time, now)
            stored.etag = make_etag(stored.name, stored.version, now)
            if text_changes:
                stored.embedding_fingerprint = (
                    given.embedding_fingerprint or "client"
                    if request.HasField("vector")
                    else context.embedder.fingerprint
                )
            # A vector's label never gets another vector: a new text takes a new label, which
            # keeps start-up repair a plain set difference between DuckDB and the index.
            old_vec_id = None if row[1] is None else int(row[1])
            vec_id, embedding = old_vec_id, None if row[2] is None else vector_from_bytes(row[2])
            if new_vector is not None:
                vec_id, embedding = self.new_vec_ids(1)[0], new_vector
                self.record_vec_ids(cursor, [vec_id])
            updated = CubeRow(space_id, cube_id, stored, vec_id, embedding)
            derived = follow_labels(cursor, space_id, stored, labels_before, now)
            cursor.execute("DELETE FROM cubes WHERE space_id = ? AND cube_id = ?", [space_id, cube_id])
            insert_rows(cursor, [updated])
            return updated, (old_vec_id if vec_id != old_vec_id else None), derived

        def after_commit(result: tuple[CubeRow, int | None, list[CubeRow]]) -> None:
            updated, replaced, derived = result
            if new_vector is not None and updated.vec_id is not None:
                context.indexes.get(space_id).add([updated.vec_id], new_vector[None, :])
            if replaced is not None:
                context.indexes.get(space_id).delete([replaced])
                context.catalog.remove(space_id, [replaced])
            context.catalog.put(space_id, catalog_entries([updated]))
            context.catalog.put(space_id, catalog_entries(derived, reindex=False))

        return context.database.write(apply, after_commit)[0].cube

    def delete(self, name: str, etag: str, viewer: Caller) -> None:
        space_id, cube_id = parse_cube_name(name)
        context = self._context
        visibility, visibility_params = self._visibility(viewer, space_id).sql()

        def apply(cursor: Connection) -> Removed:
            row = cursor.execute(
                f"SELECT etag, vec_id, state FROM cubes WHERE space_id = ? AND cube_id = ? AND {LIVE} AND {visibility}",
                [space_id, cube_id, context.clock(), *visibility_params],
            ).fetchone()
            if row is None:
                context.require_space(cursor, space_id)
                raise NotFoundError(f"cube {name} does not exist", reason="CUBE_NOT_FOUND")
            if etag and etag != row[0]:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}: it was changed since; get it again",
                    reason="ETAG_MISMATCH",
                )
            if row[2] == cube_pb2.LIFECYCLE_STATE_FROZEN:
                raise FailedPreconditionError(f"cube {name} is frozen; unfreeze it first", reason="CUBE_FROZEN")
            return remove_cubes(cursor, space_id, [cube_id])

        context.database.write(apply, lambda removed: forget_removed(context.store, removed))


def apply_default_ttl(space: space_pb2.Space, rows: list[CubeRow]) -> None:
    """Gives each cube without an expire time the space's default TTL, counted from its creation."""
    if not space.HasField("default_ttl"):
        return
    ttl = space.default_ttl.ToTimedelta()
    for row in rows:
        if not row.cube.HasField("expire_time"):
            row.cube.expire_time.FromDatetime(row.cube.create_time.ToDatetime() + ttl)
            row.cube.expire_time_setter = space.name
