"""MarketplaceService methods for listings and releases, mixed into the one ``MarketplaceServicer``.

Handlers unpack requests and pack responses; the checks live in ``memos_grpc.marketplace.listings`` and
``memos_grpc.marketplace.releases``. Each first makes sure the node is a marketplace (MARKETPLACE_DISABLED).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.governance import caller
from memos_grpc.marketplace.releases import Header, Releases
from memos_grpc.node import Node
from memos_grpc.server.services import VaultSlot
from memos_grpc.server.transparency import marketplace_of
from memos_grpc.vault.validation import invalid


class ListingMethods:
    """The listings and releases half of MarketplaceService; the licenses half is ``LicenseMethods``."""

    _slot: VaultSlot

    def _market(self) -> Node:
        """The vault, once it is known to be a marketplace's."""
        marketplace_of(self._slot)
        return self._slot.get()

    def CreateListing(self, request: m.CreateListingRequest, context: grpc.ServicerContext) -> m.Listing:
        return self._market().listings.create(request, caller.current())

    def GetListing(self, request: m.GetListingRequest, context: grpc.ServicerContext) -> m.Listing:
        return self._market().listings.get(request.name)

    def ListListings(self, request: m.ListListingsRequest, context: grpc.ServicerContext) -> m.ListListingsResponse:
        listings, token = self._market().listings.list(request)
        return m.ListListingsResponse(listings=listings, next_page_token=token)

    def SearchListings(
        self, request: m.SearchListingsRequest, context: grpc.ServicerContext
    ) -> m.SearchListingsResponse:
        hits = self._market().listings.search(request)
        return m.SearchListingsResponse(results=[m.ScoredListing(listing=hit, score=score) for hit, score in hits])

    def UpdateListing(self, request: m.UpdateListingRequest, context: grpc.ServicerContext) -> m.Listing:
        return self._market().listings.update(request, caller.current())

    def _releases(self) -> Releases:
        vault = self._market()
        assert vault.releases is not None  # set whenever the marketplace is on
        return vault.releases

    def PublishRelease(
        self, request_iterator: Iterator[m.PublishReleaseRequest], context: grpc.ServicerContext
    ) -> m.PublishReleaseResponse:
        releases = self._releases()
        first = next(request_iterator, None)
        if first is None:
            raise invalid(
                "the stream is empty: send the header, then the bundle's bytes in chunks", reasons.EMPTY_STREAM
            )
        header = Header(
            first.parent,
            first.release_id,
            first.terms_json,
            first.expected_digest,
            first.expected_size,
            first.validate_only,
        )
        published = releases.publish(header, _chunks(first, request_iterator), caller.current())
        return m.PublishReleaseResponse(
            release=published.release, tlog_proof=published.tlog_proof, verification=published.verification
        )

    def GetRelease(self, request: m.GetReleaseRequest, context: grpc.ServicerContext) -> m.Release:
        return self._releases().get(request.name, caller.current())

    def ListReleases(self, request: m.ListReleasesRequest, context: grpc.ServicerContext) -> m.ListReleasesResponse:
        releases, token = self._releases().list(request)
        return m.ListReleasesResponse(releases=releases, next_page_token=token)

    def DownloadRelease(
        self, request: m.DownloadReleaseRequest, context: grpc.ServicerContext
    ) -> Iterator[m.DownloadReleaseResponse]:
        release, chunks = self._releases().download(request.name, request.license, caller.current())
        yield m.DownloadReleaseResponse(release=release)
        for chunk in chunks:
            yield m.DownloadReleaseResponse(chunk=chunk)

    def YankRelease(self, request: m.YankReleaseRequest, context: grpc.ServicerContext) -> m.Release:
        return self._releases().yank(request.name, request.reason, caller.current())


_HEADER_FIELDS = ("parent", "release_id", "terms_json", "expected_digest", "expected_size", "validate_only")


def _chunks(first: m.PublishReleaseRequest, rest: Iterator[m.PublishReleaseRequest]) -> Iterator[bytes]:
    """The bundle bytes of a PublishRelease stream; header fields are allowed on the first message only."""
    yield first.chunk
    for index, message in enumerate(rest, start=1):
        if any(getattr(message, f) for f in _HEADER_FIELDS):
            raise invalid(f"message {index} sets a header field; only the first message may", reasons.INVALID_STREAM)
        yield message.chunk
