"""The trust root: which keys are trusted for what, TUF-style, and how it may change.

A trust root lists keys (with validity windows and revocation times) and
roles (admin, node, publisher, marketplace), each with its keys and a
threshold; it has a version and an expiry and is itself a signed DSSE
envelope. A new version must be signed by a threshold of the old admin keys
and of the new ones; a lower version (rollback) or an expired root (freeze)
is refused. Format and rules: docs/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memos_grpc.errors import TrustRootError
from memos_grpc.interchange.canonical import canonical_json, format_time, parse_time
from memos_grpc.interchange.dsse import Envelope, EnvelopeFormatError, parse_envelope, verify_envelope
from memos_grpc.interchange.keys import PUBLIC_KEY_BYTES, TrustedKey, key_id

TRUST_ROOT_TYPE = "https://memos-grpc.dev/TrustRoot/v1"
TRUST_ROOT_PAYLOAD_TYPE = "application/vnd.memos.trustroot+json"
ROLES = ("admin", "node", "publisher", "marketplace")


@dataclass(frozen=True)
class Role:
    key_ids: tuple[str, ...] = ()
    threshold: int = 1


@dataclass(frozen=True)
class TrustRoot:
    version: int
    expires: datetime
    keys: dict[str, TrustedKey]
    roles: dict[str, Role] = field(default_factory=dict)

    def role(self, name: str) -> Role:
        return self.roles.get(name, Role())

    def keys_for(self, role: str) -> dict[str, TrustedKey]:
        """The keys trusted for ``role``, by key id."""
        return {k: self.keys[k] for k in self.role(role).key_ids if k in self.keys}

    def threshold_for(self, role: str) -> int:
        return self.role(role).threshold

    def roles_of(self, key: str) -> list[str]:
        return [name for name, role in self.roles.items() if key in role.key_ids]

    def payload(self) -> bytes:
        """The canonical JSON payload that trust root envelopes sign."""
        return canonical_json(
            {
                "_type": TRUST_ROOT_TYPE,
                "version": self.version,
                "expires": format_time(self.expires),
                "keys": {k: v.to_json() for k, v in sorted(self.keys.items())},
                "roles": {
                    name: {"keyids": sorted(role.key_ids), "threshold": role.threshold}
                    for name, role in sorted(self.roles.items())
                },
            }
        )


def parse_trust_root(payload: bytes) -> TrustRoot:
    """Parses a trust root payload; unknown fields are ignored. Raises TrustRootError."""
    try:
        document = json.loads(payload)
        return _from_document(document)
    except TrustRootError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, binascii.Error) as exc:
        raise TrustRootError(f"the trust root is malformed: {exc}", reason="TRUST_ROOT_MALFORMED") from exc


def _from_document(document: Any) -> TrustRoot:
    if not isinstance(document, dict) or document.get("_type") != TRUST_ROOT_TYPE:
        raise TrustRootError(f"a trust root needs _type {TRUST_ROOT_TYPE!r}", reason="TRUST_ROOT_MALFORMED")
    version = document["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TrustRootError("the trust root version must be a positive integer", reason="TRUST_ROOT_MALFORMED")
    keys: dict[str, TrustedKey] = {}
    for kid, entry in dict(document["keys"]).items():
        if entry.get("keytype") != "ed25519":
            raise TrustRootError(f"key {kid} is not an ed25519 key", reason="TRUST_ROOT_MALFORMED")
        public = base64.b64decode(entry["public"], validate=True)
        if len(public) != PUBLIC_KEY_BYTES or key_id(public) != kid:
            raise TrustRootError(
                f"key {kid}: the key id is not the sha256 of the public key's SubjectPublicKeyInfo",
                reason="TRUST_ROOT_MALFORMED",
            )
        keys[kid] = TrustedKey(
            kid,
            public,
            str(entry.get("name", "")),
            _optional_time(entry.get("notBefore")),
            _optional_time(entry.get("notAfter")),
            _optional_time(entry.get("revokedAt")),
        )
    roles: dict[str, Role] = {}
    for name, entry in dict(document["roles"]).items():
        threshold = entry["threshold"]
        key_ids = tuple(str(k) for k in entry["keyids"])
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise TrustRootError(f"role {name}: threshold must be at least 1", reason="TRUST_ROOT_MALFORMED")
        unknown = [k for k in key_ids if k not in keys]
        if unknown:
            raise TrustRootError(f"role {name} names unknown key(s) {unknown}", reason="TRUST_ROOT_MALFORMED")
        if len(set(key_ids)) != len(key_ids):
            raise TrustRootError(f"role {name} lists a key twice", reason="TRUST_ROOT_MALFORMED")
        roles[str(name)] = Role(key_ids, threshold)
    if "admin" not in roles or not roles["admin"].key_ids:
        raise TrustRootError("a trust root needs an admin role with at least one key", reason="TRUST_ROOT_MALFORMED")
    if roles["admin"].threshold > len(roles["admin"].key_ids):
        raise TrustRootError("the admin threshold exceeds the number of admin keys", reason="TRUST_ROOT_MALFORMED")
    return TrustRoot(version, parse_time(document["expires"]), keys, roles)


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def verify_root_update(current: TrustRoot, envelope_json: bytes, now: datetime) -> tuple[TrustRoot, Envelope]:
    """Checks a proposed new trust root against the current one; returns it or raises TrustRootError.

    The new root must parse, have a higher version (else rollback), not be expired (else freeze),
    and be signed by a threshold of the current admin keys and of its own admin keys (rotation).
    """
    try:
        envelope = parse_envelope(envelope_json)
    except EnvelopeFormatError as exc:
        raise TrustRootError(f"the trust root envelope is malformed: {exc}", reason="TRUST_ROOT_MALFORMED") from exc
    if envelope.payload_type != TRUST_ROOT_PAYLOAD_TYPE:
        raise TrustRootError(
            f"a trust root envelope has payloadType {TRUST_ROOT_PAYLOAD_TYPE!r}, not {envelope.payload_type!r}",
            reason="TRUST_ROOT_MALFORMED",
        )
    # Signatures first, against the keys we already trust: nothing unverified is parsed before that.
    by_current = verify_envelope(envelope, current.keys_for("admin"), current.threshold_for("admin"), now)
    if not by_current:
        raise TrustRootError(
            f"the new trust root must be signed by {current.threshold_for('admin')} current admin key(s): "
            f"{by_current.message}",
            reason="TRUST_ROOT_THRESHOLD_NOT_MET",
        )
    proposed = parse_trust_root(envelope.payload)
    if proposed.version <= current.version:
        raise TrustRootError(
            f"trust root version {proposed.version} is not newer than the current {current.version} (rollback)",
            reason="TRUST_ROOT_ROLLBACK",
        )
    if proposed.expires <= now:
        raise TrustRootError(
            f"the new trust root expired at {format_time(proposed.expires)} (freeze)", reason="TRUST_ROOT_EXPIRED"
        )
    by_new = verify_envelope(envelope, proposed.keys_for("admin"), proposed.threshold_for("admin"), now)
    if not by_new:
        raise TrustRootError(
            f"the new trust root must also be signed by {proposed.threshold_for('admin')} of its own admin "
            f"key(s): {by_new.message}",
            reason="TRUST_ROOT_THRESHOLD_NOT_MET",
        )
    return proposed, envelope
