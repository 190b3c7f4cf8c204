"""Interchange calls of the client: signed bundles (export, import, verify, peer pulls), trust root, signing keys.

``InterchangeCalls`` is mixed into ``MemosClient``; it relies on the client's
``_unary``, ``timeout``, ``_metadata`` and its interchange and governance stubs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from tqdm import tqdm

from memos_client._stubs import InterchangeStub
from memos_client.bundle_types import (
    BundleVerification,
    ImportResult,
    PublicKey,
    TrustRoot,
)
from memos_client.errors import from_rpc_error
from memos_client.governance import principal_name
from memos_client.names import cube_name, space_name
from memos_grpc._proto.memos.v1 import governance_service_pb2, interchange_service_pb2, principal_pb2, trust_pb2

_g = governance_service_pb2
_i = interchange_service_pb2

#: Size of the pieces a bundle file is read and uploaded in.
FILE_CHUNK_BYTES = 1 << 20
#: What ``progress`` may be: falsy for none, True for a tqdm bar on stderr, or a callable given each chunk's size.
Progress = bool | Callable[[int], object] | None

_CONFLICT_POLICIES = {
    "skip": _i.CONFLICT_POLICY_SKIP,
    "new_version": _i.CONFLICT_POLICY_NEW_VERSION,
    "replace": _i.CONFLICT_POLICY_REPLACE,
}
_ROLES = {
    "admin": trust_pb2.KEY_ROLE_ADMIN,
    "node": trust_pb2.KEY_ROLE_NODE,
    "publisher": trust_pb2.KEY_ROLE_PUBLISHER,
    "marketplace": trust_pb2.KEY_ROLE_MARKETPLACE,
}
#: The conflict policies and trust roles, as the client's methods and the CLI spell them.
CONFLICT_POLICIES = tuple(_CONFLICT_POLICIES)
ROLES = tuple(_ROLES)


def _choice(value: str, choices: dict[str, Any], what: str) -> Any:
    text = value.strip().lower().replace("-", "_")
    if text not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of: {', '.join(choices)}")
    return choices[text]


def trust_policy(role: str, required_key_ids: Sequence[str]) -> interchange_service_pb2.TrustPolicy:
    """The wire ``TrustPolicy`` for a role name ("node", "publisher", ...) and pinned key ids."""
    return _i.TrustPolicy(role=_choice(role, _ROLES, "role"), required_key_ids=list(required_key_ids))


def conflict_policy_number(policy: str) -> int:
    """The ``ConflictPolicy`` number of "skip", "new_version" (or "new-version") or "replace"."""
    number: int = _choice(policy, _CONFLICT_POLICIES, "conflict policy")
    return number


def release_info(listing: str, release_id: str, terms_json: str | bytes) -> interchange_service_pb2.ReleaseInfo:
    """What ``export_bundle(release=...)`` names for release ``release_id`` of ``listing`` under these terms.

    The license is the terms' ``license`` member and the digest the sha256 of
    their UTF-8 bytes, as the marketplace checks them on publish.
    """
    data = terms_json.encode("utf-8") if isinstance(terms_json, str) else terms_json
    try:
        license = json.loads(data)["license"]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"the terms are not a JSON object with a license: {error}") from None
    if not isinstance(license, str):
        raise ValueError("the terms' license must be a string (an SPDX expression)")
    return _i.ReleaseInfo(
        listing=listing if listing.startswith("listings/") else f"listings/{listing}",
        release=release_id,
        license=license,
        terms_digest="sha256:" + hashlib.sha256(data).hexdigest(),
    )


def release_license(grant: bytes | None, proof: str | None) -> interchange_service_pb2.ReleaseLicense | None:
    """The wire ``ReleaseLicense`` of a licensed import, or None for neither; one without the other is a ValueError."""
    if grant is None and proof is None:
        return None
    if grant is None or proof is None:
        raise ValueError("a licensed import needs both the grant and its proof (tlog-proof@v1), or neither")
    if not grant or not proof:
        raise ValueError("the grant and the proof of a licensed import must not be empty")
    return _i.ReleaseLicense(grant=grant, proof=proof)


def _cube_names(space: str, names: Sequence[str]) -> list[str]:
    """Full cube names; a bare cube id is taken to be in ``space``."""
    return [n if n.startswith("spaces/") else cube_name(space, n) for n in names]


def read_chunks(source: BinaryIO, update: Callable[[int], object] | None = None) -> Iterator[bytes]:
    """Yields a binary file in ``FILE_CHUNK_BYTES`` pieces, never holding more than one, reporting each size."""
    while chunk := source.read(FILE_CHUNK_BYTES):
        if update is not None:
            update(len(chunk))
        yield chunk


@contextlib.contextmanager
def progress_updates(progress: Progress, total: int | None, desc: str) -> Iterator[Callable[[int], object]]:
    """A callable to report bytes done: ``progress`` itself if callable, else a tqdm bar (hidden unless truthy)."""
    if callable(progress):
        yield progress
        return
    with tqdm(
        total=total,
        disable=not progress,
        file=sys.stderr,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
    ) as bar:
        yield bar.update


# -- Calls ---------------------------------------------------------------------


class InterchangeCalls:
    """Signed bundles of cubes, the trust root that decides which signatures count, and signing keys."""

    timeout: float | None
    stream_timeout: float | None
    _metadata: tuple[tuple[str, str | bytes], ...]
    _interchange: InterchangeStub
    _governance: Any

    def _unary(self, method: Any, request: Any) -> Any:  # provided by MemosClient
        raise NotImplementedError

    def _stream_unary(self, method: Any, requests: Iterator[Any], failures: list[BaseException]) -> Any:
        """Calls a client-streaming method; an error raised by the caller's chunks wins over the cancelled call."""
        try:
            return method(requests, timeout=self.stream_timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            if failures:
                raise failures[0] from error
            raise from_rpc_error(error) from error

    # -- Export --------------------------------------------------------------

    def export_bundle(
        self,
        parent: str,
        *,
        names: Sequence[str] = (),
        filter: str = "",
        release: interchange_service_pb2.ReleaseInfo | None = None,
    ) -> Iterator[bytes]:
        """Yields the signed bundle of cubes of ``parent`` in chunks; joined, they are the bundle file.

        ``names`` picks cubes (ids or full names; empty: all) and ``filter``
        is an AIP-160 filter they must match. With ``release`` (see
        ``release_info``) the statement also names a marketplace listing,
        release, license and terms digest: a bundle ``publish_release`` takes.
        The call starts on the first ``next()``; closing the iterator early cancels it.
        """
        space = space_name(parent)
        request = _i.ExportBundleRequest(parent=space, names=_cube_names(space, names), filter=filter, release=release)
        call = self._interchange.ExportBundle(request, timeout=self.stream_timeout, metadata=self._metadata)
        try:
            for response in call:
                yield response.chunk
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def export_bundle_to_file(
        self,
        parent: str,
        path: str | os.PathLike[str],
        *,
        names: Sequence[str] = (),
        filter: str = "",
        release: interchange_service_pb2.ReleaseInfo | None = None,
        progress: Progress = None,
    ) -> int:
        """Writes the bundle of ``parent`` to ``path`` and returns its size in bytes.

        The bytes go to ``path + ".part"``, renamed to ``path`` once complete:
        a failed export leaves no file behind (and an older ``path`` intact).
        With ``progress`` True a tqdm bar (bytes) is drawn on stderr; a
        callable is called with the size of each chunk instead.
        """
        target = Path(path)
        part = target.with_name(target.name + ".part")
        written = 0
        try:
            with progress_updates(progress, None, target.name) as update, open(part, "wb") as out:
                for chunk in self.export_bundle(parent, names=names, filter=filter, release=release):
                    out.write(chunk)
                    written += len(chunk)
                    update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return written

    # -- Import and verification ---------------------------------------------

    def import_bundle(
        self,
        parent: str,
        chunks: Iterable[bytes],
        *,
        conflict_policy: str = "skip",
        role: str = "node",
        required_key_ids: Sequence[str] = (),
        grant: bytes | None = None,
        proof: str | None = None,
    ) -> ImportResult:
        """Uploads a bundle (its bytes in chunks) and imports its cubes into ``parent``, all or nothing.

        The server first verifies it against its trust root: signatures by a
        threshold of the keys of ``role`` ("node", "publisher", "marketplace"
        or "admin"), plus one by each of ``required_key_ids``. A cube whose
        provenance id is already in the space is kept (``conflict_policy``
        "skip"), becomes a new version ("new_version") or is replaced
        ("replace"). A refused bundle raises ``InvalidArgumentError`` whose
        ``reason`` is the failed step (``BUNDLE_DIGEST_MISMATCH``, ...).

        A marketplace release is imported with its license instead: ``grant``
        (the grant envelope, DSSE JSON) and ``proof`` (its tlog-proof@v1 text),
        both or neither; ``role`` and ``required_key_ids`` are not used then.
        The server checks the grant for the caller and the proof against its
        trust root's log policy; a refusal raises ``FailedPreconditionError``
        with the failed check's reason (``GRANT_*``, ``TLOG_PROOF_*``,
        ``LICENSE_REVOKED``, ``RELEASE_YANKED``, ...).
        """
        first = _i.ImportBundleRequest(
            parent=space_name(parent),
            conflict_policy=conflict_policy_number(conflict_policy),  # type: ignore[arg-type]
        )
        license = release_license(grant, proof)
        if license is None:
            first.trust_policy.CopyFrom(trust_policy(role, required_key_ids))
        else:
            first.license.CopyFrom(license)
        failures: list[BaseException] = []
        requests = _requests(first, chunks, lambda c: _i.ImportBundleRequest(chunk=c), failures)
        response = self._stream_unary(self._interchange.ImportBundle, requests, failures)
        return ImportResult.from_proto(response)

    def import_bundle_file(
        self,
        parent: str,
        path: str | os.PathLike[str],
        *,
        conflict_policy: str = "skip",
        role: str = "node",
        required_key_ids: Sequence[str] = (),
        grant: bytes | None = None,
        proof: str | None = None,
        progress: Progress = None,
    ) -> ImportResult:
        """``import_bundle`` of a bundle file, read in 1 MiB chunks (``progress`` as in ``export_bundle_to_file``)."""
        release_license(grant, proof)  # before the file is opened: a lone grant or proof is the caller's mistake
        source_path = Path(path)
        with open(source_path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            with progress_updates(progress, size, source_path.name) as update:
                return self.import_bundle(
                    parent,
                    read_chunks(source, update),
                    conflict_policy=conflict_policy,
                    role=role,
                    required_key_ids=required_key_ids,
                    grant=grant,
                    proof=proof,
                )

    def verify_bundle(
        self, chunks: Iterable[bytes], *, role: str = "node", required_key_ids: Sequence[str] = ()
    ) -> BundleVerification:
        """Has the server verify a bundle against its trust root, importing nothing.

        A bad bundle is not an error: the result is false, with the ``reason``
        of the first failed step and each signature's status.
        """
        first = _i.VerifyBundleRequest(trust_policy=trust_policy(role, required_key_ids))
        failures: list[BaseException] = []
        requests = _requests(first, chunks, lambda c: _i.VerifyBundleRequest(chunk=c), failures)
        response = self._stream_unary(self._interchange.VerifyBundle, requests, failures)
        return BundleVerification.from_proto(response.verification)

    def verify_bundle_file(
        self,
        path: str | os.PathLike[str],
        *,
        role: str = "node",
        required_key_ids: Sequence[str] = (),
        progress: Progress = None,
    ) -> BundleVerification:
        """``verify_bundle`` of a bundle file, streamed in 1 MiB chunks."""
        source_path = Path(path)
        with open(source_path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            with progress_updates(progress, size, source_path.name) as update:
                return self.verify_bundle(read_chunks(source, update), role=role, required_key_ids=required_key_ids)

    def import_from_peer(
        self,
        parent: str,
        peer_target: str,
        peer_token: str,
        selection_parent: str,
        *,
        names: Sequence[str] = (),
        filter: str = "",
        peer_ca_certificates: bytes = b"",
        peer_tls_server_name: str = "",
        peer_plaintext: bool = False,
        conflict_policy: str = "skip",
        role: str = "node",
        required_key_ids: Sequence[str] = (),
    ) -> ImportResult:
        """Has the server pull a bundle from another server and import it into ``parent``, as ``import_bundle``.

        The server exports ``selection_parent`` (a space of the peer; ``names``
        and ``filter`` as in ``export_bundle``) from ``peer_target`` with
        ``peer_token``, over TLS checked with ``peer_ca_certificates`` (PEM;
        empty: the server's own setting), unless ``peer_plaintext`` and the
        server allows it. The peer's bundle must be signed by keys this server
        trusts for ``role``.
        """
        selection_space = space_name(selection_parent)
        request = _i.ImportFromPeerRequest(
            parent=space_name(parent),
            peer_target=peer_target,
            peer_token=peer_token,
            peer_ca_certificates=peer_ca_certificates,
            peer_tls_server_name=peer_tls_server_name,
            peer_plaintext=peer_plaintext,
            selection=_i.ExportBundleRequest(
                parent=selection_space, names=_cube_names(selection_space, names), filter=filter
            ),
            conflict_policy=conflict_policy_number(conflict_policy),  # type: ignore[arg-type]
            trust_policy=trust_policy(role, required_key_ids),
        )
        try:  # the server streams a whole bundle from the peer: bounded by stream_timeout, not timeout
            response = self._interchange.ImportFromPeer(request, timeout=self.stream_timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        return ImportResult.from_proto(response)

    # -- Trust root and signing keys -----------------------------------------

    def get_trust_root(self) -> TrustRoot:
        """The trust root in force: which keys the server trusts for which role, and its signed envelope."""
        response: trust_pb2.TrustRoot = self._unary(self._governance.GetTrustRoot, _g.GetTrustRootRequest())
        return TrustRoot.from_proto(response)

    def update_trust_root(self, signed_envelope: bytes, *, add_node_signature: bool = False) -> TrustRoot:
        """Replaces the trust root with a newer version (admins); returns the new one.

        ``signed_envelope`` is a DSSE envelope (JSON) of the new trust root; it
        must be signed by a threshold of the current admin keys and of its own.
        With ``add_node_signature`` the server adds its node key's signature
        first (the node key is the admin key of a server's first trust root).
        A refused update raises ``InvalidArgumentError`` (``TRUST_ROOT_...`` reasons).
        """
        request = _g.UpdateTrustRootRequest(signed_envelope=signed_envelope, add_node_signature=add_node_signature)
        response: trust_pb2.TrustRoot = self._unary(self._governance.UpdateTrustRoot, request)
        return TrustRoot.from_proto(response)

    def create_signing_key(self, principal: str) -> PublicKey:
        """Has the server create and keep an Ed25519 key for ``principal``; its exports are then signed by it too."""
        request = _g.CreateSigningKeyRequest(parent=principal_name(principal))
        response: principal_pb2.PublicKey = self._unary(self._governance.CreateSigningKey, request)
        return PublicKey.from_proto(response)

    def register_public_key(self, principal: str, public_key: bytes) -> PublicKey:
        """Registers a raw 32-byte Ed25519 public key ``principal`` holds itself; returns it with its key id."""
        request = _g.RegisterPublicKeyRequest(
            parent=principal_name(principal), public_key=principal_pb2.PublicKey(public_key=public_key)
        )
        response: principal_pb2.PublicKey = self._unary(self._governance.RegisterPublicKey, request)
        return PublicKey.from_proto(response)


def _requests(
    first: Any, chunks: Iterable[bytes], wrap: Callable[[bytes], Any], failures: list[BaseException]
) -> Iterator[Any]:
    """The header message, then one message per non-empty chunk; an error reading the chunks is kept in ``failures``.

    Re-raising it makes gRPC cancel the call, so the server never sees a cut-short
    bundle as a whole one; ``_stream_unary`` then raises it in place of CANCELLED.
    """
    yield first
    try:
        for chunk in chunks:
            if chunk:
                yield wrap(chunk)
    except Exception as error:
        failures.append(error)
        raise
