"""Regenerates memos_grpc/_proto from proto/ (``python -m tools.gen_proto``).

With ``--check`` it generates into a temporary tree and fails when the
checked-in code differs, so a stale generated tree cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = ROOT / "memos_grpc" / "_proto"


def _buf() -> str:
    found = shutil.which("buf", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("buf")
    if found is None:
        raise SystemExit("buf not found: install the dev extra (pip install -e '.[dev]'), which brings buf-bin")
    return found


def generate(output: pathlib.Path) -> None:
    env = dict(os.environ)
    # The plugin runs as `python -m ...`: make it this interpreter and this tree.
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    subprocess.run([_buf(), "lint"], cwd=ROOT, check=True, env=env)
    subprocess.run([_buf(), "generate", "-o", str(output)], cwd=ROOT, check=True, env=env)


def _differences(left: pathlib.Path, right: pathlib.Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in checked-in tree: {n}" for n in comparison.left_only]
    found += [f"missing from checked-in tree: {n}" for n in comparison.right_only]
    found += [f"differs: {n}" for n in comparison.diff_files]
    for name in comparison.subdirs:
        found += [f"{name}/{d}" for d in _differences(left / name, right / name)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if memos_grpc/_proto is stale")
    args = parser.parse_args()
    if not args.check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        stale = _differences(GENERATED, pathlib.Path(tmp) / "memos_grpc" / "_proto")
    if stale:
        print("memos_grpc/_proto is stale; run `python -m tools.gen_proto`:", *stale, sep="\n  ")
        return 1
    print("memos_grpc/_proto is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
