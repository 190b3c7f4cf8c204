"""The generated code check: fresh output matches the checked-in tree, and drift is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tools import gen_proto


def test_checked_in_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.gen_proto", "--check"], cwd=gen_proto.ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_is_reported(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    gen_proto.generate(fresh)
    stale = tmp_path / "stale"
    shutil.copytree(fresh / "memos_grpc" / "_proto", stale)
    edited = stale / "memos" / "v1" / "cube_pb2.py"
    edited.write_text(edited.read_text() + "\n# edited by hand\n")
    (stale / "memos" / "v1" / "extra_pb2.py").write_text("")
    found = gen_proto._differences(stale, fresh / "memos_grpc" / "_proto")
    assert any("cube_pb2.py" in line for line in found)
    assert any("extra_pb2.py" in line for line in found)
