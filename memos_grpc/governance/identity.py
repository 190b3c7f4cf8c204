"""Principals and their credentials: create, list, delete, revoke, bootstrap, and authenticate.

A bearer token is ``mgt_<credential id>_<secret>``; the server stores only
the sha256 of the whole token, and keeps an in-memory copy of every
credential (updated after each commit, before the caller is answered) so
authenticating a call costs no database query, and a revocation holds from
the very next call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    UnauthenticatedError,
)
from memos_grpc.files import write_private
from memos_grpc.primitives.keys import PublicKeyError, check_public_key, key_id
from memos_grpc.store import principals as principal_store
from memos_grpc.store.cursor import PRINCIPALS
from memos_grpc.store.database import Connection
from memos_grpc.store.names import check_id
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.rows import make_etag, set_timestamp, to_datetime
from memos_grpc.store.spaces import principal_removed, remove_roles_of
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import check_timestamp, invalid

log = logging.getLogger(__name__)

ADMIN_ID = "admin"
ADMIN_TOKEN_FILE = "admin.token"
# Matched with fullmatch: "$" would also match before a trailing newline.
_TOKEN = re.compile(r"mgt_(k[0-9a-f]{16})_[A-Za-z0-9_-]{43}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def principal_name(principal_id: str) -> str:
    return f"principals/{principal_id}"


def parse_principal_name(name: str, field: str = "name") -> str:
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "principals":
        raise invalid(f"{field} {name[:120]!r} is not of the form principals/{{principal}}", reasons.INVALID_NAME)
    return check_id(parts[1], "principal id")


def parse_credential_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "principals" or parts[2] != "credentials":
        raise invalid(
            f"name {name[:120]!r} is not of the form principals/{{principal}}/credentials/{{credential}}",
            reasons.INVALID_NAME,
        )
    return check_id(parts[1], "principal id"), check_id(parts[3], "credential id")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _KnownCredential:
    principal_id: str
    token_hash: str
    expires_at: float | None
    revoked: bool


@dataclass(frozen=True)
class Identity:
    """An authenticated principal."""

    principal: str
    admin: bool


class Principals:
    """The principals and credentials of a vault, with an in-memory copy for authentication."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._lock = threading.Lock()
        self._principals: dict[str, principal_pb2.Principal] = {}
        self._credentials: dict[str, _KnownCredential] = {}
        self._by_fingerprint: dict[str, str] = {}
        self.reload()
        if context.store.follower is not None:
            # Other servers of the database create, change and revoke too: their changes reload the copy.
            context.store.follower.subscribe(PRINCIPALS, lambda _change: self.reload())

    # -- the in-memory copy ------------------------------------------------------

    def reload(self) -> None:
        """Replaces the in-memory copy with the principals and credentials the database holds now."""
        with self._context.database.read() as cursor:
            principals = principal_store.principals(cursor)
            stored = principal_store.credentials(cursor)
        credentials = {
            known.credential_id: _KnownCredential(
                known.principal_id,
                known.token_hash,
                None if known.expire_time is None else known.expire_time.timestamp(),
                known.revoke_time is not None,
            )
            for known in stored
        }
        by_id = {principal.name.split("/", 1)[1]: principal for principal in principals}
        by_fingerprint = {
            fingerprint: principal_id
            for principal_id, principal in by_id.items()
            for fingerprint in principal.certificate_fingerprints
        }
        with self._lock:
            self._principals, self._credentials, self._by_fingerprint = by_id, credentials, by_fingerprint

    def _remember(self, principal: principal_pb2.Principal) -> None:
        with self._lock:
            principal_id = principal.name.split("/", 1)[1]
            old = self._principals.get(principal_id)
            if old is not None:
                for fingerprint in old.certificate_fingerprints:
                    self._by_fingerprint.pop(fingerprint, None)
            self._principals[principal_id] = principal
            for fingerprint in principal.certificate_fingerprints:
                self._by_fingerprint[fingerprint] = principal_id

    def _forget(self, principal_id: str) -> None:
        with self._lock:
            old = self._principals.pop(principal_id, None)
            if old is not None:
                for fingerprint in old.certificate_fingerprints:
                    self._by_fingerprint.pop(fingerprint, None)
            for cid, known in list(self._credentials.items()):
                if known.principal_id == principal_id:
                    del self._credentials[cid]

    # -- authentication ----------------------------------------------------------

    def authenticate_token(self, token: str) -> Identity:
        match = _TOKEN.fullmatch(token)
        known = self._credentials.get(match.group(1)) if match else None
        if known is None or not hmac.compare_digest(known.token_hash, token_hash(token)):
            raise UnauthenticatedError("the bearer token is not valid", reason=reasons.INVALID_TOKEN)
        if known.revoked:
            raise UnauthenticatedError("the bearer token has been revoked", reason=reasons.TOKEN_REVOKED)
        if known.expires_at is not None and known.expires_at <= self._context.clock().timestamp():
            raise UnauthenticatedError("the bearer token has expired", reason=reasons.TOKEN_EXPIRED)
        return self._identity(known.principal_id)

    def authenticate_certificate(self, fingerprint: str) -> Identity | None:
        principal_id = self._by_fingerprint.get(fingerprint)
        return None if principal_id is None else self._identity(principal_id)

    def _identity(self, principal_id: str) -> Identity:
        principal = self._principals.get(principal_id)
        if principal is None:
            raise UnauthenticatedError("the credential's principal no longer exists", reason=reasons.INVALID_TOKEN)
        return Identity(principal.name, principal.admin)

    def names(self) -> set[str]:
        return {p.name for p in list(self._principals.values())}

    # -- principals --------------------------------------------------------------

    def create(self, principal_id: str, given: principal_pb2.Principal) -> principal_pb2.Principal:
        check_id(principal_id, "principal_id")
        if len(given.display_name) > 200:
            raise invalid("principal.display_name is longer than 200 characters", reasons.FIELD_TOO_LONG)
        if given.kind not in principal_pb2.Principal.Kind.values():
            raise invalid(f"principal.kind {given.kind} is not a known value", reasons.INVALID_ENUM)
        now = self._context.clock()
        principal = principal_pb2.Principal(
            name=principal_name(principal_id),
            kind=given.kind,
            display_name=given.display_name,
            admin=given.admin,
        )
        for index, key in enumerate(given.public_keys):
            checked = self._checked_key(key, index)
            self._refuse_taken_key(checked.key_id, principal.name)
            principal.public_keys.append(checked)
        for fingerprint in given.certificate_fingerprints:
            if not _FINGERPRINT.fullmatch(fingerprint):
                raise invalid(
                    f"certificate fingerprint {fingerprint[:80]!r} is not 64 lowercase hex characters",
                    reasons.INVALID_FINGERPRINT,
                )
            if fingerprint in self._by_fingerprint:
                raise AlreadyExistsError(
                    "that certificate already authenticates another principal", reason=reasons.FINGERPRINT_IN_USE
                )
            principal.certificate_fingerprints.append(fingerprint)
        set_timestamp(principal.create_time, now)
        principal.etag = make_etag(principal.name, 1, now)

        def apply(cursor: Connection) -> principal_pb2.Principal:
            if principal_store.principal_exists(cursor, principal_id):
                raise AlreadyExistsError(
                    f"principal {principal.name} already exists", reason=reasons.PRINCIPAL_ALREADY_EXISTS
                )
            principal_store.insert_principal(cursor, principal_id, principal, now)
            return principal

        return self._context.database.write(apply, self._remember)

    @staticmethod
    def _checked_key(key: principal_pb2.PublicKey, index: int, field: str = "") -> principal_pb2.PublicKey:
        field = field or f"public_keys[{index}]"
        if key.algorithm not in ("", "ed25519"):
            raise invalid(f"{field}.algorithm must be ed25519", reasons.INVALID_PUBLIC_KEY)
        if len(key.public_key) != 32:
            raise invalid(f"{field}.public_key must be 32 raw Ed25519 bytes", reasons.INVALID_PUBLIC_KEY)
        try:
            check_public_key(key.public_key)
        except PublicKeyError as exc:
            raise invalid(f"{field}.public_key is refused: {exc.message}", reasons.INVALID_PUBLIC_KEY) from exc
        for stamp in ("not_before", "not_after"):
            if key.HasField(stamp):
                check_timestamp(getattr(key, stamp), f"{field}.{stamp}")
        checked = principal_pb2.PublicKey()
        checked.CopyFrom(key)
        checked.algorithm = "ed25519"
        checked.key_id = key_id(key.public_key)
        return checked

    def add_public_key(self, name: str, key: principal_pb2.PublicKey) -> principal_pb2.PublicKey:
        """Registers one more public key for a principal (a no-op if it already has that key)."""
        principal_id = parse_principal_name(name)
        checked = self._checked_key(key, 0, "public_key")
        self._refuse_taken_key(checked.key_id, name)

        def apply(cursor: Connection) -> principal_pb2.Principal:
            principal = principal_store.principal_by_id(cursor, principal_id)
            if principal is None:
                raise NotFoundError(f"principal {name} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)
            if all(k.key_id != checked.key_id for k in principal.public_keys):
                principal.public_keys.append(checked)
                principal.etag = make_etag(principal.name, len(principal.public_keys) + 1, self._context.clock())
                principal_store.update_principal(cursor, principal_id, principal)
            return principal

        self._context.database.write(apply, self._remember)
        return checked

    def _refuse_taken_key(self, key: str, name: str) -> None:
        """One key, one principal: else a principal could have reports name it for another's signatures."""
        owner = self.key_owner(key)
        if owner and owner != name:
            raise AlreadyExistsError(
                f"public key {key} is registered to another principal", reason=reasons.PUBLIC_KEY_IN_USE
            )

    def key_owner(self, key: str) -> str:
        """The name of the principal that registered the public key with this id ("" if none)."""
        for principal in list(self._principals.values()):
            if any(k.key_id == key for k in principal.public_keys):
                return principal.name
        return ""

    def get(self, name: str) -> principal_pb2.Principal:
        principal_id = parse_principal_name(name)
        principal = self._principals.get(principal_id)
        if principal is None:
            raise NotFoundError(f"principal {name} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)
        return principal

    def list(self, requested_size: int, token: str) -> tuple[list[principal_pb2.Principal], str]:
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(token, "principals") or ""
        ids = sorted(pid for pid in list(self._principals) if pid > after)
        page = [self._principals[pid] for pid in ids[:size] if pid in self._principals]
        next_token = encode_token(ids[size - 1], "principals") if len(ids) > size else ""
        return page, next_token

    def delete(self, name: str) -> None:
        principal_id = parse_principal_name(name)
        if principal_id not in self._principals:
            raise NotFoundError(f"principal {name} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)
        admins = [p for p in self._principals.values() if p.admin]
        if self._principals[principal_id].admin and len(admins) == 1:
            raise FailedPreconditionError(
                f"{name} is the last admin; create another admin first", reason=reasons.LAST_ADMIN
            )

        def apply(cursor: Connection) -> str:
            principal_store.delete_principal(cursor, principal_id)
            # A later principal of the same id must not inherit these roles.
            remove_roles_of(cursor, principal_name(principal_id))
            return principal_id

        def after_commit(_: str) -> None:
            self._forget(principal_id)
            principal_removed(self._context.catalog, principal_name(principal_id))

        self._context.database.write(apply, after_commit)

    # -- credentials -------------------------------------------------------------

    def create_credential(self, parent: str, given: principal_pb2.Credential) -> principal_pb2.Credential:
        principal_id = parse_principal_name(parent, "parent")
        if principal_id not in self._principals:
            raise NotFoundError(f"principal {parent} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)
        if len(given.description) > 200:
            raise invalid("credential.description is longer than 200 characters", reasons.FIELD_TOO_LONG)
        now = self._context.clock()
        check_timestamp(given.expire_time, "credential.expire_time")
        expire = to_datetime(given.expire_time)
        if expire is not None and expire <= now:
            raise invalid("credential.expire_time is in the past", reasons.INVALID_EXPIRE_TIME)
        credential_id = "k" + secrets.token_hex(8)
        token = f"mgt_{credential_id}_{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"
        digest = token_hash(token)
        credential = principal_pb2.Credential(
            name=f"{parent}/credentials/{credential_id}", description=given.description
        )
        set_timestamp(credential.create_time, now)
        if expire is not None:
            credential.expire_time.CopyFrom(given.expire_time)

        def apply(cursor: Connection) -> None:
            if not principal_store.principal_exists(cursor, principal_id):
                raise NotFoundError(f"principal {parent} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)
            principal_store.insert_credential(
                cursor, credential_id, principal_id, digest, given.description, now, expire
            )

        def after_commit(_: None) -> None:
            with self._lock:
                self._credentials[credential_id] = _KnownCredential(
                    principal_id, digest, None if expire is None else expire.timestamp(), False
                )

        self._context.database.write(apply, after_commit)
        credential.token = token
        return credential

    def credential_owner(self, name: str) -> str:
        """The principal name a credential name belongs to (checked against the real owner)."""
        principal_id, credential_id = parse_credential_name(name)
        known = self._credentials.get(credential_id)
        if known is None or known.principal_id != principal_id:
            raise NotFoundError(f"credential {name} does not exist", reason=reasons.CREDENTIAL_NOT_FOUND)
        return principal_name(principal_id)

    def revoke_credential(self, name: str) -> principal_pb2.Credential:
        principal_id, credential_id = parse_credential_name(name)
        self.credential_owner(name)
        now = self._context.clock()

        def apply(cursor: Connection) -> principal_pb2.Credential:
            credential = principal_store.credential(cursor, principal_id, credential_id)
            if credential is None:
                raise NotFoundError(f"credential {name} does not exist", reason=reasons.CREDENTIAL_NOT_FOUND)
            if not credential.HasField("revoke_time"):  # revoking again keeps the first revocation's time
                principal_store.revoke_credential(cursor, credential_id, now)
                set_timestamp(credential.revoke_time, now)
            credential.name = name
            return credential

        def after_commit(_: principal_pb2.Credential) -> None:
            with self._lock:
                known = self._credentials[credential_id]
                self._credentials[credential_id] = _KnownCredential(
                    known.principal_id, known.token_hash, known.expires_at, True
                )

        return self._context.database.write(apply, after_commit)

    # -- bootstrap ---------------------------------------------------------------

    def bootstrap(self, data_dir: Path) -> Path | None:
        """On a vault without principals, creates the admin and writes its token (mode 0600). Of servers sharing a
        database and starting together, the one whose create commits first bootstraps; the others find the admin
        taken and go on without a token file."""
        if self._principals:
            return None
        try:
            self.create(
                ADMIN_ID,
                principal_pb2.Principal(
                    kind=principal_pb2.Principal.KIND_USER, display_name="Administrator", admin=True
                ),
            )
        except AlreadyExistsError:
            self.reload()
            return None
        credential = self.create_credential(
            principal_name(ADMIN_ID), principal_pb2.Credential(description="bootstrap admin token")
        )
        path = data_dir / ADMIN_TOKEN_FILE
        write_private(path, (credential.token + "\n").encode())
        log.warning(
            "created the admin principal %s; its bearer token is in %s (mode 0600): keep it secret, "
            "rotate it per docs/security.md",
            principal_name(ADMIN_ID),
            path,
        )
        return path
