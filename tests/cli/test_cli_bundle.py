"""The ``memos-grpc keys`` and ``bundle`` subcommands: key files; bundles exported, verified, inspected, imported."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from memos_client import MemosClient

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.cli.main import main
from memos_grpc.interchange import BundleEntry, SigningKey, Subject, build_statement, sign_envelope, write_bundle
from memos_grpc.interchange.dsse import STATEMENT_PAYLOAD_TYPE
from memos_grpc.server.app import MemosServer
from tests.memos_test_support import admin_token

TEXTS = ["the espresso machine on floor three is broken", "lunch is at noon", "the wifi password is on the fridge"]


def offline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def online(capsys: pytest.CaptureFixture[str], server: MemosServer, *argv: str) -> tuple[int, str, str]:
    token_file = str(server.settings.data_dir / "admin.token")
    return offline(capsys, *argv, "--server", server.address, "--token-file", token_file)


@pytest.fixture
def client(server: MemosServer) -> MemosClient:
    return MemosClient(server.address, token=admin_token(server), timeout=60.0)


def new_space(client: MemosClient, texts: list[str]) -> str:
    space_id = "b" + uuid.uuid4().hex[:12]
    client.create_space(space_id)
    client.batch_create_cubes(space_id, [{"text": t} for t in texts])
    return space_id


@pytest.fixture
def bundle(server: MemosServer, client: MemosClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A bundle file of a new space holding the three TEXTS, exported with the CLI."""
    space = new_space(client, TEXTS)
    path = tmp_path / "three.bundle"
    code, out, err = online(capsys, server, "bundle", "export", space, "--out", str(path))
    assert code == 0, err
    assert out.strip() == f"exported spaces/{space} to {path} ({path.stat().st_size} bytes)"
    assert "three.bundle" in err and "B" in err  # the progress bar, in bytes
    assert not Path(str(path) + ".part").exists()
    return path


def node_public_key(capsys: pytest.CaptureFixture[str], server: MemosServer) -> str:
    code, out, err = offline(capsys, "keys", "show", "--data-dir", str(server.settings.data_dir), "--json")
    assert code == 0, err
    shown = json.loads(out)
    key: str = shown["public_key"]
    return key


def test_keys_generate_and_show(
    server: MemosServer, client: MemosClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "me.key"
    code, out, err = offline(capsys, "keys", "generate", "--out", str(path), "--json")
    assert code == 0, err
    generated = json.loads(out)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = SigningKey.read(path)
    assert generated == {"file": str(path), "key_id": key.key_id, "public_key": key.public_key_b64}

    pem = path.read_bytes()
    code, _, err = offline(capsys, "keys", "generate", "--out", str(path))
    assert code == 1 and err.startswith("error: KEY_FILE_EXISTS: ") and path.read_bytes() == pem

    code, out, _ = offline(capsys, "keys", "show", str(path))
    assert code == 0 and f"key_id:     {key.key_id}" in out and f"public_key: {key.public_key_b64}" in out

    # The server's own node key (its root may trust peers' node keys too, added by other tests).
    own = client.get_principal("principals/node").key_ids[0]
    assert own in {key.key_id for key in client.get_trust_root().keys_for("node")}
    code, out, _ = offline(capsys, "keys", "show", "--data-dir", str(server.settings.data_dir), "--json")
    assert code == 0 and json.loads(out)["key_id"] == own
    assert (
        node_public_key(capsys, server)
        == SigningKey.read(server.settings.data_dir / "keys" / "node.key").public_key_b64
    )

    code, _, err = offline(capsys, "keys", "show")
    assert code == 2 and "one of FILE, --keys-dir or --data-dir" in err
    code, _, err = offline(capsys, "keys", "show", str(path), "--data-dir", str(server.settings.data_dir))
    assert code == 2 and "one of FILE, --keys-dir or --data-dir" in err
    code, _, err = offline(capsys, "keys", "show", str(tmp_path / "missing.key"))
    assert code == 1 and "KEY_FILE_UNREADABLE" in err


def test_keys_show_finds_the_node_key_where_the_server_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers sharing one PostgreSQL database keep their keys in one ``keys_dir``, outside the data directory."""
    shared = tmp_path / "shared-keys"
    shared.mkdir()
    node = SigningKey.generate()
    node.write(shared / "node.key")
    code, out, err = offline(capsys, "keys", "show", "--keys-dir", str(shared), "--json")
    assert code == 0, err
    assert json.loads(out)["key_id"] == node.key_id

    monkeypatch.setenv("MEMOS_KEYS_DIR", str(shared))
    code, out, err = offline(capsys, "keys", "show", "--data-dir", str(tmp_path / "data"), "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "file": str(shared / "node.key"),
        "key_id": node.key_id,
        "public_key": node.public_key_b64,
    }


def test_export_verify_import(
    server: MemosServer, client: MemosClient, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = online(capsys, server, "bundle", "verify", str(bundle))
    assert code == 0, err
    assert out.startswith(f"{bundle}: VALID") and "cubes:        3" in out and "principals/node" in out

    node_key = node_public_key(capsys, server)
    code, out, err = offline(capsys, "bundle", "verify", str(bundle), "--offline", "--trust-key", node_key, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] is True and report["cube_count"] == "3"
    assert [s["status"] for s in report["signatures"]] == ["STATUS_COUNTED"]
    stranger = SigningKey.generate().public_key_b64
    code, out, err = offline(capsys, "bundle", "verify", str(bundle), "--offline", "--trust-key", stranger)
    assert code == 1 and "INVALID  BUNDLE_UNTRUSTED_SIGNER" in out and "BUNDLE_UNTRUSTED_SIGNER" in err
    code, _, err = offline(capsys, "bundle", "verify", str(bundle), "--offline")
    assert code == 2 and "--trust-key" in err

    target = new_space(client, [])
    code, out, err = online(capsys, server, "bundle", "import", target, str(bundle), "--role", "publisher")
    assert code == 1 and out == "" and "error: BUNDLE_UNTRUSTED_SIGNER: " in err
    pinned = SigningKey.generate().key_id
    code, out, err = online(capsys, server, "bundle", "import", target, str(bundle), "--require-key", pinned)
    assert (
        code == 1
        and f"error: BUNDLE_REQUIRED_SIGNER_MISSING: the trust policy requires a signature by key {pinned}" in err
    )
    assert list(client.list_cubes(target)) == []
    code, out, err = online(capsys, server, "bundle", "import", target, str(bundle))
    assert code == 0, err
    assert "created:      3" in out and "skipped:      0" in out and "statement:    sha256:" in out
    assert "three.bundle: 100%|" in err  # the progress bar, whose total is the file's size, reached it
    assert sorted(c.text or "" for c in client.list_cubes(target)) == sorted(TEXTS)
    code, out, _ = online(capsys, server, "bundle", "import", target, str(bundle), "--conflict", "new-version")
    assert code == 0 and "new version:  3" in out and "created:      0" in out


def test_inspect(server: MemosServer, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = offline(capsys, "bundle", "inspect", str(bundle))
    assert code == 0, err
    assert "format version: 1" in out and "statement:      UNVERIFIED" in out
    assert '"predicateType": "https://memos-grpc.dev/MemCubeBundle/v1"' in out
    assert "contents:       3 entries (3 cubes, 0 blobs" in out
    lines = [line for line in out.splitlines() if line.startswith("  cubes/")]
    assert len(lines) == 3 and all("  plaintext  spaces/" in line and "  provenance " in line for line in lines)
    assert any(line.endswith("the espresso machine on floor three is broken") for line in lines)

    code, out, _ = offline(capsys, "bundle", "inspect", str(bundle), "--trust-key", node_public_key(capsys, server))
    assert code == 0 and "statement:      VERIFIED (role node, threshold 1)" in out and "counted" in out

    code, out, _ = offline(capsys, "bundle", "inspect", str(bundle), "--limit", "1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["format_version"] == "1" and shown["entry_count"] == 3
    assert len(shown["entries"]) == 1 and shown["more_entries"] == 2 and shown["problems"] == []
    assert shown["statement_verification"]["verified"] is None and len(shown["statement"]["subject"]) == 3
    code, out, _ = offline(capsys, "bundle", "inspect", str(bundle), "--limit", "2")
    assert code == 0 and out.rstrip().endswith("... and 1 more") and "cut to 2 of 3" in out


def test_tampered_bundle_is_refused(
    server: MemosServer, client: MemosClient, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(bundle.read_bytes())
    data[data.index(b"espresso")] ^= 0x20  # one byte of a cube's text: its digest no longer matches
    tampered = tmp_path / "tampered.bundle"
    tampered.write_bytes(bytes(data))

    code, out, err = online(capsys, server, "bundle", "verify", str(tampered))
    assert code == 1 and "INVALID  BUNDLE_DIGEST_MISMATCH" in out and "error: the bundle is not valid" in err
    code, out, err = offline(capsys, "bundle", "inspect", str(tampered))
    assert code == 1 and "Espresso" in out and "error: BUNDLE_DIGEST_MISMATCH: " in err

    target = new_space(client, [])
    code, out, err = online(capsys, server, "bundle", "import", target, str(tampered))
    assert code == 1 and out == "" and "error: BUNDLE_DIGEST_MISMATCH: " in err and "Traceback" not in err
    assert list(client.list_cubes(target)) == []

    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    code, out, err = online(capsys, server, "bundle", "verify", str(tampered), "--json")
    assert code == 1 and json.loads(out)["reason"].startswith("BUNDLE_")


def test_export_of_a_missing_space_leaves_no_file(
    server: MemosServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.bundle"
    code, out, err = online(capsys, server, "bundle", "export", "no-such-space", "--out", str(path))
    assert code == 1 and out == "" and err.splitlines()[-1].startswith("error: SPACE_NOT_FOUND: ")
    assert list(tmp_path.iterdir()) == []


def test_export_of_named_cubes(
    server: MemosServer, client: MemosClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = new_space(client, TEXTS)
    cubes = {c.text: c for c in client.list_cubes(space)}
    path = tmp_path / "two.bundle"
    names = ["--name", cubes[TEXTS[0]].cube_id, "--name", cubes[TEXTS[2]].name]
    code, out, err = online(capsys, server, "bundle", "export", space, "--out", str(path), *names, "--json")
    assert code == 0, err
    assert json.loads(out) == {"space": f"spaces/{space}", "file": str(path), "bytes": path.stat().st_size}
    code, out, _ = offline(capsys, "bundle", "inspect", str(path), "--json")
    shown = json.loads(out)
    assert code == 0 and {e["provenance_id"] for e in shown["entries"]} == {
        cubes[TEXTS[0]].provenance_id,
        cubes[TEXTS[2]].provenance_id,
    }


def test_inspect_stops_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    """`memos-grpc bundle inspect big.bundle | head` ends without a traceback."""
    entries = {}
    for n in range(3000):
        cube = cube_pb2.MemCube(provenance_id=f"p{n}", plaintext=cube_pb2.PlaintextPayload(text=f"memory {n}"))
        entries[f"cubes/p{n}.pb"] = cube.SerializeToString()
    subjects = [Subject(name, hashlib.sha256(data).hexdigest(), len(data)) for name, data in entries.items()]
    envelope = sign_envelope(STATEMENT_PAYLOAD_TYPE, build_statement(subjects, {}), [SigningKey.generate()])
    path = tmp_path / "big.bundle"
    parts = [BundleEntry(name, len(data), lambda data=data: [data]) for name, data in entries.items()]
    path.write_bytes(b"".join(write_bundle(envelope, parts)))
    command = [sys.executable, "-m", "memos_grpc.cli.main", "bundle", "inspect", str(path), "--limit", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"bundle:")
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert b"Traceback" not in stderr and process.returncode == 1
