"""License grants: a DSSE envelope, signed by the marketplace key, granting one release to one licensee.

The envelope's in-toto Statement v1 names the release (its resource name and statement digest); its predicate holds
the license, the marketplace log's origin, the licensee (principal and key id), the terms verbatim, the validity
window and the log index of the release's publish entry. ``verify_grant`` never raises: like ``verify_envelope`` it
returns a result that is true only when the grant holds for this licensee now, and otherwise says why
(docs/marketplace.md, "License grants"). The grant does not carry its own log index; its proof file does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memos_grpc import reasons
from memos_grpc.interchange.dsse import (
    STATEMENT_PAYLOAD_TYPE,
    Envelope,
    EnvelopeFormatError,
    EnvelopeVerification,
    Shortfall,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from memos_grpc.interchange.statement import STATEMENT_TYPE
from memos_grpc.marketplace import ijson
from memos_grpc.marketplace.terms import Terms, TermsError
from memos_grpc.primitives.bounds import MAX_SAFE_INTEGER, is_integer_in
from memos_grpc.primitives.canonical import canonical_json, format_time, parse_time
from memos_grpc.primitives.keys import SigningKey, TrustedKey

PREDICATE_TYPE = "https://memos-grpc.dev/LicenseGrant/v1"
#: A grant envelope is small (the terms are at most 64 KiB); anything far larger is refused before it is decoded.
MAX_GRANT_BYTES = 256 * 1024
MAX_LOG_ORIGIN_CHARS = 255

#: ``listings/{listing}/releases/{release}``: an AIP-122 id, and a SemVer 2.0.0 version without build metadata.
_SEMVER_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
RELEASE_NAME = re.compile(
    r"listings/[a-z][a-z0-9-]{0,62}/releases/"
    rf"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-{_SEMVER_IDENT}(?:\.{_SEMVER_IDENT})*)?"
)
#: A release id (the version) is at most this many characters.
MAX_RELEASE_ID_CHARS = 64
PRINCIPAL_NAME = re.compile(r"principals/[a-z][a-z0-9-]{0,62}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A C2SP checkpoint origin, kept to printable ASCII without spaces.
_LOG_ORIGIN = re.compile(rf"[\x21-\x7e]{{1,{MAX_LOG_ORIGIN_CHARS}}}")
_STATEMENT_MEMBERS = {"_type", "subject", "predicateType", "predicate"}
_SUBJECT_MEMBERS = {"name", "digest"}
_PREDICATE_MEMBERS = {"license", "logOrigin", "licensee", "terms", "notBefore", "notAfter", "publishLogIndex"}
_LICENSEE_MEMBERS = {"principal", "keyId"}

_SHORTFALLS = {
    Shortfall.SIGNATURE_INVALID: reasons.GRANT_SIGNATURE_INVALID,
    Shortfall.SIGNER_REVOKED: reasons.GRANT_SIGNER_REVOKED,
    Shortfall.SIGNER_EXPIRED: reasons.GRANT_SIGNER_EXPIRED,
    Shortfall.THRESHOLD_NOT_MET: reasons.GRANT_UNTRUSTED_SIGNER,
    Shortfall.UNTRUSTED_SIGNER: reasons.GRANT_UNTRUSTED_SIGNER,
}


class _Malformed(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Grant:
    """What a verified grant says."""

    release: str
    #: ``sha256:<hex>`` of the release statement.
    release_digest: str
    license: str
    log_origin: str
    licensee_principal: str
    licensee_key_id: str
    terms: Terms
    not_before: datetime
    not_after: datetime
    publish_log_index: int
    #: ``sha256:<hex>`` of the statement bytes the marketplace signed (the ``statement`` of the grant's log entry).
    statement_digest: str
    #: Key id of the marketplace key whose signature counted.
    signer: str


@dataclass(frozen=True)
class GrantVerification:
    """What ``verify_grant`` found; true when the grant is valid for the licensee at the verification time."""

    reason: str = ""
    message: str = ""
    grant: Grant | None = None
    envelope: EnvelopeVerification | None = None

    def __bool__(self) -> bool:
        return not self.reason


def grant_statement(
    *,
    release: str,
    release_digest: str,
    terms: Terms,
    log_origin: str,
    licensee_principal: str,
    licensee_key_id: str,
    not_before: datetime,
    not_after: datetime,
    publish_log_index: int,
) -> bytes:
    """The canonical JSON of a grant's statement; raises ValueError on a value the grammar does not allow."""
    predicate = {
        "license": terms.license,
        "logOrigin": log_origin,
        "licensee": {"principal": licensee_principal, "keyId": licensee_key_id},
        "terms": terms.document,
        "notBefore": format_time(not_before),
        "notAfter": format_time(not_after),
        "publishLogIndex": publish_log_index,
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": release, "digest": {"sha256": release_digest.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    payload = canonical_json(statement)
    try:
        # The producer is held to the verifier's grammar: a grant it signs is one every buyer can read.
        _read_statement(payload)
    except _Malformed as exc:
        raise ValueError(exc.message) from exc
    return payload


def make_grant(
    *,
    key: SigningKey,
    release: str,
    release_digest: str,
    terms: Terms,
    log_origin: str,
    licensee_principal: str,
    licensee_key_id: str,
    not_before: datetime,
    not_after: datetime,
    publish_log_index: int,
) -> Envelope:
    """The grant envelope, signed by the marketplace ``key``; raises ValueError as ``grant_statement`` does."""
    payload = grant_statement(
        release=release,
        release_digest=release_digest,
        terms=terms,
        log_origin=log_origin,
        licensee_principal=licensee_principal,
        licensee_key_id=licensee_key_id,
        not_before=not_before,
        not_after=not_after,
        publish_log_index=publish_log_index,
    )
    return sign_envelope(STATEMENT_PAYLOAD_TYPE, payload, [key])


def verify_grant(
    envelope_text: bytes | str,
    trusted: Mapping[str, TrustedKey],
    licensee_principal: str,
    licensee_key_id: str,
    now: datetime,
) -> GrantVerification:
    """Checks a grant for one licensee at ``now``: signature by a trusted marketplace key, grammar, licensee, window.

    Order (the first failure is the reason): the envelope's form, its payloadType, the signature, the statement's
    predicateType, the statement and predicate, the terms, the licensee, then ``notBefore <= now < notAfter``.
    """
    data = envelope_text.encode() if isinstance(envelope_text, str) else envelope_text
    if len(data) > MAX_GRANT_BYTES:
        return GrantVerification(reasons.GRANT_MALFORMED, f"the grant is {len(data)} bytes; at most {MAX_GRANT_BYTES}")
    try:
        envelope = parse_envelope(data)
    except EnvelopeFormatError as exc:
        return GrantVerification(reasons.GRANT_MALFORMED, f"the grant is not a DSSE envelope: {exc}")
    if envelope.payload_type != STATEMENT_PAYLOAD_TYPE:
        return GrantVerification(
            reasons.GRANT_MALFORMED,
            f"the grant's payloadType must be {STATEMENT_PAYLOAD_TYPE!r}, not {envelope.payload_type!r}",
        )
    checked = verify_envelope(envelope, trusted, 1, now)
    if not checked:
        assert checked.shortfall is not None
        reason = _SHORTFALLS[checked.shortfall]
        return GrantVerification(
            reason, f"the grant is not signed by a trusted marketplace key: {checked.message}", None, checked
        )
    assert checked.payload is not None
    try:
        grant = _read_statement(checked.payload, checked.counted_keys[0])
    except _Malformed as exc:
        return GrantVerification(exc.reason, exc.message, None, checked)
    if grant.licensee_principal != licensee_principal or grant.licensee_key_id != licensee_key_id:
        return GrantVerification(
            reasons.GRANT_OTHER_LICENSEE,
            f"the grant licenses {grant.licensee_principal} with key {grant.licensee_key_id[:16]}..., "
            f"not {licensee_principal} with key {licensee_key_id[:16]}...",
            grant,
            checked,
        )
    if now < grant.not_before:
        return GrantVerification(
            reasons.GRANT_NOT_YET_VALID, f"the grant is valid from {format_time(grant.not_before)}", grant, checked
        )
    if now >= grant.not_after:
        return GrantVerification(
            reasons.GRANT_EXPIRED, f"the grant expired at {format_time(grant.not_after)}", grant, checked
        )
    return GrantVerification("", "", grant, checked)


def read_grant(envelope_text: bytes) -> Grant:
    """What a grant verified before says, read back from storage: no signature, licensee or time check here.

    Raises ValueError if the bytes are not a grant (they were one when stored, so that means corruption).
    """
    envelope = parse_envelope(envelope_text)
    signer = envelope.signatures[0].keyid if envelope.signatures else ""
    try:
        return _read_statement(envelope.payload, signer)
    except _Malformed as exc:
        raise ValueError(f"a stored grant does not read back ({exc.reason}): {exc.message}") from exc


def _read_statement(payload: bytes, signer: str = "") -> Grant:
    """The grant a statement's bytes say; raises _Malformed with the reason."""
    try:
        statement = ijson.loads(payload)
    except ijson.IJsonError as exc:
        raise _Malformed(reasons.GRANT_MALFORMED, f"the grant's statement is not strict I-JSON: {exc.message}") from exc
    if not isinstance(statement, dict):
        raise _Malformed(reasons.GRANT_MALFORMED, "the grant's statement is not a JSON object")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise _Malformed(
            reasons.GRANT_PREDICATE_TYPE_INVALID,
            f"the statement's predicateType must be {PREDICATE_TYPE!r}, "
            f"not {str(statement.get('predicateType'))[:80]!r}",
        )
    _exactly(statement, _STATEMENT_MEMBERS, "the statement")
    if statement["_type"] != STATEMENT_TYPE:
        raise _Malformed(reasons.GRANT_MALFORMED, f"the statement's _type must be {STATEMENT_TYPE!r}")
    release, release_digest = _subject(statement["subject"])
    predicate = statement["predicate"]
    if not isinstance(predicate, dict):
        raise _Malformed(reasons.GRANT_MALFORMED, "the predicate must be an object")
    _exactly(predicate, _PREDICATE_MEMBERS, "the predicate")
    licensee = predicate["licensee"]
    if not isinstance(licensee, dict):
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.licensee must be an object")
    _exactly(licensee, _LICENSEE_MEMBERS, "predicate.licensee")
    principal, key_id = licensee["principal"], licensee["keyId"]
    if not isinstance(principal, str) or not PRINCIPAL_NAME.fullmatch(principal):
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.licensee.principal must be principals/<id>")
    if not isinstance(key_id, str) or not _HEX64.fullmatch(key_id):
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.licensee.keyId must be a key id: 64 lowercase hex digits")
    origin = predicate["logOrigin"]
    if not isinstance(origin, str) or not _LOG_ORIGIN.fullmatch(origin):
        raise _Malformed(
            reasons.GRANT_MALFORMED,
            f"predicate.logOrigin must be 1 to {MAX_LOG_ORIGIN_CHARS} printable ASCII characters",
        )
    not_before, not_after = _time(predicate, "notBefore"), _time(predicate, "notAfter")
    if not not_before < not_after:
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.notBefore must be before predicate.notAfter")
    index = predicate["publishLogIndex"]
    if not is_integer_in(index, 0, MAX_SAFE_INTEGER):
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.publishLogIndex must be an integer from 0 to 2^53 - 1")
    try:
        terms = Terms.from_json(predicate["terms"])
    except TermsError as exc:
        reason = (
            reasons.GRANT_TERMS_UNKNOWN_MEMBER
            if exc.reason == reasons.TERMS_UNKNOWN_MEMBER
            else reasons.GRANT_TERMS_INVALID
        )
        raise _Malformed(reason, f"the grant's terms are refused ({exc.reason}): {exc.message}") from exc
    if predicate["license"] != terms.license:
        raise _Malformed(reasons.GRANT_MALFORMED, "predicate.license must be the terms' license")
    return Grant(
        release,
        release_digest,
        terms.license,
        origin,
        principal,
        key_id,
        terms,
        not_before,
        not_after,
        index,
        "sha256:" + hashlib.sha256(payload).hexdigest(),
        signer,
    )


def _exactly(document: dict[str, Any], members: set[str], where: str) -> None:
    unknown, missing = sorted(set(document) - members), sorted(members - set(document))
    if unknown or missing:
        raise _Malformed(
            reasons.GRANT_MALFORMED,
            f"{where} must hold exactly {', '.join(sorted(members))}"
            + (f"; unknown: {', '.join(repr(n[:60]) for n in unknown[:5])}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        )


def _subject(value: Any) -> tuple[str, str]:
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise _Malformed(reasons.GRANT_MALFORMED, "the statement's subject must be a list of exactly one release")
    subject = value[0]
    _exactly(subject, _SUBJECT_MEMBERS, "subject[0]")
    name, digest = subject["name"], subject["digest"]
    if not is_release_name(name):
        raise _Malformed(reasons.GRANT_MALFORMED, "subject[0].name must be listings/<listing>/releases/<semver>")
    if not isinstance(digest, dict):
        raise _Malformed(reasons.GRANT_MALFORMED, "subject[0].digest must be an object")
    _exactly(digest, {"sha256"}, "subject[0].digest")
    if not isinstance(digest["sha256"], str) or not _HEX64.fullmatch(digest["sha256"]):
        raise _Malformed(reasons.GRANT_MALFORMED, "subject[0].digest.sha256 must be 64 lowercase hex digits")
    return name, "sha256:" + digest["sha256"]


def is_release_name(name: object) -> bool:
    """True for ``listings/<listing>/releases/<semver>`` with a release id of at most 64 characters."""
    return (
        isinstance(name, str)
        and RELEASE_NAME.fullmatch(name) is not None
        and len(name.rsplit("/", 1)[1]) <= MAX_RELEASE_ID_CHARS
    )


def _time(predicate: dict[str, Any], field: str) -> datetime:
    value = predicate[field]
    problem = f"predicate.{field} must be an RFC 3339 UTC time to the second, like 2026-06-01T00:00:00Z"
    if not isinstance(value, str):
        raise _Malformed(reasons.GRANT_MALFORMED, problem)
    try:
        when = parse_time(value)
    except ValueError as exc:
        raise _Malformed(reasons.GRANT_MALFORMED, f"{problem}: {exc}") from exc
    if format_time(when) != value:
        raise _Malformed(reasons.GRANT_MALFORMED, problem)
    return when
