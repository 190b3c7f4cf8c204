"""C2SP tlog-proof@v1 files: an entry's index, its inclusion path and the cosigned checkpoint, offline.

``TlogProof.text()`` / ``TlogProof.parse()`` write and read the file (docs/marketplace.md, "Proof files");
``verify_proof`` checks a proof for an entry against a log key, a policy and its witnesses, and never raises: it
reports every shortfall it found (inclusion, log signature, cosignature quorum, cosignature freshness).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memos_grpc import reasons
from memos_grpc.transparency._text import (
    MAX_INT63,
    TransparencyFormatError,
    b64encode,
    has_control,
    parse_decimal,
    strict_b64decode,
    utf8_text,
)
from memos_grpc.transparency.checkpoint import Checkpoint, CheckpointError
from memos_grpc.transparency.cosignature import CosignatureStatus, CosignatureVerifier, check_cosignatures
from memos_grpc.transparency.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from memos_grpc.transparency.note import MAX_NOTE_BYTES, NoteError, NoteSignature, NoteVerifier, open_note
from memos_grpc.transparency.policy import NONE, Policy, quorum_time, satisfied

HEADER = "c2sp.org/tlog-proof@v1"
#: An inclusion path in a tree of at most 2**63 - 1 leaves has at most 63 hashes.
MAX_PATH_HASHES = 63
#: Decoded bytes of the optional, unauthenticated ``extra`` line.
MAX_EXTRA_BYTES = 4096

_INDEX = re.compile(r"index (?P<index>[0-9]+)")
_EXTRA = re.compile(r"extra (?P<extra>[A-Za-z0-9+/=]+)")


class TlogProofError(TransparencyFormatError):
    """A proof file breaks the grammar; ``reason`` is TLOG_PROOF_MALFORMED."""


@dataclass(frozen=True)
class TlogProof:
    """One tlog-proof file: an entry's index and inclusion path, the signed checkpoint, and optional extra data.

    Parsing checks the format only; ``verify_proof`` checks what it proves.
    """

    index: int
    path: tuple[bytes, ...]
    #: The signed checkpoint note, verbatim.
    checkpoint: str
    #: Opaque, unauthenticated application data (the ``extra`` line); None when absent.
    extra: bytes | None = None

    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [b64encode(h) for h in self.path]
        return "".join(line + "\n" for line in lines) + "\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str | bytes) -> TlogProof:
        """Raises TlogProofError; the checkpoint note is split off here and checked by ``verify_proof``."""
        if len(text) > MAX_NOTE_BYTES + 8192:
            raise _malformed("the proof file is too large")
        text = utf8_text(text, "the proof", TlogProofError, reasons.TLOG_PROOF_MALFORMED)
        if has_control(text, allow_newline=True):
            raise _malformed("the proof holds a control character other than newline (a CR?)")
        head, blank, checkpoint = text.partition("\n\n")
        if not blank or not checkpoint:
            raise _malformed("no blank line followed by the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise _malformed(f"the first line is not {HEADER!r}")
        position = 1
        extra = None
        if position < len(lines) and lines[position].startswith("extra"):
            match = _EXTRA.fullmatch(lines[position])
            extra = strict_b64decode(match["extra"]) if match else None
            if extra is None or not 0 < len(extra) <= MAX_EXTRA_BYTES:
                raise _malformed(f"the extra line is not 'extra <base64 of 1..{MAX_EXTRA_BYTES} bytes>'")
            position += 1
        match = _INDEX.fullmatch(lines[position]) if position < len(lines) else None
        index = parse_decimal(match["index"], MAX_INT63) if match else None
        if index is None:
            raise _malformed(f"no 'index <decimal 0..{MAX_INT63} without leading zeros>' line")
        hashes = lines[position + 1 :]
        if len(hashes) > MAX_PATH_HASHES:
            raise _malformed(f"the inclusion path has {len(hashes)} hashes; at most {MAX_PATH_HASHES}")
        path = []
        for number, line in enumerate(hashes, 1):
            digest = strict_b64decode(line)
            if digest is None or len(digest) != HASH_SIZE:
                raise _malformed(f"path hash {number} is not {HASH_SIZE} bytes of padded standard base64")
            path.append(digest)
        return cls(index, tuple(path), checkpoint, extra)


def _malformed(message: str) -> TlogProofError:
    return TlogProofError(message, reason=reasons.TLOG_PROOF_MALFORMED)


class Check(enum.Enum):
    """What a proof must pass, in the order ``verify_proof`` reports shortfalls."""

    FORMAT = "FORMAT"
    LOG_SIGNATURE = "LOG_SIGNATURE"
    INCLUSION = "INCLUSION"
    COSIGNATURE = "COSIGNATURE"
    QUORUM = "QUORUM"
    FRESHNESS = "FRESHNESS"


@dataclass(frozen=True)
class Shortfall:
    """One thing a proof failed on: the check, its stable reason and a message."""

    check: Check
    reason: str
    message: str


@dataclass(frozen=True)
class ProofVerification:
    """What ``verify_proof`` found; true when nothing fell short."""

    shortfalls: tuple[Shortfall, ...]
    index: int | None = None
    checkpoint: Checkpoint | None = None
    #: Policy names of the witnesses whose cosignature verified and is fresh.
    fresh_witnesses: tuple[str, ...] = ()
    #: Policy names of the witnesses whose cosignature verified but is too old or dated in the future.
    stale_witnesses: tuple[str, ...] = ()
    checks_passed: tuple[Check, ...] = field(default=())

    def __bool__(self) -> bool:
        return not self.shortfalls

    @property
    def reason(self) -> str:
        """The first shortfall's reason ("" when verified)."""
        return self.shortfalls[0].reason if self.shortfalls else ""


def verify_proof(
    entry: bytes,
    proof_text: str | bytes,
    log_verifier: NoteVerifier,
    policy: Policy,
    witness_verifiers: Mapping[str, CosignatureVerifier],
    now: datetime,
    max_age: int,
) -> ProofVerification:
    """Checks that ``entry`` is in the log at the proof's index under a checkpoint the log signed and a fresh
    quorum of ``policy`` cosigned.

    ``witness_verifiers`` maps the policy's witness names to their keys (``policy.witnesses`` when the policy
    is the caller's whole trust); ``max_age`` is in seconds: a cosignature counts when
    ``now - max_age <= its time <= now``. The log key's name must be the checkpoint's origin.
    """
    try:
        proof = TlogProof.parse(proof_text)
    except TlogProofError as error:
        return ProofVerification((Shortfall(Check.FORMAT, error.reason, error.message),))
    try:
        note = open_note(proof.checkpoint, [log_verifier])
    except NoteError as error:
        check = Check.FORMAT if error.reason not in (reasons.NOTE_SIGNATURE_INVALID, reasons.NOTE_UNVERIFIED) else None
        reason = reasons.TLOG_PROOF_MALFORMED if check else reasons.TLOG_PROOF_LOG_SIGNATURE_INVALID
        return ProofVerification(
            (Shortfall(check or Check.LOG_SIGNATURE, reason, f"checkpoint: {error.message}"),), proof.index
        )
    try:
        checkpoint = Checkpoint.parse(note.text)
    except CheckpointError as error:
        return ProofVerification(
            (Shortfall(Check.FORMAT, reasons.TLOG_PROOF_MALFORMED, f"checkpoint: {error.message}"),), proof.index
        )
    if checkpoint.origin != log_verifier.name:
        return ProofVerification(
            (
                Shortfall(
                    Check.LOG_SIGNATURE,
                    reasons.TLOG_PROOF_ORIGIN_MISMATCH,
                    f"the checkpoint's origin {checkpoint.origin!r} is not the log key's name {log_verifier.name!r}",
                ),
            ),
            proof.index,
            checkpoint,
        )
    shortfalls: list[Shortfall] = []
    passed = [Check.FORMAT, Check.LOG_SIGNATURE]
    try:
        verify_inclusion(leaf_hash(entry), proof.index, checkpoint.size, list(proof.path), checkpoint.root)
        passed.append(Check.INCLUSION)
    except ProofError as error:
        shortfalls.append(Shortfall(Check.INCLUSION, reasons.TLOG_PROOF_INCLUSION_INVALID, f"{error.reason}: {error}"))
    fresh, aged, cosignature_shortfalls = _cosignatures(
        note.text, note.signatures, policy, witness_verifiers, now, max_age
    )
    shortfalls += cosignature_shortfalls
    passed += [c for c in (Check.COSIGNATURE, Check.QUORUM, Check.FRESHNESS) if all(s.check != c for s in shortfalls)]
    return ProofVerification(tuple(shortfalls), proof.index, checkpoint, fresh, aged, tuple(passed))


def _cosignatures(
    text: str,
    signatures: Sequence[NoteSignature],
    policy: Policy,
    witness_verifiers: Mapping[str, CosignatureVerifier],
    now: datetime,
    max_age: int,
) -> tuple[tuple[str, ...], tuple[str, ...], list[Shortfall]]:
    """(fresh witnesses, aged witnesses, shortfalls): a bad cosignature by a known witness refuses the proof."""
    results = check_cosignatures(text, signatures, witness_verifiers, int(now.timestamp()), max_age)
    shortfalls = [
        Shortfall(Check.COSIGNATURE, reasons.TLOG_PROOF_COSIGNATURE_INVALID, f"witness {r.name!r}: {r.message}")
        for r in results
        if r.status is CosignatureStatus.INVALID
    ]
    fresh = tuple(dict.fromkeys(r.name for r in results if r.status is CosignatureStatus.FRESH))
    aged_results = [r for r in results if r.status in (CosignatureStatus.STALE, CosignatureStatus.FUTURE)]
    aged = tuple(dict.fromkeys(r.name for r in aged_results if r.name not in fresh))
    if not satisfied(policy, fresh):
        if satisfied(policy, fresh + aged):
            future = all(r.status is CosignatureStatus.FUTURE for r in aged_results if r.name in aged)
            shortfalls.append(
                Shortfall(
                    Check.FRESHNESS,
                    reasons.TLOG_PROOF_COSIGNATURE_FUTURE if future else reasons.TLOG_PROOF_COSIGNATURE_STALE,
                    f"the quorum is met only with cosignatures dated in the future or older than {max_age} s: "
                    + ", ".join(aged),
                )
            )
        else:
            shortfalls.append(
                Shortfall(
                    Check.QUORUM,
                    reasons.TLOG_PROOF_QUORUM_NOT_MET,
                    f"fresh cosignatures from {list(fresh) or 'no witness'} do not meet the quorum {policy.quorum!r}",
                )
            )
    return fresh, aged, shortfalls


def fresh_quorum_time(
    text: str, signatures: Sequence[NoteSignature], policy: Policy, now: datetime, max_age: int
) -> int | None:
    """When a fresh quorum of ``policy`` had cosigned the checkpoint body ``text`` (unix seconds), or None.

    The newest time t at which the witnesses whose fresh cosignatures are dated t or later meet the quorum; ``now``
    itself for a policy whose quorum is ``none`` (the log signature is then all there is, checked when fetched).
    """
    if policy.quorum == NONE:
        return int(now.timestamp())
    newest: dict[str, int] = {}
    for result in check_cosignatures(text, signatures, policy.witnesses, int(now.timestamp()), max_age):
        if result.status is CosignatureStatus.FRESH and result.timestamp is not None:
            newest[result.name] = max(newest.get(result.name, 0), result.timestamp)
    return quorum_time(policy, newest)
