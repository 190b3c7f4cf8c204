"""DSSE envelopes: the pre-authentication encoding, signing, decoding and verification.

The signed payload travels as opaque bytes: verification returns those bytes
and only they are parsed afterwards (nothing is re-serialized before a check).
``verify_envelope`` never raises; it reports each signature and, when the
threshold is not met, the one reason why, in the precedence of docs/protocol.md.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memos_grpc.interchange import ijson
from memos_grpc.interchange.ijson import IJsonError
from memos_grpc.primitives import grammar
from memos_grpc.primitives.bounds import MAX_SIGNATURES
from memos_grpc.primitives.keys import SigningKey, TrustedKey, verify_signature

#: payloadType of a bundle's statement (in-toto Statement v1).
STATEMENT_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 SP len(type) SP type SP len(body) SP body``, lengths in bytes as ASCII decimal."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


class EnvelopeFormatError(ValueError):
    """The envelope's JSON is not a DSSE envelope."""


@dataclass(frozen=True)
class Signature:
    """One DSSE signature: the signer's keyid as the envelope states it (a hint) and the Ed25519 signature bytes."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: an opaque payload, its type, and the signatures over their pre-authentication encoding.

    Immutable; ``signed_by`` returns a new envelope. Parsing one verifies nothing: see ``verify_envelope``.
    """

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...] = ()

    def to_json(self) -> bytes:
        """The envelope as JSON (standard base64, keys sorted, compact)."""
        document = {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    def signed_by(self, key: SigningKey) -> Envelope:
        """This envelope with one more signature, by ``key``, over the PAE."""
        signature = Signature(key.key_id, key.sign(pae(self.payload_type, self.payload)))
        return Envelope(self.payload_type, self.payload, (*self.signatures, signature))


def sign_envelope(payload_type: str, payload: bytes, keys: Sequence[SigningKey]) -> Envelope:
    envelope = Envelope(payload_type, payload)
    for key in keys:
        envelope = envelope.signed_by(key)
    return envelope


def decode_base64(text: object, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not, canonical (``grammar.decode_base64``); else EnvelopeFormatError."""
    try:
        return grammar.decode_base64(text, dsse=True)
    except grammar.Base64Error as exc:
        raise EnvelopeFormatError(f"{what} is not valid base64: {exc}") from exc


def parse_envelope(data: bytes) -> Envelope:
    """Decodes envelope JSON (strict I-JSON, exact member names); unknown fields are ignored.

    Raises EnvelopeFormatError.
    """
    try:
        document = ijson.loads(data)
    except IJsonError as exc:
        raise EnvelopeFormatError(f"the envelope is not strict JSON: {exc.message}") from exc
    if not isinstance(document, dict):
        raise EnvelopeFormatError("the envelope is not a JSON object")
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str):
        raise EnvelopeFormatError("the envelope has no payloadType string")
    payload = decode_base64(document.get("payload"), "payload")
    raw_signatures = document.get("signatures")
    if not isinstance(raw_signatures, list):
        raise EnvelopeFormatError("the envelope has no signatures list")
    if len(raw_signatures) > MAX_SIGNATURES:
        raise EnvelopeFormatError(f"the envelope carries {len(raw_signatures)} signatures; at most {MAX_SIGNATURES}")
    signatures: list[Signature] = []
    for index, item in enumerate(raw_signatures):
        if not isinstance(item, dict):
            raise EnvelopeFormatError(f"signatures[{index}] is not an object")
        keyid = item.get("keyid", "")
        if not isinstance(keyid, str):
            raise EnvelopeFormatError(f"signatures[{index}].keyid is not a string")
        signatures.append(Signature(keyid, decode_base64(item.get("sig"), f"signatures[{index}].sig")))
    return Envelope(payload_type, payload, tuple(signatures))


class SignatureStatus(enum.Enum):
    """Why one signature of an envelope did or did not count toward the trust policy's threshold."""

    #: A trusted key, valid now, made it; it counts toward the threshold.
    COUNTED = "COUNTED"
    #: Made by a trusted key already counted (a key counts once).
    DUPLICATE_KEY = "DUPLICATE_KEY"
    #: No trusted key made it.
    UNKNOWN_KEY = "UNKNOWN_KEY"
    #: The keyid names a trusted key, but the signature does not verify with it.
    BAD_SIGNATURE = "BAD_SIGNATURE"
    #: Made by a trusted key that is revoked at the verification time.
    KEY_REVOKED = "KEY_REVOKED"
    #: Made by a trusted key outside its validity window at the verification time.
    KEY_EXPIRED = "KEY_EXPIRED"


class Shortfall(enum.Enum):
    """Why too few signatures counted, in precedence order (the first that applies)."""

    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    SIGNER_REVOKED = "SIGNER_REVOKED"
    SIGNER_EXPIRED = "SIGNER_EXPIRED"
    THRESHOLD_NOT_MET = "THRESHOLD_NOT_MET"
    UNTRUSTED_SIGNER = "UNTRUSTED_SIGNER"


@dataclass(frozen=True)
class SignatureResult:
    """The verdict on one signature of an envelope: which trusted key made it, if any, and its status."""

    #: The keyid the envelope gave (a hint only).
    keyid_hint: str
    #: The trusted key that made the signature ("" if none did).
    key_id: str
    status: SignatureStatus


@dataclass(frozen=True)
class EnvelopeVerification:
    """What ``verify_envelope`` found; true when the threshold was met."""

    signatures: list[SignatureResult]
    threshold: int
    counted: int
    shortfall: Shortfall | None = None
    message: str = ""
    #: The verified payload bytes (only when verified).
    payload: bytes | None = None
    counted_keys: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.shortfall is None


def verify_envelope(
    envelope: Envelope, trusted: Mapping[str, TrustedKey], threshold: int, now: datetime
) -> EnvelopeVerification:
    """Checks each signature over the PAE against ``trusted`` keys; counts distinct keys valid at ``now``."""
    message = pae(envelope.payload_type, envelope.payload)
    results: list[SignatureResult] = []
    counted: list[str] = []
    for signature in envelope.signatures:
        results.append(_check_one(signature, message, trusted, now, counted))
    statuses = {r.status for r in results}
    if threshold >= 1 and len(counted) >= threshold:
        return EnvelopeVerification(results, threshold, len(counted), None, "", envelope.payload, counted)
    shortfall, text = _shortfall(statuses, len(counted), threshold, len(envelope.signatures))
    return EnvelopeVerification(results, threshold, len(counted), shortfall, text, None, counted)


def _check_one(
    signature: Signature, message: bytes, trusted: Mapping[str, TrustedKey], now: datetime, counted: list[str]
) -> SignatureResult:
    # The keyid is a hint: try the key it names first, then every other trusted key.
    hinted = trusted.get(signature.keyid)
    candidates = ([hinted] if hinted else []) + [k for k in trusted.values() if k is not hinted]
    for key in candidates:
        if not verify_signature(key.public_key, signature.sig, message):
            continue
        if key.revoked_at is not None and now >= key.revoked_at:
            return SignatureResult(signature.keyid, key.key_id, SignatureStatus.KEY_REVOKED)
        if not key.valid_at(now):
            return SignatureResult(signature.keyid, key.key_id, SignatureStatus.KEY_EXPIRED)
        if key.key_id in counted:
            return SignatureResult(signature.keyid, key.key_id, SignatureStatus.DUPLICATE_KEY)
        counted.append(key.key_id)
        return SignatureResult(signature.keyid, key.key_id, SignatureStatus.COUNTED)
    if hinted is not None:
        return SignatureResult(signature.keyid, "", SignatureStatus.BAD_SIGNATURE)
    return SignatureResult(signature.keyid, "", SignatureStatus.UNKNOWN_KEY)


def _shortfall(statuses: set[SignatureStatus], counted: int, threshold: int, total: int) -> tuple[Shortfall, str]:
    if SignatureStatus.BAD_SIGNATURE in statuses:
        return Shortfall.SIGNATURE_INVALID, "a signature by a trusted key does not verify: the bytes were changed"
    if SignatureStatus.KEY_REVOKED in statuses and counted < threshold:
        return Shortfall.SIGNER_REVOKED, "a signing key is revoked, and too few other trusted keys signed"
    if SignatureStatus.KEY_EXPIRED in statuses and counted < threshold:
        return Shortfall.SIGNER_EXPIRED, "a signing key is outside its validity window, and too few others signed"
    if counted:
        return Shortfall.THRESHOLD_NOT_MET, f"{counted} distinct trusted key(s) signed; {threshold} are required"
    if total == 0:
        return Shortfall.UNTRUSTED_SIGNER, "the envelope carries no signature"
    return Shortfall.UNTRUSTED_SIGNER, "no signature is by a key trusted for this purpose"
