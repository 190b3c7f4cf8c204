"""The Memory Interchange Protocol: signed bundles, their codec, trust and exchange.

The offline codec is re-exported here (what a client needs to write, inspect
and verify bundles without a server); the server side lives in ``exporter``,
``importer``, ``peer``, ``signers`` and ``trust_store``. docs/protocol.md is
the specification.
"""

from memos_grpc.interchange.bundle import (
    BundleEntry,
    BundleLimits,
    BundleReport,
    BundleVerifier,
    TrustPolicy,
    verify_bundle,
    verify_statement_envelope,
    write_bundle,
)
from memos_grpc.interchange.dsse import Envelope, pae, parse_envelope, sign_envelope, verify_envelope
from memos_grpc.interchange.statement import Subject, build_statement, parse_statement
from memos_grpc.interchange.trust import Role, TrustRoot, parse_trust_root, verify_root_update
from memos_grpc.primitives.keys import SigningKey, TrustedKey, key_id

__all__ = [
    "BundleEntry",
    "BundleLimits",
    "BundleReport",
    "BundleVerifier",
    "Envelope",
    "Role",
    "SigningKey",
    "Subject",
    "TrustPolicy",
    "TrustRoot",
    "TrustedKey",
    "build_statement",
    "key_id",
    "pae",
    "parse_envelope",
    "parse_statement",
    "parse_trust_root",
    "sign_envelope",
    "verify_bundle",
    "verify_envelope",
    "verify_root_update",
    "verify_statement_envelope",
    "write_bundle",
]
