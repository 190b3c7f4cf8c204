"""The ``memos-grpc space`` and ``cube`` subcommands against a real in-process server."""

from __future__ import annotations

import json
import pathlib
import socket
import uuid
from typing import Any

import pytest

from memos_grpc.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], server: Any, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--server", server.address, "--token-file", str(server.settings.data_dir / "admin.token")])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def space(server: Any, capsys: pytest.CaptureFixture[str]) -> str:
    space_id = f"cli-{uuid.uuid4().hex[:12]}"
    code, _, err = _run(capsys, server, "space", "create", space_id, "--display-name", "CLI")
    assert code == 0, err
    return space_id


def test_space_commands(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    space_id = f"cli-{uuid.uuid4().hex[:12]}"
    code, out, err = _run(
        capsys, server, "space", "create", space_id, "--label", "team=memory", "--json", "--description", "d"
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["name"] == f"spaces/{space_id}" and created["labels"] == {"team": "memory"}
    code, out, _ = _run(capsys, server, "space", "get", space_id)
    assert code == 0 and f"spaces/{space_id}" in out and "team=memory" in out
    code, out, _ = _run(capsys, server, "space", "list", "--json")
    assert code == 0 and f"spaces/{space_id}" in [s["name"] for s in json.loads(out)]
    code, out, _ = _run(capsys, server, "space", "delete", space_id)
    assert code == 0 and out.strip() == f"deleted spaces/{space_id}"
    code, _, err = _run(capsys, server, "space", "get", space_id)
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err


def test_cube_add_get_search_delete(server: Any, space: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = "The espresso machine on floor three is broken until Friday. " * 3
    code, out, err = _run(
        capsys, server, "cube", "add", space, text, "--id", "coffee", "--tag", "office", "--priority", "5"
    )
    assert code == 0, err
    name = f"spaces/{space}/cubes/coffee"
    line = out.strip()
    assert line.startswith(f"{name}  plaintext  ") and line.endswith("…")
    assert len(line) - len(f"{name}  plaintext  ") == 80
    code, out, _ = _run(capsys, server, "cube", "add", space, "Lunch is at noon.", "--semantic-type", "event")
    assert code == 0

    code, out, _ = _run(capsys, server, "cube", "get", name, "--json")
    cube = json.loads(out)
    assert code == 0 and cube["name"] == name and cube["tags"] == ["office"] and cube["priority"] == 5
    code, out, _ = _run(capsys, server, "cube", "get", name)
    assert "priority:" in out and "office" in out

    code, out, _ = _run(capsys, server, "cube", "search", space, "coffee maker out of order", "--top-k", "1")
    assert code == 0 and out.startswith(f"{name}  0.") and len(out.strip().splitlines()) == 1
    code, out, _ = _run(capsys, server, "cube", "search", space, "coffee", "--json")
    results = json.loads(out)
    assert len(results) == 2 and results[0]["cube"]["name"] == name and "score" in results[0]

    code, out, _ = _run(capsys, server, "cube", "delete", name, "--etag", cube["etag"])
    assert code == 0 and out.strip() == f"deleted {name}"
    code, out, err = _run(capsys, server, "cube", "get", name)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and ": " in err.removeprefix("error: ") and "Traceback" not in err


def test_cube_add_jsonl_file(
    server: Any, space: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "memories.jsonl"
    rows: list[dict[str, Any]] = [
        {"text": f"jsonl memory {i}", "id": f"j{i:02d}", "tags": ["import"]} for i in range(30)
    ]
    rows[0] |= {"semantic_type": "fact", "priority": 70, "labels": {"src": "file"}}
    rows[1] = {"text": "no id, server picks one", "cube_id": ""}
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")

    code, out, err = _run(capsys, server, "cube", "add", space, "--file", str(path), "--batch-size", "8", "--json")
    assert code == 0, err
    cubes = json.loads(out)
    assert len(cubes) == 30 and "30/30" in err
    assert cubes[0]["name"] == f"spaces/{space}/cubes/j00"
    assert cubes[0]["semantic_type"] == "SEMANTIC_TYPE_FACT"
    assert cubes[0]["priority"] == 70 and cubes[0]["labels"] == {"src": "file"}
    assert cubes[1]["plaintext"]["text"] == "no id, server picks one"

    code, out, _ = _run(capsys, server, "cube", "list", space, "--json")
    assert code == 0 and len(json.loads(out)) == 30
    code, out, _ = _run(capsys, server, "cube", "list", space, "--limit", "5")
    assert code == 0 and len(out.strip().splitlines()) == 5


def test_cube_add_text_file_with_defaults(
    server: Any, space: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("first note\n\nsecond note\nthird note\n", encoding="utf-8")
    code, out, err = _run(capsys, server, "cube", "add", space, "--file", str(path), "--tag", "notes", "--label", "k=v")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].endswith("plaintext  first note")
    code, out, _ = _run(capsys, server, "cube", "list", space, "--json")
    assert {c["plaintext"]["text"] for c in json.loads(out)} == {"first note", "second note", "third note"}
    assert all(c["tags"] == ["notes"] and c["labels"] == {"k": "v"} for c in json.loads(out))


def test_cube_errors(server: Any, space: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, server, "cube", "get", f"spaces/{space}/cubes/missing", "--json")
    assert code == 1 and out == "" and err.startswith("error: CUBE_NOT_FOUND: ") and "Traceback" not in err
    code, _, err = _run(capsys, server, "cube", "add", space)
    assert code == 2 and "TEXT or --file" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txet": "typo"}\n', encoding="utf-8")
    code, _, err = _run(capsys, server, "cube", "add", space, "--file", str(bad))
    assert code == 1 and "bad.jsonl:2" in err


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    code = main(["cube", "list", "anything", "--server", address, "--timeout", "10"])
    err = capsys.readouterr().err
    assert code == 1 and f"the server at {address} is unreachable" in err and "Traceback" not in err
