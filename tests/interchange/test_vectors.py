"""The protocol's test vectors (testdata/vectors/) run through the Python implementation, and kept current.

The vectors run through ``memos_grpc.conformance.run_vector``, the code behind the ``memos-conformance`` command,
so the interop runner (tests/interop/) and these tests check the same thing.

Each vector file names its inputs and the outcome every implementation must reach: valid, or one stable reason.
The generator's ``--check`` must pass, so the checked-in files are exactly what tools/gen_vectors.py writes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memos_grpc.conformance import RUNNERS, run_vector
from memos_grpc.primitives.keys import key_id
from tools import gen_vectors

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testdata" / "vectors"
#: The interchange kinds; other kinds (merkle, ...) have test modules of their own beside their packages.
KINDS = ("envelope", "bundle", "trust_root_update")
FILES = sorted(p for p in VECTORS.glob("*.json") if p.name.startswith(tuple(f"{kind}-" for kind in KINDS)))

#: Every reason a verifier reaches offline (BUNDLE_CUBE_INVALID and BUNDLE_BLOB_MISSING are import-time checks).
REQUIRED_REASONS = {
    "BUNDLE_TRUNCATED",
    "BUNDLE_MALFORMED",
    "BUNDLE_UNSAFE_PATH",
    "BUNDLE_UNSAFE_ENTRY",
    "BUNDLE_DUPLICATE_ENTRY",
    "BUNDLE_ENTRY_TOO_LARGE",
    "BUNDLE_TOO_LARGE",
    "BUNDLE_TOO_MANY_ENTRIES",
    "BUNDLE_MARKER_MISSING",
    "BUNDLE_VERSION_UNSUPPORTED",
    "BUNDLE_ENVELOPE_MISSING",
    "BUNDLE_ENVELOPE_MALFORMED",
    "BUNDLE_PAYLOAD_TYPE_INVALID",
    "BUNDLE_SIGNATURE_INVALID",
    "BUNDLE_SIGNER_REVOKED",
    "BUNDLE_SIGNER_EXPIRED",
    "BUNDLE_THRESHOLD_NOT_MET",
    "BUNDLE_UNTRUSTED_SIGNER",
    "BUNDLE_REQUIRED_SIGNER_MISSING",
    "BUNDLE_STATEMENT_INVALID",
    "BUNDLE_UNLISTED_ENTRY",
    "BUNDLE_SIZE_MISMATCH",
    "BUNDLE_DIGEST_MISMATCH",
    "BUNDLE_MISSING_ENTRY",
    "TRUST_ROOT_MALFORMED",
    "TRUST_ROOT_THRESHOLD_NOT_MET",
    "TRUST_ROOT_ROLLBACK",
    "TRUST_ROOT_EXPIRED",
}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = load(path)
    assert path.name == f"{vector['name']}.json"
    assert vector["name"].startswith(vector["kind"] + "-")
    # A verdict must not depend on where a bundle's stream is cut into messages; other kinds take no chunks.
    for chunk in (0, 512, 97) if vector["kind"] == "bundle" else (0,):
        assert run_vector(vector, chunk) == vector["expected"], (chunk, vector["description"])


def test_vectors_cover_every_offline_reason() -> None:
    vectors = [load(p) for p in FILES]
    assert len(vectors) >= 40
    found = {v["expected"]["reason"] for v in vectors if not v["expected"]["valid"]}
    assert found >= REQUIRED_REASONS, sorted(REQUIRED_REASONS - found)
    kinds = {v["kind"] for v in vectors}
    assert kinds == set(KINDS) <= set(RUNNERS)
    for kind in kinds:
        outcomes = {v["expected"]["valid"] for v in vectors if v["kind"] == kind}
        assert outcomes == {True, False}, f"{kind} vectors need positive and negative cases"


def test_vectors_are_language_neutral() -> None:
    """Times are RFC 3339 UTC with Z; key ids are derivable from the public keys and listed in the README."""
    readme = (VECTORS / "README.md").read_text()
    for path in FILES:
        inputs = load(path)["inputs"]
        assert inputs["now"].endswith("Z"), path.name
        for item in inputs.get("trusted_keys", []):
            assert key_id(base64.b64decode(item["public_key"], validate=True)) == item["key_id"], path.name
            assert f"| {item['name']} | {item['key_id']} | {item['public_key']} |" in readme, path.name
            for field in ("not_before", "not_after", "revoked_at"):
                assert item.get(field, "Z").endswith("Z"), path.name
        if "bundle" in inputs:
            base64.b64decode(inputs["bundle"], validate=True)


def test_checked_in_vectors_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.gen_vectors", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_detects_stale_missing_and_extra_files(tmp_path: Path) -> None:
    assert gen_vectors.main(["--dir", str(tmp_path)]) == 0
    assert gen_vectors.main(["--check", "--dir", str(tmp_path)]) == 0
    first = sorted(tmp_path.glob("*.json"))[0]
    first.write_text(first.read_text().replace('"valid": ', '"valid":  '))
    assert gen_vectors.main(["--check", "--dir", str(tmp_path)]) == 1
    assert gen_vectors.main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "bundle-leftover.json").write_text("{}")
    assert gen_vectors.main(["--check", "--dir", str(tmp_path)]) == 1
    first.unlink()
    assert gen_vectors.main(["--dir", str(tmp_path)]) == 0
    assert not (tmp_path / "bundle-leftover.json").exists()
    assert first.exists()
    assert gen_vectors.main(["--check", "--dir", str(tmp_path)]) == 0
