"""Trust-root edits for tests: make one server trust another's keys, the way an operator would."""

from __future__ import annotations

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import trust_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot, parse_trust_root
from memos_grpc.primitives.keys import TrustedKey, key_id


def current_root(governance: GovernanceServiceStub) -> TrustRoot:
    message = governance.GetTrustRoot(g.GetTrustRootRequest())
    return parse_trust_root(parse_envelope(message.signed_envelope).payload)


def propose(governance: GovernanceServiceStub, root: TrustRoot) -> trust_pb2.TrustRoot:
    """Submits ``root`` unsigned; the server's node key (admin in the first root) signs it."""
    envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload())
    return governance.UpdateTrustRoot(
        g.UpdateTrustRootRequest(signed_envelope=envelope.to_json(), add_node_signature=True)
    )


def with_key(root: TrustRoot, role: str, public_key: bytes, name: str = "", threshold: int | None = None) -> TrustRoot:
    """The next version of ``root`` with one more key in ``role``."""
    added = TrustedKey(key_id(public_key), public_key, name)
    roles = dict(root.roles)
    current = roles.get(role, Role())
    roles[role] = Role((*current.key_ids, added.key_id), threshold or current.threshold)
    return TrustRoot(root.version + 1, root.expires, {**root.keys, added.key_id: added}, roles)


def trust_keys(governance: GovernanceServiceStub, other: trust_pb2.TrustRoot, role: str = "node") -> None:
    """Makes the server behind ``governance`` trust, for ``role``, the node keys of another server's root."""
    node_ids = {k for r in other.roles if r.role == trust_pb2.KEY_ROLE_NODE for k in r.key_ids}
    root = current_root(governance)
    for key in other.keys:
        if key.key_id in node_ids and key.key_id not in root.role(role).key_ids:
            root = with_key(root, role, key.public_key, key.name)
            root = TrustRoot(root.version, root.expires, root.keys, root.roles)
    propose(governance, TrustRoot(current_root(governance).version + 1, root.expires, root.keys, root.roles))
