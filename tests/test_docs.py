"""Docs and code stay in step: every error reason the server can raise is documented in docs/api.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def raised_reasons() -> set[str]:
    """Every literal reason passed as ``reason=`` or as ``invalid(message, REASON)`` in the server package."""
    found: set[str] = set()
    for path in (ROOT / "memos_grpc").rglob("*.py"):
        if "_proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "default_reason" for t in item.targets)
                        and isinstance(item.value, ast.Constant)
                    ):
                        found.add(str(item.value.value))
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                    found.add(str(keyword.value.value))
            if isinstance(node.func, ast.Name) and node.func.id == "invalid" and len(node.args) == 2:
                reason = node.args[1]
                if isinstance(reason, ast.Constant):
                    found.add(str(reason.value))
    return found


def test_every_error_reason_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "docs" / "api.md").read_text(), flags=re.MULTILINE))
    reasons = raised_reasons()
    assert len(reasons) > 30, "the scan found too few reasons: is it still reading the right files?"
    generic = {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "ABORTED",
        "FAILED_PRECONDITION",
        "RESOURCE_EXHAUSTED",
        "UNAVAILABLE",
    }
    missing = sorted(reasons - documented - generic)
    assert not missing, f"reasons raised but not in docs/api.md: {missing}"
