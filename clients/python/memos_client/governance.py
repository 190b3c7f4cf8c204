"""Governance calls of the client: principals, credentials and the audit log, with their result objects.

``GovernanceCalls`` is mixed into ``MemosClient``; it relies on the client's
``_unary`` and ``_governance`` stub.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from memos_client.types import _time
from memos_grpc._proto.memos.v1 import audit_pb2, governance_service_pb2, principal_pb2

_g = governance_service_pb2
_KINDS = {"user": 1, "agent": 2, "service": 3, "peer_node": 4, "peer-node": 4}


@dataclass(frozen=True)
class Principal:
    """A user, agent, service or peer node, named ``principals/{id}``."""

    name: str
    kind: str
    display_name: str
    admin: bool
    key_ids: tuple[str, ...]
    certificate_fingerprints: tuple[str, ...]
    proto: principal_pb2.Principal = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: principal_pb2.Principal) -> Principal:
        kind = principal_pb2.Principal.Kind.Name(message.kind).removeprefix("KIND_").lower()
        return cls(
            name=message.name,
            kind=kind,
            display_name=message.display_name,
            admin=message.admin,
            key_ids=tuple(k.key_id for k in message.public_keys),
            certificate_fingerprints=tuple(message.certificate_fingerprints),
            proto=message,
        )


@dataclass(frozen=True)
class Credential:
    """A bearer credential; ``token`` is set only on the result of ``create_credential``."""

    name: str
    token: str
    description: str
    create_time: dt.datetime | None
    expire_time: dt.datetime | None
    revoke_time: dt.datetime | None
    proto: principal_pb2.Credential = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: principal_pb2.Credential) -> Credential:
        return cls(
            name=message.name,
            token=message.token,
            description=message.description,
            create_time=_time(message, "create_time"),
            expire_time=_time(message, "expire_time"),
            revoke_time=_time(message, "revoke_time"),
            proto=message,
        )


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the server's hash-chained audit log."""

    sequence: int
    time: dt.datetime | None
    principal: str
    method: str
    resource: str
    outcome: str
    status_code: str
    reason: str
    previous_hash: str
    hash: str
    proto: audit_pb2.AuditEvent = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: audit_pb2.AuditEvent) -> AuditEvent:
        return cls(
            sequence=message.sequence,
            time=_time(message, "time"),
            principal=message.principal,
            method=message.method,
            resource=message.resource,
            outcome=audit_pb2.AuditEvent.Outcome.Name(message.outcome).removeprefix("OUTCOME_").lower(),
            status_code=message.status_code,
            reason=message.reason,
            previous_hash=message.previous_hash,
            hash=message.hash,
            proto=message,
        )


@dataclass(frozen=True)
class AuditVerification:
    verified: bool
    events_checked: int
    first_broken_sequence: int
    problem: str

    def __bool__(self) -> bool:
        return self.verified


def principal_name(principal: str) -> str:
    return principal if principal.startswith("principals/") else f"principals/{principal}"


class GovernanceCalls:
    """Principals, credentials and the audit log (most of these are for admins)."""

    _governance: Any

    def _unary(self, method: Any, request: Any) -> Any:  # provided by MemosClient
        raise NotImplementedError

    def create_principal(
        self,
        principal_id: str,
        *,
        kind: str = "user",
        display_name: str = "",
        admin: bool = False,
        public_keys: Sequence[bytes] = (),
        certificate_fingerprints: Sequence[str] = (),
    ) -> Principal:
        """Creates ``principals/{principal_id}``; ``public_keys`` are raw 32-byte Ed25519 keys."""
        if kind not in _KINDS:
            raise ValueError(f"unknown principal kind {kind!r}; expected one of: user, agent, service, peer_node")
        principal = principal_pb2.Principal(
            kind=_KINDS[kind],  # type: ignore[arg-type]
            display_name=display_name,
            admin=admin,
            public_keys=[principal_pb2.PublicKey(public_key=k) for k in public_keys],
            certificate_fingerprints=list(certificate_fingerprints),
        )
        request = _g.CreatePrincipalRequest(principal_id=principal_id, principal=principal)
        return Principal.from_proto(self._unary(self._governance.CreatePrincipal, request))

    def get_principal(self, principal: str) -> Principal:
        request = _g.GetPrincipalRequest(name=principal_name(principal))
        return Principal.from_proto(self._unary(self._governance.GetPrincipal, request))

    def list_principals(self, *, page_size: int = 0) -> Iterator[Principal]:
        token = ""
        while True:
            response = self._unary(
                self._governance.ListPrincipals, _g.ListPrincipalsRequest(page_size=page_size, page_token=token)
            )
            yield from (Principal.from_proto(p) for p in response.principals)
            token = response.next_page_token
            if not token:
                return

    def delete_principal(self, principal: str) -> None:
        self._unary(self._governance.DeletePrincipal, _g.DeletePrincipalRequest(name=principal_name(principal)))

    def create_credential(
        self, principal: str, *, description: str = "", expire_time: dt.datetime | None = None
    ) -> Credential:
        """A new bearer token for ``principal``: keep ``.token``, the server cannot show it again."""
        credential = principal_pb2.Credential(description=description)
        if expire_time is not None:
            credential.expire_time.FromDatetime(expire_time.astimezone(dt.UTC))
        request = _g.CreateCredentialRequest(parent=principal_name(principal), credential=credential)
        return Credential.from_proto(self._unary(self._governance.CreateCredential, request))

    def revoke_credential(self, name: str) -> Credential:
        request = _g.RevokeCredentialRequest(name=name)
        return Credential.from_proto(self._unary(self._governance.RevokeCredential, request))

    def list_audit_events(self, *, filter: str = "", page_size: int = 0) -> Iterator[AuditEvent]:
        """Yields audit events in sequence order, following pages."""
        token = ""
        while True:
            request = _g.ListAuditEventsRequest(filter=filter, page_size=page_size, page_token=token)
            response = self._unary(self._governance.ListAuditEvents, request)
            yield from (AuditEvent.from_proto(e) for e in response.events)
            token = response.next_page_token
            if not token:
                return

    def verify_audit_log(self) -> AuditVerification:
        response = self._unary(self._governance.VerifyAuditLog, _g.VerifyAuditLogRequest())
        return AuditVerification(
            response.verified, response.events_checked, response.first_broken_sequence, response.problem
        )
