"""Result objects of the client's interchange calls: bundle verification reports, import results, trust roots."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from memos_client.types import _time
from memos_grpc._proto.memos.v1 import interchange_service_pb2, principal_pb2, trust_pb2

_i = interchange_service_pb2


def _enum_name(enum: Any, number: int, prefix: str) -> str:
    """``STATUS_BAD_SIGNATURE`` -> ``bad_signature``; numbers this client does not know give ``unspecified``."""
    try:
        name: str = enum.Name(number)
    except ValueError:
        return "unspecified"
    return name.removeprefix(prefix).lower()


def role_name(number: int) -> str:
    """A ``KeyRole`` number as the client spells it; unset means ``node``, as on the server."""
    if number == trust_pb2.KEY_ROLE_UNSPECIFIED:
        return "node"
    return _enum_name(trust_pb2.KeyRole, number, "KEY_ROLE_")


@dataclass(frozen=True)
class SignatureCheck:
    """How one signature of a bundle fared.

    ``status`` is ``counted``, ``duplicate_key``, ``unknown_key``,
    ``bad_signature``, ``key_revoked`` or ``key_expired``; ``key_id`` is the
    trusted key that made it ("" if none did), ``key_id_hint`` what the
    envelope claimed, and ``principal`` who registered the key on the server.
    """

    key_id_hint: str
    key_id: str
    status: str
    principal: str
    proto: interchange_service_pb2.SignatureCheck = field(repr=False, compare=False, hash=False)

    @property
    def counted(self) -> bool:
        return self.status == "counted"

    @classmethod
    def from_proto(cls, message: interchange_service_pb2.SignatureCheck) -> SignatureCheck:
        return cls(
            key_id_hint=message.key_id_hint,
            key_id=message.key_id,
            status=_enum_name(_i.SignatureCheck.Status, message.status, "STATUS_"),
            principal=message.principal,
            proto=message,
        )


@dataclass(frozen=True)
class AppliedRedaction:
    """A redaction rule the exporter applied, as the signed statement records it."""

    sensitivity_label: str
    action: str
    cube_count: int


@dataclass(frozen=True)
class BundleVerification:
    """The report on a bundle; true when ``valid``, else ``reason`` names the first failed step.

    ``statement`` is the signed statement (JSON bytes), set once the
    signatures verified; ``role`` and ``threshold`` are what it was checked against.
    """

    valid: bool
    reason: str
    message: str
    statement_digest: str
    role: str
    threshold: int
    signatures: tuple[SignatureCheck, ...]
    statement: bytes = field(repr=False)
    cube_count: int
    blob_count: int
    blob_bytes: int
    bundle_bytes: int
    exporter_principal: str
    exporter_node: str
    source_server: str
    create_time: dt.datetime | None
    embedding_fingerprint: str
    model_fingerprints: tuple[str, ...]
    redactions: tuple[AppliedRedaction, ...]
    proto: interchange_service_pb2.BundleVerification = field(repr=False, compare=False, hash=False)

    def __bool__(self) -> bool:
        return self.valid

    @classmethod
    def from_proto(cls, message: interchange_service_pb2.BundleVerification) -> BundleVerification:
        return cls(
            valid=message.valid,
            reason=message.reason,
            message=message.message,
            statement_digest=message.statement_digest,
            role=role_name(message.role),
            threshold=message.threshold,
            signatures=tuple(SignatureCheck.from_proto(s) for s in message.signatures),
            statement=message.statement,
            cube_count=message.cube_count,
            blob_count=message.blob_count,
            blob_bytes=message.blob_bytes,
            bundle_bytes=message.bundle_bytes,
            exporter_principal=message.exporter_principal,
            exporter_node=message.exporter_node,
            source_server=message.source_server,
            create_time=_time(message, "create_time"),
            embedding_fingerprint=message.embedding_fingerprint,
            model_fingerprints=tuple(message.model_fingerprints),
            redactions=tuple(AppliedRedaction(r.sensitivity_label, r.action, r.cube_count) for r in message.redactions),
            proto=message,
        )


@dataclass(frozen=True)
class ImportedCube:
    """One cube of an imported bundle: ``action`` is ``created``, ``skipped``, ``new_version`` or ``replaced``."""

    provenance_id: str
    name: str
    action: str
    reembedded: bool
    proto: interchange_service_pb2.ImportedCube = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: interchange_service_pb2.ImportedCube) -> ImportedCube:
        return cls(
            provenance_id=message.provenance_id,
            name=message.name,
            action=_enum_name(_i.ImportedCube.Action, message.action, "ACTION_"),
            reembedded=message.reembedded,
            proto=message,
        )


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the bundle's verification, each cube's fate, and the counts."""

    verification: BundleVerification
    cubes: tuple[ImportedCube, ...]
    created_count: int
    skipped_count: int
    new_version_count: int
    replaced_count: int
    reembedded_count: int
    proto: interchange_service_pb2.ImportBundleResponse = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: interchange_service_pb2.ImportBundleResponse) -> ImportResult:
        return cls(
            verification=BundleVerification.from_proto(message.verification),
            cubes=tuple(ImportedCube.from_proto(c) for c in message.cubes),
            created_count=message.created_count,
            skipped_count=message.skipped_count,
            new_version_count=message.new_version_count,
            replaced_count=message.replaced_count,
            reembedded_count=message.reembedded_count,
            proto=message,
        )


@dataclass(frozen=True)
class TrustedKey:
    """A key of the trust root: ``public_key`` is the raw 32-byte Ed25519 key."""

    key_id: str
    public_key: bytes
    name: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    revoke_time: dt.datetime | None

    @classmethod
    def from_proto(cls, message: trust_pb2.TrustedKey) -> TrustedKey:
        return cls(
            key_id=message.key_id,
            public_key=message.public_key,
            name=message.name,
            not_before=_time(message, "not_before"),
            not_after=_time(message, "not_after"),
            revoke_time=_time(message, "revoke_time"),
        )


@dataclass(frozen=True)
class TrustRole:
    """The keys of one role (``admin``, ``node``, ``publisher``, ``marketplace``) and how many must sign."""

    role: str
    key_ids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class TrustRoot:
    """The server's trust root; ``signed_envelope`` is the DSSE JSON to verify it offline."""

    version: int
    expire_time: dt.datetime | None
    keys: dict[str, TrustedKey] = field(hash=False)
    roles: dict[str, TrustRole] = field(hash=False)
    #: The C2SP tlog-policy text of each marketplace log the root trusts (log key, witnesses, quorum).
    log_policies: tuple[str, ...]
    signed_envelope: bytes = field(repr=False)
    proto: trust_pb2.TrustRoot = field(repr=False, compare=False, hash=False)

    def keys_for(self, role: str) -> list[TrustedKey]:
        """The keys trusted for ``role``, in the root's order."""
        found = self.roles.get(role)
        return [self.keys[k] for k in found.key_ids if k in self.keys] if found else []

    @classmethod
    def from_proto(cls, message: trust_pb2.TrustRoot) -> TrustRoot:
        roles = {}
        for role in message.roles:
            name = role_name(role.role)
            roles[name] = TrustRole(name, tuple(role.key_ids), role.threshold)
        return cls(
            version=message.version,
            expire_time=_time(message, "expire_time"),
            keys={k.key_id: TrustedKey.from_proto(k) for k in message.keys},
            roles=roles,
            log_policies=tuple(message.log_policies),
            signed_envelope=message.signed_envelope,
            proto=message,
        )


@dataclass(frozen=True)
class PublicKey:
    """A principal's Ed25519 public key: its key id (hex sha256 of the SubjectPublicKeyInfo) and raw bytes."""

    key_id: str
    public_key: bytes
    algorithm: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    proto: principal_pb2.PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: principal_pb2.PublicKey) -> PublicKey:
        return cls(
            key_id=message.key_id,
            public_key=message.public_key,
            algorithm=message.algorithm,
            not_before=_time(message, "not_before"),
            not_after=_time(message, "not_after"),
            proto=message,
        )
