"""``memos-grpc market verify``: a licensed release checked offline, run as a subprocess, no server.

Every file is made by the project's own code: the release bundle (write_bundle), the grant (make_grant), the log
(RFC 6962 tree from merkle.py, a checkpoint signed with note.sign_note and cosigned with cosignature.cosign, a
tlog-proof@v1 file) and the buyer's trust root (a TrustRoot envelope naming the marketplace key and the log's
policy). Each refusal changes one thing and must name its reason.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memos_grpc.interchange.bundle import BundleEntry, write_bundle
from memos_grpc.interchange.dsse import STATEMENT_PAYLOAD_TYPE, parse_envelope, sign_envelope
from memos_grpc.interchange.statement import Subject, build_statement
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.grants import make_grant
from memos_grpc.marketplace.terms import Terms
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.cosignature import CosignatureVerifier, add_cosignature, cosign
from memos_grpc.transparency.note import NoteVerifier, sign_note
from memos_grpc.transparency.proof import TlogProof

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
ORIGIN = "market.example/log"
RELEASE = "listings/weather-facts/releases/1.2.0"
LICENSE = "CC-BY-4.0"
BUYER = "principals/buyer"
TERMS = Terms.parse(
    json.dumps({"license": LICENSE, "permission": [{"action": "import"}], "maxOfflineSeconds": 86400}).encode()
)
CUBE = b"a cube's bytes: the weather in Lisbon is mild in May"


@dataclass
class Market:
    """The keys of one marketplace world: admin, marketplace, log, two witnesses, a publisher and the buyer."""

    admin: SigningKey = field(default_factory=SigningKey.generate)
    market: SigningKey = field(default_factory=SigningKey.generate)
    log: SigningKey = field(default_factory=SigningKey.generate)
    witnesses: tuple[SigningKey, ...] = field(default_factory=lambda: (SigningKey.generate(), SigningKey.generate()))
    publisher: SigningKey = field(default_factory=SigningKey.generate)
    buyer: SigningKey = field(default_factory=SigningKey.generate)

    def policy(self) -> str:
        lines = [f"log {NoteVerifier.for_key(ORIGIN, self.log.public_key).vkey()}"]
        for number, key in enumerate(self.witnesses, 1):
            lines.append(
                f"witness w{number} {CosignatureVerifier.for_key(f'w{number}.example', key.public_key).vkey()}"
            )
        return "\n".join([*lines, "group both 2 w1 w2", "quorum both"]) + "\n"

    def trust_root(self, *, market: bool = True, logs: bool = True) -> bytes:
        keys = {k.key_id: TrustedKey(k.key_id, k.public_key) for k in (self.admin, self.market)}
        roles = {"admin": Role((self.admin.key_id,), 1), "marketplace": Role((self.market.key_id,) if market else ())}
        root = TrustRoot(1, NOW + timedelta(days=365), keys, roles, (self.policy(),) if logs else ())
        return sign_envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload(), [self.admin]).to_json()

    def bundle(self, predicate: dict[str, object] | None = None) -> tuple[bytes, str]:
        """The release bundle, signed by the publisher, and its statement digest."""
        subject = Subject("cubes/p1.pb", hashlib.sha256(CUBE).hexdigest(), len(CUBE))
        found = {
            "formatVersion": 1,
            "listing": "listings/weather-facts",
            "release": "1.2.0",
            "license": LICENSE,
            "termsDigest": TERMS.digest(),
        }
        statement = build_statement([subject], found if predicate is None else predicate)
        envelope = sign_envelope(STATEMENT_PAYLOAD_TYPE, statement, [self.publisher])
        data = b"".join(write_bundle(envelope, [BundleEntry(subject.name, len(CUBE), lambda: [CUBE])]))
        return data, "sha256:" + hashlib.sha256(statement).hexdigest()

    def grant(self, digest: str, *, signer: SigningKey | None = None, until: datetime | None = None) -> bytes:
        return make_grant(
            key=signer or self.market,
            release=RELEASE,
            release_digest=digest,
            terms=TERMS,
            log_origin=ORIGIN,
            licensee_principal=BUYER,
            licensee_key_id=self.buyer.key_id,
            not_before=NOW - timedelta(days=1),
            not_after=until or NOW + timedelta(days=30),
            publish_log_index=0,
        ).to_json()

    def log_proofs(self, entries: list[bytes], *, cosigners: int = 2) -> list[str]:
        """A tlog-proof@v1 file for each entry of a log holding ``entries``, under one checkpoint."""
        leaves = [merkle.leaf_hash(e) for e in entries]

        def node(level: int, index: int) -> bytes:
            return merkle.root_from_leaves(leaves[index << level : (index + 1) << level])

        body = Checkpoint(ORIGIN, len(leaves), merkle.root_from_leaves(leaves), ()).body()
        note = sign_note(body, ORIGIN, self.log)
        for number, key in enumerate(self.witnesses[:cosigners], 1):
            note = add_cosignature(note, cosign(body, f"w{number}.example", key, int(NOW.timestamp()) - 60))
        return [
            TlogProof(i, tuple(merkle.inclusion_proof(i, len(leaves), node)), note).text() for i in range(len(leaves))
        ]


def grant_entry(market: Market, grant: bytes, digest: str, signer: SigningKey | None = None) -> bytes:
    """The grant's log entry as the marketplace writes it."""
    payload = parse_envelope(grant).payload
    statement = "sha256:" + hashlib.sha256(payload).hexdigest()
    return Entry("grant", digest, statement, (signer or market.market).key_id).encode()


def publish_entry(market: Market, digest: str) -> bytes:
    return Entry("publish", digest, digest, market.publisher.key_id).encode()


@dataclass
class Files:
    bundle: Path
    grant: Path
    proof: Path
    root: Path


def write(tmp: Path, bundle: bytes, grant: bytes, proof: str, root: bytes) -> Files:
    files = Files(tmp / "release.bundle", tmp / "grant.json", tmp / "grant.proof", tmp / "root.json")
    files.bundle.write_bytes(bundle)
    files.grant.write_bytes(grant)
    files.proof.write_text(proof)
    files.root.write_bytes(root)
    return files


def world(tmp: Path, market: Market, *, cosigners: int = 2, until: datetime | None = None) -> Files:
    """A valid licensed release: entry 0 publishes it, entry 1 grants it to the buyer."""
    bundle, digest = market.bundle()
    grant = market.grant(digest, until=until)
    proofs = market.log_proofs([publish_entry(market, digest), grant_entry(market, grant, digest)], cosigners=cosigners)
    return write(tmp, bundle, grant, proofs[1], market.trust_root())


def verify(files: Files, *extra: str, licensee: Market | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "memos_grpc.cli.main", "market", "verify", str(files.bundle)]
    command += ["--grant", str(files.grant), "--proof", str(files.proof), "--trust-root", str(files.root)]
    if licensee is not None:
        command += ["--licensee", BUYER, "--licensee-key", licensee.buyer.key_id]
    return subprocess.run(command + list(extra), capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"INVALID  {reason}:" in result.stdout.splitlines()[0], result.stdout
    assert f"error: the licensed release is not valid: {reason}:" in result.stderr


def test_a_licensed_release_verifies_offline(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    result = verify(files, licensee=market)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{files.bundle}: VALID"
    assert f"release:      {RELEASE}" in lines and f"license:      {LICENSE}" in lines
    checks = [line.split()[0:2] for line in lines[lines.index("checks:") + 1 :] if line.startswith("  ")]
    assert checks == [["trust", "root:"], ["bundle:", "ok"], ["grant:", "ok"], ["release:", "ok"], ["proof:", "ok"]]
    assert "entry 1 of 2 in market.example/log, cosigned by w1, w2 within 86400 s" in result.stdout
    assert result.stderr == ""

    as_json = json.loads(verify(files, "--json", licensee=market).stdout)
    assert (as_json["valid"], as_json["reason"], as_json["max_age_seconds"]) == (True, "", 86400)
    assert [c["status"] for c in as_json["checks"]] == ["ok"] * 5

    # Without --licensee the grant is checked for the licensee it names, and the report says so.
    unnamed = verify(files)
    assert unnamed.returncode == 0 and f"licensee not checked: the grant licenses {BUYER}" in unnamed.stdout


def test_a_tampered_bundle_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    data = bytearray(files.bundle.read_bytes())
    at = bytes(data).index(CUBE)
    data[at] ^= 0x01
    files.bundle.write_bytes(bytes(data))
    refused(verify(files, licensee=market), "BUNDLE_DIGEST_MISMATCH")


def test_a_grant_for_another_licensee_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    result = verify(files, "--licensee", "principals/other", "--licensee-key", market.buyer.key_id)
    refused(result, "GRANT_OTHER_LICENSEE")
    refused(verify(files, licensee=Market()), "GRANT_OTHER_LICENSEE")  # the buyer's name, another key


def test_an_expired_grant_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market, until=NOW - timedelta(hours=1))
    result = verify(files, licensee=market)
    refused(result, "GRANT_EXPIRED")
    # An expired grant is still read whole: its entry is rebuilt and its proof checked, and the report says so.
    assert "  proof:      ok" in result.stdout


def test_a_proof_for_another_entry_is_refused(tmp_path: Path) -> None:
    market = Market()
    bundle, digest = market.bundle()
    grant = market.grant(digest)
    proofs = market.log_proofs([publish_entry(market, digest), grant_entry(market, grant, digest)])
    files = write(tmp_path, bundle, grant, proofs[0], market.trust_root())  # the publish entry's proof
    refused(verify(files, licensee=market), "TLOG_PROOF_INCLUSION_INVALID")


def test_a_checkpoint_without_the_witness_quorum_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market, cosigners=1)
    refused(verify(files, licensee=market), "TLOG_PROOF_QUORUM_NOT_MET")


def test_stale_cosignatures_are_refused_under_max_age(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)  # cosigned 60 s before NOW
    refused(
        verify(files, "--max-age", "30", "--at", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), licensee=market),
        "TLOG_PROOF_COSIGNATURE_STALE",
    )


def test_a_grant_by_an_unknown_marketplace_key_is_refused(tmp_path: Path) -> None:
    market = Market()
    stranger = SigningKey.generate()
    bundle, digest = market.bundle()
    grant = market.grant(digest, signer=stranger)
    proofs = market.log_proofs([publish_entry(market, digest), grant_entry(market, grant, digest, stranger)])
    files = write(tmp_path, bundle, grant, proofs[1], market.trust_root())
    result = verify(files, licensee=market)
    refused(result, "GRANT_UNTRUSTED_SIGNER")
    assert "proof:      skipped" in result.stdout  # no grant to rebuild the entry from


def test_a_grant_for_another_release_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    other, _ = market.bundle(
        {"formatVersion": 1, "listing": "listings/weather-facts", "release": "1.3.0", "license": LICENSE}
    )
    files.bundle.write_bytes(other)
    refused(verify(files, licensee=market), "RELEASE_DIGEST_MISMATCH")


def test_a_root_that_names_no_marketplace_log_is_refused(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    files.root.write_bytes(market.trust_root(logs=False))
    refused(verify(files, licensee=market), "TLOG_UNKNOWN_LOG")


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    market = Market()
    files = world(tmp_path, market)
    result = verify(files, "--licensee", BUYER)
    assert result.returncode == 2 and "--licensee and --licensee-key go together" in result.stderr
