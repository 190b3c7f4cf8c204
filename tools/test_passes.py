"""Runs the suite's two pytest passes at once: embedded, and every test that opens a store on PostgreSQL.

``make test`` calls this after lint and the clients. The passes share nothing but the machine: each starts its own
PostgreSQL from the wheel and its servers on free ports, and each gets a temporary directory of its own. Much of
each pass waits (on a child server, on PostgreSQL, on a socket), so two at once finish well before two in a row.
Each pass's output goes to ``build/test-<pass>.log``; when a pass ends its summary is printed, with its whole log
if it failed. The exit status is 0 only if both passed. Arguments after ``--`` go to both passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "build"
#: The passes: name and the arguments that make it.
PASSES = {"embedded": [], "postgres": ["--backend", "postgres"]}
#: Lines of a passing pass's log printed at its end (its summary).
_SUMMARY_LINES = 12


@dataclass
class Pass:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    basetemp: Path
    started: float


def start(name: str, extra: list[str]) -> Pass:
    log = LOGS / f"test-{name}.log"
    basetemp = Path(tempfile.mkdtemp(prefix=f"memos-tests-{name}-"))
    command = [sys.executable, "-m", "pytest", "-q", f"--basetemp={basetemp}", *PASSES[name], *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    print(f"[{name}] started: {' '.join(command[1:])} (log: {log.relative_to(ROOT)})", flush=True)
    return Pass(name, process, log, basetemp, time.monotonic())


def finish(run: Pass) -> int:
    code = run.process.wait()
    minutes, seconds = divmod(time.monotonic() - run.started, 60)
    lines = run.log.read_text(errors="replace").splitlines()
    shown = lines if code else lines[-_SUMMARY_LINES:]
    print(f"[{run.name}] {'passed' if code == 0 else f'FAILED (exit {code})'} in {int(minutes)} min {seconds:.0f} s")
    for line in shown:
        print(f"[{run.name}] {line}")
    sys.stdout.flush()
    shutil.rmtree(run.basetemp, ignore_errors=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra", nargs="*", help="arguments for both pytest passes (after --)")
    args = parser.parse_args(argv)
    LOGS.mkdir(exist_ok=True)
    runs = [start(name, args.extra) for name in PASSES]
    # Each pass is reported as it ends, whichever ends first.
    with ThreadPoolExecutor(len(runs)) as waiting:
        ended = {waiting.submit(run.process.wait): run for run in runs}
        codes = [finish(ended[future]) for future in as_completed(ended)]
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
