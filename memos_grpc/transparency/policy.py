"""C2SP tlog-policy: which logs and witnesses a verifier trusts and the quorum of cosignatures it needs.

``parse_policy`` reads the text under the grammar of docs/marketplace.md ("Log policies"); ``satisfied`` says
whether a set of witnesses that cosigned meets the quorum, through nested k-of-n groups.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from memos_grpc import reasons
from memos_grpc.transparency._text import TransparencyFormatError, parse_decimal, utf8_text
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import COSIGNATURE_TYPE, ED25519_TYPE, NoteError, NoteVerifier, parse_vkey

#: The predefined quorum name: no cosignature needed. It cannot be defined or be a group member.
NONE = "none"
MAX_LOGS = 64
MAX_WITNESSES = 64
MAX_GROUPS = 64
MAX_POLICY_BYTES = 64 * 1024

_WHITESPACE = re.compile(r"[ \t]+")
# Octets the spec allows: tab, newline, printable ASCII, and anything non-ASCII.
_ALLOWED = re.compile(r"[\t\n\x20-\x7e\x80-\U0010ffff]*")


class PolicyError(TransparencyFormatError):
    """The policy text breaks the grammar or its rules; ``reason`` is one of the POLICY_* reasons."""


@dataclass(frozen=True)
class Group:
    """At least ``threshold`` of ``members`` (witness or group names) must have witnessed."""

    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed tlog-policy: the trusted log keys, witnesses and groups, the quorum, and where to reach each."""

    logs: tuple[NoteVerifier, ...]
    #: Witness name (local to the policy) -> its cosignature key.
    witnesses: Mapping[str, CosignatureVerifier]
    groups: Mapping[str, Group]
    #: A witness or group name, or NONE.
    quorum: str
    log_urls: Mapping[str, str]
    witness_urls: Mapping[str, str]


def parse_policy(text: str | bytes) -> Policy:
    """The policy in ``text``; raises PolicyError with a stable reason at the first line that breaks a rule."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(f"the policy is over {MAX_POLICY_BYTES} bytes", reason=reasons.POLICY_TOO_LARGE)
    text = utf8_text(text, "the policy", PolicyError, reasons.POLICY_MALFORMED)
    if not _ALLOWED.fullmatch(text):
        raise PolicyError(
            "the policy holds a control character other than tab and newline", reason=reasons.POLICY_MALFORMED
        )
    if not text.endswith("\n"):
        raise PolicyError("the policy does not end with a newline", reason=reasons.POLICY_MALFORMED)
    builder = _Builder()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            builder.add(_WHITESPACE.split(stripped))
        except PolicyError as error:
            raise PolicyError(f"line {number}: {error.message}", reason=error.reason) from None
    return builder.build()


class _Builder:
    def __init__(self) -> None:
        self.logs: list[NoteVerifier] = []
        self.log_urls: dict[str, str] = {}
        self.witnesses: dict[str, CosignatureVerifier] = {}
        self.witness_urls: dict[str, str] = {}
        self.groups: dict[str, Group] = {}
        self.quorum: str | None = None
        self.keys: set[bytes] = set()

    def add(self, words: list[str]) -> None:
        keyword, arguments = words[0], words[1:]
        if keyword == "log" and len(arguments) in (1, 2):
            self._log(*arguments)
        elif keyword == "witness" and len(arguments) in (2, 3):
            self._witness(*arguments)
        elif keyword == "group" and len(arguments) >= 3:
            self._group(arguments[0], arguments[1], arguments[2:])
        elif keyword == "quorum" and len(arguments) == 1:
            self._quorum(arguments[0])
        else:
            raise PolicyError(
                "expected 'log <vkey> [<url>]', 'witness <name> <vkey> [<url>]', "
                "'group <name> all|any|<k> <name>...' or 'quorum <name>'",
                reason=reasons.POLICY_MALFORMED,
            )

    def _key(self, vkey: str, signature_type: int, what: str) -> tuple[str, bytes, bytes]:
        try:
            name, key_id, found_type, public_key = parse_vkey(vkey)
        except NoteError as error:
            raise PolicyError(f"{what} key: {error.message}", reason=reasons.POLICY_KEY_INVALID) from None
        if found_type != signature_type:
            raise PolicyError(
                f"{what} key has signature type 0x{found_type:02x}; 0x{signature_type:02x} expected",
                reason=reasons.POLICY_KEY_INVALID,
            )
        # Duplicates are the same public key, whatever the name (C2SP tlog-policy).
        if public_key in self.keys:
            raise PolicyError(f"{what} key is listed twice", reason=reasons.POLICY_KEY_DUPLICATE)
        self.keys.add(public_key)
        return name, key_id, public_key

    def _log(self, vkey: str, url: str | None = None) -> None:
        if len(self.logs) >= MAX_LOGS:
            raise PolicyError(f"more than {MAX_LOGS} logs", reason=reasons.POLICY_TOO_LARGE)
        name, key_id, public_key = self._key(vkey, ED25519_TYPE, "log")
        self.logs.append(NoteVerifier(name, key_id, public_key))
        if url is not None:
            self.log_urls[name] = url

    def _define(self, name: str) -> None:
        if name == NONE:
            raise PolicyError("'none' is predefined and cannot be redefined", reason=reasons.POLICY_NAME_DUPLICATE)
        if name in self.witnesses or name in self.groups:
            raise PolicyError(f"{name!r} is already defined", reason=reasons.POLICY_NAME_DUPLICATE)

    def _witness(self, name: str, vkey: str, url: str | None = None) -> None:
        self._define(name)
        if len(self.witnesses) >= MAX_WITNESSES:
            raise PolicyError(f"more than {MAX_WITNESSES} witnesses", reason=reasons.POLICY_TOO_LARGE)
        key_name, key_id, public_key = self._key(vkey, COSIGNATURE_TYPE, f"witness {name!r}")
        self.witnesses[name] = CosignatureVerifier(key_name, key_id, public_key)
        if url is not None:
            self.witness_urls[name] = url

    def _group(self, name: str, threshold_text: str, members: list[str]) -> None:
        self._define(name)
        if len(self.groups) >= MAX_GROUPS:
            raise PolicyError(f"more than {MAX_GROUPS} groups", reason=reasons.POLICY_TOO_LARGE)
        for member in members:
            if member not in self.witnesses and member not in self.groups:
                raise PolicyError(
                    f"group {name!r} names {member!r}, not a witness or group defined above",
                    reason=reasons.POLICY_NAME_UNDEFINED,
                )
        if len(set(members)) != len(members):
            raise PolicyError(f"group {name!r} lists a member twice", reason=reasons.POLICY_NAME_DUPLICATE)
        if threshold_text == "all":
            threshold: int | None = len(members)
        elif threshold_text == "any":
            threshold = 1
        else:
            threshold = parse_decimal(threshold_text, len(members))
        if threshold is None or threshold < 1:
            raise PolicyError(
                f"group {name!r}: threshold {threshold_text[:20]!r} is not all, any or 1..{len(members)}",
                reason=reasons.POLICY_THRESHOLD_INVALID,
            )
        self.groups[name] = Group(threshold, tuple(members))

    def _quorum(self, name: str) -> None:
        if self.quorum is not None:
            raise PolicyError("a second quorum line", reason=reasons.POLICY_QUORUM_INVALID)
        if name != NONE and name not in self.witnesses and name not in self.groups:
            raise PolicyError(f"quorum names {name!r}, not defined above", reason=reasons.POLICY_NAME_UNDEFINED)
        self.quorum = name

    def build(self) -> Policy:
        if self.quorum is None:
            raise PolicyError("the policy has no quorum line", reason=reasons.POLICY_QUORUM_INVALID)
        return Policy(
            tuple(self.logs),
            dict(self.witnesses),
            dict(self.groups),
            self.quorum,
            dict(self.log_urls),
            dict(self.witness_urls),
        )


def satisfied(policy: Policy, verified_witness_names: Collection[str]) -> bool:
    """True if the witnesses named (policy names, each with a verified cosignature) meet the quorum."""
    cosigned = set(verified_witness_names)
    memo: dict[str, bool] = {}

    def witnessed(name: str) -> bool:
        if name not in memo:
            group = policy.groups.get(name)
            if group is None:
                memo[name] = name in policy.witnesses and name in cosigned
            else:
                memo[name] = sum(witnessed(m) for m in group.members) >= group.threshold
        return memo[name]

    return policy.quorum == NONE or witnessed(policy.quorum)


def quorum_time(policy: Policy, times: Mapping[str, int]) -> int | None:
    """The latest time t such that the witnesses that cosigned at or after t meet the quorum (None: never).

    ``times`` maps policy witness names to the time of their newest verified cosignature. This is how fresh a
    checkpoint is: the quorum vouched for it at t, so nothing a witness saw later can be hidden for longer.
    """
    for moment in sorted(set(times.values()), reverse=True):
        if satisfied(policy, [name for name, when in times.items() if when >= moment]):
            return moment
    return None
