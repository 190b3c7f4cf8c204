"""How the CLI reports a finished import (``bundle import``, ``market pull``): counts, statement, signers."""

from __future__ import annotations

import pathlib

from memos_client import BundleVerification, ImportResult


def print_import(result: ImportResult, space: str, path: pathlib.Path | str) -> None:
    print(f"imported {path} into {space}")
    rows = [
        ("created", result.created_count),
        ("skipped", result.skipped_count),
        ("new version", result.new_version_count),
        ("replaced", result.replaced_count),
        ("re-embedded", result.reembedded_count),
        ("statement", result.verification.statement_digest),
    ]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")
    print_signers(result.verification)


def print_signers(report: BundleVerification) -> None:
    print("signers:" if report.signatures else "signers:      none")
    for check in report.signatures:
        who = f"  {check.principal}" if check.principal else ""
        print(f"  {check.key_id or check.key_id_hint or '(no key id)'}  {check.status}{who}")
