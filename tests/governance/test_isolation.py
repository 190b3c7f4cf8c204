"""The isolation matrix: every RPC, called by every kind of caller, answers exactly as the policy says.

The expected outcome of each (method, caller) cell is not written out by
hand: it comes from a small rules table (``expected``) keyed by the method's
access class and the caller. Space checks of every role (read, write, owner)
are one class here, since the owner holds every role on S and the stranger
none; a separate test checks each row's class against ``RULES``, and another
that every governed method has a row. The access-policy RPCs get their rows
when the proto has them. Each matrix row says what its method acts on and
builds the request; rows for mutating calls build a fresh target for every
cell (a cube of its own to delete, a space id of its own to create) so cells
never interfere, and check afterwards that an allowed call took effect and a
refused one changed nothing. Every refusal must carry its ErrorInfo reason and
be recorded in the audit log as DENIED; every allowed mutating call (and every
export) as OK.

The world, on a server of this module's own: the bootstrap ``admin``; the
non-admin ``owner``, who owns space S holding a plaintext cube C (with a
client-supplied vector), an uploaded payload blob and an activation cube that
references it; the non-admin ``stranger``; and four callers that must be
refused before any rule applies: no token, a malformed token, an expired
token and a revoked token (both of the last two belong to the admin, so that
nothing but the token's state can explain the refusal).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from _isolation_held import HELD_ROWS, held_license, licensed_import
from _isolation_interchange import INTERCHANGE_ROWS
from _isolation_licenses import LICENSE_ROWS
from _isolation_lifecycle import LIFECYCLE_ROWS
from _isolation_listings import LISTING_ROWS
from _isolation_marketplace import MARKETPLACE_ROWS, WORLD_LOG_ENTRY
from _isolation_models import MODEL_ROWS
from _isolation_world import (
    _G,
    _V,
    ACTIVATION_CUBE,
    ADMIN,
    CUBE,
    EDITOR,
    OWNER,
    PAYLOAD,
    SPACE,
    SPACE_ID,
    STRANGER,
    VIEWER,
    Access,
    Row,
    Target,
    Who,
    World,
    access_of,
    assert_effect,
    bearer,
    cube_exists,
    expected,
    invoke,
    owned_cube,
    principal_exists,
    share_with_team,
    space_exists,
    text_cube,
    unit_vector,
    upload,
)
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message
from memos_test_support import admin_token, reason_of, start_server
from server._process import free_port
from tiny_models import save_gpt2

from memos_grpc._proto.memos.v1 import access_pb2, audit_pb2, cube_pb2, principal_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.governance.rules import RULES, Check


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[World]:
    # Plaintext peers: ImportFromPeer's cells pull from this very server.
    # A model, so that GetModel answers; the transform cells only demote, which needs none.
    model_dir = save_gpt2(tmp_path_factory.mktemp("isolation-model"))
    # A marketplace without witnesses, whose log holds one entry, for the transparency log's cells. Its trust
    # root names its own marketplace, so it is its own buyer too, and it follows its own log (at a fixed address,
    # with a token written below; it syncs only when a cell asks) for HeldLicenseService's cells.
    data_dir = tmp_path_factory.mktemp("isolation")
    address = f"127.0.0.1:{free_port()}"
    follow_token = data_dir.parent / f"{data_dir.name}-follow.token"
    server = start_server(
        data_dir,
        embedder,
        listen=address,
        allow_plaintext_peers=True,
        model_dir=str(model_dir),
        marketplace_enabled=True,
        marketplace_follow=address,
        marketplace_follow_token_file=str(follow_token),
        marketplace_sync_seconds=3600,
    )
    assert server.vault is not None and server.vault.marketplace is not None
    market = server.vault.marketplace
    market.wait_published(market.append([WORLD_LOG_ENTRY])[0] + 1)
    channel = grpc.insecure_channel(server.address)
    try:
        vault, governance = VaultServiceStub(channel), GovernanceServiceStub(channel)
        admin = bearer(admin_token(server))
        tokens = {Who.ADMIN: admin_token(server), Who.MALFORMED: "garbage"}

        # The expired token: valid for two seconds from now (the server refuses past expire times).
        deadline = time.time() + 2.0
        expire = timestamp_pb2.Timestamp()
        expire.FromNanoseconds(int(deadline * 1e9))
        expiring = governance.CreateCredential(
            g.CreateCredentialRequest(parent=ADMIN, credential=principal_pb2.Credential(expire_time=expire)),
            metadata=admin,
        )
        tokens[Who.EXPIRED] = expiring.token

        for who in (Who.OWNER, Who.EDITOR, Who.VIEWER, Who.STRANGER):
            principal = governance.CreatePrincipal(
                g.CreatePrincipalRequest(
                    principal_id=who.value, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_AGENT)
                ),
                metadata=admin,
            )
            assert not principal.admin
            tokens[who] = governance.CreateCredential(
                g.CreateCredentialRequest(parent=principal.name), metadata=admin
            ).token

        follower = governance.CreateCredential(g.CreateCredentialRequest(parent=ADMIN), metadata=admin)
        follow_token.write_text(follower.token)
        follow_token.chmod(0o600)

        revoked = governance.CreateCredential(g.CreateCredentialRequest(parent=ADMIN), metadata=admin)
        tokens[Who.REVOKED] = revoked.token
        world = World(server, vault, governance, tokens, cube_pb2.MemCube(), channel)
        world.metadata = {who: bearer(token) for who, token in tokens.items()}
        world.metadata[Who.NO_TOKEN] = ()
        # Both tokens worked before they were revoked or expired: only their state refuses them later.
        assert world.token_works(revoked.token) and world.token_works(expiring.token)
        governance.RevokeCredential(g.RevokeCredentialRequest(name=revoked.name), metadata=admin)

        owner = world.owner
        space = governance.CreateSpace(g.CreateSpaceRequest(space_id=SPACE_ID), metadata=owner)
        assert space.owner == OWNER
        share_with_team(governance, SPACE, admin)
        world.cube = vault.CreateCube(
            v.CreateCubeRequest(
                parent=SPACE, cube_id="c", cube=text_cube("the owner's private memory"), vector=unit_vector(1)
            ),
            metadata=owner,
        )
        blob = upload(vault, owner, PAYLOAD)
        vault.CreateCube(
            v.CreateCubeRequest(
                parent=SPACE,
                cube_id="act",
                cube=cube_pb2.MemCube(
                    activation=cube_pb2.ActivationPayload(
                        blob=blob, model_fingerprint="test-model", dtype="float32", shape=[1, 2, 3, 4]
                    )
                ),
            ),
            metadata=owner,
        )
        time.sleep(max(0.0, deadline - time.time() + 0.5))
        assert not world.token_works(expiring.token)
        yield world
    finally:
        channel.close()
        server.stop(grace=1)


# -- the rows ---------------------------------------------------------------------------


def _create_cube(w: World, cell: str) -> Target:
    name = f"{SPACE}/cubes/{cell}"
    request = v.CreateCubeRequest(parent=SPACE, cube_id=cell, cube=text_cube("new memory"), vector=unit_vector(2))
    return Target(request, lambda allowed: assert_effect(cube_exists(w, name), allowed))


def _batch_create(w: World, cell: str) -> Target:
    ids = [f"{cell}-a", f"{cell}-b"]
    request = v.BatchCreateCubesRequest(
        parent=SPACE,
        requests=[
            v.CreateCubeRequest(cube_id=i, cube=text_cube(f"batch {i}"), vector=unit_vector(n))
            for n, i in enumerate(ids)
        ],
    )
    return Target(
        request, lambda allowed: assert_effect([cube_exists(w, f"{SPACE}/cubes/{i}") for i in ids], [allowed] * 2)
    )


def _update_cube(w: World, cell: str) -> Target:
    cube = owned_cube(w, cell)
    request = v.UpdateCubeRequest(
        cube=cube_pb2.MemCube(name=cube.name, tags=["changed"]), update_mask=field_mask_pb2.FieldMask(paths=["tags"])
    )

    def effect(allowed: bool) -> None:
        now = w.vault.GetCube(v.GetCubeRequest(name=cube.name), metadata=w.admin)
        assert (now.etag != cube.etag, list(now.tags)) == (allowed, ["changed"] if allowed else [])

    return Target(request, effect)


def _delete_cube(w: World, cell: str) -> Target:
    cube = owned_cube(w, cell)
    return Target(
        v.DeleteCubeRequest(name=cube.name), lambda allowed: assert_effect(cube_exists(w, cube.name), not allowed)
    )


def _write_payload(w: World, cell: str) -> Target:
    data = f"payload of {cell}".encode()
    digest = hashlib.sha256(data).hexdigest()
    request = [
        v.WritePayloadRequest(parent=SPACE, expected_digest=f"sha256:{digest}"),
        v.WritePayloadRequest(data=data),
    ]
    assert w.server.vault is not None
    blobs = w.server.vault.context.blobs
    return Target(request, lambda allowed: assert_effect(blobs.exists(f"sha256:{digest}"), allowed))


def _create_space(w: World, cell: str) -> Target:
    return Target(
        g.CreateSpaceRequest(space_id=cell), lambda allowed: assert_effect(space_exists(w, f"spaces/{cell}"), allowed)
    )


def _delete_space(w: World, cell: str) -> Target:
    space = w.governance.CreateSpace(g.CreateSpaceRequest(space_id=cell), metadata=w.owner)
    share_with_team(w.governance, space.name, w.admin)
    return Target(
        g.DeleteSpaceRequest(name=space.name), lambda allowed: assert_effect(space_exists(w, space.name), not allowed)
    )


def _update_space(w: World, cell: str) -> Target:
    space = w.governance.CreateSpace(g.CreateSpaceRequest(space_id=cell), metadata=w.owner)
    share_with_team(w.governance, space.name, w.admin)

    def effect(allowed: bool) -> None:
        now = w.governance.GetSpace(g.GetSpaceRequest(name=space.name), metadata=w.admin)
        assert_effect(now.display_name == "renamed", allowed)

    return Target(
        g.UpdateSpaceRequest(
            space=space_pb2.Space(name=space.name, display_name="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        effect,
    )


def _create_principal(w: World, cell: str) -> Target:
    return Target(
        g.CreatePrincipalRequest(principal_id=cell),
        lambda allowed: assert_effect(principal_exists(w, f"principals/{cell}"), allowed),
    )


def _delete_principal(w: World, cell: str) -> Target:
    principal = w.governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=cell), metadata=w.admin)
    return Target(
        g.DeletePrincipalRequest(name=principal.name),
        lambda allowed: assert_effect(principal_exists(w, principal.name), not allowed),
    )


def _revoke_credential(w: World, cell: str) -> Target:
    credential = w.governance.CreateCredential(
        g.CreateCredentialRequest(parent=OWNER, credential=principal_pb2.Credential(description=cell)),
        metadata=w.owner,
    )
    return Target(
        g.RevokeCredentialRequest(name=credential.name),
        lambda allowed: assert_effect(w.token_works(credential.token), not allowed),
    )


def _fixed(request: Message | Sequence[Message]) -> Callable[[World, str], Target]:
    return lambda _w, _cell: Target(request)


def _sees_cube(w: World, _who: Who, response: Any) -> None:
    assert CUBE in [c.name for c in response.cubes]


def _listed_spaces(w: World, who: Who, response: g.ListSpacesResponse) -> None:
    listed = [space.name for space in response.spaces]
    assert (SPACE in listed) == (who is not Who.STRANGER), "only its members and admins may see S"


def _new_token_works(w: World, _who: Who, response: principal_pb2.Credential) -> None:
    assert response.name.startswith(f"{OWNER}/credentials/") and w.token_works(response.token)


ROWS: list[Row] = [
    Row(
        _V + "CreateCube",
        Access.SPACE_WRITE,
        True,
        _create_cube,
        lambda w, who, r: assert_effect(r.access.owner, w.principal(who)),
    ),
    Row(_V + "BatchCreateCubes", Access.SPACE_WRITE, True, _batch_create),
    Row(
        _V + "GetCube",
        Access.SPACE_READ,
        False,
        _fixed(v.GetCubeRequest(name=CUBE)),
        lambda w, _, r: assert_effect(r, w.cube),
    ),
    Row(
        _V + "ListCubes", Access.SPACE_READ, False, _fixed(v.ListCubesRequest(parent=SPACE, page_size=1000)), _sees_cube
    ),
    Row(_V + "UpdateCube", Access.SPACE_WRITE, True, _update_cube),
    Row(_V + "DeleteCube", Access.SPACE_WRITE, True, _delete_cube),
    Row(
        _V + "SearchCubes",
        Access.SPACE_READ,
        False,
        _fixed(v.SearchCubesRequest(parent=SPACE, vector=unit_vector(1), top_k=1000)),
        lambda w, _, r: assert_effect(CUBE in [h.cube.name for h in r.results], True),
    ),
    Row(_V + "WritePayload", Access.SPACE_WRITE, True, _write_payload),
    Row(
        _V + "ReadPayload",
        Access.SPACE_READ,
        False,
        _fixed(v.ReadPayloadRequest(name=ACTIVATION_CUBE)),
        lambda w, _, r: assert_effect(b"".join(chunk.data for chunk in r), PAYLOAD),
    ),
    Row(_G + "CreateSpace", Access.AUTHENTICATED, True, _create_space),
    Row(
        _G + "GetSpace",
        Access.SPACE_READ,
        False,
        _fixed(g.GetSpaceRequest(name=SPACE)),
        lambda w, _, r: assert_effect(r.owner, OWNER),
    ),
    Row(_G + "ListSpaces", Access.AUTHENTICATED, False, _fixed(g.ListSpacesRequest(page_size=1000)), _listed_spaces),
    Row(_G + "UpdateSpace", Access.SPACE_OWNER, True, _update_space),
    Row(_G + "DeleteSpace", Access.SPACE_OWNER, True, _delete_space),
    Row(_G + "CreatePrincipal", Access.ADMIN, True, _create_principal),
    Row(
        _G + "GetPrincipal",
        Access.SELF,
        False,
        _fixed(g.GetPrincipalRequest(name=OWNER)),
        lambda w, _, r: assert_effect(r.name, OWNER),
    ),
    Row(_G + "ListPrincipals", Access.ADMIN, False, _fixed(g.ListPrincipalsRequest(page_size=1000))),
    Row(_G + "DeletePrincipal", Access.ADMIN, True, _delete_principal),
    Row(_G + "CreateCredential", Access.SELF, True, _fixed(g.CreateCredentialRequest(parent=OWNER)), _new_token_works),
    Row(_G + "RevokeCredential", Access.CREDENTIAL, True, _revoke_credential),
    Row(_G + "ListAuditEvents", Access.ADMIN, False, _fixed(g.ListAuditEventsRequest(page_size=10))),
    Row(
        _G + "VerifyAuditLog",
        Access.ADMIN,
        False,
        _fixed(g.VerifyAuditLogRequest()),
        lambda w, _, r: assert_effect(r.verified, True),
    ),
]


def _erase_principal_data(w: World, cell: str) -> Target:
    """A principal of the cell's own that alone owns a space; erasing its data removes the space."""
    principal = w.governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=cell), metadata=w.admin)
    space = w.governance.CreateSpace(g.CreateSpaceRequest(space_id=cell), metadata=w.admin)
    only_owner = access_pb2.AccessPolicy(
        bindings=[access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=[principal.name])]
    )
    w.governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space.name, policy=only_owner), metadata=w.admin)
    return Target(
        g.ErasePrincipalDataRequest(name=principal.name),
        lambda allowed: assert_effect(space_exists(w, space.name), not allowed),
    )


def _get_policy(w: World, _who: Who, response: Any) -> None:
    assert response.resource == SPACE
    assert [(b.role, list(b.members)) for b in response.bindings] == [
        (access_pb2.ROLE_OWNER, [OWNER]),
        (access_pb2.ROLE_EDITOR, [EDITOR]),
        (access_pb2.ROLE_VIEWER, [VIEWER]),
    ]


def _set_policy(w: World, cell: str) -> Target:
    """Shares a space of the cell's own with the stranger, as a viewer."""
    space = w.governance.CreateSpace(g.CreateSpaceRequest(space_id=cell), metadata=w.owner)
    share_with_team(w.governance, space.name, w.admin)
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=[OWNER]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=[STRANGER]),
        ]
    )

    def effect(allowed: bool) -> None:
        now = w.governance.GetAccessPolicy(g.GetAccessPolicyRequest(resource=space.name), metadata=w.admin)
        members = {member for binding in now.bindings for member in binding.members}
        assert_effect(STRANGER in members, allowed)

    return Target(g.SetAccessPolicyRequest(resource=space.name, policy=policy), effect)


ROWS += [
    Row(
        _G + "GetAccessPolicy", Access.SPACE_OWNER, False, _fixed(g.GetAccessPolicyRequest(resource=SPACE)), _get_policy
    ),
    Row(_G + "SetAccessPolicy", Access.SPACE_OWNER, True, _set_policy),
    Row(_G + "ErasePrincipalData", Access.ADMIN, True, _erase_principal_data),
    *INTERCHANGE_ROWS,
    *LIFECYCLE_ROWS,
    *MODEL_ROWS,
    *MARKETPLACE_ROWS,
    *LICENSE_ROWS,
    *LISTING_ROWS,
    *HELD_ROWS,
]

CELLS = [(row, who) for row in ROWS for who in Who]


def audit_tail(w: World) -> int:
    """The sequence number of the last audit event (reading the log is not audited)."""
    result = w.governance.VerifyAuditLog(g.VerifyAuditLogRequest(), metadata=w.admin)
    assert result.verified, result.problem
    return result.events_checked


def events_after(w: World, sequence: int) -> list[audit_pb2.AuditEvent]:
    request = g.ListAuditEventsRequest(filter=f"sequence > {sequence}", page_size=1000)
    return list(w.governance.ListAuditEvents(request, metadata=w.admin).events)


# -- the tests --------------------------------------------------------------------------


def test_the_matrix_covers_every_governed_method() -> None:
    """A new RPC without a matrix row fails here."""
    governed = {method for method, rule in RULES.items() if rule.check is not Check.PUBLIC}
    covered = [row.method for row in ROWS]
    assert len(covered) == len(set(covered)), "a method has two rows"
    assert set(covered) == governed


@pytest.mark.parametrize("row", ROWS, ids=[row.method.rsplit("/", 1)[1] for row in ROWS])
def test_the_matrix_reads_the_policy_as_the_rules_table_writes_it(row: Row) -> None:
    rule = RULES[row.method]
    assert (row.access, row.audited) == (access_of(rule.check), rule.audited)


@pytest.mark.parametrize(
    ("row", "who"), CELLS, ids=[f"{row.method.rsplit('/', 1)[1]}-{who.value}" for row, who in CELLS]
)
def test_cell(row: Row, who: Who, world: World) -> None:
    want = expected(row.access, who)
    cell = f"{row.method.rsplit('/', 1)[1].lower()}-{who.value}"
    target = row.target(world, cell)
    before = audit_tail(world)

    got = invoke(world, row.method, target.request, world.md(who))

    events = events_after(world, before)  # before the checks below, which may be audited themselves
    events = [event for event in events if event.method not in row.side_calls]
    assert (got.code, got.reason) == (want.code, want.reason), f"{row.method} as {who.value}"
    if want.allowed and row.response is not None:
        row.response(world, who, got.response)
    if target.effect is not None:
        target.effect(want.allowed)
    if want.allowed and not row.audited:
        assert events == [], "an allowed read is not audited"
        return
    assert len(events) == 1, events
    outcome = audit_pb2.AuditEvent.OUTCOME_OK if want.allowed else audit_pb2.AuditEvent.OUTCOME_DENIED
    event = events[0]
    assert (event.method, event.principal, event.outcome, event.status_code, event.reason) == (
        row.method,
        world.principal(who),
        outcome,
        want.code.name,
        want.reason,
    )


def test_the_shared_space_and_cube_are_unchanged_after_the_matrix(world: World) -> None:
    """Whatever order the cells ran in, none of them changed S's cube C or the owner's payload."""
    now = world.vault.GetCube(v.GetCubeRequest(name=CUBE), metadata=world.owner)
    for bookkeeping in ("usage_count", "last_use_time"):  # Recall's cells count their use of C
        now.ClearField(bookkeeping)
    assert now == world.cube
    space = world.governance.GetSpace(g.GetSpaceRequest(name=SPACE), metadata=world.owner)
    assert space.owner == OWNER
    chunks = world.vault.ReadPayload(v.ReadPayloadRequest(name=ACTIVATION_CUBE), metadata=world.owner)
    assert b"".join(c.data for c in chunks) == PAYLOAD
    assert world.token_works(world.tokens[Who.OWNER]) and world.token_works(world.tokens[Who.STRANGER])
    assert not world.token_works(world.tokens[Who.EXPIRED]) and not world.token_works(world.tokens[Who.REVOKED])
    assert audit_tail(world) > 0


# -- blob references ----------------------------------------------------------------------
#
# A digest is no permission (docs/security.md): each caller names the owner's uploaded payload in a
# cube of S and in a cube of a space of its own. Only those who may write S and read the cube that
# names the payload there in full may name it in S; nobody may name it anywhere else. The refusals in
# other spaces are BLOB_NOT_FOUND, as for a digest nobody uploaded. tests/governance/test_blob_isolation.py
# has the same rule for every path that takes a blob reference, for strangers and redacted viewers.

_IN_S: dict[Who, tuple[grpc.StatusCode, str] | None] = {
    Who.OWNER: None,
    Who.EDITOR: None,
    Who.ADMIN: None,
    Who.VIEWER: (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED"),
    Who.STRANGER: (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND"),
}


@pytest.mark.parametrize("who", list(_IN_S), ids=lambda who: who.value)
def test_the_owners_blob_may_be_named_only_in_its_space_by_those_who_may_read_it_there(world: World, who: Who) -> None:
    digest = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()

    def cube_naming_it(parent: str) -> v.CreateCubeRequest:
        payload = cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="test-model", dtype="float32"
        )
        return v.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube(activation=payload))

    want = _IN_S[who]
    if want is None:
        made = world.vault.CreateCube(cube_naming_it(SPACE), metadata=world.md(who))
        assert made.activation.blob.size_bytes == len(PAYLOAD)
    else:
        with pytest.raises(grpc.RpcError) as refused:
            world.vault.CreateCube(cube_naming_it(SPACE), metadata=world.md(who))
        assert (refused.value.code(), reason_of(refused.value)) == want

    own = f"own-{who.value}"
    world.governance.CreateSpace(g.CreateSpaceRequest(space_id=own), metadata=world.md(who))
    with pytest.raises(grpc.RpcError) as refused:
        world.vault.CreateCube(cube_naming_it(f"spaces/{own}"), metadata=world.md(who))
    assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "BLOB_NOT_FOUND")
    listed = world.vault.ListCubes(v.ListCubesRequest(parent=f"spaces/{own}"), metadata=world.md(who))
    assert not listed.cubes


# -- held licenses ------------------------------------------------------------------------
#
# The matrix's cells read held licenses of their callers' own. A held license of the owner's is NOT_FOUND to
# every other non-admin principal, as a name nobody holds is, and left out of their lists; a page token is the
# caller's alone; and the cubes of a licensed import into a space stay as hidden as the space.

_NOBODYS = "heldLicenses/" + "0" * 64


def _refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), reason_of(refused.value)


@pytest.mark.parametrize("who", [Who.EDITOR, Who.VIEWER, Who.STRANGER], ids=lambda who: who.value)
def test_another_principals_held_license_is_not_found_and_not_listed(world: World, who: Who) -> None:
    name = held_license(world, Who.OWNER)
    stub = HeldLicenseServiceStub(world.channel)

    def get(held: str) -> Callable[[], object]:
        return lambda: stub.GetHeldLicense(h.GetHeldLicenseRequest(name=held), metadata=world.md(who))

    assert _refusal(get(name)) == _refusal(get(_NOBODYS)) == (grpc.StatusCode.NOT_FOUND, "HELD_LICENSE_NOT_FOUND")
    listed = stub.ListHeldLicenses(h.ListHeldLicensesRequest(page_size=1000), metadata=world.md(who))
    assert name not in {x.name for x in listed.held_licenses}
    assert all(x.licensee == world.principal(who) for x in listed.held_licenses)
    seen = stub.GetHeldLicense(h.GetHeldLicenseRequest(name=name), metadata=world.admin)
    assert seen.licensee == OWNER


def test_a_held_license_page_token_is_the_callers_alone(world: World) -> None:
    stub = HeldLicenseServiceStub(world.channel)
    held_license(world, Who.OWNER)
    licensed_import(world, Who.OWNER)  # two: a page of one has a next page
    first = stub.ListHeldLicenses(h.ListHeldLicensesRequest(page_size=1), metadata=world.owner)
    assert len(first.held_licenses) == 1 and first.next_page_token
    for who in (Who.STRANGER, Who.VIEWER, Who.ADMIN):
        request = h.ListHeldLicensesRequest(page_size=1, page_token=first.next_page_token)
        assert _refusal(lambda: stub.ListHeldLicenses(request, metadata=world.md(who))) == (  # noqa: B023
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        )
    second = stub.ListHeldLicenses(
        h.ListHeldLicensesRequest(page_size=1, page_token=first.next_page_token), metadata=world.owner
    )
    assert [x.name for x in second.held_licenses] != [x.name for x in first.held_licenses]
    assert second.held_licenses[0].licensee == OWNER


@pytest.mark.parametrize("who", [Who.EDITOR, Who.VIEWER, Who.STRANGER], ids=lambda who: who.value)
def test_a_licensed_cube_is_hidden_from_those_who_cannot_see_its_space(world: World, who: Who) -> None:
    name, space = licensed_import(world, Who.OWNER)  # a space of the owner's alone
    (cube,) = world.vault.ListCubes(v.ListCubesRequest(parent=space), metadata=world.owner).cubes
    assert cube.license.held_license == name
    held = HeldLicenseServiceStub(world.channel)

    def uses() -> list[tuple[str, int]]:
        reply = held.GetHeldLicense(h.GetHeldLicenseRequest(name=name), metadata=world.owner)
        return [(a.action, a.uses) for a in reply.actions]

    before = uses()
    md = world.md(who)
    hidden = (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")
    assert _refusal(lambda: world.vault.GetCube(v.GetCubeRequest(name=cube.name), metadata=md)) == hidden
    search = v.SearchCubesRequest(parent=space, text="what the owner sells", top_k=5)
    assert _refusal(lambda: world.vault.SearchCubes(search, metadata=md)) == hidden
    recall = s.RecallRequest(parent=space, query="what the owner sells", token_budget=100)
    assert _refusal(lambda: SchedulerServiceStub(world.channel).Recall(recall, metadata=md)) == hidden
    assert uses() == before  # nothing the refused calls did used the license
    # Let in as a viewer, it sees the cube and the name of its license, but not the license: that is the owner's.
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=[OWNER]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=[world.principal(who)]),
        ]
    )
    world.governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy), metadata=world.owner)
    assert world.vault.GetCube(v.GetCubeRequest(name=cube.name), metadata=md).license.held_license == name
    get = h.GetHeldLicenseRequest(name=name)
    assert _refusal(lambda: held.GetHeldLicense(get, metadata=md)) == (
        grpc.StatusCode.NOT_FOUND,
        "HELD_LICENSE_NOT_FOUND",
    )
