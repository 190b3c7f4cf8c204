"""The online ``memos-grpc market`` commands, run as subprocesses against a real marketplace server.

A listing is created, a release exported by its owner is published, listed and downloaded by a licensee, whose
grant and proof files (``acquire --grant-out --proof-out``) pass the offline ``market verify`` under a buyer's
trust root naming the node's marketplace key and log policy; then the release is yanked, the license revoked, and
the log's checkpoint and the events seen as a subscriber sees them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from memos_client import MemosClient
from memos_test_support import start_server

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.bundle import verify_bundle
from memos_grpc.interchange.dsse import sign_envelope
from memos_grpc.interchange.importer import bundle_limits
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.server.app import MemosServer
from tests.memos_test_support import admin_token

ROOT = Path(__file__).resolve().parents[2]
TERMS = json.dumps({"license": "CC-BY-4.0", "permission": [{"action": "import"}], "maxOfflineSeconds": 86400})
RELEASE = "listings/weather/releases/1.0.0"


@dataclass
class Node:
    server: MemosServer
    tokens: dict[str, Path]
    names: dict[str, str]
    bundle: Path
    terms: Path

    def cli(self, who: str, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "memos_grpc.cli.main", "market", *argv]
        command += ["--server", self.server.address, "--token-file", str(self.tokens[who])]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)

    def ok(self, who: str, *argv: str) -> str:
        result = self.cli(who, *argv)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


@pytest.fixture
def node(tmp_path: Path, embedder: Embedder) -> Iterator[Node]:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True, marketplace_log_origin="cli.test/log")
    tokens, names = {}, {}
    with MemosClient(server.address, token=admin_token(server), timeout=60.0) as admin:
        for who in ("owner", "buyer"):
            names[who] = admin.create_principal(f"{who}-{uuid.uuid4().hex[:6]}").name
            tokens[who] = tmp_path / f"{who}.token"
            tokens[who].write_text(admin.create_credential(names[who]).token)
    bundle, terms = tmp_path / "weather-1.0.0.bundle", tmp_path / "terms.json"
    terms.write_text(TERMS)
    with MemosClient(server.address, token=tokens["owner"].read_text(), timeout=60.0) as owner:
        owner.create_signing_key(names["owner"])
        space = owner.create_space("wares").name
        owner.create_cube(space, "Rain follows a falling barometer")
    # The release bundle comes from the command line too: bundle export --release --terms.
    command = [sys.executable, "-m", "memos_grpc.cli.main", "bundle", "export", "wares", "--out", str(bundle)]
    command += ["--release", "weather/1.0.0", "--terms", str(terms)]
    command += ["--server", server.address, "--token-file", str(tokens["owner"])]
    exported = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    report = verify_bundle([bundle.read_bytes()], None, bundle_limits(server.settings), datetime.now(UTC))
    assert report.statement is not None, report  # integrity only: the release it names
    predicate = report.statement.predicate
    assert (predicate["listing"], predicate["release"]) == ("listings/weather", "1.0.0"), predicate
    yield Node(server, tokens, names, bundle, terms)
    server.stop(grace=1)


def buyer_trust_root(server: MemosServer) -> bytes:
    """A buyer's trust root that trusts this node's marketplace key and its log (its policy), signed by its admin."""
    assert server.vault is not None and server.vault.marketplace is not None
    market = server.vault.marketplace
    admin = SigningKey.generate()
    keys = {k.key_id: TrustedKey(k.key_id, k.public_key) for k in (admin, market.marketplace_key)}
    roles = {"admin": Role((admin.key_id,), 1), "marketplace": Role((market.marketplace_key.key_id,), 1)}
    root = TrustRoot(1, datetime.now(UTC) + timedelta(days=30), keys, roles, (market.policy_text(),))
    return sign_envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload(), [admin]).to_json()


def test_publish_acquire_verify_offline_yank_revoke_and_the_log(node: Node, tmp_path: Path) -> None:
    created = node.ok("owner", "listing", "create", "weather", "--title", "Weather facts", "--tag", "weather")
    assert created.splitlines()[0] == "listings/weather" and f"owner:          {node.names['owner']}" in created

    published = node.cli(
        "owner", "publish", "weather", "1.0.0", "--bundle", str(node.bundle), "--terms", str(node.terms)
    )
    assert published.returncode == 0, published.stderr
    assert published.stdout.splitlines()[0] == RELEASE and "state:          active" in published.stdout
    assert node.bundle.name in published.stderr  # the progress bar, named after the file

    listed = json.loads(node.ok("buyer", "releases", "weather", "--json"))
    assert [r["name"] for r in listed] == [RELEASE]
    assert json.loads(node.ok("buyer", "listing", "get", "weather", "--json"))["latest_release"] == RELEASE
    assert "listings/weather" in node.ok("buyer", "listing", "list")

    buyer_key = SigningKey.generate()
    grant, proof = tmp_path / "grant.json", tmp_path / "grant.proof"
    acquired = node.ok(
        "buyer", "acquire", RELEASE, "--licensee", "principals/buyer", "--licensee-key", buyer_key.key_id,
        "--grant-out", str(grant), "--proof-out", str(proof), "--json",
    )  # fmt: skip
    license = json.loads(acquired)["name"]
    downloaded = tmp_path / "bought.bundle"
    node.ok("buyer", "download", RELEASE, "--out", str(downloaded), "--license", license)
    assert downloaded.read_bytes() == node.bundle.read_bytes()

    root = tmp_path / "root.json"
    root.write_bytes(buyer_trust_root(node.server))
    verify = [sys.executable, "-m", "memos_grpc.cli.main", "market", "verify", str(downloaded), "--grant", str(grant)]
    verify += ["--proof", str(proof), "--trust-root", str(root)]
    verify += ["--licensee", "principals/buyer", "--licensee-key", buyer_key.key_id]
    checked = subprocess.run(verify, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == f"{downloaded}: VALID"
    other = subprocess.run(
        [*verify[:-1], SigningKey.generate().key_id], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert other.returncode == 1 and "GRANT_OTHER_LICENSEE" in other.stdout

    yanked = node.ok("owner", "yank", RELEASE, "--reason", "wrong units")
    assert "state:          yanked (wrong units)" in yanked
    assert node.ok("buyer", "releases", "weather") == ""
    assert RELEASE in node.ok("buyer", "releases", "weather", "--show-yanked")
    refused = node.cli("buyer", "license", "revoke", license, "--reason", "no")
    assert refused.returncode == 1 and refused.stderr.startswith("error: LISTING_OWNER_REQUIRED:")
    revoked = node.ok("owner", "license", "revoke", license, "--reason", "refunded")
    assert "state:          revoked (refunded)" in revoked
    assert f"{license}  revoked  {RELEASE}" in node.ok("buyer", "license", "list")

    checkpoint = node.ok("buyer", "log", "checkpoint")
    assert (
        "origin:         cli.test/log" in checkpoint and "size:           5" in checkpoint
    )  # publish, the publisher keys it pinned, grant, yank, revoke
    assert "\ncli.test/log\n5\n" in checkpoint  # the signed note, verbatim
    entries = node.ok("buyer", "log", "entries", "--start", "1", "--count", "2")
    assert entries.splitlines()[:3] == ["entry 1", "  memstore-entry/v1", "  type key"]
    assert "entry 2\n  memstore-entry/v1\n  type grant" in entries
    events = node.ok("buyer", "subscribe", "--start-index", "0", "--count", "3").splitlines()
    assert [line.split()[:2] for line in events] == [["0", "publish"], ["3", "yank"], ["4", "revoke"]]
    assert events[2].startswith(f"4  revoke  {license} of {RELEASE} (refunded)")
