"""gRPC servicer of MarketplaceService: the listings half and the licenses half, composed.

Each half is a mixin of its own module (``market_listings``, ``market_licenses``); both reach the vault
through ``self._slot``. A node whose marketplace is off answers FAILED_PRECONDITION ``MARKETPLACE_DISABLED``.
"""

from __future__ import annotations

from memos_grpc._proto.memos.v1 import marketplace_service_pb2_grpc
from memos_grpc.server.market_licenses import LicenseMethods
from memos_grpc.server.market_listings import ListingMethods
from memos_grpc.server.services import VaultSlot


class MarketplaceServicer(ListingMethods, LicenseMethods, marketplace_service_pb2_grpc.MarketplaceServiceServicer):
    """MarketplaceService on a marketplace node: ``ListingMethods`` and ``LicenseMethods`` over one ``VaultSlot``."""

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot
