"""The keys this server signs with: its node key, and the keys it keeps for principals.

The node key is created at first start (``keys/node.key``, mode 0600) and
published as the principal ``principals/node``. A principal for whom the
server keeps a key (``CreateSigningKey``) co-signs the bundles it exports.
"""

from __future__ import annotations

import logging
from pathlib import Path

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc.errors import AlreadyExistsError
from memos_grpc.governance.identity import Principals, parse_principal_name, principal_name
from memos_grpc.primitives.keys import SigningKey

log = logging.getLogger(__name__)

NODE_PRINCIPAL_ID = "node"
#: The node key's file, under the key directory.
NODE_KEY_FILE = "node.key"
NODE_PRINCIPAL = principal_name(NODE_PRINCIPAL_ID)


class Signers:
    """The node's signing key and the keys the server keeps for principals, from the key directory.

    Created once per vault; publishes the node key as ``principals/node`` on construction. Decides who signs an
    exported bundle (``bundle_signers``); whether a signature is trusted is the trust root's business.
    """

    def __init__(self, key_dir: Path, principals: Principals) -> None:
        self._principals = principals
        self._principal_dir = key_dir / "principals"
        self.node = SigningKey.load_or_create(key_dir / NODE_KEY_FILE)
        self._publish_node()

    def _publish_node(self) -> None:
        public = principal_pb2.PublicKey(public_key=self.node.public_key, algorithm="ed25519")
        if NODE_PRINCIPAL_ID not in {name.split("/", 1)[1] for name in self._principals.names()}:
            try:
                self._principals.create(
                    NODE_PRINCIPAL_ID,
                    principal_pb2.Principal(
                        kind=principal_pb2.Principal.KIND_PEER_NODE, display_name="this server's node key"
                    ),
                )
            except AlreadyExistsError:
                # Another server of the database, starting at the same time, published it first.
                self._principals.reload()
        self._principals.add_public_key(NODE_PRINCIPAL, public)

    def _path(self, principal: str) -> Path:
        return self._principal_dir / f"{parse_principal_name(principal, 'parent')}.key"

    def for_principal(self, principal: str) -> SigningKey | None:
        """The key the server keeps for ``principal``, if it keeps one."""
        if principal == NODE_PRINCIPAL or not principal.startswith("principals/"):
            return None
        path = self._path(principal)
        return SigningKey.read(path) if path.exists() else None

    def create_for(self, principal: str) -> principal_pb2.PublicKey:
        """Creates and keeps a key for ``principal`` (which must exist) and registers its public half."""
        self._principals.get(principal)
        path = self._path(principal)
        if principal == NODE_PRINCIPAL or path.exists():
            raise AlreadyExistsError(
                f"the server already keeps a signing key for {principal}", reason=reasons.SIGNING_KEY_EXISTS
            )
        key = SigningKey.generate()
        key.write(path)
        return self._principals.add_public_key(
            principal, principal_pb2.PublicKey(public_key=key.public_key, algorithm="ed25519")
        )

    def forget(self, principal: str) -> None:
        """Destroys the key kept for a deleted principal (it can sign nothing more)."""
        if principal != NODE_PRINCIPAL:
            self._path(principal).unlink(missing_ok=True)

    def bundle_signers(self, principal: str) -> list[SigningKey]:
        """Who signs a bundle ``principal`` exports: the node, then the principal's kept key if any."""
        own = self.for_principal(principal)
        return [self.node] if own is None else [self.node, own]
