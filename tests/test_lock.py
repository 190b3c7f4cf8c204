"""The hashed locks that `make install` installs from agree with pyproject.toml.

Every requirement pyproject names (dependencies, every extra, the build backend) must be
pinned with ``==`` and at least one hash in requirements/lock.txt, at a version its range
allows; requirements/build.txt, installed first, must pin the same versions. A change to
either side without `make lock` fails here, not on a fresh machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
BUILD_LOCK = ROOT / "requirements" / "build.txt"
BUILD_IN = ROOT / "requirements" / "build.in"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?:\s*;[^\\]*)?\s*\\?$")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")


def read_lock(path: Path) -> dict[NormalizedName, tuple[Version, int]]:
    """Package -> (pinned version, number of hashes); any line that is neither fails the test."""
    pins: dict[NormalizedName, tuple[Version, int]] = {}
    current: NormalizedName | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if pin := _PIN.match(line):
            current = canonicalize_name(pin["name"])
            assert current not in pins, f"{path.name}:{number}: {current} pinned twice"
            pins[current] = (Version(pin["version"]), 0)
        elif _HASH.match(line) and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        else:
            raise AssertionError(f"{path.name}:{number}: neither a `name==version` pin nor a hash: {line!r}")
    return pins


def requirements_in(path: Path) -> list[Requirement]:
    return [Requirement(line) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def declared() -> list[Requirement]:
    """Every requirement pyproject.toml and requirements/build.in name."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(pyproject["build-system"]["requires"]) + list(pyproject["project"]["dependencies"])
    for extra in pyproject["project"]["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines] + requirements_in(BUILD_IN)


@pytest.mark.parametrize("lock", [LOCK, BUILD_LOCK], ids=lambda path: path.name)
def test_every_pin_has_a_hash(lock: Path) -> None:
    """pip's --require-hashes mode refuses the whole install if one package lacks a hash."""
    pins = read_lock(lock)
    assert pins, f"{lock.name} pins nothing"
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_every_declared_requirement_is_pinned_within_its_range() -> None:
    pins = read_lock(LOCK)
    problems = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is not in {LOCK.name}")
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{LOCK.name} pins {name}=={pins[name][0]}, outside {requirement}")
    assert problems == [], "run `make lock`:\n" + "\n".join(problems)


def test_the_build_tools_are_pinned_as_in_the_full_lock() -> None:
    """They are installed first and stay under the rest: one version of each, and all of build.in."""
    pins, build = read_lock(LOCK), read_lock(BUILD_LOCK)
    problems = [
        f"{BUILD_LOCK.name} pins {name}=={version}, {LOCK.name} {pins[name][0] if name in pins else 'nothing'}"
        for name, (version, _) in build.items()
        if name not in pins or pins[name][0] != version
    ]
    problems += [
        f"{r} is not in {BUILD_LOCK.name}" for r in requirements_in(BUILD_IN) if canonicalize_name(r.name) not in build
    ]
    assert problems == [], "run `make lock`:\n" + "\n".join(problems)
