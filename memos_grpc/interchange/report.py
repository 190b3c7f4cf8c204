"""A bundle's verification report as the wire's ``BundleVerification`` message."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from memos_grpc._proto.memos.v1 import interchange_service_pb2
from memos_grpc.interchange.bundle import BundleReport
from memos_grpc.interchange.dsse import SignatureStatus
from memos_grpc.primitives.bounds import MAX_COUNT, is_integer_in
from memos_grpc.primitives.canonical import parse_time
from memos_grpc.store.rows import set_timestamp

_Check = interchange_service_pb2.SignatureCheck
_STATUS = {
    SignatureStatus.COUNTED: _Check.STATUS_COUNTED,
    SignatureStatus.DUPLICATE_KEY: _Check.STATUS_DUPLICATE_KEY,
    SignatureStatus.UNKNOWN_KEY: _Check.STATUS_UNKNOWN_KEY,
    SignatureStatus.BAD_SIGNATURE: _Check.STATUS_BAD_SIGNATURE,
    SignatureStatus.KEY_REVOKED: _Check.STATUS_KEY_REVOKED,
    SignatureStatus.KEY_EXPIRED: _Check.STATUS_KEY_EXPIRED,
}


def verification_message(
    report: BundleReport, role: int, key_owner: Callable[[str], str]
) -> interchange_service_pb2.BundleVerification:
    """The report on the wire; ``key_owner`` names the principal that registered a key id here."""
    message = interchange_service_pb2.BundleVerification(
        valid=report.valid,
        reason=report.reason,
        message=report.message,
        statement_digest=report.statement_digest,
        role=role,  # type: ignore[arg-type]
        statement=report.statement_bytes,
        cube_count=report.cube_count,
        blob_count=report.blob_count,
        blob_bytes=report.blob_bytes,
        bundle_bytes=report.bundle_bytes,
    )
    if report.signatures is not None:
        message.threshold = report.signatures.threshold
        for result in report.signatures.signatures:
            message.signatures.add(
                key_id_hint=result.keyid_hint[:128],
                key_id=result.key_id,
                status=_STATUS[result.status],
                principal=key_owner(result.key_id or result.keyid_hint[:128]),
            )
    if report.statement is not None:
        _predicate(message, report.statement.predicate)
    return message


def _predicate(message: interchange_service_pb2.BundleVerification, predicate: dict[str, Any]) -> None:
    """Copies what the verified predicate says; fields of the wrong shape are left unset (they are informative)."""
    exporter = predicate.get("exporter")
    if isinstance(exporter, dict):
        message.exporter_principal = str(exporter.get("principal", ""))[:256]
        message.exporter_node = str(exporter.get("node", ""))[:256]
    source = predicate.get("source")
    if isinstance(source, dict):
        message.source_server = str(source.get("server", ""))[:256]
    with contextlib.suppress(ValueError, TypeError, OverflowError):
        set_timestamp(message.create_time, parse_time(predicate.get("created", "")))
    message.embedding_fingerprint = str(predicate.get("embeddingFingerprint", ""))[:256]
    models = predicate.get("modelFingerprints")
    if isinstance(models, list):
        message.model_fingerprints.extend(str(m)[:256] for m in models[:1000])
    redactions = predicate.get("redactions")
    if isinstance(redactions, list):
        for item in redactions[:1000]:
            if isinstance(item, dict) and is_integer_in(item.get("cubes"), 0, MAX_COUNT):
                message.redactions.add(
                    sensitivity_label=str(item.get("sensitivityLabel", ""))[:256],
                    action=str(item.get("action", ""))[:32],
                    cube_count=item["cubes"],
                )
