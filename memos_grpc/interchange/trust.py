"""The trust root: which keys are trusted for what, TUF-style, and how it may change.

A trust root lists keys (with validity windows and revocation times) and
roles (admin, node, publisher, marketplace), each with its keys and a
threshold, and optionally the marketplace logs a buyer trusts, each as its
C2SP tlog-policy text (log key, witnesses, quorum); it has a version and an
expiry and is itself a signed DSSE envelope. A new version must be the next one and be signed by a threshold of
the old admin keys and of the new ones; a lower version (rollback), a skipped
version or an expired root (freeze) is refused, as is any number outside the
bounds of ``bounds.py``. Format and rules: docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from memos_grpc import reasons
from memos_grpc.errors import TrustRootError
from memos_grpc.interchange import ijson
from memos_grpc.interchange.dsse import Envelope, EnvelopeFormatError, parse_envelope, verify_envelope
from memos_grpc.primitives.bounds import (
    MAX_KEY_NAME_CHARS,
    MAX_LOG_POLICY_BYTES,
    MAX_MARKETPLACE_LOGS,
    MAX_THRESHOLD,
    MAX_TRUST_ROOT_KEYS,
    MAX_TRUST_ROOT_VERSION,
    MIN_THRESHOLD,
    MIN_TRUST_ROOT_VERSION,
    is_integer_in,
)
from memos_grpc.primitives.canonical import canonical_json, format_time, parse_time
from memos_grpc.primitives.grammar import Base64Error, decode_base64
from memos_grpc.primitives.keys import PublicKeyError, TrustedKey, check_public_key, key_id
from memos_grpc.transparency._text import TransparencyFormatError
from memos_grpc.transparency.note import NoteVerifier
from memos_grpc.transparency.policy import Policy, parse_policy

TRUST_ROOT_TYPE = "https://memos-grpc.dev/TrustRoot/v1"
TRUST_ROOT_PAYLOAD_TYPE = "application/vnd.memos.trustroot+json"
ROLES = ("admin", "node", "publisher", "marketplace")


@dataclass(frozen=True)
class Role:
    """The keys trusted for one role of a trust root and how many of them must sign."""

    key_ids: tuple[str, ...] = ()
    threshold: int = 1


@dataclass(frozen=True)
class TrustRoot:
    """One version of the trust root: keys, roles with thresholds, trusted marketplace logs, version and expiry.

    Immutable; a change is a new version checked by ``verify_root_update``. The one in force lives in ``TrustStore``.
    """

    version: int
    expires: datetime
    keys: dict[str, TrustedKey]
    roles: dict[str, Role] = field(default_factory=dict)
    #: The C2SP tlog-policy text of each marketplace log this root trusts (``marketplaceLogs``), as signed.
    marketplace_logs: tuple[str, ...] = ()

    @cached_property
    def log_policies(self) -> tuple[Policy, ...]:
        """The parsed ``marketplace_logs`` (a root that parsed holds only policies that parse)."""
        return tuple(parse_policy(text) for text in self.marketplace_logs)

    def log_policy(self, origin: str) -> tuple[Policy, NoteVerifier] | None:
        """The policy naming the log whose key name is ``origin``, with that log's key; None if none does."""
        for policy in self.log_policies:
            for log in policy.logs:
                if log.name == origin:
                    return policy, log
        return None

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
        document: dict[str, Any] = {
            "_type": TRUST_ROOT_TYPE,
            "version": self.version,
            "expires": format_time(self.expires),
            "keys": {k: v.to_json() for k, v in sorted(self.keys.items())},
            "roles": {
                name: {"keyids": sorted(role.key_ids), "threshold": role.threshold}
                for name, role in sorted(self.roles.items())
            },
        }
        # Absent rather than empty, so a root without marketplace logs keeps the bytes it always had.
        if self.marketplace_logs:
            document["marketplaceLogs"] = [{"policy": text} for text in self.marketplace_logs]
        return canonical_json(document)


def parse_trust_root(payload: bytes) -> TrustRoot:
    """Parses a trust root payload; unknown fields are ignored. Raises TrustRootError.

    Every number and time must be within the bounds of ``memos_grpc.primitives.bounds``, and every role
    name known: what parses here can be stored, sent and parsed again without loss.
    """
    try:
        document = ijson.loads(payload)
    except ijson.IJsonError as exc:
        raise TrustRootError(
            f"the trust root is not strict JSON: {exc.message}", reason=reasons.TRUST_ROOT_MALFORMED
        ) from exc
    try:
        return _from_document(document)
    except TrustRootError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise TrustRootError(f"the trust root is malformed: {exc}", reason=reasons.TRUST_ROOT_MALFORMED) from exc


def _malformed(message: str) -> TrustRootError:
    return TrustRootError(message, reason=reasons.TRUST_ROOT_MALFORMED)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(f"{what} must be a JSON object")
    return value


def _from_document(document: Any) -> TrustRoot:
    if not isinstance(document, dict) or document.get("_type") != TRUST_ROOT_TYPE:
        raise _malformed(f"a trust root needs _type {TRUST_ROOT_TYPE!r}")
    version = document["version"]
    if not is_integer_in(version, MIN_TRUST_ROOT_VERSION, MAX_TRUST_ROOT_VERSION):
        raise _malformed(
            f"the trust root version must be an integer from {MIN_TRUST_ROOT_VERSION} to {MAX_TRUST_ROOT_VERSION}, "
            f"not {str(version)[:40]}"
        )
    raw_keys = _object(document["keys"], "keys")
    if len(raw_keys) > MAX_TRUST_ROOT_KEYS:
        raise _malformed(f"the trust root lists {len(raw_keys)} keys; at most {MAX_TRUST_ROOT_KEYS} are allowed")
    keys = {kid: _key(kid, _object(entry, f"key {kid[:80]}")) for kid, entry in raw_keys.items()}
    roles: dict[str, Role] = {}
    for name, entry in _object(document["roles"], "roles").items():
        if name not in ROLES:
            raise _malformed(f"role {name[:40]!r} is not one of {', '.join(ROLES)}")
        roles[name] = _role(name, _object(entry, f"role {name}"), keys)
    if "admin" not in roles or not roles["admin"].key_ids:
        raise _malformed("a trust root needs an admin role with at least one key")
    logs = _marketplace_logs(document["marketplaceLogs"]) if "marketplaceLogs" in document else ()
    return TrustRoot(version, parse_time(document["expires"]), keys, roles, logs)


def _marketplace_logs(value: Any) -> tuple[str, ...]:
    """``marketplaceLogs``: 1 to MAX_MARKETPLACE_LOGS objects ``{"policy": <tlog-policy text>}``.

    Strict, unlike the rest of the root: a buyer must never skip a log condition it does not understand, so an
    unknown member is refused, and so is a policy that does not parse. Log key names (checkpoint origins) are
    unique across the list, so a grant's ``logOrigin`` picks exactly one policy.
    """
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MARKETPLACE_LOGS:
        raise _malformed(
            f"marketplaceLogs must be a list of 1 to {MAX_MARKETPLACE_LOGS} logs (leave it out when there is none)"
        )
    texts: list[str] = []
    origins: set[str] = set()
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict) or set(item) != {"policy"}:
            raise _malformed(f'marketplaceLogs[{number}] must be an object with exactly one member, "policy"')
        text = item["policy"]
        if not isinstance(text, str) or not _encodable(text) or len(text.encode()) > MAX_LOG_POLICY_BYTES:
            raise _malformed(
                f"marketplaceLogs[{number}].policy must be the text of a C2SP tlog-policy, "
                f"at most {MAX_LOG_POLICY_BYTES} bytes of UTF-8"
            )
        try:
            policy = parse_policy(text)
        except TransparencyFormatError as exc:
            raise _malformed(f"marketplaceLogs[{number}].policy is refused ({exc.reason}): {exc.message}") from exc
        if not policy.logs:
            raise _malformed(f"marketplaceLogs[{number}].policy names no log ('log <vkey>' line)")
        for log in policy.logs:
            if log.name in origins:
                raise _malformed(f"two marketplace logs have the origin {log.name[:80]!r}")
            origins.add(log.name)
        texts.append(text)
    return tuple(texts)


def _key(kid: str, entry: dict[str, Any]) -> TrustedKey:
    if entry.get("keytype") != "ed25519":
        raise _malformed(f"key {kid[:80]} is not an ed25519 key")
    try:
        public = check_public_key(decode_base64(entry["public"]))
    except (Base64Error, PublicKeyError) as exc:
        raise _malformed(f"key {kid[:80]}: public must be an Ed25519 public key in padded base64: {exc}") from exc
    if key_id(public) != kid:
        raise _malformed(f"key {kid[:80]}: the key id is not the sha256 of the public key's SubjectPublicKeyInfo")
    name = entry.get("name", "")
    # The name travels in protobuf strings: it must be text that UTF-8 can carry (no lone surrogates).
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME_CHARS or not _encodable(name):
        raise _malformed(f"key {kid}: name must be a UTF-8 string of at most {MAX_KEY_NAME_CHARS} characters")
    return TrustedKey(
        kid,
        public,
        name,
        _optional_time(entry.get("notBefore")),
        _optional_time(entry.get("notAfter")),
        _optional_time(entry.get("revokedAt")),
    )


def _role(name: str, entry: dict[str, Any], keys: dict[str, TrustedKey]) -> Role:
    raw_ids = entry["keyids"]
    if not isinstance(raw_ids, list) or not all(isinstance(k, str) for k in raw_ids):
        raise _malformed(f"role {name}: keyids must be a list of key id strings")
    key_ids = tuple(raw_ids)
    unknown = [k[:80] for k in key_ids if k not in keys]
    if unknown:
        raise _malformed(f"role {name} names unknown key(s) {unknown[:3]}")
    if len(set(key_ids)) != len(key_ids):
        raise _malformed(f"role {name} lists a key twice")
    # A role without keys keeps threshold 1: it trusts no one, whatever its threshold.
    highest = min(MAX_THRESHOLD, max(MIN_THRESHOLD, len(key_ids)))
    threshold = entry["threshold"]
    if not is_integer_in(threshold, MIN_THRESHOLD, highest):
        raise _malformed(
            f"role {name}: threshold must be an integer from {MIN_THRESHOLD} to {highest} (its {len(key_ids)} "
            f"key(s), at most {MAX_THRESHOLD}), not {str(threshold)[:40]}"
        )
    return Role(key_ids, threshold)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def verify_root_update(current: TrustRoot, envelope_json: bytes, now: datetime) -> tuple[TrustRoot, Envelope]:
    """Checks a proposed new trust root against the current one; returns it or raises TrustRootError.

    The new root must parse within the protocol's bounds, have the next version (lower or equal is a
    rollback, higher skips versions), not be expired (else freeze), and be signed by a threshold of the
    current admin keys and of its own admin keys (rotation).
    """
    try:
        envelope = parse_envelope(envelope_json)
    except EnvelopeFormatError as exc:
        raise TrustRootError(
            f"the trust root envelope is malformed: {exc}", reason=reasons.TRUST_ROOT_MALFORMED
        ) from exc
    if envelope.payload_type != TRUST_ROOT_PAYLOAD_TYPE:
        raise TrustRootError(
            f"a trust root envelope has payloadType {TRUST_ROOT_PAYLOAD_TYPE!r}, not {envelope.payload_type!r}",
            reason=reasons.TRUST_ROOT_MALFORMED,
        )
    # Signatures first, against the keys we already trust: nothing unverified is parsed before that.
    by_current = verify_envelope(envelope, current.keys_for("admin"), current.threshold_for("admin"), now)
    if not by_current:
        raise TrustRootError(
            f"the new trust root must be signed by {current.threshold_for('admin')} current admin key(s): "
            f"{by_current.message}",
            reason=reasons.TRUST_ROOT_THRESHOLD_NOT_MET,
        )
    proposed = parse_trust_root(envelope.payload)
    if proposed.version <= current.version:
        raise TrustRootError(
            f"trust root version {proposed.version} is not newer than the current {current.version} (rollback)",
            reason=reasons.TRUST_ROOT_ROLLBACK,
        )
    # Exactly one more, as in TUF: versions stay dense, so no signed root can use up the version space.
    if proposed.version != current.version + 1:
        raise TrustRootError(
            f"trust root version {proposed.version} skips versions: the next version after {current.version} "
            f"is {current.version + 1}",
            reason=reasons.TRUST_ROOT_VERSION_SKIPPED,
        )
    if proposed.expires <= now:
        raise TrustRootError(
            f"the new trust root expired at {format_time(proposed.expires)} (freeze)", reason=reasons.TRUST_ROOT_EXPIRED
        )
    by_new = verify_envelope(envelope, proposed.keys_for("admin"), proposed.threshold_for("admin"), now)
    if not by_new:
        raise TrustRootError(
            f"the new trust root must also be signed by {proposed.threshold_for('admin')} of its own admin "
            f"key(s): {by_new.message}",
            reason=reasons.TRUST_ROOT_THRESHOLD_NOT_MET,
        )
    return proposed, envelope
