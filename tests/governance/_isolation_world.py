"""The isolation matrix's world: callers, the expected-outcome table, and calling any method generically."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from memos_test_support import reason_of

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as held
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as sch
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as tlog
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1 import witness_service_pb2 as wit
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc._proto.memos.v1.witness_service_pb2_grpc import WitnessServiceStub
from memos_grpc.governance.rules import Check
from memos_grpc.server.app import MemosServer

Code = grpc.StatusCode
Metadata = tuple[tuple[str, str], ...]

_V = "/memos.v1.VaultService/"
_G = "/memos.v1.GovernanceService/"
_I = "/memos.v1.InterchangeService/"
SPACE_ID = "iso"
SPACE = f"spaces/{SPACE_ID}"
CUBE = f"{SPACE}/cubes/c"
ACTIVATION_CUBE = f"{SPACE}/cubes/act"
PAYLOAD = b"\x00activation payload bytes\xff" * 8
OWNER = "principals/owner"
EDITOR = "principals/editor"
VIEWER = "principals/viewer"
STRANGER = "principals/stranger"
ADMIN = "principals/admin"
CALL_TIMEOUT = 30.0


# -- callers and the rules table ------------------------------------------------------


class Who(enum.Enum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    ADMIN = "admin"
    STRANGER = "stranger"
    NO_TOKEN = "no-token"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Expected:
    code: grpc.StatusCode
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.code is Code.OK


#: Callers refused before any rule applies, with the reason each must get.
UNAUTHENTICATED: dict[Who, str] = {
    Who.NO_TOKEN: "MISSING_CREDENTIAL",
    Who.MALFORMED: "INVALID_TOKEN",
    Who.EXPIRED: "TOKEN_EXPIRED",
    Who.REVOKED: "TOKEN_REVOKED",
}


class Access(enum.Enum):
    """Who may call a method, as far as the matrix's callers tell apart (see ``access_of``)."""

    AUTHENTICATED = "any authenticated principal"
    SPACE_READ = "admins and viewers, editors and owners of the space"
    SPACE_WRITE = "admins and editors and owners of the space"
    SPACE_OWNER = "admins and owners of the space"
    SELF = "admins and the principal itself"
    CREDENTIAL = "admins and the principal the credential belongs to"
    ADMIN = "admins only"


def access_of(check: Check) -> Access:
    """The access class of a rule's check (they are named alike)."""
    return Access[check.name]


SPACE_CLASSES = frozenset({Access.SPACE_READ, Access.SPACE_WRITE, Access.SPACE_OWNER})


#: The access classes each authenticated caller passes on the matrix's resources. Every row acts
#: on a space in which the owner, the editor and the viewer hold those roles (S, or one made for
#: the cell alike), on the owner's principal, or on one of the owner's credentials.
PASSES: dict[Who, frozenset[Access]] = {
    Who.ADMIN: frozenset(Access),
    Who.OWNER: frozenset({Access.AUTHENTICATED, *SPACE_CLASSES, Access.SELF, Access.CREDENTIAL}),
    Who.EDITOR: frozenset({Access.AUTHENTICATED, Access.SPACE_READ, Access.SPACE_WRITE}),
    Who.VIEWER: frozenset({Access.AUTHENTICATED, Access.SPACE_READ}),
    Who.STRANGER: frozenset({Access.AUTHENTICATED}),
}

#: How a check refuses: NOT_FOUND where existence must not leak, PERMISSION_DENIED for admin-only calls.
REFUSAL: dict[Access, Expected] = {
    **dict.fromkeys(SPACE_CLASSES, Expected(Code.NOT_FOUND, "SPACE_NOT_FOUND")),
    Access.SELF: Expected(Code.NOT_FOUND, "PRINCIPAL_NOT_FOUND"),
    Access.CREDENTIAL: Expected(Code.NOT_FOUND, "CREDENTIAL_NOT_FOUND"),
    Access.ADMIN: Expected(Code.PERMISSION_DENIED, "ADMIN_REQUIRED"),
}


def expected(access: Access, who: Who) -> Expected:
    """The outcome the policy prescribes for ``who`` calling a method of the given access class."""
    if who in UNAUTHENTICATED:
        return Expected(Code.UNAUTHENTICATED, UNAUTHENTICATED[who])
    if access in PASSES[who]:
        return Expected(Code.OK)
    if access in SPACE_CLASSES and who in (Who.EDITOR, Who.VIEWER):
        # They may see the space, so a too-low role is named rather than hidden.
        return Expected(Code.PERMISSION_DENIED, "ROLE_REQUIRED")
    return REFUSAL[access]


# -- the world ------------------------------------------------------------------------


@dataclass
class World:
    server: MemosServer
    vault: VaultServiceStub
    governance: GovernanceServiceStub
    tokens: dict[Who, str]
    cube: cube_pb2.MemCube
    channel: grpc.Channel
    metadata: dict[Who, Metadata] = field(default_factory=dict)

    def md(self, who: Who) -> Metadata:
        return self.metadata[who]

    @property
    def admin(self) -> Metadata:
        return self.metadata[Who.ADMIN]

    @property
    def owner(self) -> Metadata:
        return self.metadata[Who.OWNER]

    def principal(self, who: Who) -> str:
        """The principal the audit log must name for ``who`` ("" when authentication failed)."""
        names = {Who.OWNER: OWNER, Who.EDITOR: EDITOR, Who.VIEWER: VIEWER, Who.ADMIN: ADMIN, Who.STRANGER: STRANGER}
        return names.get(who, "")

    def token_works(self, token: str) -> bool:
        try:
            self.governance.ListSpaces(g.ListSpacesRequest(), metadata=bearer(token), timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            assert error.code() is Code.UNAUTHENTICATED, error
            return False
        return True


def share_with_team(governance: GovernanceServiceStub, space: str, admin: Metadata) -> None:
    """Gives the editor and the viewer their roles on ``space`` (the owner keeps owning it)."""
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=[OWNER]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=[EDITOR]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=[VIEWER]),
        ]
    )
    governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy), metadata=admin)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def unit_vector(seed: int) -> v.Vector:
    values = [0.0] * 384
    values[seed % 384] = 1.0
    values[(seed * 7 + 3) % 384] = 0.5
    return v.Vector(values=values)


def text_cube(text: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))


def upload(vault: VaultServiceStub, md: Metadata, data: bytes) -> cube_pb2.BlobRef:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    requests = [v.WritePayloadRequest(parent=SPACE, expected_digest=digest), v.WritePayloadRequest(data=data)]
    return vault.WritePayload(iter(requests), metadata=md, timeout=CALL_TIMEOUT).blob


# -- the matrix's rows ------------------------------------------------------------------


@dataclass
class Target:
    """What one cell sends, and how to tell afterwards whether it took effect."""

    request: Message | Sequence[Message]
    #: Called with whether the call was allowed: asserts the change happened, or that nothing changed.
    effect: Callable[[bool], None] | None = None


@dataclass(frozen=True)
class Row:
    method: str
    #: Who may call the method, as this test reads the policy (checked against RULES below).
    access: Access
    #: Whether the call is audited when allowed (it mutates, or memory leaves the server).
    audited: bool
    #: Builds the cell's request (and fresh target, for mutating calls) from the world and a cell id.
    target: Callable[[World, str], Target]
    #: Checks an allowed call's response for the caller.
    response: Callable[[World, Who, Any], None] | None = None
    #: Methods the call itself makes (audited as their own events), e.g. a peer's export.
    side_calls: tuple[str, ...] = ()


def owned_cube(w: World, cell: str) -> cube_pb2.MemCube:
    """A cube of the cell's own in S, created by the owner."""
    return w.vault.CreateCube(
        v.CreateCubeRequest(parent=SPACE, cube_id=cell, cube=text_cube(f"memory of {cell}"), vector=unit_vector(7)),
        metadata=w.owner,
    )


# -- calling a method generically ------------------------------------------------------

_SERVICES = {
    "memos.v1.VaultService": v.DESCRIPTOR.services_by_name["VaultService"],
    "memos.v1.GovernanceService": g.DESCRIPTOR.services_by_name["GovernanceService"],
    "memos.v1.InterchangeService": i.DESCRIPTOR.services_by_name["InterchangeService"],
    "memos.v1.SchedulerService": sch.DESCRIPTOR.services_by_name["SchedulerService"],
    "memos.v1.WitnessService": wit.DESCRIPTOR.services_by_name["WitnessService"],
    "memos.v1.TransparencyLogService": tlog.DESCRIPTOR.services_by_name["TransparencyLogService"],
    "memos.v1.MarketplaceService": mkt.DESCRIPTOR.services_by_name["MarketplaceService"],
    "memos.v1.HeldLicenseService": held.DESCRIPTOR.services_by_name["HeldLicenseService"],
}
#: Server streams that never end by themselves (they follow a log): a cell reads their first message.
_FOLLOWING_STREAMS = frozenset({"/memos.v1.MarketplaceService/Subscribe"})


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    reason: str
    response: Any


def invoke(w: World, method: str, request: Message | Sequence[Message], md: Metadata) -> Outcome:
    """Calls ``method`` with the stubs, streaming ``request`` when the method takes a stream."""
    _, service, name = method.split("/")
    descriptor = _SERVICES[service].methods_by_name[name]
    stubs: dict[str, Any] = {
        "VaultService": w.vault,
        "GovernanceService": w.governance,
        "InterchangeService": InterchangeServiceStub(w.channel),
        "SchedulerService": SchedulerServiceStub(w.channel),
        "WitnessService": WitnessServiceStub(w.channel),
        "TransparencyLogService": TransparencyLogServiceStub(w.channel),
        "MarketplaceService": MarketplaceServiceStub(w.channel),
        "HeldLicenseService": HeldLicenseServiceStub(w.channel),
    }
    stub: Any = stubs[service.rsplit(".", 1)[1]]
    call = getattr(stub, name)
    try:
        if descriptor.client_streaming:
            assert isinstance(request, Sequence)
            response = call(iter(request), metadata=md, timeout=CALL_TIMEOUT)
        elif method in _FOLLOWING_STREAMS:
            stream = call(request, metadata=md, timeout=CALL_TIMEOUT)
            response = [next(stream)]
            stream.cancel()
        elif descriptor.server_streaming:
            response = list(call(request, metadata=md, timeout=CALL_TIMEOUT))
        else:
            response = call(request, metadata=md, timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        return Outcome(error.code(), reason_of(error), None)
    return Outcome(Code.OK, "", response)


# -- what exists, as the admin sees it ----------------------------------------------------


def _exists(call: Callable[[], object]) -> bool:
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() is Code.NOT_FOUND, error
        return False
    return True


def cube_exists(w: World, name: str) -> bool:
    return _exists(lambda: w.vault.GetCube(v.GetCubeRequest(name=name), metadata=w.admin))


def space_exists(w: World, name: str) -> bool:
    return _exists(lambda: w.governance.GetSpace(g.GetSpaceRequest(name=name), metadata=w.admin))


def principal_exists(w: World, name: str) -> bool:
    return _exists(lambda: w.governance.GetPrincipal(g.GetPrincipalRequest(name=name), metadata=w.admin))


def assert_effect(actual: object, wanted: object) -> None:
    assert actual == wanted, f"the call's effect: got {actual}, wanted {wanted}"
