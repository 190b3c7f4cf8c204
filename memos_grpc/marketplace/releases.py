"""Marketplace releases: publish (verify, pin, log), get, list, download and yank.

A release is one signed bundle (docs/marketplace.md, "The release") stored as a content-addressed blob of
the vault's blob store, and a row of ``market_releases`` holding its ``Release`` message. Publishing
verifies the bundle as an import does, against the listing's publisher keys: on the first release the
Ed25519 keys registered to the listing's owner on this node, of which those that signed are then pinned;
on later releases the pinned keys, ``publisher_threshold`` of which must sign. Every publish and yank is a
``memstore-entry/v1`` entry of the node's log, appended in the transaction that writes the row
(``MarketplaceNode.logged``), and the call returns once a published checkpoint covers the entry. What must agree
with the write ("is this id taken", "are these keys pinned", "is it yanked already") is decided in that
transaction, from the rows: writes run one at a time, on every server that shares the database.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import license_expression

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, interchange_service_pb2
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.errors import (
    AlreadyExistsError,
    BundleError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import Principals
from memos_grpc.interchange.bundle import BundleReport, TrustPolicy, verify_bundle
from memos_grpc.interchange.importer import CubeChecks, bundle_limits
from memos_grpc.interchange.report import verification_message
from memos_grpc.interchange.statement import RELEASE_FIELDS
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.listings import Listings, is_owner, parse_listing_name, require_owner
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.marketplace.semver import check_release_id, precedence
from memos_grpc.marketplace.terms import Terms, TermsError
from memos_grpc.primitives.canonical import canonical_json, format_time
from memos_grpc.primitives.keys import TrustedKey
from memos_grpc.store import market_licenses, market_log, market_releases
from memos_grpc.store.blobs import BlobWriter
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_releases import RELEASE_FIELDS_FILTER
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.transparency.proof import TlogProof
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import invalid

_DEFAULT_PAGE, _MAX_PAGE = 50, 1000
MAX_REASON_CHARS = 1000
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: The signature shortfalls that mean "not signed by enough of the listing's keys" (not a broken bundle).
_KEY_SHORTFALLS = frozenset(
    {reasons.BUNDLE_THRESHOLD_NOT_MET, reasons.BUNDLE_UNTRUSTED_SIGNER, reasons.BUNDLE_REQUIRED_SIGNER_MISSING}
)
_TYPES = {
    "plaintext": cube_pb2.MEMORY_TYPE_PLAINTEXT,
    "activation": cube_pb2.MEMORY_TYPE_ACTIVATION,
    "parametric": cube_pb2.MEMORY_TYPE_PARAMETRIC,
}
_ACTIONS = {
    "import": m.TERMS_ACTION_IMPORT,
    "recall": m.TERMS_ACTION_RECALL,
    "search": m.TERMS_ACTION_SEARCH,
    "export": m.TERMS_ACTION_EXPORT,
    "transform": m.TERMS_ACTION_TRANSFORM,
    "redistribute": m.TERMS_ACTION_REDISTRIBUTE,
}


def release_name(listing_id: str, release_id: str) -> str:
    return f"listings/{listing_id}/releases/{release_id}"


def parse_release_name(name: str, field: str = "name") -> tuple[str, str]:
    """(listing id, release id) of ``listings/{listing}/releases/{release}``; INVALID_NAME otherwise."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "listings" or parts[2] != "releases":
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a release name of the form listings/{{listing}}/releases/{{release}}",
            reason=reasons.INVALID_NAME,
        )
    return parse_listing_name(f"listings/{parts[1]}", field), check_release_id(parts[3], f"{field} release id")


def release_not_found(name: str) -> NotFoundError:
    return NotFoundError(f"release {name[:160]} does not exist", reason=reasons.RELEASE_NOT_FOUND)


def license_ids(expression: str) -> builtins.list[str]:
    """The SPDX and ``LicenseRef-`` ids an expression names, in order of first appearance."""
    licensing = license_expression.get_spdx_licensing()
    return list(licensing.license_keys(licensing.parse(expression), unique=True))


def terms_message(terms: Terms, text: str) -> m.Terms:
    message = m.Terms(
        json=text,
        digest=terms.digest(),
        license=terms.license,
        prohibitions=[_ACTIONS[a] for a in terms.prohibitions],
        price_label=terms.price_label or "",
        max_offline_seconds=terms.max_offline_seconds,
    )
    for permission in terms.permissions:
        granted = message.permissions.add(action=_ACTIONS[permission.action])
        if permission.count is not None:
            granted.constraints.add(count=permission.count)
        if permission.until is not None:
            granted.constraints.add().date_time.FromDatetime(permission.until)
        if permission.elapsed is not None:
            granted.constraints.add().elapsed_time.FromTimedelta(permission.elapsed)
    return message


@dataclass(frozen=True)
class Header:
    """The first message of a PublishRelease stream."""

    parent: str
    release_id: str
    terms_json: str
    expected_digest: str = ""
    expected_size: int = 0
    validate_only: bool = False


@dataclass(frozen=True)
class Published:
    """A publish's outcome: the release, its log inclusion proof ("" when only validated), the bundle's verification."""

    release: m.Release
    tlog_proof: str
    verification: interchange_service_pb2.BundleVerification


class Releases:
    """The releases of a marketplace node."""

    def __init__(self, context: VaultContext, principals: Principals, node: MarketplaceNode) -> None:
        self._context = context
        self._principals = principals
        self._node = node

    # -- for the licenses half -------------------------------------------------------------------------------

    def get(self, name: str, viewer: Caller) -> m.Release:
        """The release, yanked or not; NOT_FOUND RELEASE_NOT_FOUND."""
        listing_id, release_id = parse_release_name(name)
        with self._context.database.read() as cursor:
            return self._load(cursor, listing_id, release_id)

    @staticmethod
    def statement_digest_in(cursor: Connection, name: str) -> str:
        """The statement digest of release ``name``'s bundle, read in the caller's transaction."""
        listing_id, release_id = parse_release_name(name)
        return Releases._load(cursor, listing_id, release_id).statement_digest

    @staticmethod
    def _load(cursor: Connection, listing_id: str, release_id: str) -> m.Release:
        release = market_releases.release_by_id(cursor, listing_id, release_id)
        if release is None:
            raise release_not_found(release_name(listing_id, release_id))
        return release

    # -- publish ---------------------------------------------------------------------------------------------

    def publish(self, header: Header, chunks: Iterator[bytes], viewer: Caller) -> Published:
        listing_id = parse_listing_name(header.parent, "parent")
        release_id = check_release_id(header.release_id)
        name = release_name(listing_id, release_id)
        if header.expected_digest and not _DIGEST.fullmatch(header.expected_digest):
            raise invalid("expected_digest must be sha256:<64 lowercase hex>", reasons.INVALID_DIGEST)
        limits = bundle_limits(self._context.settings)
        if header.expected_size < 0:
            raise invalid(f"expected_size must not be negative (got {header.expected_size})", reasons.INVALID_SIZE)
        if header.expected_size > limits.max_bundle_bytes:
            raise invalid(
                f"expected_size {header.expected_size} is over the limit of {limits.max_bundle_bytes} bytes "
                "(bundle_max_bytes)",
                reasons.BUNDLE_TOO_LARGE,
            )
        with self._context.database.read() as cursor:
            listing = Listings.load(cursor, listing_id)
        require_owner(listing, viewer, "publish its releases")
        try:
            terms = Terms.parse(header.terms_json.encode("utf-8"))
        except TermsError as exc:
            raise InvalidArgumentError(f"terms_json: {exc.message}", reason=exc.reason) from exc
        keys = self._publisher_keys(listing)
        policy = TrustPolicy("publisher", keys, max(listing.publisher_threshold, 1))
        writer = market_releases.bundle_writer(self._context.blobs, limits.max_bundle_bytes)
        try:
            now = self._context.clock()
            report = verify_bundle(_tee(chunks, writer), policy, limits, now, CubeChecks(self._context.settings))
            for _rest in _tee(chunks, writer):  # bytes after the end of the archive still belong to the file
                pass
            digest, size = writer.digest, writer.size
            _check_expected(header, digest, size)
            verification = verification_message(report, 0, self._principals.key_owner)
            with self._context.database.read() as cursor:
                existing = self._existing(cursor, listing_id, release_id, digest, name)
                listing = Listings.load(cursor, listing_id)  # a release published meanwhile pinned keys
            if existing is None:
                if not report.valid:
                    raise _refusal(report, policy, listing, name)
                assert report.signatures is not None
                _check_pinned(listing, report.signatures.counted_keys, policy.threshold, name)
                release = self._release(header, listing, name, terms, report, digest, size, viewer, now)
                if header.validate_only:
                    writer.abort()
                    return Published(release, "", verification)
                market_releases.keep_bundle(writer)
                index = self._record(listing_id, release_id, release, now, policy.threshold)
            else:
                writer.abort()
                index = existing.log_index
        except BaseException:
            writer.abort()
            raise
        # The same bytes again return the same release, once its entry is published, like the first call.
        return Published(self._await(index, name), self._proof(index), verification)

    def _publisher_keys(self, listing: m.Listing) -> dict[str, TrustedKey]:
        """The keys that may sign: the pinned ones, or before the first release the owner's registered keys."""
        try:
            owner = self._principals.get(listing.owner)
        except NotFoundError:
            return {}
        pinned = set(listing.publisher_keys)
        keys: dict[str, TrustedKey] = {}
        for key in owner.public_keys:
            if pinned and key.key_id not in pinned:
                continue
            keys[key.key_id] = TrustedKey(
                key.key_id,
                bytes(key.public_key),
                listing.owner,
                key.not_before.ToDatetime(tzinfo=UTC) if key.HasField("not_before") else None,
                key.not_after.ToDatetime(tzinfo=UTC) if key.HasField("not_after") else None,
            )
        return keys

    @staticmethod
    def _existing(cursor: Connection, listing_id: str, release_id: str, digest: str, name: str) -> m.Release | None:
        """The release already published with these bytes; ALREADY_EXISTS when other bytes took the id."""
        found = market_releases.release_and_bundle(cursor, listing_id, release_id)
        if found is None:
            return None
        release, stored_digest = found
        if stored_digest != digest:
            raise AlreadyExistsError(
                f"{name} is already published with other bytes ({stored_digest}); a release never changes: "
                "publish these under a new release id",
                reason=reasons.RELEASE_ALREADY_EXISTS,
            )
        return release

    def _release(
        self,
        header: Header,
        listing: m.Listing,
        name: str,
        terms: Terms,
        report: BundleReport,
        digest: str,
        size: int,
        viewer: Caller,
        now: datetime,
    ) -> m.Release:
        assert report.statement is not None and report.signatures is not None
        predicate: dict[str, Any] = report.statement.predicate
        wanted = dict(
            zip(RELEASE_FIELDS, (listing.name, header.release_id, terms.license, terms.digest()), strict=True)
        )
        wrong = [f"{k} is {predicate.get(k)!r}, not {v!r}" for k, v in wanted.items() if predicate.get(k) != v]
        if wrong:
            raise InvalidArgumentError(
                f"the bundle's statement does not name this release: {'; '.join(wrong)}",
                reason=reasons.RELEASE_STATEMENT_MISMATCH,
            )
        counts = predicate.get("cubeCounts")
        types = sorted(_TYPES[t] for t in counts if t in _TYPES) if isinstance(counts, dict) else []
        models = predicate.get("modelFingerprints")
        release = m.Release(
            name=name,
            state=m.Release.STATE_ACTIVE,
            bundle_digest=digest,
            size_bytes=size,
            statement_digest=report.statement_digest,
            license=terms.license,
            terms=terms_message(terms, header.terms_json),
            cube_count=report.cube_count,
            memory_types=types,
            embedding_fingerprint=str(predicate.get("embeddingFingerprint", ""))[:256],
            model_fingerprints=[str(f)[:256] for f in models] if isinstance(models, list) else [],
            publisher=viewer.principal,
            signer_keys=sorted(report.signatures.counted_keys),
        )
        release.create_time.FromDatetime(now)
        return release

    def _record(self, listing_id: str, release_id: str, release: m.Release, now: datetime, threshold: int) -> int:
        """Appends the publish entry and writes the row and the listing in one transaction; returns the entry's
        index (an earlier one when the same bytes were published meanwhile, by this server or another).

        A first release pins the listing's publisher keys: that key change is an entry of its own, right after the
        publish entry, whose statement is the canonical JSON of the change (kept in ``market_key_changes``).
        """
        name = release.name

        def apply(cursor: Connection) -> int:
            # Decided again from the rows: another publish may have taken the id or pinned keys since the checks.
            existing = self._existing(cursor, listing_id, release_id, release.bundle_digest, name)
            if existing is not None:
                return existing.log_index
            listing = Listings.load(cursor, listing_id)
            _check_pinned(listing, release.signer_keys, threshold, name)
            entry = Entry("publish", release.statement_digest, release.statement_digest, release.signer_keys[0])
            entries = [entry.encode()]
            change = b""
            if not listing.publisher_keys:  # trust on first publish: the keys that signed it are pinned
                change = key_change(listing_id, release, now)
                digest = "sha256:" + hashlib.sha256(change).hexdigest()
                entries.append(Entry("key", digest, digest, self._node.marketplace_key.key_id).encode())
                listing.publisher_keys.extend(release.signer_keys)
            indexes = self._node.log.append_in(cursor, entries)
            release.log_index = indexes[0]
            listing.release_count += 1
            market_releases.insert_release(cursor, listing_id, release_id, release, now, license_ids(release.license))
            self._refresh_latest(cursor, listing)
            Listings.store(cursor, listing, now)
            if change:
                market_releases.insert_key_change(cursor, indexes[-1], listing_id, change, now)
            return indexes[0]

        return self._node.logged(apply)

    def key_changes(self, listing_id: str) -> list[tuple[int, bytes]]:
        """The logged publisher-key changes of a listing: (log index, the canonical JSON the entry digests)."""
        with self._context.database.read() as cursor:
            return market_releases.key_changes(cursor, listing_id)

    @staticmethod
    def _refresh_latest(cursor: Connection, listing: m.Listing) -> None:
        """Sets the listing's latest release (the newest by SemVer that is not yanked) and what it carries."""
        listing_id = parse_listing_name(listing.name)
        active = market_releases.active_releases(cursor, listing_id)
        listing.latest_release, listing.license = "", ""
        del listing.license_ids[:]
        del listing.memory_types[:]
        if active:
            newest = max(active, key=lambda r: precedence(r.release_id)).message()
            listing.latest_release = newest.name
            listing.license = newest.license
            listing.license_ids.extend(license_ids(newest.license))
            listing.memory_types.extend(newest.memory_types)

    def _await(self, index: int, name: str) -> m.Release:
        try:
            self._node.wait_published(index + 1)
        except UnavailableError as exc:
            exc.metadata.update({"log_index": str(index)})
            raise
        return self.get(name, Caller("", True, "internal"))

    def _proof(self, index: int) -> str:
        """The entry's tlog-proof@v1 text under the first published checkpoint covering it ("" if none yet)."""
        with self._context.database.read() as cursor:
            published = market_log.first_published_covering(cursor, index)
        if published is None:
            return ""
        size, note = published
        path = self._node.log.inclusion_proof(index, size)
        return TlogProof(index, tuple(path), note).text()

    # -- list, download, yank ------------------------------------------------------------------------------

    def list(self, request: m.ListReleasesRequest) -> tuple[builtins.list[m.Release], str]:
        listing_id = parse_listing_name(request.parent, "parent")
        size = page_size(request.page_size, _DEFAULT_PAGE, _MAX_PAGE)
        compiled = compile_filter(
            request.filter, max_length=self._context.settings.max_filter_length, fields=RELEASE_FIELDS_FILTER
        )
        query = (request.parent, request.filter, str(request.show_yanked))
        after = decode_token(request.page_token, *query)
        with self._context.database.read() as cursor:
            Listings.load(cursor, listing_id)
            rows = market_releases.releases_matching(cursor, listing_id, compiled, show_yanked=request.show_yanked)
        ordered = sorted(rows, key=lambda r: precedence(r.release_id), reverse=True)
        if after is not None:
            try:
                bound = precedence(after)
            except ValueError as exc:
                raise invalid("page_token is not a token this server issued", reasons.INVALID_PAGE_TOKEN) from exc
            ordered = [r for r in ordered if precedence(r.release_id) < bound]
        page = [r.message() for r in ordered[:size]]
        token = encode_token(ordered[size - 1].release_id, *query) if len(ordered) > size else ""
        return page, token

    def download(self, name: str, license_name: str, viewer: Caller) -> tuple[m.Release, Iterator[bytes]]:
        """The release and its bundle's bytes, for its listing's owner, an admin, or a holder of a license of it."""
        listing_id, release_id = parse_release_name(name)
        with self._context.database.read() as cursor:
            release = self._load(cursor, listing_id, release_id)
            listing = Listings.load(cursor, listing_id)
            if not is_owner(listing, viewer):
                licensed = bool(license_name) and market_licenses.holds_license(
                    cursor, license_name.removeprefix("licenses/"), listing_id, release_id, viewer.principal
                )
                if not licensed:
                    raise PermissionDeniedError(
                        f"downloading {name} needs an unrevoked license of it that you acquired (license), "
                        f"unless you own {listing.name}",
                        reason=reasons.LICENSE_REQUIRED,
                    )
        chunk = self._context.settings.bundle_chunk_bytes
        return release, self._context.blobs.read(release.bundle_digest, chunk_bytes=chunk)

    def yank(self, name: str, reason: str, viewer: Caller) -> m.Release:
        listing_id, release_id = parse_release_name(name)
        if not reason.strip() or len(reason) > MAX_REASON_CHARS:
            raise invalid(
                f"reason is required: 1 to {MAX_REASON_CHARS} characters saying why (got {len(reason)})",
                reasons.MISSING_REASON,
            )
        now = self._context.clock().astimezone(UTC).replace(microsecond=0)
        key = self._node.marketplace_key.key_id
        # What the yank entry's statement digests: the yank, as canonical JSON (docs/marketplace.md).
        record = canonical_json({"release": name, "reason": reason, "yankTime": format_time(now)})

        def apply(cursor: Connection) -> int:
            # Read in the transaction that logs the yank: of two yanks, on any servers, one is logged.
            release = self._load(cursor, listing_id, release_id)
            listing = Listings.load(cursor, listing_id)
            require_owner(listing, viewer, "yank its releases")
            if release.state == m.Release.STATE_YANKED:
                raise FailedPreconditionError(
                    f"{name} was yanked already (log index {release.yank.log_index}): {release.yank.reason}",
                    reason=reasons.RELEASE_ALREADY_YANKED,
                )
            entry = Entry(
                "yank", release.statement_digest, "sha256:" + hashlib.sha256(record).hexdigest(), key, release.log_index
            )
            (index,) = self._node.log.append_in(cursor, [entry.encode()])
            release.state = m.Release.STATE_YANKED
            release.yank.reason = reason
            release.yank.yank_time.FromDatetime(now)
            release.yank.log_index = index
            market_releases.yank_release(cursor, listing_id, release_id, release)
            self._refresh_latest(cursor, listing)
            Listings.store(cursor, listing, now)
            return index

        index = self._node.logged(apply)
        return self._await(index, name)


def _check_pinned(listing: m.Listing, signers: Iterable[str], threshold: int, name: str) -> None:
    """PUBLISHER_KEY_NOT_PINNED unless ``threshold`` of the listing's pinned keys signed (any keys before a pin)."""
    pinned = set(listing.publisher_keys)
    if pinned and len(pinned & set(signers)) < threshold:
        raise InvalidArgumentError(
            f"{name} is not signed by {threshold} of the keys pinned for {listing.name}",
            reason=reasons.PUBLISHER_KEY_NOT_PINNED,
        )


def _refusal(report: BundleReport, policy: TrustPolicy, listing: m.Listing, name: str) -> InvalidArgumentError:
    """Why a bundle that did not verify is refused: too few of the listing's keys, or its own BUNDLE_* reason."""
    if report.reason in _KEY_SHORTFALLS:
        whose = "pinned for" if listing.publisher_keys else f"registered to {listing.owner}, the owner of"
        return InvalidArgumentError(
            f"{name} is not signed by {policy.threshold} of the keys {whose} {listing.name}: {report.message}",
            reason=reasons.PUBLISHER_KEY_NOT_PINNED,
        )
    return BundleError(f"the bundle does not verify: {report.message}", reason=report.reason)


def key_change(listing_id: str, release: m.Release, now: datetime) -> bytes:
    """The canonical JSON a ``key`` entry digests: the listing, the keys now pinned, the threshold, the release."""
    return canonical_json(
        {
            "listing": f"listings/{listing_id}",
            "publisherKeys": sorted(release.signer_keys),
            "release": release.name,
            "changeTime": format_time(now.astimezone(UTC).replace(microsecond=0)),
        }
    )


def _tee(chunks: Iterator[bytes], writer: BlobWriter) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            writer.write(chunk)
            yield chunk


def _check_expected(header: Header, digest: str, size: int) -> None:
    if header.expected_size and size != header.expected_size:
        raise invalid(
            f"the bundle is {size} bytes, not expected_size {header.expected_size}", reasons.PAYLOAD_SIZE_MISMATCH
        )
    if header.expected_digest and digest != header.expected_digest:
        raise invalid(
            f"the bundle hashes to {digest}, not expected_digest {header.expected_digest}",
            reasons.PAYLOAD_DIGEST_MISMATCH,
        )
