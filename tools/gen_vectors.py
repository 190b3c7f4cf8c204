"""Regenerates the protocol's test vectors in testdata/vectors/ (``python -m tools.gen_vectors``).

Keys come from fixed seeds and the clock is fixed, and Ed25519 is deterministic, so the files are the same bytes on
every run. With ``--check`` nothing is written: it fails when the checked-in files differ from what it would write.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from tools.vectors.bundles import bundle_vectors
from tools.vectors.common import Json
from tools.vectors.envelopes import envelope_vectors
from tools.vectors.grammar import grammar_vectors
from tools.vectors.grants import grant_vectors
from tools.vectors.merkle import merkle_vectors
from tools.vectors.tlog import tlog_vectors
from tools.vectors.trust_roots import trust_root_vectors

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "testdata" / "vectors"


def vectors() -> list[Json]:
    return (
        envelope_vectors()
        + bundle_vectors()
        + trust_root_vectors()
        + grant_vectors()
        + tlog_vectors()
        + merkle_vectors()
        + grammar_vectors()
    )


def rendered() -> dict[str, str]:
    """File name -> file text of every vector."""
    files: dict[str, str] = {}
    for item in vectors():
        name = f"{item['name']}.json"
        if name in files:
            raise ValueError(f"two vectors are named {item['name']!r}")
        files[name] = json.dumps(item, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: pathlib.Path) -> None:
    """Writes every vector and removes vector files no case produces any more."""
    files = rendered()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def differences(directory: pathlib.Path) -> list[str]:
    files = rendered()
    present = {p.name: p for p in directory.glob("*.json")}
    found = [f"not generated (remove it): {n}" for n in sorted(present.keys() - files.keys())]
    found += [f"missing: {n}" for n in sorted(files.keys() - present.keys())]
    found += [f"differs: {n}" for n in sorted(files.keys() & present.keys()) if present[n].read_text() != files[n]]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the vector files are stale")
    parser.add_argument(
        "--dir", type=pathlib.Path, default=VECTORS, help="where the vectors live (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if not args.check:
        write(args.dir)
        return 0
    stale = differences(args.dir)
    if stale:
        print(f"{args.dir} is stale; run `python -m tools.gen_vectors`:", *stale, sep="\n  ")
        return 1
    print(f"{args.dir} is up to date ({len(rendered())} vectors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
