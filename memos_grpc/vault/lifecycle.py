"""MemLifecycle: a cube's versions (list, get, roll back) and its states (freeze, unfreeze, archive, merge).

Every change of a cube is a new immutable version in ``cube_versions`` (the
live row in ``cubes`` is the newest). States move only along ``TRANSITIONS``,
one explicit table (docs/lifecycle.md); anything else is FAILED_PRECONDITION.
A frozen cube refuses every change until it is unfrozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import field_mask_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import AlreadyExistsError, EtagMismatchError, FailedPreconditionError, NotFoundError
from memos_grpc.governance.caller import Caller
from memos_grpc.store.derivation import add_labels
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.names import check_id, cube_name, parse_cube_name, parse_space_name
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.rows import CubeRow, next_version
from memos_grpc.store.visibility import CubeVisibility
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import Cubes, apply_default_ttl
from memos_grpc.vault.licensing import TRANSFORM, derived_license, license_id
from memos_grpc.vault.validation import invalid

State = cube_pb2.LifecycleState
GENERATED, ACTIVATED, MERGED = (
    cube_pb2.LIFECYCLE_STATE_GENERATED,
    cube_pb2.LIFECYCLE_STATE_ACTIVATED,
    cube_pb2.LIFECYCLE_STATE_MERGED,
)
ARCHIVED, FROZEN, EXPIRED = (
    cube_pb2.LIFECYCLE_STATE_ARCHIVED,
    cube_pb2.LIFECYCLE_STATE_FROZEN,
    cube_pb2.LIFECYCLE_STATE_EXPIRED,
)

#: Which state may follow which. FROZEN leaves only by UnfreezeCube, back to the state it was frozen in;
#: EXPIRED is final. (UNSPECIFIED, on cubes from before states were kept, counts as GENERATED.)
TRANSITIONS: dict[State, frozenset[State]] = {
    GENERATED: frozenset({ACTIVATED, MERGED, ARCHIVED, FROZEN, EXPIRED}),
    ACTIVATED: frozenset({MERGED, ARCHIVED, FROZEN, EXPIRED}),
    MERGED: frozenset({ARCHIVED, FROZEN, EXPIRED}),
    ARCHIVED: frozenset({ACTIVATED, FROZEN, EXPIRED}),
    FROZEN: frozenset(),
    EXPIRED: frozenset(),
}


def _state_name(state: State) -> str:
    return State.Name(state).removeprefix("LIFECYCLE_STATE_")


def check_transition(name: str, current: State, target: State) -> None:
    """Raises FAILED_PRECONDITION unless ``TRANSITIONS`` lets ``current`` become ``target``."""
    current = current or GENERATED
    if current == FROZEN:
        raise FailedPreconditionError(f"cube {name} is frozen; unfreeze it first", reason=reasons.CUBE_FROZEN)
    if target not in TRANSITIONS.get(current, frozenset()):
        raise FailedPreconditionError(
            f"cube {name} is {_state_name(current)} and cannot become {_state_name(target)} (docs/lifecycle.md)",
            reason=reasons.INVALID_TRANSITION,
        )


#: Version numbers are BIGINTs counted from 1; a name past this bound (far beyond any cube's history, inside
#: BIGINT) names no version, and is refused before it reaches the database.
_VERSION_BOUND = 2**62


def version_name(name: str, version: int) -> str:
    return f"{name}/versions/{version}"


def parse_version_name(name: str) -> tuple[str, str, int]:
    """(space id, cube id, version) of ``spaces/{space}/cubes/{cube}/versions/{n}``."""
    head, _, tail = name.rpartition("/versions/")
    space_id, cube_id = parse_cube_name(head)
    if not tail.isdigit() or not 0 < int(tail) < _VERSION_BOUND:
        raise invalid(f"{name[:120]!r} does not end in /versions/{{n}} with n a positive number", reasons.INVALID_NAME)
    return space_id, cube_id, int(tail)


@dataclass
class _Change:
    """What a change makes of a cube: its next content, and its vector (``keep`` for the current one)."""

    cube: cube_pb2.MemCube
    vector: FloatArray | None = None
    keep_vector: bool = True


class Lifecycle:
    """MemLifecycle of existing cubes: versions (list, get, roll back) and states (freeze, unfreeze, archive, merge).

    Each change writes a new immutable version through the database's writer; a move ``TRANSITIONS`` does not
    allow, or any change to a frozen cube, is FAILED_PRECONDITION. Creating and deleting cubes is ``Cubes``'s.
    """

    def __init__(self, context: VaultContext, cubes: Cubes) -> None:
        self._context = context
        self._cubes = cubes

    # -- versions ----------------------------------------------------------------

    def list_versions(
        self, request: vault_service_pb2.ListCubeVersionsRequest, viewer: Caller
    ) -> tuple[list[cube_pb2.MemCube], str]:
        space_id, cube_id = parse_cube_name(request.name)
        settings = self._context.settings
        size = page_size(request.page_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(request.page_token, request.name)
        below = int(after) if after and after.isdigit() else None
        visibility = CubeVisibility(viewer, self._context.catalog, space_id)
        current, rows = self._context.cube_store.versions(
            space_id, cube_id, visibility, self._context.clock(), below=below, limit=size + 1
        )
        versions = [self._as_version(visibility, pb, v, current) for v, pb in rows[:size]]
        token = encode_token(str(rows[size - 1][0]), request.name) if len(rows) > size else ""
        return versions, token

    def get_version(self, name: str, viewer: Caller) -> cube_pb2.MemCube:
        space_id, cube_id, version = parse_version_name(name)
        visibility = CubeVisibility(viewer, self._context.catalog, space_id)
        current, rows = self._context.cube_store.versions(
            space_id, cube_id, visibility, self._context.clock(), only=version
        )
        if not rows:
            raise NotFoundError(f"version {name} does not exist", reason=reasons.VERSION_NOT_FOUND)
        return self._as_version(visibility, rows[0][1], version, current)

    @staticmethod
    def _as_version(visibility: CubeVisibility, cube_pb: bytes, version: int, current: list[str]) -> cube_pb2.MemCube:
        """One version as the caller may see it: redacted by its own labels or the cube's current ones."""
        stored = cube_pb2.MemCube.FromString(cube_pb)
        cube = visibility.shown(stored, current)
        if cube is not stored:  # a redacted copy, the caller's own to rename
            cube.name = version_name(cube.name, version)
            return cube
        if cube.name.endswith(f"/versions/{version}"):
            return cube
        named = cube_pb2.MemCube()
        named.CopyFrom(cube)
        named.name = version_name(cube.name, version)
        return named

    # -- changes, each a new version --------------------------------------------------

    def rollback(self, request: vault_service_pb2.RollbackCubeRequest, viewer: Caller) -> cube_pb2.MemCube:
        def change(write: CubeWrite, stored: cube_pb2.MemCube) -> _Change:
            if stored.state == FROZEN:
                raise FailedPreconditionError(
                    f"cube {stored.name} is frozen; unfreeze it first", reason=reasons.CUBE_FROZEN
                )
            space_id, cube_id = parse_cube_name(stored.name)
            old = write.version(space_id, cube_id, request.version)
            if old is None or request.version >= stored.version:
                raise NotFoundError(
                    f"cube {stored.name} has no earlier version {request.version}", reason=reasons.VERSION_NOT_FOUND
                )
            restored = old.cube
            # The content comes back; identity, lifecycle state, access and bookkeeping stay the cube's own.
            _KEPT_ON_ROLLBACK.MergeMessage(stored, restored, replace_message_field=True, replace_repeated_field=True)
            return _Change(restored, old.embedding, keep_vector=False)

        return self._change(request.name, request.etag, viewer, change)

    def freeze(self, request: vault_service_pb2.FreezeCubeRequest, viewer: Caller) -> cube_pb2.MemCube:
        return self._change(request.name, request.etag, viewer, _to_state(FROZEN))

    def archive(self, request: vault_service_pb2.ArchiveCubeRequest, viewer: Caller) -> cube_pb2.MemCube:
        return self._change(request.name, request.etag, viewer, _to_state(ARCHIVED))

    def unfreeze(self, request: vault_service_pb2.UnfreezeCubeRequest, viewer: Caller) -> cube_pb2.MemCube:
        def change(write: CubeWrite, stored: cube_pb2.MemCube) -> _Change:
            if stored.state != FROZEN:
                raise FailedPreconditionError(
                    f"cube {stored.name} is {_state_name(stored.state or GENERATED)}, not frozen",
                    reason=reasons.INVALID_TRANSITION,
                )
            space_id, cube_id = parse_cube_name(stored.name)
            earlier = (cube.state for cube in write.versions_before(space_id, cube_id, stored.version))
            state = next((s for s in earlier if s != FROZEN), GENERATED) or GENERATED
            thawed = cube_pb2.MemCube()
            thawed.CopyFrom(stored)
            thawed.state = state
            return _Change(thawed)

        return self._change(request.name, request.etag, viewer, change)

    def _change(
        self,
        name: str,
        etag: str,
        viewer: Caller,
        make: Callable[[CubeWrite, cube_pb2.MemCube], _Change],
    ) -> cube_pb2.MemCube:
        """Applies ``make`` to the cube as a new version, in one transaction (etag and visibility checked)."""
        space_id, cube_id = parse_cube_name(name)
        context = self._context
        visibility = CubeVisibility(viewer, context.catalog, space_id)

        def change(write: CubeWrite) -> CubeRow:
            current = _live_row(write, space_id, cube_id, visibility)
            stored = current.cube
            if etag and etag != stored.etag:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}: it was changed since; get it again",
                    reason=reasons.ETAG_MISMATCH,
                )
            made = make(write, stored)
            cube = made.cube
            cube.name = stored.name
            next_version(cube, stored.version, write.now)
            updated = CubeRow(space_id, cube_id, cube, current.vec_id, current.embedding)
            if not made.keep_vector:
                updated.embedding = made.vector
                updated.vec_id = None if made.vector is None else context.cube_store.new_labels(1)[0]
            # A rollback brings back old labels: the cube keeps its sources', and passes on any it gained.
            write.follow_labels(space_id, cube, stored.sensitivity_labels)
            write.replace(updated, current.vec_id)
            return updated

        return visibility.shown(context.cube_store.write(change, context.clock(), concludes=True).cube)

    # -- merge ---------------------------------------------------------------------

    def merge(self, request: vault_service_pb2.MergeCubesRequest, viewer: Caller, owner: str) -> cube_pb2.MemCube:
        """A new cube made from several of one space; each source becomes MERGED (a new version of it)."""
        space_id = parse_space_name(request.parent, "parent")
        sources = [self._source_id(space_id, name, i) for i, name in enumerate(request.names)]
        if len(sources) < 2 or len(set(sources)) != len(sources):
            raise invalid("names must name at least two different cubes of the space", reasons.INVALID_MERGE)
        create = vault_service_pb2.CreateCubeRequest(cube_id=request.cube_id, cube=request.cube)
        if request.HasField("vector"):
            create.vector.CopyFrom(request.vector)
        merged = self._cubes.prepare(space_id, [create], viewer)[0]
        merged.cube.merged_from.extend(cube_name(space_id, s) for s in sources)
        context = self._context
        visibility = CubeVisibility(viewer, context.catalog, space_id)
        now = context.clock()
        # A merge derives a cube from its sources: licensed ones need their terms to permit it (and count it),
        # and the merged cube carries their license. A cube's license never changes, so reading it first is exact.
        license_ = derived_license(context.cube_store.visible(space_id, s, visibility, now)[0] for s in sources)
        # Counted with the merge, in its transaction: a merge refused below (a taken id, a source already merged)
        # counts no use.
        reservation = context.licenses.reserve(
            TRANSFORM, [license_id(license_)] if license_ is not None else [], viewer.principal
        )
        if license_ is not None:
            merged.cube.license.CopyFrom(license_)
        if merged.embedding is not None:
            merged.vec_id = context.cube_store.new_labels(1)[0]

        def change(write: CubeWrite) -> None:
            if write.exists(space_id, merged.cube_id):
                raise AlreadyExistsError(f"cube {merged.cube.name} already exists", reason=reasons.CUBE_ALREADY_EXISTS)
            changed: list[tuple[CubeRow, int | None]] = []
            for source in sources:
                row = _live_row(write, space_id, source, visibility)
                check_transition(row.cube.name, row.cube.state, MERGED)
                row.cube.state = MERGED
                next_version(row.cube, row.cube.version, write.now)
                changed.append((row, row.vec_id))
            add_labels(merged.cube, (label for row, _ in changed for label in row.cube.sensitivity_labels))
            # As CreateCube: the space's default TTL, and a blob payload must have been uploaded.
            apply_default_ttl(write.space(space_id), [merged])
            self._cubes.bind_blobs(write, [merged], viewer)
            for row, label in changed:
                write.replace(row, label, reindex=False)
            write.create([merged])
            reservation.write(write.cursor)
            write.after_commit(reservation.committed)

        try:
            context.cube_store.write(change, now, concludes=True)
        finally:
            reservation.release()  # a no-op once committed
        return merged.cube

    @staticmethod
    def _source_id(space_id: str, name: str, index: int) -> str:
        named_space, cube_id = parse_cube_name(name, f"names[{index}]")
        if named_space != space_id:
            raise invalid(f"names[{index}] {name!r} is not in {space_id}", reasons.PARENT_MISMATCH)
        return check_id(cube_id, "cube id")


def _live_row(write: CubeWrite, space_id: str, cube_id: str, visibility: CubeVisibility) -> CubeRow:
    """The cube's current row (message, label, vector); NOT_FOUND if it is absent, expired or not visible."""
    row = write.row(space_id, cube_id)
    if row is None or not visibility.allows_cube(row.cube):
        write.space(space_id)
        raise NotFoundError(f"cube {cube_name(space_id, cube_id)} does not exist", reason=reasons.CUBE_NOT_FOUND)
    return row


#: What a rollback does not take from the old version.
_KEPT_ON_ROLLBACK = field_mask_pb2.FieldMask(
    paths=["name", "create_time", "provenance_id", "state", "usage_count", "last_use_time", "access"]
)


def _to_state(target: State) -> Callable[[CubeWrite, cube_pb2.MemCube], _Change]:
    def change(_write: CubeWrite, stored: cube_pb2.MemCube) -> _Change:
        check_transition(stored.name, stored.state, target)
        moved = cube_pb2.MemCube()
        moved.CopyFrom(stored)
        moved.state = target
        return _Change(moved)

    return change
