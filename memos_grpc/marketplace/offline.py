"""Verifying a licensed release offline: a bundle, its license grant and the grant's log proof, under a trust root.

``verify_licensed_release`` needs no server. It checks, in order, and reports every shortfall rather than the first:

1. the trust root (the buyer's anchor): a trust root envelope signed by a threshold of its own admin keys, not
   expired at the verification time;
2. the bundle: every entry against its signed statement (integrity; the statement digest is what the grant names,
   so the marketplace's signature vouches for the content, and the marketplace checked the publisher's);
3. the grant: ``grants.verify_grant`` against the root's ``marketplace`` keys, for the licensee given (or, when none
   is, for the one it names), inside its time window;
4. the binding: the grant's subject digest is the bundle's statement digest, and the release name and license
   the bundle's predicate states (when it states them) are the grant's;
5. the proof: the grant's ``memstore-entry/v1`` log entry, rebuilt byte for byte as the marketplace logs it, is
   in the log under a checkpoint signed by the log key and cosigned by a fresh quorum of the root's log policy.

Like ``dsse.verify_envelope`` it never raises: the result is true only when nothing fell short
(docs/marketplace.md, "Verifying a licensed release offline").
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from memos_grpc import reasons
from memos_grpc.errors import TrustRootError
from memos_grpc.interchange.bundle import BundleLimits, BundleReport, verify_bundle
from memos_grpc.interchange.dsse import EnvelopeFormatError, parse_envelope, verify_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, TrustRoot, parse_trust_root
from memos_grpc.marketplace.entries import Entry, EntryError
from memos_grpc.marketplace.grants import Grant, GrantVerification, verify_grant
from memos_grpc.primitives.canonical import format_time
from memos_grpc.transparency.proof import ProofVerification, verify_proof

#: Cosignature age allowed when neither the caller nor the grant's terms say (the terms' ``maxOfflineSeconds``
#: is the default: how long the licensor lets a buyer go without a fresh cosigned checkpoint).
DEFAULT_MAX_AGE_SECONDS = 86400
#: A trust root envelope is small; anything far larger is refused before it is decoded.
MAX_TRUST_ROOT_BYTES = 4 * 1024 * 1024


class Step(enum.Enum):
    """What a licensed release must pass, in the order they are checked and reported."""

    TRUST_ROOT = "trust root"
    BUNDLE = "bundle"
    GRANT = "grant"
    RELEASE = "release"
    PROOF = "proof"


@dataclass(frozen=True)
class Shortfall:
    """One thing a licensed release failed offline verification on: the step, its stable reason and a message."""

    step: Step
    reason: str
    message: str


@dataclass(frozen=True)
class StepResult:
    """One step's outcome: ``passed`` True or False, None when it could not run; ``detail`` says what was seen."""

    step: Step
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class LicensedReleaseVerification:
    """What ``verify_licensed_release`` found; true when every step passed."""

    shortfalls: tuple[Shortfall, ...]
    steps: tuple[StepResult, ...]
    #: ``sha256:<hex>`` of the bundle's statement ("" when the bundle could not be read that far).
    statement_digest: str = ""
    grant: Grant | None = None
    #: The grant's log entry as rebuilt and checked (None when the grant could not be read).
    entry: bytes | None = None
    proof: ProofVerification | None = None
    bundle: BundleReport | None = None
    #: The cosignature age that was allowed, in seconds.
    max_age: int = 0
    #: Things checked only in part, for the report (e.g. a predicate that names no release).
    notes: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return not self.shortfalls

    @property
    def reason(self) -> str:
        """The first shortfall's reason ("" when verified)."""
        return self.shortfalls[0].reason if self.shortfalls else ""


def grant_entry(grant: Grant) -> bytes:
    """The ``memstore-entry/v1`` bytes the marketplace logs for ``grant`` (docs/marketplace.md, "Log entries")."""
    return Entry("grant", grant.release_digest, grant.statement_digest, grant.signer).encode()


def read_trust_root(envelope_json: bytes, now: datetime) -> TrustRoot:
    """The buyer's trust root from its signed envelope (``GetTrustRoot``'s ``signed_envelope``).

    It is the anchor, so nothing older vouches for it; it must still be signed by a threshold of its own admin
    keys and not be expired at ``now``. Raises TrustRootError.
    """
    if len(envelope_json) > MAX_TRUST_ROOT_BYTES:
        raise TrustRootError(
            f"the trust root is {len(envelope_json)} bytes; at most {MAX_TRUST_ROOT_BYTES}",
            reason=reasons.TRUST_ROOT_MALFORMED,
        )
    try:
        envelope = parse_envelope(envelope_json)
    except EnvelopeFormatError as exc:
        raise TrustRootError(
            f"the trust root is not a DSSE envelope: {exc}", reason=reasons.TRUST_ROOT_MALFORMED
        ) from exc
    if envelope.payload_type != TRUST_ROOT_PAYLOAD_TYPE:
        raise TrustRootError(
            f"the trust root envelope's payloadType must be {TRUST_ROOT_PAYLOAD_TYPE!r}",
            reason=reasons.TRUST_ROOT_MALFORMED,
        )
    root = parse_trust_root(envelope.payload)
    signed = verify_envelope(envelope, root.keys_for("admin"), root.threshold_for("admin"), now)
    if not signed:
        raise TrustRootError(
            f"the trust root is not signed by {root.threshold_for('admin')} of its own admin key(s): {signed.message}",
            reason=reasons.TRUST_ROOT_THRESHOLD_NOT_MET,
        )
    if root.expires <= now:
        raise TrustRootError(
            f"the trust root (version {root.version}) expired at {format_time(root.expires)}",
            reason=reasons.TRUST_ROOT_EXPIRED,
        )
    return root


class _Run:
    """Collects step results and shortfalls as the steps run."""

    def __init__(self) -> None:
        self.shortfalls: list[Shortfall] = []
        self.steps: list[StepResult] = []
        self.notes: list[str] = []

    def passed(self, step: Step, detail: str) -> None:
        self.steps.append(StepResult(step, True, detail))

    def failed(self, step: Step, reason: str, message: str) -> None:
        self.shortfalls.append(Shortfall(step, reason, message))
        self.steps.append(StepResult(step, False, f"{reason}: {message}"))

    def skipped(self, step: Step, why: str) -> None:
        self.steps.append(StepResult(step, None, why))


def verify_licensed_release(
    bundle: Iterable[bytes],
    grant: bytes,
    proof: bytes | str,
    trust_root: bytes,
    *,
    now: datetime,
    limits: BundleLimits,
    licensee: tuple[str, str] | None = None,
    max_age: int | None = None,
) -> LicensedReleaseVerification:
    """Checks a licensed release offline; never raises for bad input (the result lists every shortfall).

    ``bundle`` is the release file's bytes in chunks, ``grant`` the grant envelope, ``proof`` its tlog-proof@v1
    text, ``trust_root`` the buyer's trust root envelope. ``licensee`` is (principal, key id) when the grant
    must be for them; ``max_age`` the allowed cosignature age in seconds (default: the terms'
    ``maxOfflineSeconds``, else DEFAULT_MAX_AGE_SECONDS).
    """
    run = _Run()
    root = _root(run, trust_root, now)
    report = verify_bundle(bundle, None, limits, now)
    return _licensed(run, report, grant, proof, root, now, licensee, max_age)


def check_release_license(
    report: BundleReport,
    grant: bytes,
    proof: bytes | str,
    root: TrustRoot,
    *,
    now: datetime,
    licensee: tuple[str, str] | None,
    max_age: int | None = None,
) -> LicensedReleaseVerification:
    """Steps 3 to 5 for a bundle already verified as it streamed in (a licensed import), under ``root``."""
    run = _Run()
    run.passed(Step.TRUST_ROOT, f"this node's trust root, version {root.version}")
    return _licensed(run, report, grant, proof, root, now, licensee, max_age)


def _licensed(
    run: _Run,
    report: BundleReport,
    grant: bytes,
    proof: bytes | str,
    root: TrustRoot | None,
    now: datetime,
    licensee: tuple[str, str] | None,
    max_age: int | None,
) -> LicensedReleaseVerification:
    if report:
        run.passed(Step.BUNDLE, f"statement {report.statement_digest}, {report.entry_count} entries intact")
    else:
        run.failed(Step.BUNDLE, report.reason, report.message)
    checked = _grant(run, grant, root, licensee, now)
    found = checked.grant if checked is not None else None
    _binding(run, found, report)
    allowed = max_age if max_age is not None else _default_max_age(found)
    entry, proved = _proof(run, found, proof, root, now, allowed)
    return LicensedReleaseVerification(
        tuple(run.shortfalls),
        tuple(run.steps),
        report.statement_digest,
        found,
        entry,
        proved,
        report,
        allowed,
        tuple(run.notes),
    )


def _root(run: _Run, trust_root: bytes, now: datetime) -> TrustRoot | None:
    try:
        root = read_trust_root(trust_root, now)
    except TrustRootError as error:
        run.failed(Step.TRUST_ROOT, error.reason, error.message)
        return None
    run.passed(
        Step.TRUST_ROOT,
        f"version {root.version}, {len(root.keys_for('marketplace'))} marketplace key(s), "
        f"{len(root.marketplace_logs)} marketplace log(s), valid until {format_time(root.expires)}",
    )
    return root


def _default_max_age(grant: Grant | None) -> int:
    return grant.terms.max_offline_seconds if grant is not None else DEFAULT_MAX_AGE_SECONDS


def _grant(
    run: _Run, grant: bytes, root: TrustRoot | None, licensee: tuple[str, str] | None, now: datetime
) -> GrantVerification | None:
    if root is None:
        run.skipped(Step.GRANT, "not checked: no trust root to say which marketplace keys count")
        return None
    trusted = root.keys_for("marketplace")
    principal, key_id = licensee if licensee is not None else ("", "")
    checked = verify_grant(grant, trusted, principal, key_id, now)
    if licensee is None and checked.reason == reasons.GRANT_OTHER_LICENSEE and checked.grant is not None:
        # No licensee to hold it to: check the rest for the one the grant names, and say so.
        named = checked.grant
        checked = verify_grant(grant, trusted, named.licensee_principal, named.licensee_key_id, now)
        run.notes.append(
            f"licensee not checked: the grant licenses {named.licensee_principal} with key {named.licensee_key_id}"
        )
    if checked:
        assert checked.grant is not None
        run.passed(
            Step.GRANT,
            f"{checked.grant.release} for {checked.grant.licensee_principal}, signed by marketplace key "
            f"{checked.grant.signer}, valid {format_time(checked.grant.not_before)} to "
            f"{format_time(checked.grant.not_after)}",
        )
    else:
        run.failed(Step.GRANT, checked.reason, checked.message)
    return checked


def _binding(run: _Run, grant: Grant | None, report: BundleReport) -> None:
    """The grant names this bundle: its statement digest, and the release and license its predicate states."""
    if grant is None or not report.statement_digest:
        run.skipped(Step.RELEASE, "not checked: the grant or the bundle's statement could not be read")
        return
    if grant.release_digest != report.statement_digest:
        run.failed(
            Step.RELEASE,
            reasons.RELEASE_DIGEST_MISMATCH,
            f"the grant licenses statement {grant.release_digest}; this bundle's statement is "
            f"{report.statement_digest}",
        )
        return
    predicate = report.statement.predicate if report.statement is not None else {}
    named = _release_name(predicate)
    if named is None:
        run.notes.append(
            "the bundle's predicate names no listing and release: "
            f"only its statement digest binds it to {grant.release}"
        )
    elif named != grant.release:
        run.failed(
            Step.RELEASE,
            reasons.RELEASE_NAME_MISMATCH,
            f"the bundle's predicate names {named[:200]!r}; the grant licenses {grant.release}",
        )
        return
    license_ = predicate.get("license")
    if license_ is None:
        run.notes.append("the bundle's predicate names no license: the grant's terms are the only license")
    elif license_ != grant.license:
        run.failed(
            Step.RELEASE,
            reasons.RELEASE_LICENSE_MISMATCH,
            f"the bundle's predicate states license {str(license_)[:200]!r}; the grant's is {grant.license!r}",
        )
        return
    run.passed(Step.RELEASE, f"{grant.release} is the bundle's statement {report.statement_digest}")


def _release_name(predicate: dict[str, object]) -> str | None:
    """``listings/<listing>/releases/<release>`` from the predicate's ``listing`` and ``release``, or None.

    Either member may be a full resource name (``listings/x``, ``listings/x/releases/1.0.0``) or a bare id.
    """
    listing, release = predicate.get("listing"), predicate.get("release")
    if isinstance(release, str) and release.startswith("listings/"):
        return release
    if not isinstance(listing, str) or not isinstance(release, str):
        return None if listing is None and release is None else f"{listing}/releases/{release}"
    listing_name = listing if listing.startswith("listings/") else f"listings/{listing}"
    return f"{listing_name}/releases/{release}"


def _proof(
    run: _Run, grant: Grant | None, proof: bytes | str, root: TrustRoot | None, now: datetime, max_age: int
) -> tuple[bytes | None, ProofVerification | None]:
    if grant is None or root is None:
        run.skipped(Step.PROOF, "not checked: without a readable grant its log entry cannot be rebuilt")
        return None, None
    try:
        entry = grant_entry(grant)
    except EntryError as error:  # a grant that verified always makes a valid entry; kept for safety
        run.failed(Step.PROOF, error.reason, error.message)
        return None, None
    found = root.log_policy(grant.log_origin)
    if found is None:
        origins = [log.name for policy in root.log_policies for log in policy.logs]
        run.failed(
            Step.PROOF,
            reasons.TLOG_UNKNOWN_LOG,
            f"the grant was logged in {grant.log_origin!r}, a log the trust root does not name "
            f"(marketplaceLogs: {origins or 'none'})",
        )
        return entry, None
    policy, log = found
    proved = verify_proof(entry, proof, log, policy, policy.witnesses, now, max_age)
    for shortfall in proved.shortfalls:
        run.failed(Step.PROOF, shortfall.reason, shortfall.message)
    if proved:
        assert proved.checkpoint is not None
        run.passed(
            Step.PROOF,
            f"entry {proved.index} of {proved.checkpoint.size} in {proved.checkpoint.origin}, "
            f"cosigned by {', '.join(proved.fresh_witnesses) or 'no witness (quorum none)'} "
            f"within {max_age} s; entry sha256 {hashlib.sha256(entry).hexdigest()}",
        )
    return entry, proved
