"""Licenses: grants of one release to one licensee, signed by the marketplace key and logged.

``AcquireLicense`` checks the request and the window the terms allow, signs the grant (``grants.make_grant``),
appends its ``grant`` entry and writes the ``market_licenses`` row with the entry's index in one transaction
(``MarketplaceNode.logged``), then waits for a published checkpoint to cover the entry. ``RevokeLicense`` does the
same with a ``revoke`` entry whose ``ref`` is the grant's index, deciding in that transaction, from the row,
whether the license is revoked already: of two revocations, on any servers of the database, one is logged and
the other refused. Who sees a license: its acquirer, the owner of its release's listing, admins; everyone else is
told it does not exist. The grant window rule is in docs/marketplace.md ("Licenses").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf import timestamp_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as market_pb2
from memos_grpc.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.grants import PRINCIPAL_NAME, is_release_name, make_grant
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.marketplace.releases import Releases
from memos_grpc.marketplace.terms import Terms
from memos_grpc.primitives.bounds import LATEST_TIME
from memos_grpc.primitives.canonical import canonical_json, format_time
from memos_grpc.store import market_licenses, market_log
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_licenses import LICENSE_FIELDS
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.transparency.proof import TlogProof
from memos_grpc.vault.context import VaultContext

License = market_pb2.License
#: A license's name: ``licenses/{license}``, the id an AIP-122 id the server picks.
LICENSE_NAME: Final = re.compile(r"licenses/([a-z][a-z0-9-]{0,62})")
_KEY_ID: Final = re.compile(r"[0-9a-f]{64}")
#: ``not_before`` may lie this far before the server's clock (a client's clock runs a little behind), no more:
#: a window may only narrow what the terms allow, and the default start is now.
MAX_BACKDATE: Final = timedelta(minutes=5)
#: The end of a grant whose terms set no end and whose request names none: the latest time the formats carry.
NO_END: Final = LATEST_TIME
MAX_REASON_CHARS: Final = 1000
#: Who reads a license's release for it: releases are public, so any reader sees the same.
_MARKETPLACE: Final = Caller("", True, "internal")


def first_proof(cursor: Connection, node: MarketplaceNode, index: int) -> str:
    """The tlog-proof@v1 text of entry ``index`` under the first published checkpoint covering it ("" if none).

    The first one, so that every read of a license returns the same proof.
    """
    published = market_log.first_published_covering(cursor, index)
    if published is None:
        return ""
    size, note = published
    path = node.log.inclusion_proof(index, size)
    return TlogProof(index, tuple(path), note).text()


def grant_window(
    terms: Terms, now: datetime, not_before: datetime | None, not_after: datetime | None
) -> tuple[datetime, datetime]:
    """The window of a grant: the request's bounds where set, checked against what the terms allow.

    The start defaults to ``now`` and may lie at most ``MAX_BACKDATE`` before it. The terms' end is their
    earliest ``dateTime`` or ``not_before + elapsedTime`` of any permission; the end defaults to it (``NO_END``
    when the terms set none) and may not pass it. Times are whole seconds, as a grant carries them.
    """
    start = not_before if not_before is not None else now
    if start < now - MAX_BACKDATE:
        raise _window(
            f"not_before {format_time(start)} is before now ({format_time(now)}): a grant starts now, "
            f"or later (at most {int(MAX_BACKDATE.total_seconds())} s earlier, for clock skew)"
        )
    ends = [p.until for p in terms.permissions if p.until is not None]
    ends += [start + p.elapsed for p in terms.permissions if p.elapsed is not None]
    terms_end = min(ends) if ends else None
    if terms_end is not None and terms_end <= start:
        raise _window(f"the terms allow no use after {format_time(terms_end)}, which is not after the grant's start")
    end = not_after if not_after is not None else (terms_end or NO_END)
    if end <= start:
        raise _window(f"not_after {format_time(end)} must be after not_before {format_time(start)}")
    if terms_end is not None and end > terms_end:
        raise _window(
            f"not_after {format_time(end)} is past {format_time(terms_end)}, the end the terms allow "
            "(their earliest dateTime, or not_before plus their shortest elapsedTime)"
        )
    if end > NO_END:
        raise _window(f"not_after must not be after {format_time(NO_END)}")
    return start, end


def _window(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, reason=reasons.INVALID_GRANT_WINDOW)


def _time(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A request's timestamp as a whole-second UTC time; INVALID_TIMESTAMP for anything a grant cannot carry."""
    if stamp.nanos != 0:
        raise InvalidArgumentError(
            f"{field} must be a whole second (a grant carries times to the second)", reason=reasons.INVALID_TIMESTAMP
        )
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"{field} is not a valid timestamp (years 1 to 9999): {exc}", reason=reasons.INVALID_TIMESTAMP
        ) from exc


def _stamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def parse_license_name(name: str, field: str = "name") -> str:
    """The license id of ``licenses/{license}``; INVALID_NAME otherwise."""
    match = LICENSE_NAME.fullmatch(name)
    if match is None:
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a license name of the form licenses/{{license}}",
            reason=reasons.INVALID_NAME,
        )
    return match.group(1)


def check_release_name(name: str, field: str) -> str:
    if not is_release_name(name):
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a release name listings/{{listing}}/releases/{{semver}}"
            + (" (it is required)" if not name else ""),
            reason=reasons.INVALID_NAME,
        )
    return name


def check_reason(reason: str) -> str:
    if not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise InvalidArgumentError(
            f"reason is required: 1 to {MAX_REASON_CHARS} characters saying why (got {len(reason)})",
            reason=reasons.MISSING_REASON,
        )
    return reason


class Licenses:
    """Acquire, read, list and revoke licenses of one marketplace node."""

    def __init__(self, context: VaultContext, node: MarketplaceNode, releases: Releases) -> None:
        self._context = context
        self._node = node
        self._releases = releases

    # -- acquire -----------------------------------------------------------------------------------------

    def acquire(self, wanted: License, viewer: Caller) -> License:
        name = check_release_name(wanted.release, "license.release")
        if not PRINCIPAL_NAME.fullmatch(wanted.licensee):
            raise InvalidArgumentError(
                f"license.licensee {wanted.licensee[:120]!r} must be the licensee principal as the buyer's node "
                "names it: principals/{principal}",
                reason=reasons.INVALID_NAME,
            )
        if not _KEY_ID.fullmatch(wanted.licensee_key):
            raise InvalidArgumentError(
                "license.licensee_key must be the key id of the licensee's Ed25519 key: 64 lowercase hex digits",
                reason=reasons.INVALID_KEY_ID,
            )
        not_before = _time(wanted.not_before, "license.not_before") if wanted.HasField("not_before") else None
        not_after = _time(wanted.not_after, "license.not_after") if wanted.HasField("not_after") else None
        release = self._releases.get(name, viewer)
        terms = Terms.parse(release.terms.json.encode())
        now = self._context.clock().astimezone(UTC).replace(microsecond=0)
        start, end = grant_window(terms, now, not_before, not_after)
        key = self._node.marketplace_key
        envelope = make_grant(
            key=key,
            release=name,
            release_digest=release.statement_digest,
            terms=terms,
            log_origin=self._node.origin,
            licensee_principal=wanted.licensee,
            licensee_key_id=wanted.licensee_key,
            not_before=start,
            not_after=end,
            publish_log_index=release.log_index,
        )
        grant_digest = "sha256:" + hashlib.sha256(envelope.payload).hexdigest()
        entry = Entry("grant", release.statement_digest, grant_digest, key.key_id)
        license_id = "l" + uuid.uuid4().hex
        license = License(
            name=f"licenses/{license_id}",
            release=name,
            licensee=wanted.licensee,
            licensee_key=wanted.licensee_key,
            not_before=_stamp(start),
            not_after=_stamp(end),
            acquirer=viewer.principal,
            terms=release.terms,
            grant_envelope=envelope.to_json(),
            grant_digest=grant_digest,
            state=License.STATE_ACTIVE,
            create_time=_stamp(now),
        )
        _, listing_id, _, release_id = name.split("/")

        def apply(cursor: Connection) -> int:
            (index,) = self._node.log.append_in(cursor, [entry.encode()])
            license.log_index = index
            market_licenses.insert_license(cursor, license_id, license, listing_id, release_id, viewer.principal, now)
            return index

        index = self._node.logged(apply)
        self._await(index, license.name)
        return self._read(license_id)

    # -- read --------------------------------------------------------------------------------------------

    def get(self, name: str, viewer: Caller) -> License:
        license_id = parse_license_name(name)
        with self._context.database.read() as cursor:
            row = market_licenses.license_row(cursor, license_id)
        if row is None or not _sees(viewer, row.acquirer, row.listing_owner):
            raise _license_not_found(name)
        return self._read(license_id)

    def list(self, requested_size: int, token: str, filter_text: str, viewer: Caller) -> tuple[list[License], str]:
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        compiled = compile_filter(filter_text, max_length=settings.max_filter_length, fields=LICENSE_FIELDS)
        # The token is bound to the viewer too: a page of one caller's view never continues another's.
        after = decode_token(token, "licenses", viewer.principal, filter_text) or ""
        visible_to = None if viewer.admin else viewer.principal
        with self._context.database.read() as cursor:
            found = market_licenses.license_ids_page(cursor, after, visible_to, compiled, size + 1)
        ids = found[:size]
        next_token = encode_token(ids[-1], "licenses", viewer.principal, filter_text) if len(found) > size else ""
        return [self._read(license_id) for license_id in ids], next_token

    # -- revoke ------------------------------------------------------------------------------------------

    def revoke(self, name: str, reason: str, viewer: Caller) -> License:
        license_id = parse_license_name(name)
        check_reason(reason)
        now = self._context.clock().astimezone(UTC).replace(microsecond=0)
        key = self._node.marketplace_key

        def apply(cursor: Connection) -> int:
            # Every check reads the row in the transaction that logs the revocation: no other can come between.
            row = market_licenses.license_row(cursor, license_id)
            if row is None or not _sees(viewer, row.acquirer, row.listing_owner):
                raise _license_not_found(name)
            if not viewer.admin and viewer.principal != row.listing_owner:
                # The acquirer sees its license but may not revoke it: only the listing's owner grants and takes back.
                raise PermissionDeniedError(
                    f"only the owner of the listing of {name} (or an admin) may revoke it",
                    reason=reasons.LISTING_OWNER_REQUIRED,
                )
            license = row.license
            if row.state == License.STATE_REVOKED:
                raise FailedPreconditionError(
                    f"{name} was revoked already (log index {license.revocation.log_index})",
                    reason=reasons.LICENSE_ALREADY_REVOKED,
                )
            release_digest = Releases.statement_digest_in(cursor, license.release)
            # What the revoke entry's statement digests: the revocation, as canonical JSON (docs/marketplace.md).
            statement = canonical_json(
                {
                    "license": name,
                    "grant": license.grant_digest,
                    "reason": reason,
                    "revokeTime": format_time(now),
                }
            )
            entry = Entry(
                "revoke",
                release_digest,
                "sha256:" + hashlib.sha256(statement).hexdigest(),
                key.key_id,
                license.log_index,
            )
            (index,) = self._node.log.append_in(cursor, [entry.encode()])
            license.state = License.STATE_REVOKED
            license.revocation.CopyFrom(market_pb2.Revocation(reason=reason, revoke_time=_stamp(now), log_index=index))
            market_licenses.revoke_license(cursor, license_id, license)
            return index

        index = self._node.logged(apply)
        self._await(index, name)
        return self._read(license_id)

    # -- helpers -----------------------------------------------------------------------------------------

    def _await(self, index: int, name: str) -> None:
        """Waits for a published checkpoint covering ``index``; the refusal names the logged entry and license."""
        try:
            self._node.wait_published(index + 1)
        except UnavailableError as exc:
            exc.metadata.update({"log_index": str(index), "license": name})
            raise

    def _read(self, license_id: str) -> License:
        """The license as it is now: its stored row, its proof, and its release's yank."""
        with self._context.database.read() as cursor:
            found = market_licenses.license_by_id(cursor, license_id)
            if found is None:
                raise _license_not_found(f"licenses/{license_id}")
            license = found
            license.tlog_proof = first_proof(cursor, self._node, license.log_index)
        release = self._releases.get(license.release, _MARKETPLACE)
        if release.HasField("yank"):
            license.release_yank.CopyFrom(release.yank)
        return license


def _sees(viewer: Caller, acquirer: str, owner: str) -> bool:
    return viewer.admin or viewer.principal in (acquirer, owner)


def _license_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"license {name[:120]} does not exist, or only its acquirer, its listing's owner and admins see it",
        reason=reasons.LICENSE_NOT_FOUND,
    )
