"""Marketplace calls of the client: listings, releases, licenses and events, the transparency log, witnesses.

``MarketplaceCalls`` is mixed into ``MemosClient``; it relies on the client's
``_unary``, ``_stream_unary``, ``stream_timeout``, ``_metadata`` and its
marketplace, transparency-log and witness stubs. Names may be given whole
(``listings/weather``) or by their last part where the call allows it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from google.protobuf import field_mask_pb2

from memos_client._stubs import MarketplaceStub, TransparencyLogStub, WitnessStub
from memos_client.drafts import to_timestamp
from memos_client.errors import MemosError, from_rpc_error
from memos_client.interchange import Progress, _requests, progress_updates, read_chunks
from memos_client.lifecycle import search_mode
from memos_client.market_types import (
    ConsistencyProof,
    Cosignatures,
    InclusionProof,
    License,
    Listing,
    LogCheckpoint,
    LogEntries,
    LogEntry,
    MarketEvent,
    PublishResult,
    Release,
    ScoredListing,
)
from memos_grpc._proto.memos.v1 import (
    marketplace_service_pb2,
    transparency_log_service_pb2,
    witness_service_pb2,
)

_m = marketplace_service_pb2
_t = transparency_log_service_pb2
_w = witness_service_pb2

_EVENT_TYPES = {"publish": _m.EVENT_TYPE_PUBLISH, "yank": _m.EVENT_TYPE_YANK, "revoke": _m.EVENT_TYPE_REVOKE}
#: The event types ``subscribe`` takes, as the client and the CLI spell them.
EVENT_TYPES = tuple(_EVENT_TYPES)


def listing_name(listing: str) -> str:
    """``listings/{listing}`` for a listing id or name."""
    return listing if listing.startswith("listings/") else f"listings/{listing}"


def license_name(license: str) -> str:
    """``licenses/{license}`` for a license id or name."""
    return license if license.startswith("licenses/") else f"licenses/{license}"


def _event_type(value: str) -> int:
    text = value.strip().lower()
    if text not in _EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r}; expected one of: {', '.join(_EVENT_TYPES)}")
    return int(_EVENT_TYPES[text])


class MarketplaceCalls:
    """MemStore: listings, releases and licenses (MarketplaceService), its log and witnesses."""

    timeout: float | None
    stream_timeout: float | None
    _metadata: tuple[tuple[str, str | bytes], ...]
    _marketplace: MarketplaceStub
    _transparency: TransparencyLogStub
    _witness: WitnessStub

    def _unary(self, method: Any, request: Any) -> Any:  # provided by MemosClient
        raise NotImplementedError

    def _stream_unary(self, method: Any, requests: Iterator[Any], failures: list[BaseException]) -> Any:
        raise NotImplementedError  # provided by InterchangeCalls

    # -- Listings ------------------------------------------------------------

    def create_listing(
        self,
        listing_id: str,
        title: str,
        *,
        description: str = "",
        tags: Sequence[str] = (),
        publisher_threshold: int = 0,
        validate_only: bool = False,
    ) -> Listing:
        """Creates ``listings/{listing_id}``, owned by the caller; ``publisher_threshold`` 0 means 1."""
        request = _m.CreateListingRequest(
            listing_id=listing_id.removeprefix("listings/"),
            listing=_m.Listing(
                title=title, description=description, tags=list(tags), publisher_threshold=publisher_threshold
            ),
            validate_only=validate_only,
        )
        return Listing.from_proto(self._unary(self._marketplace.CreateListing, request))

    def get_listing(self, listing: str) -> Listing:
        """Gets a listing by id or name."""
        return Listing.from_proto(
            self._unary(self._marketplace.GetListing, _m.GetListingRequest(name=listing_name(listing)))
        )

    def list_listings(self, *, filter: str = "", page_size: int = 0) -> Iterator[Listing]:
        """Yields the listings in name order, matching the AIP-160 ``filter`` if given, following pages."""
        token = ""
        while True:
            request = _m.ListListingsRequest(page_size=page_size, page_token=token, filter=filter)
            response = self._unary(self._marketplace.ListListings, request)
            yield from (Listing.from_proto(x) for x in response.listings)
            token = response.next_page_token
            if not token:
                return

    def search_listings(
        self, text: str, *, mode: str = "dense", filter: str = "", top_k: int = 0
    ) -> list[ScoredListing]:
        """The listings nearest ``text`` (title, description, tags), best first; mode dense, lexical or hybrid."""
        request = _m.SearchListingsRequest(
            text=text,
            mode=search_mode(mode),  # type: ignore[arg-type]
            filter=filter,
            top_k=top_k,
        )
        response = self._unary(self._marketplace.SearchListings, request)
        return [ScoredListing.from_proto(r) for r in response.results]

    def update_listing(
        self,
        listing: str,
        *,
        etag: str = "",
        title: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        publisher_threshold: int | None = None,
    ) -> Listing:
        """Changes the fields given (those not None); with ``etag``, only if the listing is still that version."""
        message = _m.Listing(name=listing_name(listing), etag=etag)
        paths: list[str] = []
        if title is not None:
            message.title = title
            paths.append("title")
        if description is not None:
            message.description = description
            paths.append("description")
        if tags is not None:
            message.tags.extend(tags)
            paths.append("tags")
        if publisher_threshold is not None:
            message.publisher_threshold = publisher_threshold
            paths.append("publisher_threshold")
        if not paths:
            raise ValueError("nothing to update: pass at least one field")
        request = _m.UpdateListingRequest(listing=message, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return Listing.from_proto(self._unary(self._marketplace.UpdateListing, request))

    # -- Releases ------------------------------------------------------------

    def publish_release(
        self,
        listing: str,
        release_id: str,
        bundle: str | os.PathLike[str] | bytes | Iterable[bytes],
        terms_json: str | bytes,
        *,
        expected_digest: str = "",
        validate_only: bool = False,
        progress: Progress = None,
    ) -> PublishResult:
        """Publishes release ``release_id`` of ``listing`` from a bundle and returns it with its log proof.

        ``bundle`` is the path of a bundle file (read in 1 MiB chunks, never
        whole), its bytes, or an iterable of byte chunks; its statement must
        name the listing, the release, the terms' license and digest (export
        it with ``export_bundle(..., release=...)``). ``terms_json`` is the
        terms, verbatim (bytes must be UTF-8). Publishing the same bytes again
        returns the same release. ``progress`` as in ``import_bundle_file``.
        """
        terms = terms_json.decode("utf-8") if isinstance(terms_json, bytes) else terms_json
        first = _m.PublishReleaseRequest(
            parent=listing_name(listing),
            release_id=release_id,
            terms_json=terms,
            expected_digest=expected_digest,
            validate_only=validate_only,
        )
        failures: list[BaseException] = []
        if isinstance(bundle, (str, os.PathLike)):
            path = Path(bundle)
            with open(path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                first.expected_size = size
                with progress_updates(progress, size, path.name) as update:
                    requests = _requests(
                        first, read_chunks(source, update), lambda c: _m.PublishReleaseRequest(chunk=c), failures
                    )
                    response = self._stream_unary(self._marketplace.PublishRelease, requests, failures)
            return PublishResult.from_proto(response)
        chunks: Iterable[bytes] = [bundle] if isinstance(bundle, bytes) else bundle
        if isinstance(bundle, bytes):
            first.expected_size = len(bundle)
        with progress_updates(progress, first.expected_size or None, release_id) as update:
            requests = _requests(first, _counted(chunks, update), lambda c: _m.PublishReleaseRequest(chunk=c), failures)
            response = self._stream_unary(self._marketplace.PublishRelease, requests, failures)
        return PublishResult.from_proto(response)

    def get_release(self, name: str) -> Release:
        """Gets a release (``listings/{listing}/releases/{version}``), yanked or not."""
        return Release.from_proto(self._unary(self._marketplace.GetRelease, _m.GetReleaseRequest(name=name)))

    def list_releases(
        self, listing: str, *, filter: str = "", show_yanked: bool = False, page_size: int = 0
    ) -> Iterator[Release]:
        """Yields the releases of ``listing``, newest first by SemVer; yanked ones only with ``show_yanked``."""
        token = ""
        while True:
            request = _m.ListReleasesRequest(
                parent=listing_name(listing),
                page_size=page_size,
                page_token=token,
                filter=filter,
                show_yanked=show_yanked,
            )
            response = self._unary(self._marketplace.ListReleases, request)
            yield from (Release.from_proto(r) for r in response.releases)
            token = response.next_page_token
            if not token:
                return

    def download_release(
        self,
        name: str,
        out_path: str | os.PathLike[str] | BinaryIO,
        *,
        license: str = "",
        progress: Progress = None,
    ) -> Release:
        """Downloads a release's bundle to ``out_path`` (a path, or a binary file) and returns the release.

        Holders of a license of it pass ``license``; its listing's owner and
        admins need none. The bytes are checked against the release's size
        and ``bundle_digest`` as they arrive; a mismatch raises ``MemosError``
        (code DATA_LOSS, reason ``DOWNLOAD_DIGEST_MISMATCH``). Written to a
        path, the bytes go to ``path + ".part"``, renamed once complete and
        checked: a failed download leaves no file behind.
        """
        if not isinstance(out_path, (str, os.PathLike)):
            return self._download(name, out_path, license, progress, None)
        target = Path(out_path)
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as out:
                release = self._download(name, out, license, progress, target.name)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return release

    def _download(self, name: str, out: BinaryIO, license: str, progress: Progress, desc: str | None) -> Release:
        request = _m.DownloadReleaseRequest(name=name, license=license_name(license) if license else "")
        call = self._marketplace.DownloadRelease(request, timeout=self.stream_timeout, metadata=self._metadata)
        digest, written, release = hashlib.sha256(), 0, None
        try:
            responses = iter(call)
            first = next(responses, None)
            if first is None or not first.HasField("release"):
                raise MemosError("the server sent no release before the bytes", code=grpc.StatusCode.DATA_LOSS)
            release = Release.from_proto(first.release)
            with progress_updates(progress, release.size_bytes, desc or release.release_id) as update:
                for response in itertools.chain([first], responses):  # the first message may carry bytes too
                    out.write(response.chunk)
                    digest.update(response.chunk)
                    written += len(response.chunk)
                    update(len(response.chunk))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            call.cancel()  # type: ignore[no-untyped-call]
        got = "sha256:" + digest.hexdigest()
        if (written, got) != (release.size_bytes, release.bundle_digest):
            raise MemosError(
                f"downloaded {written} bytes hashing to {got}; the release is {release.size_bytes} bytes, "
                f"{release.bundle_digest}",
                code=grpc.StatusCode.DATA_LOSS,
                reason="DOWNLOAD_DIGEST_MISMATCH",
            )
        return release

    def yank_release(self, name: str, reason: str) -> Release:
        """Yanks a release (its listing's owner): out of lists and search, still acquirable by its exact name."""
        return Release.from_proto(
            self._unary(self._marketplace.YankRelease, _m.YankReleaseRequest(name=name, reason=reason))
        )

    # -- Licenses ------------------------------------------------------------

    def acquire_license(
        self,
        release: str,
        licensee: str,
        licensee_key: str,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> License:
        """Acquires a license of ``release`` for ``licensee`` (``principals/{id}`` on the buyer's node).

        ``licensee_key`` is the key id of the licensee's Ed25519 key. The
        window defaults to what the terms allow; ``not_before`` and
        ``not_after`` may only narrow it. The license carries the signed grant
        and its log proof, the files ``memos-grpc market verify`` checks.
        """
        wanted = _m.License(release=release, licensee=licensee, licensee_key=licensee_key)
        if not_before is not None:
            wanted.not_before.CopyFrom(to_timestamp(not_before))
        if not_after is not None:
            wanted.not_after.CopyFrom(to_timestamp(not_after))
        response = self._unary(self._marketplace.AcquireLicense, _m.AcquireLicenseRequest(license=wanted))
        return License.from_proto(response)

    def get_license(self, name: str) -> License:
        """Gets a license by id or name (``licenses/{license}``)."""
        return License.from_proto(
            self._unary(self._marketplace.GetLicense, _m.GetLicenseRequest(name=license_name(name)))
        )

    def list_licenses(self, *, filter: str = "", page_size: int = 0) -> Iterator[License]:
        """Yields the licenses the caller may see in name order, matching ``filter`` if given, following pages."""
        token = ""
        while True:
            request = _m.ListLicensesRequest(page_size=page_size, page_token=token, filter=filter)
            response = self._unary(self._marketplace.ListLicenses, request)
            yield from (License.from_proto(x) for x in response.licenses)
            token = response.next_page_token
            if not token:
                return

    def revoke_license(self, name: str, reason: str) -> License:
        """Revokes a license (the release's listing owner), with the reason the revoke entry carries."""
        request = _m.RevokeLicenseRequest(name=license_name(name), reason=reason)
        return License.from_proto(self._unary(self._marketplace.RevokeLicense, request))

    # -- Events --------------------------------------------------------------

    def subscribe(
        self,
        *,
        types: Sequence[str] = (),
        tags: Sequence[str] = (),
        listings: Sequence[str] = (),
        query: str = "",
        min_score: float = 0.0,
        start_index: int | None = None,
    ) -> Generator[MarketEvent, None, None]:
        """Yields publish, yank and revoke events in log order as they are published; it never ends by itself.

        ``types`` ("publish", "yank", "revoke"), ``tags``, ``listings`` and
        ``query`` (with ``min_score``) narrow the events; all set must match.
        From ``start_index`` the log is replayed first (resume with the last
        ``log_index`` seen + 1); without it only later events come. The call
        starts on the first ``next()``; closing the iterator (or breaking out
        of the loop) cancels it. It is bounded by ``stream_timeout`` only.
        """
        request = _m.SubscribeRequest(
            types=[_event_type(t) for t in types],  # type: ignore[misc]
            tags=list(tags),
            listings=[listing_name(x) for x in listings],
            query=query,
            min_score=min_score,
        )
        if start_index is not None:
            request.start_index = start_index
        call = self._marketplace.Subscribe(request, timeout=self.stream_timeout, metadata=self._metadata)
        try:
            for event in call:
                yield MarketEvent.from_proto(event)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    # -- Transparency log ----------------------------------------------------

    def get_checkpoint(self) -> LogCheckpoint:
        """The log's latest published checkpoint, with its signature and the witnesses' cosignatures."""
        response = self._unary(self._transparency.GetCheckpoint, _t.GetCheckpointRequest())
        return LogCheckpoint.from_proto(response)

    def get_inclusion_proof(self, index: int, tree_size: int = 0) -> InclusionProof:
        """The inclusion proof of entry ``index``; ``tree_size`` 0: in the latest published checkpoint.

        At the latest checkpoint the proof comes with that checkpoint and as
        tlog-proof@v1 text (``.tlog_proof``), the file ``market verify`` reads.
        """
        request = _t.GetInclusionProofRequest(index=index, tree_size=tree_size)
        return InclusionProof.from_proto(self._unary(self._transparency.GetInclusionProof, request))

    def get_consistency_proof(self, old_size: int, new_size: int = 0) -> ConsistencyProof:
        """Proof that the tree of ``old_size`` is a prefix of that of ``new_size`` (0: the latest published)."""
        request = _t.GetConsistencyProofRequest(old_size=old_size, new_size=new_size)
        return ConsistencyProof.from_proto(self._unary(self._transparency.GetConsistencyProof, request))

    def get_log_entries(self, start_index: int = 0, max_entries: int = 0) -> LogEntries:
        """One run of entries from ``start_index`` (at most ``max_entries``; 0: the server's default)."""
        request = _t.GetEntriesRequest(start_index=start_index, max_entries=max_entries)
        return LogEntries.from_proto(self._unary(self._transparency.GetEntries, request))

    def iter_log_entries(self, start_index: int = 0, *, page_size: int = 0) -> Iterator[LogEntry]:
        """Yields the entries from ``start_index`` to the tree size published when the first page was read."""
        index, end = start_index, None
        while end is None or index < end:
            page = self.get_log_entries(index, page_size)
            end = page.tree_size if end is None else end
            wanted = [e for e in page.entries if e.index < end]
            if not wanted:
                return
            yield from wanted
            index = wanted[-1].index + 1

    # -- Witness -------------------------------------------------------------

    def add_checkpoint(
        self, checkpoint: str, *, old_size: int = 0, consistency_proof: Sequence[bytes] = ()
    ) -> Cosignatures:
        """Asks a witness to cosign ``checkpoint`` (a signed note), consistent with what it cosigned last.

        A conflict raises ``AbortedError`` (reason ``WITNESS_SIZE_CONFLICT``)
        whose ``metadata["latest_size"]`` is the size to prove from.
        """
        request = _w.AddCheckpointRequest(
            old_size=old_size, consistency_proof=list(consistency_proof), checkpoint=checkpoint
        )
        return Cosignatures.from_proto(self._unary(self._witness.AddCheckpoint, request))


def _counted(chunks: Iterable[bytes], update: Any) -> Iterator[bytes]:
    for chunk in chunks:
        update(len(chunk))
        yield chunk
