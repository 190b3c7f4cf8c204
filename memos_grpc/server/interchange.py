"""gRPC servicer of InterchangeService: bundle export, import, verification and peer pulls.

Handlers unpack the stream's first message (parent and policies) and hand the
rest on as plain bytes chunks; the codec, trust and import live in
``memos_grpc.interchange``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import interchange_service_pb2, interchange_service_pb2_grpc
from memos_grpc.governance import caller
from memos_grpc.interchange.bundle import verify_bundle
from memos_grpc.interchange.importer import CubeChecks, ImportResult, bundle_limits
from memos_grpc.interchange.peer import peer_chunks
from memos_grpc.interchange.report import verification_message
from memos_grpc.node import Node
from memos_grpc.server.services import VaultSlot
from memos_grpc.vault.validation import invalid

Action = interchange_service_pb2.ImportedCube.Action
M = TypeVar("M")


class InterchangeServicer(interchange_service_pb2_grpc.InterchangeServiceServicer):
    """InterchangeService: streams MemCube bundles out (export) and in (import, verify) for the vault.

    Splits each client stream into its first message (parent, policies) and raw chunks, then hands them to the
    vault's exporter, importer and trust store; it decodes no bundle itself. Stateless beyond the ``VaultSlot``.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def ExportBundle(
        self, request: interchange_service_pb2.ExportBundleRequest, context: grpc.ServicerContext
    ) -> Iterator[interchange_service_pb2.ExportBundleResponse]:
        chunks = self._slot.get().exporter.export(request, caller.current())
        for chunk in chunks:
            yield interchange_service_pb2.ExportBundleResponse(chunk=chunk)

    def ImportBundle(
        self, request_iterator: Iterator[interchange_service_pb2.ImportBundleRequest], context: grpc.ServicerContext
    ) -> interchange_service_pb2.ImportBundleResponse:
        vault = self._slot.get()
        first = _first(request_iterator)
        chunks = _chunks(first, request_iterator, ("parent", "conflict_policy", "trust_policy", "license"))
        who = caller.current()
        if first.HasField("license"):
            # A marketplace release: the grant (checked against the trust root's marketplace keys) vouches for
            # the statement, so the bundle is checked for integrity only (docs/marketplace.md).
            grant, proof = bytes(first.license.grant), first.license.proof
            book = vault.license_book
            result = vault.importer.import_bundle(
                first.parent,
                first.conflict_policy,
                None,
                chunks,
                who,
                lambda report: book.admit_import(grant, proof, report, who),
            )
            return import_response(vault, result, 0)
        policy = vault.trust.policy(
            first.trust_policy.role, list(first.trust_policy.required_key_ids), vault.context.clock()
        )
        result = vault.importer.import_bundle(first.parent, first.conflict_policy, policy, chunks, who)
        return import_response(vault, result, first.trust_policy.role)

    def VerifyBundle(
        self, request_iterator: Iterator[interchange_service_pb2.VerifyBundleRequest], context: grpc.ServicerContext
    ) -> interchange_service_pb2.VerifyBundleResponse:
        vault = self._slot.get()
        first = _first(request_iterator)
        now = vault.context.clock()
        policy = vault.trust.policy(first.trust_policy.role, list(first.trust_policy.required_key_ids), now)
        chunks = _chunks(first, request_iterator, ("trust_policy",))
        checks = CubeChecks(vault.context.settings)  # the checks an import makes of each cube, too
        report = verify_bundle(chunks, policy, bundle_limits(vault.context.settings), now, checks)
        return interchange_service_pb2.VerifyBundleResponse(
            verification=verification_message(report, first.trust_policy.role, vault.principals.key_owner)
        )

    def ImportFromPeer(
        self, request: interchange_service_pb2.ImportFromPeerRequest, context: grpc.ServicerContext
    ) -> interchange_service_pb2.ImportBundleResponse:
        vault = self._slot.get()
        role = request.trust_policy.role
        policy = vault.trust.policy(role, list(request.trust_policy.required_key_ids), vault.context.clock())
        chunks = peer_chunks(request, vault.context.settings)
        result = vault.importer.import_bundle(request.parent, request.conflict_policy, policy, chunks, caller.current())
        return import_response(vault, result, role)


def _first(stream: Iterator[M]) -> M:
    first = next(stream, None)
    if first is None:
        raise invalid("the stream is empty: send the bundle's bytes in chunks", reasons.EMPTY_STREAM)
    return first


#: Header fields that are messages: set or not, rather than truthy.
_MESSAGE_FIELDS = ("trust_policy", "license")


def _chunks(first: object, rest: Iterable[object], header_fields: tuple[str, ...]) -> Iterator[bytes]:
    """The bundle bytes of a request stream; header fields are allowed on the first message only."""
    yield first.chunk  # type: ignore[attr-defined]
    for index, message in enumerate(rest, start=1):
        if any(message.HasField(f) if f in _MESSAGE_FIELDS else getattr(message, f) for f in header_fields):  # type: ignore[attr-defined]
            raise invalid(f"message {index} sets a header field; only the first message may", reasons.INVALID_STREAM)
        yield message.chunk  # type: ignore[attr-defined]


def import_response(vault: Node, result: ImportResult, role: int) -> interchange_service_pb2.ImportBundleResponse:
    counts = {action: 0 for action in Action.values()}
    for cube in result.cubes:
        counts[cube.action] += 1
    return interchange_service_pb2.ImportBundleResponse(
        verification=verification_message(result.report, role, vault.principals.key_owner),
        cubes=result.cubes,
        created_count=counts[Action.ACTION_CREATED],
        skipped_count=counts[Action.ACTION_SKIPPED],
        new_version_count=counts[Action.ACTION_NEW_VERSION],
        replaced_count=counts[Action.ACTION_REPLACED],
        reembedded_count=sum(1 for cube in result.cubes if cube.reembedded),
    )
