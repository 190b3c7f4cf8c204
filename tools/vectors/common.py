"""What every vector shares: fixed keys and clock, DSSE encoding written out from PROTOCOL.md, the document shape.

PAE, key ids, base64 and envelope JSON are written here from the spec rather than taken from
memos_grpc.interchange, so that a vector pins the protocol instead of mirroring the implementation.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

Json = dict[str, Any]

#: The verification time of every vector unless it says otherwise.
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)

STATEMENT_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://memos-grpc.dev/MemCubeBundle/v1"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: RFC 8785 for the integer-only JSON signed here."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes, *, urlsafe: bool = False, padded: bool = True) -> str:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP len(type) SP type SP len(body) SP body``, lengths in bytes as ASCII decimal."""
    kind = payload_type.encode()
    return b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + str(len(payload)).encode() + b" " + payload


@dataclass(frozen=True)
class VectorKey:
    """An Ed25519 key whose 32-byte seed is sha256 of its label, so any language can rebuild it."""

    label: str

    @property
    def seed(self) -> bytes:
        return hashlib.sha256(self.label.encode()).digest()

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        """Lowercase hex sha256 of the DER SubjectPublicKeyInfo."""
        der = self._private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return sha256_hex(der)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def signature(self, payload_type: str, payload: bytes, *, keyid: str | None = None) -> Json:
        """A DSSE signature object over the PAE (``keyid`` overrides the hint)."""
        return {"keyid": self.key_id if keyid is None else keyid, "sig": b64(self.sign(pae(payload_type, payload)))}

    def trusted(
        self,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> Json:
        """The key as a vector's ``trusted_keys`` item."""
        document: Json = {"key_id": self.key_id, "public_key": b64(self.public_key), "name": self.label}
        for field, when in (("not_before", not_before), ("not_after", not_after), ("revoked_at", revoked_at)):
            if when is not None:
                document[field] = rfc3339(when)
        return document


KEY1, KEY2, KEY3, KEY4 = (VectorKey(f"memos-vector-key-{n}") for n in range(1, 5))


def envelope_json(payload_type: str, payload: bytes | str, signatures: list[Json] | Json, **extra: Any) -> str:
    """An envelope's JSON text; ``payload`` is raw bytes (encoded as standard base64) or already-encoded text."""
    document: Json = {
        "payloadType": payload_type,
        "payload": payload if isinstance(payload, str) else b64(payload),
        "signatures": signatures,
        **extra,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def signed(payload_type: str, payload: bytes, *keys: VectorKey) -> str:
    return envelope_json(payload_type, payload, [k.signature(payload_type, payload) for k in keys])


def vector(kind: str, case: str, description: str, inputs: Json, expected: Json) -> Json:
    return {"name": f"{kind}-{case}", "kind": kind, "description": description, "inputs": inputs, "expected": expected}


def valid(**details: Any) -> Json:
    return {"valid": True, "reason": "", **details}


def invalid(reason: str) -> Json:
    return {"valid": False, "reason": reason}
