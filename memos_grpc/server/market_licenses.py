"""MarketplaceService methods for licenses and Subscribe, mixed into the one ``MarketplaceServicer``.

Handlers unpack requests and pack responses; the checks live in ``memos_grpc.marketplace.licenses`` and
``memos_grpc.marketplace.events``. Each first makes sure the node is a marketplace (MARKETPLACE_DISABLED).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.governance import caller
from memos_grpc.marketplace.events import EventStream, criteria_of
from memos_grpc.marketplace.licenses import Licenses
from memos_grpc.server.services import VaultSlot
from memos_grpc.server.transparency import marketplace_of

#: Subscribe's initial metadata: the log index the stream delivers events from.
START_INDEX_METADATA = "start-index"


class LicenseMethods:
    """The license and Subscribe half of MarketplaceService; the listings half is ``ListingMethods``."""

    _slot: VaultSlot

    def _licenses(self) -> Licenses:
        marketplace_of(self._slot)
        licenses = self._slot.get().licenses
        assert licenses is not None  # a marketplace node has its licenses
        return licenses

    def AcquireLicense(self, request: m.AcquireLicenseRequest, context: grpc.ServicerContext) -> m.License:
        return self._licenses().acquire(request.license, caller.current())

    def GetLicense(self, request: m.GetLicenseRequest, context: grpc.ServicerContext) -> m.License:
        return self._licenses().get(request.name, caller.current())

    def ListLicenses(self, request: m.ListLicensesRequest, context: grpc.ServicerContext) -> m.ListLicensesResponse:
        licenses, token = self._licenses().list(request.page_size, request.page_token, request.filter, caller.current())
        return m.ListLicensesResponse(licenses=licenses, next_page_token=token)

    def RevokeLicense(self, request: m.RevokeLicenseRequest, context: grpc.ServicerContext) -> m.License:
        return self._licenses().revoke(request.name, request.reason, caller.current())

    def Subscribe(self, request: m.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[m.MarketplaceEvent]:
        node = marketplace_of(self._slot)
        vault = self._slot.get()
        criteria = criteria_of(request, bool(vault.context.embedder.fingerprint))
        # A client that goes away wakes its follower at once instead of at its next idle check.
        context.add_callback(node.notify_followers)
        stream = EventStream(vault.context, node, criteria)
        # Where the stream starts, at once: a client knows it is following before the first event comes.
        context.send_initial_metadata(((START_INDEX_METADATA, str(stream.start)),))
        yield from stream.follow(context.is_active)
