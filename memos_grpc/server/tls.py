"""TLS and mTLS for the server, from the settings' PEM files."""

from __future__ import annotations

from pathlib import Path

import grpc

from memos_grpc.errors import InvalidArgumentError
from memos_grpc.settings import Settings


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {setting} {path}: {exc.strerror}", reason="INVALID_CONFIG") from exc


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; with a client CA, client certificates are required."""
    if not settings.tls_cert_file:
        return None
    chain = _read(settings.tls_cert_file, "tls_cert_file")
    key = _read(settings.tls_key_file, "tls_key_file")
    if not settings.tls_client_ca_file:
        return grpc.ssl_server_credentials([(key, chain)])
    client_ca = _read(settings.tls_client_ca_file, "tls_client_ca_file")
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=True)
