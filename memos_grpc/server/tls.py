"""TLS and mTLS for the server, from the settings' PEM files, checked before they reach gRPC."""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.settings import Settings


def _fail(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, reason=reasons.INVALID_CONFIG)


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {setting} {path}: {exc.strerror}") from exc


def _certificates(data: bytes, path: str, setting: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise _fail(f"{setting} {path} holds no PEM certificate: {exc}") from exc
    return certificates


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; with a client CA, client certificates are required.

    Unusable files (not PEM, or a key that does not match the certificate) are refused here with
    INVALID_CONFIG naming the setting, rather than as an opaque bind failure inside gRPC.
    """
    if not settings.tls_cert_file:
        return None
    chain = _read(settings.tls_cert_file, "tls_cert_file")
    key = _read(settings.tls_key_file, "tls_key_file")
    leaf = _certificates(chain, settings.tls_cert_file, "tls_cert_file")[0]
    try:
        private_key = load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise _fail(f"tls_key_file {settings.tls_key_file} holds no unencrypted PEM private key: {exc}") from exc
    spki = PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(Encoding.DER, spki) != leaf.public_key().public_bytes(Encoding.DER, spki):
        raise _fail(
            f"tls_key_file {settings.tls_key_file} is not the key of the certificate in {settings.tls_cert_file}"
        )
    if not settings.tls_client_ca_file:
        return grpc.ssl_server_credentials([(key, chain)])
    client_ca = _read(settings.tls_client_ca_file, "tls_client_ca_file")
    _certificates(client_ca, settings.tls_client_ca_file, "tls_client_ca_file")
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=True)
