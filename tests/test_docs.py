"""Docs and code stay in step on error reasons: ``memos_grpc.reasons`` lists them all, and the docs describe each.

Code names a reason only through ``memos_grpc.reasons``: a string literal where a reason goes, or one that spells a
reason anywhere in the package, fails here, which keeps the module the complete list. Every reason a call raises
has a row in the error tables of docs/api.md; the rest (what the protocol's verifiers and the conformance command
report, which a call may pass on) are defined in docs/protocol.md, docs/marketplace.md or docs/conformance.md.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from memos_grpc import reasons

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "memos_grpc"
#: The documents that define the reasons of the protocol's verifiers and of the conformance command.
PROTOCOL_DOCS = ("protocol.md", "marketplace.md", "conformance.md")
#: A status code's own name used as its reason: docs/api.md describes the codes themselves, not these.
GENERIC = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "ABORTED",
        "FAILED_PRECONDITION",
        "RESOURCE_EXHAUSTED",
        "UNAVAILABLE",
    }
)


def declared() -> dict[str, str]:
    """Every public str constant of ``memos_grpc.reasons``, by name."""
    return {name: value for name, value in vars(reasons).items() if not name.startswith("_") and isinstance(value, str)}


def api_table_reasons() -> set[str]:
    """The reasons with a row in docs/api.md: each backquoted name in a table row's first cell (often one)."""
    found: set[str] = set()
    for line in (ROOT / "docs" / "api.md").read_text().splitlines():
        if line.startswith("| `"):
            found |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split(" | ", 1)[0]))
    return found


def protocol_doc_reasons() -> set[str]:
    found: set[str] = set()
    for name in PROTOCOL_DOCS:
        found |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / name).read_text()))
    return found


def sources() -> Iterator[tuple[Path, ast.Module]]:
    """Every module of the package but the generated code and the reasons module itself."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_proto" in path.parts or path == PACKAGE / "reasons.py":
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def reason_parameters(trees: list[ast.Module]) -> dict[str, set[int]]:
    """The package's callables that take a ``reason``, by name, with the positional index it has in a call.

    Functions and methods (``self``/``cls`` not counted), classes by their ``__init__``, and dataclasses by the order
    of their fields: a call such as ``TermsError(reason, message)`` or ``Shortfall(check, reason, message)``.
    """
    found: dict[str, set[int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "__init__":
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if "reason" in names:
                    skip = 1 if names[0] in ("self", "cls") else 0
                    found.setdefault(node.name, set()).add(names.index("reason") - skip)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        names = [a.arg for a in item.args.posonlyargs + item.args.args]
                        if "reason" in names:
                            found.setdefault(node.name, set()).add(names.index("reason") - 1)
                if any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                    fields = [
                        i.target.id
                        for i in node.body
                        if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)
                    ]
                    if "reason" in fields:
                        found.setdefault(node.name, set()).add(fields.index("reason"))
    return found


def raise_sites(tree: ast.Module) -> Iterator[ast.expr]:
    """What an error raised as a ``MemosError`` carries as its reason: ``reason=``, ``invalid(message, REASON)``,
    a class's ``default_reason``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "default_reason" for t in item.targets
                ):
                    yield item.value
        elif isinstance(node, ast.Call):
            yield from (keyword.value for keyword in node.keywords if keyword.arg == "reason")
            if _callee(node.func) == "invalid" and len(node.args) == 2:
                yield node.args[1]


def reason_sites(tree: ast.Module, parameters: dict[str, set[int]]) -> Iterator[ast.expr]:
    """Everywhere a reason goes: the raise sites, a positional ``reason`` argument, an assignment to a ``reason``."""
    yield from raise_sites(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for index in parameters.get(_callee(node.func) or "", ()):
                if index < len(node.args):
                    yield node.args[index]
        elif isinstance(node, ast.Assign) and any(
            (isinstance(t, ast.Name) and t.id == "reason") or (isinstance(t, ast.Attribute) and t.attr == "reason")
            for t in node.targets
        ):
            yield node.value


def written(expression: ast.expr) -> Iterator[ast.expr]:
    """The string literals and f-strings an expression would give as a reason ("" is no reason). A table's keys are
    what it maps from (an I-JSON problem, a terms decision), so only its values count."""
    if isinstance(expression, ast.JoinedStr) or (
        isinstance(expression, ast.Constant) and expression.value not in ("", None)
    ):
        yield expression
    elif isinstance(expression, ast.Dict):
        for value in expression.values:
            yield from written(value)
    else:
        for child in ast.iter_child_nodes(expression):
            if isinstance(child, ast.expr):
                yield from written(child)


def named_reasons(expression: ast.AST) -> set[str]:
    """The ``reasons.NAME`` an expression (or a whole module) reads."""
    return {
        node.attr
        for node in ast.walk(expression)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "reasons"
    }


def test_every_reason_is_its_own_name() -> None:
    constants = declared()
    assert len(constants) > 250, "memos_grpc.reasons holds too few reasons: is it still the list?"
    wrong = sorted(
        name for name, value in constants.items() if value != name or not re.fullmatch(r"[A-Z][A-Z0-9_]+", name)
    )
    assert not wrong, f"a reason's value is its own UPPER_SNAKE name: {wrong}"


def test_every_reason_is_named_in_code() -> None:
    named: set[str] = set()
    for _, tree in sources():
        named |= named_reasons(tree)
    unused = sorted(set(declared()) - named)
    assert not unused, f"reasons in memos_grpc/reasons.py that no code reports (remove them): {unused}"


def test_every_reason_is_documented() -> None:
    documented = api_table_reasons() | protocol_doc_reasons()
    missing = sorted(set(declared()) - documented - GENERIC)
    assert not missing, (
        f"reasons in memos_grpc/reasons.py but in no doc ({', '.join(PROTOCOL_DOCS)}, api.md): {missing}"
    )


def test_every_reason_a_call_raises_is_in_the_api_errors() -> None:
    raised: set[str] = set()
    for _, tree in sources():
        for site in raise_sites(tree):
            raised |= named_reasons(site)
    assert len(raised) > 150, "the scan found too few raised reasons: is it still reading the right files?"
    unknown = sorted(raised - set(declared()))
    assert not unknown, f"raise sites name reasons memos_grpc.reasons does not have: {unknown}"
    missing = sorted(raised - api_table_reasons() - GENERIC)
    assert not missing, f"reasons raised but without a row in the error tables of docs/api.md: {missing}"


def test_no_reason_is_a_string_literal() -> None:
    trees = list(sources())
    parameters = reason_parameters([tree for _, tree in trees])
    values = set(declared().values())
    sites = 0
    literals: list[str] = []
    for path, tree in trees:
        shown = path.relative_to(ROOT).as_posix()
        exported = {
            id(node)
            for statement in tree.body
            if isinstance(statement, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in statement.targets)
            for node in ast.walk(statement.value)
        }
        for site in reason_sites(tree, parameters):
            sites += 1
            for node in written(site):
                literals.append(f"{shown}:{node.lineno} {ast.unparse(node)}")
        for constant in ast.walk(tree):
            if isinstance(constant, ast.Constant) and constant.value in values and id(constant) not in exported:
                literals.append(f"{shown}:{constant.lineno} {constant.value!r}")
    assert sites > 500, "the scan found too few places a reason goes: is it still reading the right files?"
    assert not literals, (
        f"reasons written as literals; name them as reasons.NAME (add new ones to reasons.py): {sorted(set(literals))}"
    )
