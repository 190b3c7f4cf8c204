"""MarketplaceService methods for listings and releases, mixed into the one ``MarketplaceServicer``.

Handlers unpack requests and pack responses; the checks live in ``memos_grpc.marketplace.listings`` and
``memos_grpc.marketplace.releases``. Each first makes sure the node is a marketplace (MARKETPLACE_DISABLED).
"""

from __future__ import annotations

import grpc

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.governance import caller
from memos_grpc.server.services import VaultSlot
from memos_grpc.server.transparency import marketplace_of
from memos_grpc.vault.vault import Vault


class ListingMethods:
    """The listings and releases half of MarketplaceService; the licenses half is ``LicenseMethods``."""

    _slot: VaultSlot

    def _market(self) -> Vault:
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
