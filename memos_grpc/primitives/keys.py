"""Ed25519 signing keys: key ids, key files (PEM, mode 0600), and the node key.

A key id is the lowercase hex sha256 of the key's DER SubjectPublicKeyInfo
(docs/protocol.md). Private keys live only in files their owner alone can
read; the server's node key is created at first start.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.files import create_private, write_private
from memos_grpc.primitives.canonical import format_time

log = logging.getLogger(__name__)

#: Length of a raw Ed25519 public key (RFC 8032).
PUBLIC_KEY_BYTES = 32

# Curve25519 in Edwards form (RFC 8032 5.1): the field prime and the curve constant d.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_MINUS_ONE = pow(2, (_P - 1) // 4, _P)


class PublicKeyError(ValueError):
    """Bytes that are not an acceptable Ed25519 public key; ``problem`` says which rule they break."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def check_public_key(raw: bytes) -> bytes:
    """``raw`` if it is an acceptable Ed25519 public key (docs/protocol.md, "The strict grammar"); else PublicKeyError.

    Acceptable: 32 bytes, the canonical encoding (y below p, no sign bit on x = 0) of a point on the curve that is
    not of small order. OpenSSL verifies a signature by a small-order key (the identity 0100..00 among them) over
    many messages, and other libraries disagree on such keys, so they are refused wherever a key is read.
    """
    if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_BYTES:
        raise PublicKeyError("LENGTH", f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    if _small_order_or_invalid(raw):
        raise PublicKeyError(
            "WEAK",
            "the Ed25519 public key is of small order or not the canonical encoding of a point on the curve; "
            "use the public key an Ed25519 key generator gives",
        )
    return raw


@functools.lru_cache(maxsize=4096)
def _small_order_or_invalid(raw: bytes) -> bool:
    """True when ``raw`` does not decode canonically (RFC 8032 5.1.3) or decodes to a point whose order divides 8."""
    encoded = int.from_bytes(raw, "little")
    y, sign = encoded & ((1 << 255) - 1), encoded >> 255
    if y >= _P:
        return True
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    # x = u v^3 (u v^7)^((p-5)/8): the square root of u/v with one exponentiation (RFC 8032 5.1.3).
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if (v * x * x - u) % _P:
        x = x * _SQRT_MINUS_ONE % _P
        if (v * x * x - u) % _P:
            return True  # not on the curve
    if x == 0 and sign:
        return True
    # 8 * point in projective coordinates (no inversions): the small-order points are those it takes to (0 : 1 : 1).
    px, py, pz = x, y, 1
    for _ in range(3):
        px, py, pz = _double(px, py, pz)
    return px == 0 and py == pz


def _double(x: int, y: int, z: int) -> tuple[int, int, int]:
    # Projective doubling on -x^2 + y^2 = 1 + d x^2 y^2 (the "dbl-2008-bbjlp" formulas with a = -1).
    b, c, d = (x + y) ** 2 % _P, x * x % _P, y * y % _P
    e = -c % _P
    f = (e + d) % _P
    j = (f - 2 * z * z) % _P
    return (b - c - d) * j % _P, f * (e - d) % _P, f * j % _P


def key_id(raw_public_key: bytes) -> str:
    """Lowercase hex sha256 of the key's DER SubjectPublicKeyInfo."""
    der = Ed25519PublicKey.from_public_bytes(raw_public_key).public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def verify_signature(raw_public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by an acceptable key (``check_public_key``).

    A small-order or non-canonical key verifies nothing, whichever path brought it here.
    """
    if not isinstance(raw_public_key, bytes) or _small_order_or_invalid(raw_public_key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and what others need to know of it."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """A key from its 32-byte RFC 8032 seed (test vectors pin keys this way)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_key(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def pem(self) -> bytes:
        return self.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    def write(self, path: Path) -> None:
        """Writes the private key as PEM, mode 0600, atomically; refuses to overwrite."""
        if path.exists():
            raise InvalidArgumentError(f"{path} exists; refusing to overwrite a key", reason=reasons.KEY_FILE_EXISTS)
        write_private(path, self.pem())

    @classmethod
    def read(cls, path: Path) -> SigningKey:
        """Reads a PEM Ed25519 private key; refuses one that others may read."""
        try:
            mode = path.stat().st_mode & 0o777
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read key file {path}: {exc}", reason=reasons.KEY_FILE_UNREADABLE
            ) from exc
        if mode & 0o077:
            raise InvalidArgumentError(
                f"key file {path} is readable by others (mode {mode:o}); chmod 600 it", reason=reasons.KEY_FILE_UNSAFE
            )
        try:
            private = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"{path} is not an unencrypted PEM private key: {exc}", reason=reasons.KEY_FILE_INVALID
            ) from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise InvalidArgumentError(f"{path} holds a key that is not Ed25519", reason=reasons.KEY_FILE_INVALID)
        return cls(private)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in ``path``, created (0600) if the file does not exist yet; of servers sharing the directory
        and starting at once, one creates it and the others read it."""
        if path.exists():
            return cls.read(path)
        key = cls.generate()
        if not create_private(path, key.pem()):
            return cls.read(path)
        log.warning("created signing key %s in %s (mode 0600)", key.key_id, path)
        return key


@dataclass(frozen=True)
class TrustedKey:
    """An Ed25519 public key a trust root lists, with its name, validity window and revocation time."""

    key_id: str
    public_key: bytes
    name: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    #: From this time on the key counts for nothing.
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        """Inside its validity window and not revoked."""
        if self.revoked_at is not None and now >= self.revoked_at:
            return False
        if self.not_before is not None and now < self.not_before:
            return False
        return not (self.not_after is not None and now >= self.not_after)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"keytype": "ed25519", "public": base64.b64encode(self.public_key).decode()}
        if self.name:
            document["name"] = self.name
        for label, when in (("notBefore", self.not_before), ("notAfter", self.not_after)):
            if when is not None:
                document[label] = format_time(when)
        if self.revoked_at is not None:
            document["revokedAt"] = format_time(self.revoked_at)
        return document
