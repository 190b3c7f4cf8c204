"""TransformCube: moving memories between types with the server's model (docs/models.md).

- plaintext -> activation, in place: the model reads the cube's text; its KV
  cache becomes the cube's blob and the text its ``source_text``.
- activation -> plaintext (demotion), in place: the source text comes back
  as the cube's text; no model needed.
- plaintext or activation (one cube or several) -> parametric: a LoRA
  adapter trained on their texts (a cache's source text) becomes a new cube;
  the sources stay as they are.

The request is checked, and the sources read, before an operation is queued,
so a bad request fails at once with its own status. The work runs on the
operations thread; an in-place change commits only if the cube is still the
version that was read (else ABORTED, CUBE_CHANGED), as a new version.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, scheduler_service_pb2, vault_service_pb2
from memos_grpc.errors import (
    CancelledError,
    EtagMismatchError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.scheduler.operations import Operation, Operations, Progress
from memos_grpc.settings import MAX_LORA_RANK
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.names import check_id, cube_name, new_cube_id, parse_cube_name, parse_space_name
from memos_grpc.store.rows import CubeRow, memory_text, next_version
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import Cubes
from memos_grpc.vault.licensing import TRANSFORM, UseReservation, derived_license, license_id
from memos_grpc.vault.lifecycle import TRANSITIONS
from memos_grpc.vault.payloads import Payloads
from memos_grpc.vault.validation import invalid

if TYPE_CHECKING:
    from memos_grpc.models.host import ModelHost
    from memos_grpc.models.parametric import TrainingPlan

ACTIVATION_MEDIA_TYPE = "application/vnd.memos.activation+safetensors"
PLAINTEXT, ACTIVATION, PARAMETRIC = (
    cube_pb2.MEMORY_TYPE_PLAINTEXT,
    cube_pb2.MEMORY_TYPE_ACTIVATION,
    cube_pb2.MEMORY_TYPE_PARAMETRIC,
)

#: The memory types each target takes. An adapter learns texts: a cache's source text serves as well as a plaintext's.
_SOURCE_TYPES: dict[int, frozenset[int]] = {
    PLAINTEXT: frozenset({ACTIVATION}),
    ACTIVATION: frozenset({PLAINTEXT}),
    PARAMETRIC: frozenset({PLAINTEXT, ACTIVATION}),
}


def no_model() -> FailedPreconditionError:
    return FailedPreconditionError(
        "this server has no model: set model_dir to a local Hugging Face model directory (docs/models.md)",
        reason=reasons.MODEL_NOT_CONFIGURED,
    )


class Transformer:
    """TransformCube and GetModel: moves cubes between plaintext, activation and parametric memory with the model.

    Checks the request and its source cubes on the calling thread, then runs the work as an ``Operations`` entry
    and returns the operation at once. Owns no model: ``host`` is None on a server without one, and every transform
    needing it is FAILED_PRECONDITION ``MODEL_NOT_CONFIGURED``.
    """

    def __init__(
        self,
        context: VaultContext,
        cubes: Cubes,
        payloads: Payloads,
        operations: Operations,
        host: ModelHost | None,
    ) -> None:
        self._context = context
        self._cubes = cubes
        self._payloads = payloads
        self._operations = operations
        self.host = host

    def model_info(self) -> scheduler_service_pb2.ModelInfo:
        if self.host is None:
            raise no_model()
        return self.host.info()

    def transform(self, request: scheduler_service_pb2.TransformCubeRequest, caller: Caller) -> Operation:
        space_id = parse_space_name(request.parent, "parent")
        target = request.target_type
        if target not in (PLAINTEXT, ACTIVATION, PARAMETRIC):
            raise invalid("target_type must be PLAINTEXT, ACTIVATION or PARAMETRIC", reasons.INVALID_ENUM)
        host = self.host
        if host is None and target != PLAINTEXT:
            raise no_model()
        sources = self._sources(space_id, list(request.names), target, caller)
        # Licensed memory is transformed only as its terms permit, each transform counted (docs/marketplace.md);
        # what is made from it stays under its license.
        license_ = derived_license(sources)
        reservation = self._context.licenses.reserve(
            TRANSFORM, [license_id(license_)] if license_ is not None else [], caller.principal
        )
        # The use is counted in the transaction that queues the operation: the transform asked for is the use, and
        # a count limit another server reached meanwhile refuses it there, with nothing queued.
        try:
            if target == PLAINTEXT or host is None:
                return self._start_demotion(space_id, request, sources[0], caller, reservation)
            if target == ACTIVATION:
                return self._start_activation(space_id, request, sources[0], host, caller, reservation)
            return self._start_parametric(space_id, request, sources, host, caller, license_, reservation)
        except BaseException:
            reservation.release()  # refused after the license check (a training plan, a full queue): not counted
            raise

    def _sources(self, space_id: str, names: list[str], target: int, caller: Caller) -> list[cube_pb2.MemCube]:
        """The named cubes, as stored, after every check a source must pass."""
        if not names:
            raise invalid("names is empty: name the cube(s) to transform", reasons.MISSING_NAMES)
        if target != PARAMETRIC and len(names) != 1:
            raise invalid(
                f"a transform to {cube_pb2.MemoryType.Name(target)} takes exactly one cube", reasons.INVALID_NAMES
            )
        limit = self._context.settings.max_transform_cubes
        if len(names) > limit:
            raise invalid(
                f"names has {len(names)} cubes; the limit is {limit} (max_transform_cubes)", reasons.INVALID_NAMES
            )
        if len(set(names)) != len(names):
            raise invalid("names lists a cube twice", reasons.INVALID_NAMES)
        wanted = _SOURCE_TYPES[target]
        visibility = self._cubes.visibility(caller, space_id)
        sources = []
        for index, name in enumerate(names):
            if parse_cube_name(name, f"names[{index}]")[0] != space_id:
                raise invalid(f"names[{index}] {name} is not in the parent space", reasons.PARENT_MISMATCH)
            # What the caller sees is the stored cube itself unless it is redacted for them, and a source whose
            # text the caller may not see cannot become a cache or an adapter.
            cube = self._cubes.get(name, caller)
            if visibility.redacts(cube):
                raise PermissionDeniedError(
                    f"cube {name} is redacted for you; its text cannot be transformed", reason=reasons.CUBE_REDACTED
                )
            if cube.type not in wanted:
                takes = " or ".join(sorted(cube_pb2.MemoryType.Name(t) for t in wanted))
                raise FailedPreconditionError(
                    f"cube {name} is {cube_pb2.MemoryType.Name(cube.type)}; a transform to "
                    f"{cube_pb2.MemoryType.Name(target)} takes {takes} cubes",
                    reason=reasons.TRANSFORM_UNSUPPORTED,
                )
            if target != PARAMETRIC and cube.state == cube_pb2.LIFECYCLE_STATE_FROZEN:
                raise FailedPreconditionError(f"cube {name} is frozen; unfreeze it first", reason=reasons.CUBE_FROZEN)
            if cube.type == ACTIVATION and not cube.activation.source_text:
                raise FailedPreconditionError(
                    f"cube {name} records no source text: there is no text to demote it to or to train on",
                    reason=reasons.NO_SOURCE_TEXT,
                )
            sources.append(cube)
        return sources

    # -- the three transforms ------------------------------------------------------

    def _start_activation(
        self,
        space_id: str,
        request: scheduler_service_pb2.TransformCubeRequest,
        source: cube_pb2.MemCube,
        host: ModelHost,
        caller: Caller,
        reservation: UseReservation,
    ) -> Operation:
        text = source.plaintext.text
        host.token_ids(text)  # too long for the model: refused now, not after queueing

        def job(progress: Progress) -> str:
            computed = host.compute_cache(text)
            progress.step(1, 1)
            ref = self._payloads.store(computed.blob, ACTIVATION_MEDIA_TYPE, space_id, caller.principal)
            header = computed.header
            payload = cube_pb2.ActivationPayload(
                blob=ref,
                model_fingerprint=header.fingerprint,
                dtype=header.dtype,
                shape=list(header.shape),
                num_layers=header.num_layers,
                num_heads=header.num_heads,
                token_count=header.token_count,
                source_text=text,
            )

            def change(cube: cube_pb2.MemCube) -> None:
                cube.activation.CopyFrom(payload)
                cube.type = ACTIVATION
                cube.storage_mode = cube_pb2.STORAGE_MODE_BLOB
                # Brought to the model: ACTIVATED, where the lifecycle allows it (a merged cube stays MERGED).
                if cube_pb2.LIFECYCLE_STATE_ACTIVATED in TRANSITIONS.get(cube.state, frozenset()):
                    cube.state = cube_pb2.LIFECYCLE_STATE_ACTIVATED
                if not cube.model:
                    cube.model = host.model_type

            return self._rewrite(space_id, source, change, progress, caller)

        return self._operations.start(space_id, request, caller.principal, 1, job, reservation)

    def _start_demotion(
        self,
        space_id: str,
        request: scheduler_service_pb2.TransformCubeRequest,
        source: cube_pb2.MemCube,
        caller: Caller,
        reservation: UseReservation,
    ) -> Operation:
        def job(progress: Progress) -> str:
            def change(cube: cube_pb2.MemCube) -> None:
                cube.plaintext.text = cube.activation.source_text  # sets the oneof: the cache is let go
                cube.type = PLAINTEXT
                cube.storage_mode = cube_pb2.STORAGE_MODE_INLINE

            return self._rewrite(space_id, source, change, progress, caller)

        return self._operations.start(space_id, request, caller.principal, 1, job, reservation)

    def _start_parametric(
        self,
        space_id: str,
        request: scheduler_service_pb2.TransformCubeRequest,
        sources: list[cube_pb2.MemCube],
        host: ModelHost,
        caller: Caller,
        license_: cube_pb2.CubeLicense | None,
        reservation: UseReservation,
    ) -> Operation:
        from memos_grpc.models.parametric import MEDIA_TYPE, check_targets, train_adapter

        plan = self._plan(request.training, host)
        check_targets(host.model, plan.target_modules)
        cube_id = check_id(request.cube_id, "cube_id") if request.cube_id else new_cube_id()
        if self._context.cube_store.taken(space_id, [cube_id]):
            raise invalid(
                f"cube {cube_name(space_id, cube_id)} already exists; choose another cube_id", reasons.CUBE_ID_TAKEN
            )
        texts = [memory_text(cube) for cube in sources]
        source_text = "\n\n".join(texts)
        if len(source_text.encode()) > self._context.settings.max_text_bytes:
            raise invalid(
                f"the sources hold {len(source_text.encode())} bytes of text; an adapter's source text may hold "
                f"{self._context.settings.max_text_bytes} (max_text_bytes)",
                reasons.TEXT_TOO_LONG,
            )
        examples = host.examples(texts)

        def job(progress: Progress) -> str:
            def report(step: int, loss: float) -> None:
                progress.step(step, plan.steps, loss)

            trained = train_adapter(host.model, examples, plan, host.fingerprint, report, progress.cancelled)
            progress.step(plan.steps, plan.steps, trained.final_loss, trained.initial_loss)
            ref = self._payloads.store(trained.blob, MEDIA_TYPE, space_id, caller.principal)
            cube = cube_pb2.MemCube(
                type=PARAMETRIC,
                parametric=cube_pb2.ParametricPayload(
                    blob=ref,
                    model_fingerprint=host.fingerprint,
                    dtype=trained.dtype,
                    shape=list(trained.largest_shape),
                    rank=trained.rank,
                    target_modules=list(trained.target_modules),
                    adapter_config_json=trained.config_json,
                    source_text=source_text,
                    source_cubes=[cube.name for cube in sources],
                    training_steps=trained.steps,
                ),
                source=cube_pb2.SOURCE_FINE_TUNE,
                model=host.model_type,
                origin=f"LoRA adapter trained on {len(sources)} cube(s)",
                priority=max(cube.priority for cube in sources),
                # It learnt what they hold: their labels (as read, and as they are at the commit: derived=True).
                sensitivity_labels=sorted({label for source in sources for label in source.sensitivity_labels}),
            )
            create = vault_service_pb2.CreateCubeRequest(parent=request.parent, cube_id=cube_id, cube=cube)
            return self._cubes.create(request.parent, create, caller, derived=True, license_=license_).name

        return self._operations.start(space_id, request, caller.principal, plan.steps, job, reservation)

    def _plan(self, training: scheduler_service_pb2.LoraTraining, host: ModelHost) -> TrainingPlan:
        from memos_grpc.models.parametric import TrainingPlan

        settings = self._context.settings
        steps = training.steps or settings.lora_steps
        if not 1 <= steps <= settings.max_lora_steps:
            raise invalid(
                f"training.steps must be 1..{settings.max_lora_steps} (max_lora_steps)", reasons.INVALID_TRAINING
            )
        rate = training.learning_rate or settings.lora_learning_rate
        if not (math.isfinite(rate) and 0 < rate <= 1):
            raise invalid("training.learning_rate must be in (0, 1]", reasons.INVALID_TRAINING)
        rank = training.rank or settings.lora_rank
        if not 1 <= rank <= MAX_LORA_RANK:
            raise invalid(f"training.rank must be 1..{MAX_LORA_RANK}", reasons.INVALID_TRAINING)
        targets = tuple(training.target_modules) or tuple(host.default_target_modules())
        return TrainingPlan(steps=steps, learning_rate=rate, rank=rank, target_modules=targets, seed=training.seed)

    # -- committing an in-place change ---------------------------------------------

    def _rewrite(
        self,
        space_id: str,
        read: cube_pb2.MemCube,
        change: Callable[[cube_pb2.MemCube], None],
        progress: Progress,
        caller: Caller,
    ) -> str:
        """Commits ``change`` to the cube as a new version, if it is still the version ``read``."""
        if progress.cancelled():
            raise CancelledError("cancelled before the change was committed")
        _, cube_id = parse_cube_name(read.name)
        context = self._context
        now = context.clock()

        def apply(write: CubeWrite) -> CubeRow:
            current = write.row(space_id, cube_id, live=False)
            if current is None:
                raise NotFoundError(f"cube {read.name} was deleted during the transform", reason=reasons.CUBE_NOT_FOUND)
            stored = current.cube
            if stored.etag != read.etag:
                raise EtagMismatchError(
                    f"cube {read.name} changed during the transform (version {read.version} -> {stored.version}); "
                    "nothing was committed, run it again",
                    reason=reasons.CUBE_CHANGED,
                )
            change(stored)
            next_version(stored, stored.version, write.now)
            self._cubes.bind_blobs(write, [current], caller)
            write.replace(current, current.vec_id)
            return current

        return context.cube_store.write(apply, now).cube.name
