"""The README's three-node marketplace tour runs as written: examples/marketplace-tour.sh, end to end.

The script starts a publisher, a marketplace and a buyer as real servers (the real embedder, as a user gets them)
on free localhost ports, in a temporary directory, and drives them with the ``memos-grpc`` command only. The
README shows its essential lines; every one of them must be a line of the script, so the two cannot drift.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "marketplace-tour.sh"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("#### Three nodes: publisher, marketplace, buyer", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's three-node section has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_shows_lines_of_the_script() -> None:
    script = {line.strip() for line in SCRIPT.read_text(encoding="utf-8").splitlines()}
    missing = [line for line in _readme_block() if line.strip() not in script]
    assert not missing, f"README lines that are not in {SCRIPT.name}: {missing}"


def test_the_tour_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "MEMOS": str(Path(sys.executable).parent / "memos-grpc"),
            "TOUR_DIR": str(tmp_path / "tour"),
            **{name: f"127.0.0.1:{_free_port()}" for name in ("P", "M", "B")},
        }
    )
    done = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert f"{tmp_path / 'tour' / 'bought.bundle'}: VALID" in out
    assert re.search(r"held license: heldLicenses/[0-9a-f]{64}", out)
    metered = out.split("two searches, then none", 1)[1].split("== the owner revokes", 1)[0]
    assert re.search(r"^imported licenses/\S+ into spaces/pulled\ncreated: +3$", metered, re.M)
    # Two searches answered (one cube each), the third nothing, and the held license still active.
    assert len(re.findall(r"^spaces/bought/cubes/", metered, re.M)) == 2
    assert re.search(r"^heldLicenses/[0-9a-f]{64}  active  listings/weather/releases/1\.0\.0", metered, re.M)
    revoked = out.split("== the owner revokes", 1)[1]
    assert "state:          revoked (refunded)" in revoked
    assert re.search(r"^heldLicenses/[0-9a-f]{64}  revoked \(LICENSE_REVOKED\)", revoked, re.M)
    assert out.rstrip().endswith("== done")
    # Tokens written by `credential create --token-out` are secrets: readable by their owner only.
    assert {(tmp_path / "tour" / f"{name}.token").stat().st_mode & 0o777 for name in ("alice-b", "follow")} == {0o600}
