"""Payload streams: WritePayload stores chunks as a content-addressed blob; ReadPayload streams one back.

An upload is hashed as it arrives and lands under its digest only when every
byte is in and matches what the client announced; a mismatch or a broken
stream leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2
from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError
from memos_grpc.governance.caller import Caller
from memos_grpc.store.blobs import parse_digest
from memos_grpc.store.database import Connection
from memos_grpc.store.names import parse_cube_name, parse_space_name
from memos_grpc.store.rows import blob_digest
from memos_grpc.store.uploads import record_upload, register_blob, store_blob
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import Cubes
from memos_grpc.vault.validation import invalid

DEFAULT_MEDIA_TYPE = "application/octet-stream"


class Payloads:
    """Large cube content (WritePayload and ReadPayload streams) stored as content-addressed blobs.

    A blob is kept only when the whole upload arrived and matches its announced digest and size; it belongs to
    no cube until a cube in the parent space names it. Raises INVALID_ARGUMENT and RESOURCE_EXHAUSTED
    ``PAYLOAD_TOO_LARGE`` for bad or oversized streams.
    """

    def __init__(self, context: VaultContext, cubes: Cubes) -> None:
        self._context = context
        self._cubes = cubes

    def write(self, chunks: Iterable[vault_service_pb2.WritePayloadRequest], uploader: Caller) -> cube_pb2.BlobRef:
        """Stores an upload as a blob that ``uploader`` may then name in cubes of the parent space."""
        stream = iter(chunks)
        first = next(stream, None)
        if first is None:
            raise invalid("the stream is empty: the first message must name the parent space", reasons.EMPTY_STREAM)
        space_id = parse_space_name(first.parent, "parent")
        if first.expected_digest:
            parse_digest(first.expected_digest)
        limit = self._context.settings.max_payload_bytes
        if first.expected_size < 0:
            raise invalid("expected_size must not be negative", reasons.INVALID_SIZE)
        if first.expected_size > limit:
            raise ResourceExhaustedError(
                f"expected_size {first.expected_size} exceeds the limit of {limit} bytes (max_payload_bytes)",
                reason=reasons.PAYLOAD_TOO_LARGE,
            )
        with self._context.database.read() as cursor:
            self._context.require_space(cursor, space_id)
        media_type = first.media_type or DEFAULT_MEDIA_TYPE

        def data() -> Iterator[bytes]:
            yield first.data
            for index, message in enumerate(stream, start=1):
                if message.parent or message.expected_digest or message.expected_size or message.media_type:
                    raise invalid(
                        f"message {index} sets a header field; only the first message may", reasons.INVALID_STREAM
                    )
                yield message.data

        def accept(size: int, digest: str) -> None:
            if first.expected_size and size != first.expected_size:
                raise InvalidArgumentError(
                    f"received {size} bytes but expected_size was {first.expected_size}",
                    reason=reasons.PAYLOAD_SIZE_MISMATCH,
                )
            if first.expected_digest and digest != first.expected_digest:
                raise InvalidArgumentError(
                    f"received bytes hash to {digest}, not the expected {first.expected_digest}; nothing was stored",
                    reason=reasons.PAYLOAD_DIGEST_MISMATCH,
                )

        blob = store_blob(self._context.blobs, data(), limit, accept)
        return self._register(blob.digest, blob.size, media_type, space_id, uploader.principal)

    def store(self, data: bytes, media_type: str, space_id: str, principal: str) -> cube_pb2.BlobRef:
        """Stores bytes the server made for ``principal`` (a KV cache, an adapter) as a blob, like an upload."""
        blob = store_blob(self._context.blobs, [data], max(len(data), 1))
        return self._register(blob.digest, len(data), media_type, space_id, principal)

    def _register(self, digest: str, size: int, media_type: str, space_id: str, principal: str) -> cube_pb2.BlobRef:
        now = self._context.clock()

        def apply(cursor: Connection) -> None:
            register_blob(cursor, digest, size, media_type, now)
            record_upload(cursor, space_id, principal, digest, now)

        self._context.database.write(apply)
        return cube_pb2.BlobRef(digest=digest, size_bytes=size, media_type=media_type)

    def read(self, request: vault_service_pb2.ReadPayloadRequest, viewer: Caller) -> Iterator[bytes]:
        if request.read_offset < 0 or request.read_limit < 0:
            raise invalid("read_offset and read_limit must not be negative", reasons.INVALID_RANGE)
        cube = self._cubes.get(request.name, viewer)
        if self._cubes.visibility(viewer, parse_cube_name(request.name)[0]).redacts(cube):
            raise FailedPreconditionError(
                f"cube {request.name} carries a sensitivity label its space redacts for viewers; "
                "its payload cannot be read with the viewer role",
                reason=reasons.PAYLOAD_REDACTED,
            )
        digest = blob_digest(cube)
        if digest is None:
            raise FailedPreconditionError(
                f"cube {request.name} is plaintext: its text is in the cube itself, not a payload blob",
                reason=reasons.NO_PAYLOAD_BLOB,
            )
        return self._context.blobs.read(
            digest,
            offset=request.read_offset,
            limit=request.read_limit,
            chunk_bytes=self._context.settings.payload_chunk_bytes,
        )
