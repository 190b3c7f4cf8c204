"""The trust root in force on this server: created at first start, replaced only by signed updates.

Every version is kept in DuckDB as the envelope that was signed; the newest
is in force. The first one trusts the server's own node key as admin and as
node, so an operator extends it with ``UpdateTrustRoot`` (which the node may
co-sign) to trust peers, publishers and a marketplace.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import trust_pb2
from memos_grpc.errors import FailedPreconditionError, TrustRootError
from memos_grpc.interchange.bundle import TrustPolicy
from memos_grpc.interchange.dsse import Envelope, parse_envelope, sign_envelope
from memos_grpc.interchange.trust import (
    TRUST_ROOT_PAYLOAD_TYPE,
    Role,
    TrustRoot,
    parse_trust_root,
    verify_root_update,
)
from memos_grpc.primitives.canonical import format_time
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.store.cursor import TRUST
from memos_grpc.store.database import Connection
from memos_grpc.store.rows import set_timestamp
from memos_grpc.store.trust import insert_trust_root, newest_trust_root, newest_trust_root_version
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import invalid

log = logging.getLogger(__name__)

ROLE_NAMES = {
    trust_pb2.KEY_ROLE_ADMIN: "admin",
    trust_pb2.KEY_ROLE_NODE: "node",
    trust_pb2.KEY_ROLE_PUBLISHER: "publisher",
    trust_pb2.KEY_ROLE_MARKETPLACE: "marketplace",
}
ROLE_ENUMS = {name: value for value, name in ROLE_NAMES.items()}


def role_name(role: int) -> str:
    """The trust root role of a KeyRole (unset means node)."""
    if role == trust_pb2.KEY_ROLE_UNSPECIFIED:
        return "node"
    if role not in ROLE_NAMES:
        raise invalid(f"trust_policy.role {role} is not a known KeyRole", reasons.INVALID_ENUM)
    return ROLE_NAMES[role]  # type: ignore[index]


class TrustStore:
    """Keeper of the trust root in force on this node, and of every earlier version in DuckDB.

    One per vault. Hands out the ``TrustPolicy`` a bundle is verified under (FAILED_PRECONDITION
    ``TRUST_ROOT_EXPIRED`` once the root has expired) and puts a new version in force only after
    ``verify_root_update`` accepts it and it is stored; the root is swapped whole, so readers see one version.
    """

    def __init__(self, context: VaultContext, node_key: SigningKey, node_principal: str) -> None:
        self._context = context
        self._node_key = node_key
        with context.database.read() as cursor:
            found = newest_trust_root(cursor)
        if found is None:
            try:
                self._root, self._envelope = self._create_first(node_principal)
            except TrustRootError as exc:
                if exc.reason != reasons.TRUST_ROOT_ROLLBACK:
                    raise
                # Another server of the database, starting at the same time, stored the first version first.
                with context.database.read() as cursor:
                    found = newest_trust_root(cursor)
        if found is not None:
            self._envelope = found
            self._root = parse_trust_root(parse_envelope(self._envelope).payload)
        self._message = wire_form(self._root, self._envelope)
        if context.store.follower is not None:
            # Another server of the database may put a newer version in force: take it up as it commits.
            context.store.follower.subscribe(TRUST, lambda _change: self.reload())

    def reload(self) -> None:
        """Puts in force the newest version the database holds (another server stored it)."""
        with self._context.database.read() as cursor:
            found = newest_trust_root(cursor)
        if found is None or found == self._envelope:
            return
        root = parse_trust_root(parse_envelope(found).payload)
        # Swapped whole, as ``update`` does, so a reader sees one version.
        self._root, self._envelope, self._message = root, found, wire_form(root, found)

    def _create_first(self, node_principal: str) -> tuple[TrustRoot, bytes]:
        now = self._context.clock()
        node = TrustedKey(self._node_key.key_id, self._node_key.public_key, node_principal)
        root = TrustRoot(
            version=1,
            expires=now.replace(microsecond=0) + timedelta(days=self._context.settings.trust_root_days),
            keys={node.key_id: node},
            roles={
                "admin": Role((node.key_id,), 1),
                "node": Role((node.key_id,), 1),
                "publisher": Role((), 1),
                "marketplace": Role((), 1),
            },
        )
        envelope = sign_envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload(), [self._node_key]).to_json()
        wire_form(root, envelope)
        self._store(root, envelope)
        log.warning(
            "created trust root version 1 (node key %s as admin), valid until %s",
            node.key_id,
            format_time(root.expires),
        )
        return root, envelope

    def _store(self, root: TrustRoot, envelope: bytes) -> None:
        now = self._context.clock()

        def apply(cursor: Connection) -> None:
            newest = newest_trust_root_version(cursor)
            if newest is not None and newest >= root.version:
                raise TrustRootError(
                    f"trust root version {root.version} is not newer than {newest} (a concurrent update won)",
                    reason=reasons.TRUST_ROOT_ROLLBACK,
                )
            insert_trust_root(cursor, root.version, envelope, root.expires, now)

        self._context.database.write(apply)

    @property
    def root(self) -> TrustRoot:
        return self._root

    def message(self) -> trust_pb2.TrustRoot:
        message = trust_pb2.TrustRoot()
        message.CopyFrom(self._message)  # callers may change theirs
        return message

    def policy(self, role: int, required_key_ids: list[str], now: datetime) -> TrustPolicy:
        """The keys a bundle must be signed by, under the root in force; refused once the root has expired."""
        root = self._root
        if root.expires <= now:
            raise FailedPreconditionError(
                f"the trust root (version {root.version}) expired at {format_time(root.expires)}; an admin must "
                "renew it with UpdateTrustRoot before bundles can be verified",
                reason=reasons.TRUST_ROOT_EXPIRED,
            )
        name = role_name(role)
        return TrustPolicy(name, root.keys_for(name), root.threshold_for(name), tuple(required_key_ids))

    def update(self, envelope_json: bytes, add_node_signature: bool) -> trust_pb2.TrustRoot:
        """Puts a newer, properly signed trust root in force (docs/protocol.md)."""
        if add_node_signature:
            try:
                envelope = parse_envelope(envelope_json)
            except ValueError as exc:
                raise TrustRootError(
                    f"the trust root envelope is malformed: {exc}", reason=reasons.TRUST_ROOT_MALFORMED
                ) from exc
            envelope_json = envelope.signed_by(self._node_key).to_json()
        proposed, _ = verify_root_update(self._root, envelope_json, self._context.clock())
        # Both forms before the write: a root that cannot be sent or read back is never put in force.
        message = wire_form(proposed, envelope_json)
        self._store(proposed, envelope_json)
        self._root, self._envelope, self._message = proposed, envelope_json, message
        log.warning("trust root version %d is now in force", proposed.version)
        return self.message()

    def adopt_marketplace(self, key: TrustedKey, policy_text: str, origin: str) -> None:
        """Makes this root name a marketplace key and its log's policy (a new version the node key signs).

        A marketplace node calls it at start so that its own trust root publishes what buyers copy into theirs:
        its marketplace key (role ``marketplace``) and its log's tlog-policy (``marketplaceLogs``, replacing an
        older policy of the same origin). Nothing changes when the root already says so; when the node key alone
        no longer meets the admin threshold an admin must make the change, and the node says so in its log.
        """
        root = self._root
        policies = root.log_policies
        others = tuple(
            text
            for text, policy in zip(root.marketplace_logs, policies, strict=True)
            if all(log.name != origin for log in policy.logs)
        )
        logs = (*others, policy_text)
        role = root.role("marketplace")
        if key.key_id in role.key_ids and policy_text in root.marketplace_logs:
            return
        roles = dict(root.roles)
        roles["marketplace"] = Role(
            role.key_ids if key.key_id in role.key_ids else (*role.key_ids, key.key_id), role.threshold
        )
        keys = {**root.keys, key.key_id: root.keys.get(key.key_id, key)}
        proposed = TrustRoot(root.version + 1, root.expires, keys, roles, logs)
        envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, proposed.payload())
        try:
            self.update(envelope.to_json(), add_node_signature=True)
        except TrustRootError as error:
            log.warning(
                "the trust root does not name this marketplace's key and log policy, and the node key cannot "
                "change it (%s: %s): an admin should add marketplace key %s and the policy of %s",
                error.reason,
                error.message,
                key.key_id,
                origin,
            )


def wire_form(root: TrustRoot, envelope: bytes) -> trust_pb2.TrustRoot:
    """The root as ``GetTrustRoot`` sends it, after checking that the stored envelope reads back as ``root``.

    Raises TrustRootError (TRUST_ROOT_MALFORMED) when either form fails, so nothing is stored.
    """
    try:
        message = to_message(root, envelope)
        message.SerializeToString()
        again = parse_trust_root(parse_envelope(envelope).payload)
    except (ValueError, TypeError, OverflowError) as exc:  # EnvelopeFormatError is a ValueError
        raise TrustRootError(
            f"the trust root cannot be represented on the wire: {exc}", reason=reasons.TRUST_ROOT_MALFORMED
        ) from exc
    if again != root:
        raise TrustRootError("the trust root does not read back as it was checked", reason=reasons.TRUST_ROOT_MALFORMED)
    return message


def to_message(root: TrustRoot, envelope: bytes) -> trust_pb2.TrustRoot:
    message = trust_pb2.TrustRoot(version=root.version, signed_envelope=envelope)
    set_timestamp(message.expire_time, root.expires)
    for key in sorted(root.keys.values(), key=lambda k: k.key_id):
        item = message.keys.add(key_id=key.key_id, public_key=key.public_key, name=key.name)
        for field_name, when in (
            ("not_before", key.not_before),
            ("not_after", key.not_after),
            ("revoke_time", key.revoked_at),
        ):
            if when is not None:
                set_timestamp(getattr(item, field_name), when)
    for name, role in sorted(root.roles.items()):
        if name in ROLE_ENUMS:
            message.roles.add(role=ROLE_ENUMS[name], key_ids=sorted(role.key_ids), threshold=role.threshold)
    message.log_policies.extend(root.marketplace_logs)
    return message
