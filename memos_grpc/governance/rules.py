"""The access rule of every RPC, in one table: what it acts on, who may call it, whether it mutates.

``RULES`` names every method of every service the server hosts; a test
checks that none is missing, so no RPC can escape the policy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Check(enum.Enum):
    """Who may call a method: the test the policy enforcement point applies to the caller and the resource."""

    #: Health and reflection: no credential needed.
    PUBLIC = "public"
    #: Any authenticated principal (what it sees is narrowed by the handler).
    AUTHENTICATED = "authenticated"
    #: The resource is a space or something in it; admins, and principals with at least this role.
    SPACE_READ = "space_read"
    SPACE_WRITE = "space_write"
    SPACE_OWNER = "space_owner"
    #: The resource is a principal: admins and that principal itself.
    SELF = "self"
    #: The resource is a credential: admins and the principal it belongs to.
    CREDENTIAL = "credential"
    #: Admins only.
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    """One RPC's access rule: its check, the request field naming the resource, and whether it is audited."""

    check: Check
    #: The request field naming the resource acted on ("" when none).
    resource_field: str = ""
    mutating: bool = False
    #: Memory leaves the server (an export): audited like a mutation.
    egress: bool = False

    @property
    def audited(self) -> bool:
        return self.mutating or self.egress

    def resource(self, request: Any) -> str:
        if not self.resource_field:
            return ""
        value: Any = request
        for part in self.resource_field.split("."):
            value = getattr(value, part)
        return str(value)


_V = "/memos.v1.VaultService/"
_G = "/memos.v1.GovernanceService/"
_I = "/memos.v1.InterchangeService/"
_S = "/memos.v1.SchedulerService/"
_W = "/memos.v1.WitnessService/"
_T = "/memos.v1.TransparencyLogService/"
_M = "/memos.v1.MarketplaceService/"
_H = "/memos.v1.HeldLicenseService/"

RULES: dict[str, Rule] = {
    _V + "CreateCube": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _V + "BatchCreateCubes": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _V + "GetCube": Rule(Check.SPACE_READ, "name"),
    _V + "ListCubes": Rule(Check.SPACE_READ, "parent"),
    _V + "UpdateCube": Rule(Check.SPACE_WRITE, "cube.name", mutating=True),
    _V + "DeleteCube": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _V + "SearchCubes": Rule(Check.SPACE_READ, "parent"),
    _V + "WritePayload": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _V + "ReadPayload": Rule(Check.SPACE_READ, "name"),
    _V + "ListCubeVersions": Rule(Check.SPACE_READ, "name"),
    _V + "RollbackCube": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _V + "FreezeCube": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _V + "UnfreezeCube": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _V + "ArchiveCube": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _V + "MergeCubes": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _G + "CreateSpace": Rule(Check.AUTHENTICATED, "space_id", mutating=True),
    _G + "GetSpace": Rule(Check.SPACE_READ, "name"),
    _G + "ListSpaces": Rule(Check.AUTHENTICATED),
    _G + "UpdateSpace": Rule(Check.SPACE_OWNER, "space.name", mutating=True),
    _G + "DeleteSpace": Rule(Check.SPACE_OWNER, "name", mutating=True),
    _G + "GetAccessPolicy": Rule(Check.SPACE_OWNER, "resource"),
    _G + "SetAccessPolicy": Rule(Check.SPACE_OWNER, "resource", mutating=True),
    _G + "CreatePrincipal": Rule(Check.ADMIN, "principal_id", mutating=True),
    _G + "GetPrincipal": Rule(Check.SELF, "name"),
    _G + "ListPrincipals": Rule(Check.ADMIN),
    _G + "DeletePrincipal": Rule(Check.ADMIN, "name", mutating=True),
    _G + "CreateCredential": Rule(Check.SELF, "parent", mutating=True),
    _G + "RevokeCredential": Rule(Check.CREDENTIAL, "name", mutating=True),
    _G + "ErasePrincipalData": Rule(Check.ADMIN, "name", mutating=True),
    _G + "ListAuditEvents": Rule(Check.ADMIN),
    _G + "VerifyAuditLog": Rule(Check.ADMIN),
    _G + "GetTrustRoot": Rule(Check.AUTHENTICATED),
    _G + "UpdateTrustRoot": Rule(Check.ADMIN, mutating=True),
    _G + "CreateSigningKey": Rule(Check.SELF, "parent", mutating=True),
    _G + "RegisterPublicKey": Rule(Check.SELF, "parent", mutating=True),
    # Recall records use (bookkeeping, batched), not content: a read, not audited.
    _S + "Recall": Rule(Check.SPACE_READ, "parent"),
    # A transform changes (or creates) cubes; its operation is then seen only by its creator, the space's
    # owners and admins (checked by the handler on top of these rules).
    _S + "TransformCube": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _S + "GetOperation": Rule(Check.SPACE_READ, "name"),
    _S + "WatchOperation": Rule(Check.SPACE_READ, "name"),
    _S + "CancelOperation": Rule(Check.SPACE_WRITE, "name", mutating=True),
    _S + "GetModel": Rule(Check.AUTHENTICATED),
    _I + "ExportBundle": Rule(Check.SPACE_READ, "parent", egress=True),
    _I + "ImportBundle": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    _I + "VerifyBundle": Rule(Check.AUTHENTICATED),
    # Admins only: it makes this server open a connection to a host the caller names.
    _I + "ImportFromPeer": Rule(Check.ADMIN, "parent", mutating=True),
    # The marketplace's log: what it serves verifies offline, and every caller may check it.
    # Held licenses: the component shows each to its licensee and to admins only.
    _H + "GetHeldLicense": Rule(Check.AUTHENTICATED, "name"),
    _H + "ListHeldLicenses": Rule(Check.AUTHENTICATED),
    # As ImportBundle; the node dials only the marketplace its operator configured, with the caller's token there.
    _H + "ImportRelease": Rule(Check.SPACE_WRITE, "parent", mutating=True),
    # Following the marketplace log dials out with the node's own credential: an operator's call.
    _H + "SyncMarketplaceLog": Rule(Check.ADMIN, mutating=True),
    _H + "ListFollowedLogs": Rule(Check.ADMIN),
    _T + "GetCheckpoint": Rule(Check.AUTHENTICATED),
    _T + "GetInclusionProof": Rule(Check.AUTHENTICATED),
    _T + "GetConsistencyProof": Rule(Check.AUTHENTICATED),
    _T + "GetEntries": Rule(Check.AUTHENTICATED),
    # The marketplace's listings and releases: any authenticated principal may create a listing, read and
    # search them; a change, a publish or a yank is its owner's (or an admin's), which the component checks,
    # since "listing owner" is no space role.
    _M + "CreateListing": Rule(Check.AUTHENTICATED, "listing_id", mutating=True),
    _M + "GetListing": Rule(Check.AUTHENTICATED, "name"),
    _M + "ListListings": Rule(Check.AUTHENTICATED),
    _M + "SearchListings": Rule(Check.AUTHENTICATED),
    _M + "UpdateListing": Rule(Check.AUTHENTICATED, "listing.name", mutating=True),
    _M + "PublishRelease": Rule(Check.AUTHENTICATED, "parent", mutating=True),
    _M + "GetRelease": Rule(Check.AUTHENTICATED, "name"),
    _M + "ListReleases": Rule(Check.AUTHENTICATED, "parent"),
    # The holder of a license (or the owner, or an admin) takes the bundle away: audited as an export.
    _M + "DownloadRelease": Rule(Check.AUTHENTICATED, "name", egress=True),
    _M + "YankRelease": Rule(Check.AUTHENTICATED, "name", mutating=True),
    # Licenses: any authenticated principal acquires one (as its acquirer); who sees one (its acquirer, its
    # listing's owner, admins) and who revokes one (the owner, admins) the component checks.
    _M + "AcquireLicense": Rule(Check.AUTHENTICATED, "license.release", mutating=True),
    _M + "GetLicense": Rule(Check.AUTHENTICATED, "name"),
    _M + "ListLicenses": Rule(Check.AUTHENTICATED),
    _M + "RevokeLicense": Rule(Check.AUTHENTICATED, "name", mutating=True),
    # Publish, yank and revoke events are hints of what the public log holds; grants are never events.
    _M + "Subscribe": Rule(Check.AUTHENTICATED),
    # No credential, as in C2SP tlog-witness: the log's signature on the checkpoint is the authorization, and a
    # witness acts only for the logs its operator configured (witness_logs). A marketplace needs no account at
    # each of its witnesses.
    _W + "AddCheckpoint": Rule(Check.PUBLIC, mutating=True),
    "/grpc.health.v1.Health/Check": Rule(Check.PUBLIC),
    "/grpc.health.v1.Health/Watch": Rule(Check.PUBLIC),
    "/grpc.health.v1.Health/List": Rule(Check.PUBLIC),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(Check.PUBLIC),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Rule(Check.PUBLIC),
}

#: A method with no rule is refused: new RPCs are closed until someone writes their rule.
DEFAULT_RULE = Rule(Check.ADMIN)


def rule_for(method: str) -> Rule:
    return RULES.get(method, DEFAULT_RULE)
