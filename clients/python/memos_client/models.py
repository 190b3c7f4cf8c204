"""Model calls of the client: the server's model, TransformCube and the long-running operations it starts.

``ModelCalls`` is mixed into ``MemosClient``; it relies on the client's
``_unary``, ``stream_timeout``, ``_metadata`` and its scheduler stub.
``Operation`` and ``ModelInfo`` are the result objects of these calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from memos_client._stubs import SchedulerStub
from memos_client.errors import _BY_CODE, MemosError, UnavailableError, from_rpc_error
from memos_client.names import CUBES, cube_name, space_name
from memos_client.types import MemoryType, _time
from memos_grpc._proto.memos.v1 import scheduler_service_pb2

_s = scheduler_service_pb2
#: grpc status codes by their google.rpc.Code number, as an OperationError carries them.
_STATUS_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class ModelInfo:
    """The causal language model the server transforms cubes with, and its fingerprint."""

    fingerprint: str
    model_type: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    parameter_count: int
    max_positions: int
    default_target_modules: tuple[str, ...]
    proto: _s.ModelInfo = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: _s.ModelInfo) -> ModelInfo:
        return cls(
            fingerprint=message.fingerprint,
            model_type=message.model_type,
            num_layers=message.num_layers,
            num_kv_heads=message.num_kv_heads,
            head_dim=message.head_dim,
            dtype=message.dtype,
            parameter_count=message.parameter_count,
            max_positions=message.max_positions,
            default_target_modules=tuple(message.default_target_modules),
            proto=message,
        )


@dataclass(frozen=True)
class Operation:
    """A long-running transform, named ``spaces/{space}/operations/{id}``.

    ``state`` is "queued", "running", "succeeded", "failed" or "cancelled";
    ``done`` is true for the last three. When it succeeded, ``cube`` names the
    cube transformed or created; when it failed or was cancelled, the
    ``error_*`` fields say why (``error_code`` is None otherwise).
    """

    name: str
    state: str
    done: bool
    step: int
    total_steps: int
    loss: float
    initial_loss: float
    creator: str
    cube: str
    error_code: grpc.StatusCode | None
    error_reason: str
    error_message: str
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    end_time: dt.datetime | None
    proto: _s.Operation = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: _s.Operation) -> Operation:
        try:
            state = _s.Operation.State.Name(message.state).removeprefix("STATE_").lower()
        except ValueError:  # a state newer than this client
            state = "unspecified"
        error = message.error if message.HasField("error") else None
        return cls(
            name=message.name,
            state=state,
            done=message.done,
            step=message.step,
            total_steps=message.total_steps,
            loss=message.loss,
            initial_loss=message.initial_loss,
            creator=message.creator,
            cube=message.cube,
            error_code=_STATUS_BY_NUMBER.get(error.code, grpc.StatusCode.UNKNOWN) if error and error.code else None,
            error_reason=error.reason if error else "",
            error_message=error.message if error else "",
            create_time=_time(message, "create_time"),
            update_time=_time(message, "update_time"),
            end_time=_time(message, "end_time"),
            proto=message,
        )

    def raise_if_failed(self) -> Operation:
        """Returns the operation unless it failed or was cancelled; then raises the ``MemosError`` the RPC
        would have raised had it run synchronously (e.g. ``CancelledError``, ``AbortedError``)."""
        if self.state not in ("failed", "cancelled"):
            return self
        fallback = grpc.StatusCode.CANCELLED if self.state == "cancelled" else grpc.StatusCode.UNKNOWN
        code = self.error_code or fallback
        message = self.error_message or f"operation {self.name} {self.state}"
        raise _BY_CODE.get(code, MemosError)(message, code=code, reason=self.error_reason)


class ModelCalls:
    """The server's model, and transforms of cubes between memory types as long-running operations."""

    stream_timeout: float | None
    _metadata: tuple[tuple[str, str | bytes], ...]
    _scheduler: SchedulerStub

    def _unary(self, method: Any, request: Any) -> Any:  # provided by MemosClient
        raise NotImplementedError

    def get_model(self) -> ModelInfo:
        """The model the server transforms with (``FailedPreconditionError`` when it has none)."""
        return ModelInfo.from_proto(self._unary(self._scheduler.GetModel, _s.GetModelRequest()))

    def transform_cube(
        self,
        names: str | Sequence[str],
        target: MemoryType | str,
        *,
        parent: str = "",
        cube_id: str = "",
        steps: int = 0,
        learning_rate: float = 0.0,
        rank: int = 0,
        target_modules: Sequence[str] = (),
        seed: int = 0,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Operation:
        """Starts turning cubes into ``target`` ("activation", "parametric" or "plaintext") and returns the operation.

        ``names`` is one cube or several (full names, or ids in ``parent``);
        ``parent`` defaults to the space of the first name. Activation and
        plaintext targets take exactly one cube and change it in place;
        parametric trains a LoRA adapter on one or more plaintext cubes and
        stores it as a new cube (``cube_id``, or one the server picks), with
        the training knobs given (zero: the server's defaults). With ``wait``
        it returns the finished operation, as ``wait_operation`` does.
        """
        listed = [names] if isinstance(names, str) else list(names)
        if not parent:
            if not listed or CUBES not in listed[0]:
                raise ValueError("give parent, or full cube names (spaces/{space}/cubes/{cube})")
            parent = listed[0]
        space = space_name(parent)
        request = _s.TransformCubeRequest(
            parent=space,
            names=[n if CUBES in n else cube_name(space, n) for n in listed],
            target_type=MemoryType.parse(target).to_proto(),  # type: ignore[arg-type]
            cube_id=cube_id,
        )
        if steps or learning_rate or rank or target_modules or seed:
            request.training.CopyFrom(
                _s.LoraTraining(
                    steps=steps,
                    learning_rate=learning_rate,
                    rank=rank,
                    target_modules=list(target_modules),
                    seed=seed,
                )
            )
        operation = Operation.from_proto(self._unary(self._scheduler.TransformCube, request))
        return self.wait_operation(operation.name, timeout=timeout) if wait else operation

    def get_operation(self, name: str) -> Operation:
        """The current state of an operation."""
        return Operation.from_proto(self._unary(self._scheduler.GetOperation, _s.GetOperationRequest(name=name)))

    def watch_operation(self, name: str, *, timeout: float | None = None) -> Iterator[Operation]:
        """Yields the operation now and at every change (each training step, the end) until it is done.

        ``timeout`` bounds the whole watch (None: the client's ``stream_timeout``).
        The call starts on the first ``next()``; closing the iterator early
        cancels the watch, not the operation.
        """
        request = _s.WatchOperationRequest(name=name)
        limit = timeout if timeout is not None else self.stream_timeout
        call = self._scheduler.WatchOperation(request, timeout=limit, metadata=self._metadata)
        try:
            for message in call:
                yield Operation.from_proto(message)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def cancel_operation(self, name: str) -> Operation:
        """Asks an operation to stop and returns its state; a cancelled transform changes no cube."""
        return Operation.from_proto(self._unary(self._scheduler.CancelOperation, _s.CancelOperationRequest(name=name)))

    def wait_operation(self, name: str, timeout: float | None = None) -> Operation:
        """Watches an operation until it is done and returns it when it succeeded.

        A failed or cancelled operation raises the ``MemosError`` subclass of
        its error code (a plain ``MemosError`` with code CANCELLED when
        cancelled), with its reason. ``timeout`` is as for ``watch_operation``;
        running out raises ``DeadlineExceededError``.
        """
        last: Operation | None = None
        for last in self.watch_operation(name, timeout=timeout):
            if last.done:
                break
        if last is None or not last.done:
            raise UnavailableError(f"the watch of {name} ended before the operation was done")
        return last.raise_if_failed()
