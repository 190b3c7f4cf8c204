"""``MemosClient``: a typed, synchronous client of a memos-grpc server.

It wraps the GovernanceService (spaces), VaultService (cubes, search, payload
streaming), InterchangeService (signed bundles), SchedulerService (recall,
transforms with the server's model), the marketplace's MarketplaceService,
TransparencyLogService and WitnessService, and a buyer node's
HeldLicenseService; it returns result objects and
raises ``MemosError`` subclasses.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tqdm import tqdm

from memos_client._stubs import (
    GovernanceStub,
    HeldLicenseStub,
    InterchangeStub,
    MarketplaceStub,
    SchedulerStub,
    TransparencyLogStub,
    VaultStub,
    WitnessStub,
)
from memos_client.drafts import CubeDraft, Payload, draft_of, to_timestamp, to_vector
from memos_client.errors import UnavailableError, from_rpc_error
from memos_client.governance import GovernanceCalls
from memos_client.held_licenses import HeldLicenseCalls
from memos_client.interchange import InterchangeCalls
from memos_client.lifecycle import LifecycleCalls, search_mode
from memos_client.marketplace import MarketplaceCalls
from memos_client.models import ModelCalls
from memos_client.names import space_name
from memos_client.payloads import payload_requests
from memos_client.types import BlobRef, Cube, ScoredCube, SemanticType, Source, Space
from memos_grpc._proto.memos.v1 import cube_pb2, governance_service_pb2, space_pb2, vault_service_pb2

#: Where ``memos-grpc serve`` listens by default.
DEFAULT_TARGET = "127.0.0.1:50051"
#: Channel options used unless the caller passes its own: room for large pages and batches.
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_v = vault_service_pb2
_g = governance_service_pb2


class MemosClient(GovernanceCalls, HeldLicenseCalls, InterchangeCalls, LifecycleCalls, ModelCalls, MarketplaceCalls):
    """A connection to one memos-grpc server.

    ``target`` is ``host:port``. With ``credentials`` the channel uses TLS,
    else it is plaintext. With ``token``, every call carries
    ``authorization: Bearer <token>``. ``timeout`` (seconds, None for none)
    bounds every unary call; ``stream_timeout`` (default: none) bounds a whole
    streamed upload or download (payloads, bundles), which may take long.
    Use it as a context manager, or call ``close()``. Every method raises a
    ``MemosError`` subclass when the server reports an error.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = 30.0,
        stream_timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = DEFAULT_OPTIONS,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._metadata: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            self._channel = grpc.insecure_channel(target, options=list(options))
        self._vault = VaultStub(self._channel)
        self._governance = GovernanceStub(self._channel)
        self._interchange = InterchangeStub(self._channel)
        self._scheduler = SchedulerStub(self._channel)
        self._marketplace = MarketplaceStub(self._channel)
        self._transparency = TransparencyLogStub(self._channel)
        self._witness = WitnessStub(self._channel)
        self._held = HeldLicenseStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemosClient({self.target!r})"

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def wait_until_serving(self, timeout: float) -> None:
        """Blocks until the server reports SERVING on grpc.health.v1 (its vault open), for at most ``timeout`` s.

        Follows Health/Watch, so it wakes on the server's own status change; it waits for the port to open too.
        Raises ``UnavailableError`` when the time runs out first.
        """
        stub = health_pb2_grpc.HealthStub(self._channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        try:
            for status in stub.Watch(health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True):
                if status.status == serving:
                    return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise from_rpc_error(error) from error
        raise UnavailableError(f"{self.target} did not report SERVING within {timeout:g} s", reason="NOT_SERVING")

    def _unary(self, method: grpc.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req) -> _Resp:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    # -- Spaces --------------------------------------------------------------

    def create_space(
        self,
        space_id: str,
        *,
        display_name: str = "",
        description: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Space:
        """Creates the space ``spaces/{space_id}`` (``space_id`` may also be the full name)."""
        request = _g.CreateSpaceRequest(
            space_id=space_name(space_id).removeprefix("spaces/"),
            space=space_pb2.Space(display_name=display_name, description=description, labels=labels or {}),
        )
        return Space.from_proto(self._unary(self._governance.CreateSpace, request))

    def get_space(self, space: str) -> Space:
        """Gets a space by id or name."""
        request = _g.GetSpaceRequest(name=space_name(space))
        return Space.from_proto(self._unary(self._governance.GetSpace, request))

    def list_spaces(self, *, page_size: int = 0) -> Iterator[Space]:
        """Yields every space in name order, fetching pages of ``page_size`` (0: the server's default)."""
        token = ""
        while True:
            request = _g.ListSpacesRequest(page_size=page_size, page_token=token)
            response = self._unary(self._governance.ListSpaces, request)
            yield from (Space.from_proto(s) for s in response.spaces)
            token = response.next_page_token
            if not token:
                return

    def delete_space(self, space: str, *, force: bool = False, etag: str = "") -> None:
        """Deletes a space; one that holds cubes needs ``force`` (else FailedPreconditionError)."""
        request = _g.DeleteSpaceRequest(name=space_name(space), force=force, etag=etag)
        self._unary(self._governance.DeleteSpace, request)

    # -- Cubes ---------------------------------------------------------------

    def create_cube(
        self,
        space: str,
        text: str | None = None,
        *,
        context: str = "",
        cube_id: str = "",
        vector: Sequence[float] | None = None,
        tags: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        semantic_type: SemanticType | str | None = None,
        source: Source | str | None = None,
        priority: int = 0,
        expire_time: dt.datetime | None = None,
        sensitivity_labels: Sequence[str] = (),
        model: str = "",
        origin: str = "",
        payload: Payload | None = None,
        validate_only: bool = False,
    ) -> Cube:
        """Creates a cube in ``space`` ("x" or "spaces/x") and returns it.

        Give ``text`` for a plaintext cube, or ``payload`` (an
        ``ActivationPayload`` or ``ParametricPayload`` whose blob was uploaded
        with ``write_payload``) for the other memory types. Without
        ``cube_id`` the server chooses one. Without ``vector`` the server
        embeds ``text`` itself. ``context`` is text around the memory that
        helps find it (a conversation's neighbouring turns): searched lexically
        with ``text``, not embedded. ``semantic_type`` and ``source`` take an
        enum member or its lowercase value ("fact", "user_input").
        With ``validate_only`` the cube is checked and returned but not stored.
        """
        draft = CubeDraft(
            text=text,
            context=context,
            cube_id=cube_id,
            vector=vector,
            tags=tags,
            labels=labels,
            semantic_type=semantic_type,
            source=source,
            priority=priority,
            expire_time=expire_time,
            sensitivity_labels=sensitivity_labels,
            model=model,
            origin=origin,
            payload=payload,
        )
        request = draft.to_request(space_name(space), validate_only=validate_only)
        return Cube.from_proto(self._unary(self._vault.CreateCube, request))

    def batch_create_cubes(
        self,
        space: str,
        items: Iterable[CubeDraft | Mapping[str, Any]],
        *,
        batch_size: int = 500,
        progress: bool = False,
    ) -> list[Cube]:
        """Creates many cubes, ``batch_size`` per BatchCreateCubes call, and returns them in order.

        Each call is all or nothing, but the calls are separate: when one
        fails, the cubes of the calls before it stay created. Mappings take
        the keyword names of ``create_cube`` (and ``id`` for ``cube_id``).
        With ``progress`` a tqdm bar is drawn on stderr.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        parent = space_name(space)
        total = len(items) if isinstance(items, Sized) else None
        created: list[Cube] = []
        iterator = iter(items)
        with tqdm(total=total, disable=not progress, file=sys.stderr, unit="cube", desc=parent) as bar:
            while chunk := list(itertools.islice(iterator, batch_size)):
                requests = [draft_of(item).to_request() for item in chunk]
                request = _v.BatchCreateCubesRequest(parent=parent, requests=requests)
                response = self._unary(self._vault.BatchCreateCubes, request)
                created.extend(Cube.from_proto(c) for c in response.cubes)
                bar.update(len(chunk))
        return created

    def get_cube(self, name: str) -> Cube:
        """Gets a cube by name (``spaces/{space}/cubes/{cube}``)."""
        return Cube.from_proto(self._unary(self._vault.GetCube, _v.GetCubeRequest(name=name)))

    def list_cubes(
        self, space: str, *, filter: str = "", page_size: int = 0, show_expired: bool = False
    ) -> Iterator[Cube]:
        """Yields the cubes of ``space`` in name order, matching the AIP-160 ``filter`` if given.

        ``show_expired``: the tombstones of expired cubes too (state EXPIRED, no payload, with a ``purge_time``).
        """
        parent = space_name(space)
        token = ""
        while True:
            request = _v.ListCubesRequest(
                parent=parent, page_size=page_size, page_token=token, filter=filter, show_expired=show_expired
            )
            response = self._unary(self._vault.ListCubes, request)
            yield from (Cube.from_proto(c) for c in response.cubes)
            token = response.next_page_token
            if not token:
                return

    def update_cube(
        self,
        name: str,
        *,
        etag: str = "",
        text: str | None = None,
        context: str | None = None,
        tags: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int | None = None,
        semantic_type: SemanticType | str | None = None,
        expire_time: dt.datetime | None = None,
        sensitivity_labels: Sequence[str] | None = None,
        vector: Sequence[float] | None = None,
    ) -> Cube:
        """Changes the fields given (those not None) and returns the new version.

        With ``etag`` the update fails with ``AbortedError`` (reason
        ``ETAG_MISMATCH``) when the cube changed since that etag was read.
        ``vector`` replaces the cube's vector, for clients that embed themselves.
        """
        cube = cube_pb2.MemCube(name=name, etag=etag)
        paths: list[str] = []
        if text is not None:
            cube.plaintext.text = text
            paths.append("plaintext.text")
        if context is not None:
            cube.plaintext.context = context
            paths.append("plaintext.context")
        if tags is not None:
            cube.tags.extend(tags)
            paths.append("tags")
        if labels is not None:
            cube.labels.update(labels)
            paths.append("labels")
        if priority is not None:
            cube.priority = priority
            paths.append("priority")
        if semantic_type is not None:
            cube.semantic_type = SemanticType.parse(semantic_type).to_proto()  # type: ignore[assignment]
            paths.append("semantic_type")
        if expire_time is not None:
            cube.expire_time.CopyFrom(to_timestamp(expire_time))
            paths.append("expire_time")
        if sensitivity_labels is not None:
            cube.sensitivity_labels.extend(sensitivity_labels)
            paths.append("sensitivity_labels")
        if not paths and vector is None:
            raise ValueError("nothing to update: pass at least one field")
        request = _v.UpdateCubeRequest(cube=cube, update_mask=field_mask_pb2.FieldMask(paths=paths))
        if vector is not None:
            request.vector.CopyFrom(to_vector(vector))
        return Cube.from_proto(self._unary(self._vault.UpdateCube, request))

    def delete_cube(self, name: str, *, etag: str = "") -> None:
        """Deletes a cube; with ``etag``, only if it is still that version (else ``AbortedError``)."""
        self._unary(self._vault.DeleteCube, _v.DeleteCubeRequest(name=name, etag=etag))

    def search(
        self,
        space: str,
        text: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        filter: str = "",
        top_k: int = 10,
        mode: str = "dense",
        include_archived: bool = False,
    ) -> list[ScoredCube]:
        """The ``top_k`` cubes of ``space`` that best match a text or a vector query, best first.

        Give exactly one of ``text`` and ``vector``; ``filter`` is an AIP-160
        filter the results must match. ``mode`` is ``dense`` (cosine),
        ``lexical`` (BM25; text only) or ``hybrid`` (both scores, scaled and summed).
        """
        if (text is None) == (vector is None):
            raise ValueError("give exactly one of text and vector")
        request = _v.SearchCubesRequest(
            parent=space_name(space),
            filter=filter,
            top_k=top_k,
            mode=search_mode(mode),  # type: ignore[arg-type]
            include_archived=include_archived,
        )
        if text is not None:
            request.text = text
        else:
            assert vector is not None
            request.vector.CopyFrom(to_vector(vector))
        response = self._unary(self._vault.SearchCubes, request)
        return [ScoredCube.from_proto(r) for r in response.results]

    # -- Payloads ------------------------------------------------------------

    def write_payload(
        self,
        space: str,
        data: bytes | BinaryIO | Iterable[bytes],
        *,
        media_type: str = "application/octet-stream",
        expected_digest: str = "",
        chunk_size: int = 1 << 20,
    ) -> BlobRef:
        """Uploads a payload blob for ``space`` in chunks and returns its reference.

        ``data`` is bytes, a binary file (read from its current position) or
        an iterable of byte chunks. The server computes the digest; with
        ``expected_digest`` (``sha256:<hex>``) it also checks it.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        requests = payload_requests(space_name(space), data, media_type, expected_digest, chunk_size)
        try:
            response = self._vault.WritePayload(requests, timeout=self.stream_timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        return BlobRef.from_proto(response.blob)

    def read_payload(self, name: str, *, offset: int = 0, limit: int = 0) -> Iterator[bytes]:
        """Yields the payload blob of cube ``name`` in chunks, from ``offset``, at most ``limit`` bytes.

        ``limit`` 0 reads to the end. The call starts on the first ``next()``;
        closing the iterator early cancels it.
        """
        request = _v.ReadPayloadRequest(name=name, read_offset=offset, read_limit=limit)
        call = self._vault.ReadPayload(request, timeout=self.stream_timeout, metadata=self._metadata)
        try:
            for response in call:
                yield response.data
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            call.cancel()

    def read_payload_bytes(self, name: str) -> bytes:
        """The whole payload blob of cube ``name``."""
        return b"".join(self.read_payload(name))
