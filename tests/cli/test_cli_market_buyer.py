"""The buyer's flow from the command line, in-process against two real servers: a marketplace M and a buyer B.

B's admin exports M's trust root (``trust export``) and adds M's marketplace key and log policy to B's own
(``trust add-marketplace``); alice acquires a license on M for her key on B (``principal key create``),
downloads the release and imports it into B with the grant and proof (``bundle import --grant --proof``); B shows
the license it holds and its uses (``market held list|get``); the owner revokes it on M (``market revoke``), and
once B has followed M's log (``market sync``, ``market followed``) the held license is revoked there too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from marketplace._buyer_nodes import FACTS, ORIGIN, RELEASE, BuyerNodes, buyer_nodes

from memos_grpc.cli.main import main
from memos_grpc.embedding.embedder import Embedder


@pytest.fixture
def nodes(tmp_path: Path, embedder: Embedder) -> Iterator[BuyerNodes]:
    with buyer_nodes(tmp_path, embedder) as built:
        yield built


class Cli:
    def __init__(self, nodes: BuyerNodes, capsys: pytest.CaptureFixture[str]) -> None:
        self.nodes, self.capsys = nodes, capsys

    def run(self, who: str, *argv: str) -> tuple[int, str, str]:
        server = self.nodes.market if who in ("market-admin", "owner", "alice-market") else self.nodes.buyer
        code = main([*argv, "--server", server.address, "--token-file", str(self.nodes.tokens[who])])
        out, err = self.capsys.readouterr()
        return code, out, err

    def refused(self, who: str, *argv: str) -> tuple[int, str]:
        """The exit code and the last line on stderr (after any progress bar): the ``error:`` line."""
        code, _, err = self.run(who, *argv)
        return code, err.strip().splitlines()[-1] if err.strip() else ""

    def ok(self, who: str, *argv: str) -> str:
        code, out, err = self.run(who, *argv)
        assert code == 0, out + err
        return out


def _version(cli: Cli) -> int:
    return int(json.loads(cli.ok("buyer-admin", "trust", "show", "--json"))["version"])


def test_the_buyer_trusts_the_marketplace_imports_under_license_and_follows_the_revocation(
    nodes: BuyerNodes, capsys: pytest.CaptureFixture[str]
) -> None:
    cli, tmp = Cli(nodes, capsys), nodes.tmp

    # The key alice's license is for: made and kept on B, registered to her.
    key = cli.ok("buyer-admin", "principal", "key", "create", "alice").strip()
    assert len(key) == 64

    # alice acquires a license on M for that key and downloads the release.
    grant, proof, bundle = tmp / "grant.json", tmp / "grant.proof", tmp / "bought.bundle"
    acquired = cli.ok(
        "alice-market", "market", "acquire", RELEASE, "--licensee", "principals/alice", "--licensee-key", key,
        "--grant-out", str(grant), "--proof-out", str(proof), "--json",
    )  # fmt: skip
    license = json.loads(acquired)
    cli.ok("alice-market", "market", "download", RELEASE, "--out", str(bundle), "--license", license["name"])

    # Before B trusts M, the grant's signer is nobody B knows: refused, nothing imported, nothing held.
    cli.ok("alice", "space", "create", "bought")
    code, err = cli.refused(
        "alice", "bundle", "import", "bought", str(bundle), "--grant", str(grant), "--proof", str(proof)
    )
    assert code == 1 and err.startswith("error: GRANT_UNTRUSTED_SIGNER: "), err
    assert cli.ok("alice", "market", "held", "list") == ""

    # B's admin takes M's marketplace key and log policy from M's exported root into a new version of B's.
    root = tmp / "market-root.json"
    assert "wrote trust root version" in cli.ok("market-admin", "trust", "export", "--out", str(root))
    before = _version(cli)
    added = cli.ok("buyer-admin", "trust", "add-marketplace", "--root", str(root))
    assert added.splitlines()[0] == f"trust root version {before + 1}" and ORIGIN in added
    shown = cli.ok("buyer-admin", "trust", "show")
    assert f"version:      {before + 1}" in shown and f"log:          {ORIGIN}" in shown and "  quorum none" in shown
    assert "\npublisher:    no keys\n" in shown
    market_key = json.loads(cli.ok("market-admin", "trust", "show", "--json"))
    marketplace_role = next(r for r in market_key["roles"] if r["role"] == "KEY_ROLE_MARKETPLACE")
    assert f"marketplace:  threshold 1 of 1\n  {marketplace_role['key_ids'][0]}" in shown
    again = cli.ok("buyer-admin", "trust", "add-marketplace", "--root", str(root))
    assert "already trusts this marketplace; nothing changed" in again and _version(cli) == before + 1

    # The licensed import: the held license is named in the report.
    imported = cli.ok("alice", "bundle", "import", "bought", str(bundle), "--grant", str(grant), "--proof", str(proof))
    held = "heldLicenses/" + license["grant_digest"].removeprefix("sha256:")
    assert "created:      3" in imported and f"held license: {held}\n" in imported
    listed = cli.ok("alice", "market", "held", "list")
    assert listed == f"{held}  active  {RELEASE}  principals/alice\n"

    with nodes.client("alice") as alice:  # recall is counted: twice allowed, then refused
        for _ in range(3):
            alice.recall("bought", "what does the weather do", 1000)
    got = cli.ok("alice", "market", "held", "get", license["grant_digest"])
    assert got.splitlines()[0] == held
    assert "state:          active" in got and f"licensee:       principals/alice (key {key})" in got
    assert "cubes:          3" in got
    uses = {line.split(":")[0].strip(): line for line in got.split("uses:\n")[1].splitlines()}
    assert uses["import"].split()[1:4] == ["1", "no", "limit"]
    assert uses["recall"].split()[1:] == ["2", "of", "2", "refused:", "LICENSE_LIMIT_REACHED"]
    as_json = json.loads(cli.ok("alice", "market", "held", "get", held, "--json"))
    assert as_json["state"] == "HELD_LICENSE_STATE_ACTIVE" and as_json["release"] == RELEASE

    # The owner revokes it on M (market revoke, the alias of license revoke); B acts on it once it has synced.
    revoked = cli.ok("owner", "market", "revoke", license["name"], "--reason", "unpaid")
    assert "state:          revoked (unpaid)" in revoked
    assert "state:          active" in cli.ok("alice", "market", "held", "get", held)
    size = json.loads(cli.ok("owner", "market", "log", "checkpoint", "--json"))["size"]
    synced = cli.ok("buyer-admin", "market", "sync")
    assert synced.splitlines()[:2] == [ORIGIN, f"size:           {size}"], synced
    assert "\nfresh:          20" in synced and "last error" not in synced  # no witness: quorum none is met
    assert cli.ok("buyer-admin", "market", "followed").splitlines()[:2] == [ORIGIN, f"size:           {size}"]
    assert "state:          revoked (LICENSE_REVOKED)" in cli.ok("alice", "market", "held", "get", held)
    with nodes.client("alice") as alice:  # the cubes stay on B, out of Search
        assert len(list(alice.list_cubes("bought"))) == len(FACTS) and alice.search("bought", "weather") == []


def test_bad_input_is_refused_and_changes_nothing(nodes: BuyerNodes, capsys: pytest.CaptureFixture[str]) -> None:
    cli, tmp = Cli(nodes, capsys), nodes.tmp
    cli.ok("alice", "space", "create", "bought")
    grant = tmp / "grant.json"
    grant.write_text("{}")

    # --grant without --proof: a usage error before anything is sent.
    code, _, err = cli.run("alice", "bundle", "import", "bought", str(nodes.bundle), "--grant", str(grant))
    assert code == 2 and "--grant and --proof go together" in err
    # A release without a license is not imported.
    code, err = cli.refused("alice", "bundle", "import", "bought", str(nodes.bundle))
    assert code == 1 and err.startswith("error: BUNDLE_UNTRUSTED_SIGNER: "), err

    # A root that is not a marketplace's (B's own), or not a trust root at all: refused, the version stays.
    before = _version(cli)
    own = tmp / "own-root.json"
    cli.ok("buyer-admin", "trust", "export", "--out", str(own))
    code, _, err = cli.run("buyer-admin", "trust", "add-marketplace", "--root", str(own))
    assert code == 1 and "names no marketplace key or no marketplace log" in err
    code, _, err = cli.run("buyer-admin", "trust", "add-marketplace", "--root", str(grant))
    assert code == 1 and "is not a trust root envelope" in err
    # A marketplace root edited on its way no longer carries its admin's signature.
    market_root = tmp / "market-root.json"
    cli.ok("market-admin", "trust", "export", "--out", str(market_root))
    envelope = json.loads(market_root.read_text())
    envelope["signatures"][0]["sig"] = "A" * len(envelope["signatures"][0]["sig"])
    forged = tmp / "forged-root.json"
    forged.write_text(json.dumps(envelope))
    code, _, err = cli.run("buyer-admin", "trust", "add-marketplace", "--root", str(forged))
    assert code == 1 and "not signed by its own admin keys" in err
    # Only an admin changes the trust root, and only an admin syncs.
    code, err = cli.refused("alice", "trust", "add-marketplace", "--root", str(market_root))
    assert (code, err) == (1, "error: ADMIN_REQUIRED: this call is for admins only")
    code, err = cli.refused("alice", "market", "sync")
    assert (code, err) == (1, "error: ADMIN_REQUIRED: this call is for admins only")
    assert _version(cli) == before
    # A held license nobody holds.
    code, _, err = cli.run("alice", "market", "held", "get", "0" * 64)
    assert code == 1 and err.startswith("error: HELD_LICENSE_NOT_FOUND"), err
