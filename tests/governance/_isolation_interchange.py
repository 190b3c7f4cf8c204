"""The isolation matrix's rows for InterchangeService and the trust-root and signing-key RPCs.

Each import lands in a space of the cell's own (shared with the team like S),
so an allowed import is seen to create cubes and a refused one to leave the
space empty; the bundle is one export of S, made once.
"""

from __future__ import annotations

from typing import Any

from _isolation_world import (
    _G,
    _I,
    OWNER,
    SPACE,
    Access,
    Row,
    Target,
    Who,
    World,
    assert_effect,
    share_with_team,
)

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, TrustRoot, parse_trust_root
from memos_grpc.primitives.keys import SigningKey

_bundles: dict[int, tuple[bytes, int]] = {}


def bundle_of_s(w: World) -> tuple[bytes, int]:
    """One export of S by the admin, and how many cubes S held then (it grows as cells run)."""
    if id(w) not in _bundles:
        held = cube_count(w, SPACE)
        chunks = InterchangeServiceStub(w.channel).ExportBundle(i.ExportBundleRequest(parent=SPACE), metadata=w.admin)
        _bundles[id(w)] = (b"".join(c.chunk for c in chunks), held)
    return _bundles[id(w)]


def cell_space(w: World, cell: str) -> str:
    space = w.governance.CreateSpace(g.CreateSpaceRequest(space_id=cell), metadata=w.metadata[Who.OWNER])
    share_with_team(w.governance, space.name, w.admin)
    return space.name


def cube_count(w: World, space: str) -> int:
    return len(w.vault.ListCubes(v.ListCubesRequest(parent=space), metadata=w.admin).cubes)


def _import_bundle(w: World, cell: str) -> Target:
    space = cell_space(w, cell)
    bundle, held = bundle_of_s(w)
    request = [i.ImportBundleRequest(parent=space), i.ImportBundleRequest(chunk=bundle)]
    return Target(request, lambda allowed: assert_effect(cube_count(w, space), held if allowed else 0))


def _import_from_peer(w: World, cell: str) -> Target:
    space = cell_space(w, cell)
    request = i.ImportFromPeerRequest(
        parent=space,
        peer_target=w.server.address,
        peer_token=w.tokens[Who.ADMIN],
        peer_plaintext=True,
        selection=i.ExportBundleRequest(parent=SPACE),
    )
    held = cube_count(w, SPACE)
    return Target(request, lambda allowed: assert_effect(cube_count(w, space), held if allowed else 0))


def _update_trust_root(w: World, cell: str) -> Target:
    current = w.governance.GetTrustRoot(g.GetTrustRootRequest(), metadata=w.admin)
    root = parse_trust_root(parse_envelope(current.signed_envelope).payload)
    # The same root, renewed: it keeps naming the server's own marketplace, which the held licenses' cells buy from.
    renewed = TrustRoot(root.version + 1, root.expires, root.keys, root.roles, root.marketplace_logs)
    request = g.UpdateTrustRootRequest(
        signed_envelope=Envelope(TRUST_ROOT_PAYLOAD_TYPE, renewed.payload()).to_json(), add_node_signature=True
    )

    def effect(allowed: bool) -> None:
        now = w.governance.GetTrustRoot(g.GetTrustRootRequest(), metadata=w.admin).version
        assert_effect(now, renewed.version if allowed else root.version)

    return Target(request, effect)


def _create_signing_key(w: World, cell: str) -> Target:
    # The owner's kept key, if an earlier cell made one, goes: each cell starts without it.
    key_file = w.server.settings.key_dir / "principals" / "owner.key"
    key_file.unlink(missing_ok=True)
    return Target(g.CreateSigningKeyRequest(parent=OWNER), lambda allowed: assert_effect(key_file.is_file(), allowed))


def _register_public_key(w: World, cell: str) -> Target:
    key = SigningKey.generate()  # a key of the cell's own, registered to the owner when allowed

    def effect(allowed: bool) -> None:
        keys = w.governance.GetPrincipal(g.GetPrincipalRequest(name=OWNER), metadata=w.admin).public_keys
        assert_effect(key.key_id in {k.key_id for k in keys}, allowed)

    request = g.RegisterPublicKeyRequest(parent=OWNER, public_key=principal_pb2.PublicKey(public_key=key.public_key))
    return Target(request, effect)


def _bundle_response(_w: World, _who: Who, response: Any) -> None:
    assert response[0].chunk.startswith(b"memos-bundle")


def _valid_report(w: World, _who: Who, response: i.VerifyBundleResponse) -> None:
    assert response.verification.valid, response.verification.message
    assert response.verification.cube_count == bundle_of_s(w)[1]


INTERCHANGE_ROWS: list[Row] = [
    Row(
        _I + "ExportBundle",
        Access.SPACE_READ,
        True,
        lambda _w, _c: Target(i.ExportBundleRequest(parent=SPACE)),
        _bundle_response,
    ),
    Row(_I + "ImportBundle", Access.SPACE_WRITE, True, _import_bundle),
    Row(
        _I + "VerifyBundle",
        Access.AUTHENTICATED,
        False,
        lambda w, _c: Target([i.VerifyBundleRequest(chunk=bundle_of_s(w)[0])]),
        _valid_report,
    ),
    # The peer is this very server: its ExportBundle is audited there as a call of its own.
    Row(_I + "ImportFromPeer", Access.ADMIN, True, _import_from_peer, side_calls=(_I + "ExportBundle",)),
    Row(
        _G + "GetTrustRoot",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(g.GetTrustRootRequest()),
        lambda _w, _who, r: assert_effect(r.version >= 1 and bool(r.signed_envelope), True),
    ),
    Row(_G + "UpdateTrustRoot", Access.ADMIN, True, _update_trust_root),
    Row(_G + "CreateSigningKey", Access.SELF, True, _create_signing_key),
    Row(_G + "RegisterPublicKey", Access.SELF, True, _register_public_key),
]
