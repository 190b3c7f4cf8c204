"""Test PKI for the TLS tests: a trusted CA, a server certificate, client certificates, and a rogue CA.

Everything is generated with ``cryptography`` (P-256 keys, valid for a day)
and written as PEM into a directory; keys are mode 0600. Fingerprints are
what the server matches: lowercase hex of sha256 over the DER certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files, with the certificate's fingerprint."""

    cert: Path
    key: Path
    fingerprint: str

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    #: Signed by ``ca``: the tests register ``client`` and leave ``stranger`` unregistered.
    client: Issued
    stranger: Issued
    #: A second CA the server does not trust, and a client certificate it signed.
    rogue_ca: Issued
    rogue_client: Issued


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return Issued(cert_path, key_path, fingerprint)


def _issue(
    common_name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for a new key, signed by ``issuer`` (self-signed when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = (_name(common_name), key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signing_key, hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    """Generates the whole test PKI into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _issue("memos test CA", None, ca=True)
    rogue = _issue("memos rogue CA", None, ca=True)
    return Pki(
        ca=_write(directory, "ca", *ca),
        server=_write(directory, "server", *_issue("localhost", ca, server=True)),
        client=_write(directory, "client", *_issue("registered client", ca)),
        stranger=_write(directory, "stranger", *_issue("unregistered client", ca)),
        rogue_ca=_write(directory, "rogue-ca", *rogue),
        rogue_client=_write(directory, "rogue-client", *_issue("rogue client", rogue)),
    )
