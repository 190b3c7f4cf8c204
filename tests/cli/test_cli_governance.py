"""The governance subcommands: principals, tokens, and the audit log exported as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memos_grpc.cli.main import main
from memos_grpc.server.app import MemosServer


def run(
    capsys: pytest.CaptureFixture[str], server: MemosServer, *argv: str, token: str | None = None
) -> tuple[int, str, str]:
    auth = ["--token", token] if token else ["--token-file", str(server.settings.data_dir / "admin.token")]
    code = main([*argv, "--server", server.address, *auth])
    out, err = capsys.readouterr()
    return code, out, err


def test_principal_token_and_audit_round_trip(
    capsys: pytest.CaptureFixture[str], fresh_server: MemosServer, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, fresh_server, "principal", "create", "robot", "--kind", "agent")
    assert code == 0 and "principals/robot  agent" in out
    code, out, err = run(capsys, fresh_server, "credential", "create", "robot", "--description", "ci")
    assert code == 0 and "shown only now" in err
    credential_name, token = out.split()
    code, _, _ = run(capsys, fresh_server, "space", "create", "robots-own", token=token)
    assert code == 0
    code, _, _ = run(capsys, fresh_server, "credential", "revoke", credential_name)
    assert code == 0
    code, _, err = run(capsys, fresh_server, "space", "list", token=token)
    assert code == 1 and "TOKEN_REVOKED" in err

    export = tmp_path / "audit.jsonl"
    code, _, err = run(capsys, fresh_server, "audit", "export", "--output", str(export))
    assert code == 0
    events = [json.loads(line) for line in export.read_text().splitlines()]
    assert f"exported {len(events)} audit events" in err
    assert [e["sequence"] for e in events] == [str(n) for n in range(1, len(events) + 1)]
    methods = [e["method"].rsplit("/", 1)[1] for e in events]
    assert methods[:4] == ["CreatePrincipal", "CreateCredential", "CreateSpace", "RevokeCredential"]
    assert events[-1]["outcome"] == "OUTCOME_DENIED" and events[-1]["reason"] == "TOKEN_REVOKED"
    code, out, _ = run(capsys, fresh_server, "audit", "verify")
    assert code == 0 and f"{len(events)} events" in out

    code, _, err = run(capsys, fresh_server, "audit", "export", "--filter", "outcome = DENIED")
    assert code == 0 and "exported 1 audit events" in err


def test_audit_verify_exits_1_on_a_broken_chain(capsys: pytest.CaptureFixture[str], fresh_server: MemosServer) -> None:
    run(capsys, fresh_server, "space", "create", "one")
    run(capsys, fresh_server, "space", "create", "two")
    assert fresh_server.vault is not None
    fresh_server.vault.context.database.write(
        lambda cursor: cursor.execute("UPDATE audit_events SET resource = 'zzz' WHERE sequence = 2")
    )
    code, _, err = run(capsys, fresh_server, "audit", "verify")
    assert code == 1 and "BROKEN at event 2" in err
