"""Peer exchange: dial another memos-grpc server and stream its ExportBundle, for import here.

TLS is the default: the peer's certificate is checked against the CA the
call names, the server's ``peer_ca_file``, or the system roots. Plaintext
is refused unless the operator allows it. The peer's token is sent on this
one call and kept nowhere. Whatever arrives is verified like any import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import interchange_service_pb2, interchange_service_pb2_grpc
from memos_grpc.errors import FailedPreconditionError, MemosError, UnavailableError
from memos_grpc.settings import Settings
from memos_grpc.vault.validation import invalid

_TARGET = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,255}:[0-9]{1,5}")


def peer_chunks(request: interchange_service_pb2.ImportFromPeerRequest, settings: Settings) -> Iterator[bytes]:
    """Checks the request at once, then returns the peer's bundle bytes as they stream in."""
    if not _TARGET.fullmatch(request.peer_target):
        raise invalid(f"peer_target {request.peer_target[:120]!r} is not host:port", reasons.INVALID_PEER_TARGET)
    if not request.peer_token:
        raise invalid("peer_token is empty: the peer needs a credential", reasons.MISSING_PEER_TOKEN)
    if request.peer_plaintext and not settings.allow_plaintext_peers:
        raise FailedPreconditionError(
            "peer_plaintext is refused: this server only speaks TLS to peers (allow_plaintext_peers is off)",
            reason=reasons.PLAINTEXT_PEER_REFUSED,
        )
    roots = bytes(request.peer_ca_certificates) or None
    if roots is None and settings.peer_ca_file and not request.peer_plaintext:
        try:
            roots = Path(settings.peer_ca_file).read_bytes()
        except OSError as exc:
            raise FailedPreconditionError(
                f"cannot read peer_ca_file {settings.peer_ca_file}: {exc}", reason=reasons.PEER_CA_UNREADABLE
            ) from exc
    return _stream(request, roots, settings)


def _channel(
    request: interchange_service_pb2.ImportFromPeerRequest, roots: bytes | None, settings: Settings
) -> grpc.Channel:
    options: list[tuple[str, object]] = [("grpc.max_receive_message_length", settings.max_receive_message_bytes)]
    if request.peer_plaintext:
        return grpc.insecure_channel(request.peer_target, options=options)
    if request.peer_tls_server_name:
        options.append(("grpc.ssl_target_name_override", request.peer_tls_server_name))
    return grpc.secure_channel(request.peer_target, grpc.ssl_channel_credentials(root_certificates=roots), options)


def _stream(
    request: interchange_service_pb2.ImportFromPeerRequest, roots: bytes | None, settings: Settings
) -> Iterator[bytes]:
    # The channel opens only once the import starts reading, and closes whatever way it stops.
    channel = _channel(request, roots, settings)
    stub = interchange_service_pb2_grpc.InterchangeServiceStub(channel)  # type: ignore[no-untyped-call]
    call = stub.ExportBundle(
        request.selection,
        metadata=[("authorization", f"Bearer {request.peer_token}")],
        timeout=settings.peer_timeout_seconds,
    )
    try:
        for response in call:
            yield response.chunk
    except grpc.RpcError as exc:
        raise peer_error(request.peer_target, exc) from None
    finally:
        call.cancel()
        channel.close()


def dial_configured(target: str, settings: Settings) -> grpc.Channel:
    """A channel to a node the operator configured (a witness, the marketplace followed): TLS checked against
    ``peer_ca_file`` (or the system roots), plaintext only when ``allow_plaintext_peers`` is set."""
    if settings.allow_plaintext_peers:
        return grpc.insecure_channel(target)
    roots = Path(settings.peer_ca_file).read_bytes() if settings.peer_ca_file else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))


def peer_error(
    target: str,
    exc: grpc.RpcError,
    who: str = "peer",
    unavailable: str = reasons.PEER_UNAVAILABLE,
    refused: str = reasons.PEER_REFUSED,
) -> MemosError:
    """Another node's refusal as this node's error: ``unavailable`` when it could not be reached in time, else
    ``refused``; its own code travels in the metadata ``peer_code``."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    message = f"{who} {target} answered {code.name}: {details}"
    metadata = {"peer_code": code.name}
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return UnavailableError(message, reason=unavailable, metadata=metadata)
    return FailedPreconditionError(message, reason=refused, metadata=metadata)
