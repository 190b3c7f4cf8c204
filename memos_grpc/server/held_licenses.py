"""gRPC servicer of HeldLicenseService: the buyer's licenses and its following of the marketplace log."""

from __future__ import annotations

import grpc

from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import held_license_service_pb2_grpc as h_grpc
from memos_grpc._proto.memos.v1 import interchange_service_pb2
from memos_grpc.governance import caller
from memos_grpc.marketplace.held import Followed
from memos_grpc.server.interchange import import_response
from memos_grpc.server.services import VaultSlot
from memos_grpc.store.rows import set_timestamp


class HeldLicenseServicer(h_grpc.HeldLicenseServiceServicer):
    """HeldLicenseService on a buyer's node: its held licenses, release imports, and the marketplace logs it follows.

    Only unpacks requests and packs replies; the license book and the follower in the vault do the checking.
    Reaches the vault through the ``VaultSlot``, so calls before the vault opens get UNAVAILABLE.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def GetHeldLicense(self, request: h.GetHeldLicenseRequest, context: grpc.ServicerContext) -> h.HeldLicense:
        return self._slot.get().license_book.get(request.name, caller.current())

    def ListHeldLicenses(
        self, request: h.ListHeldLicensesRequest, context: grpc.ServicerContext
    ) -> h.ListHeldLicensesResponse:
        page, token = self._slot.get().license_book.list(request.page_size, request.page_token, caller.current())
        return h.ListHeldLicensesResponse(held_licenses=page, next_page_token=token)

    def ImportRelease(
        self, request: h.ImportReleaseRequest, context: grpc.ServicerContext
    ) -> interchange_service_pb2.ImportBundleResponse:
        vault = self._slot.get()
        who = caller.current()
        pulled = vault.follower.pull_release(request.license, request.marketplace_token)
        book = vault.license_book
        result = vault.importer.import_bundle(
            request.parent,
            request.conflict_policy,
            None,
            pulled.chunks,
            who,
            lambda report: book.admit_import(pulled.grant, pulled.proof, report, who),
        )
        return import_response(vault, result, 0)

    def SyncMarketplaceLog(self, request: h.SyncMarketplaceLogRequest, context: grpc.ServicerContext) -> h.FollowedLog:
        return followed_message(self._slot.get().follower.sync())

    def ListFollowedLogs(
        self, request: h.ListFollowedLogsRequest, context: grpc.ServicerContext
    ) -> h.ListFollowedLogsResponse:
        logs = self._slot.get().license_book.followed_logs()
        return h.ListFollowedLogsResponse(logs=[followed_message(f) for f in logs])


def followed_message(followed: Followed) -> h.FollowedLog:
    message = h.FollowedLog(
        origin=followed.origin,
        tree_size=followed.size,
        root_hash=followed.root,
        checkpoint=followed.note,
        last_error_reason=followed.last_error_reason,
        last_error=followed.last_error,
    )
    set_timestamp(message.fresh_time, followed.fresh_time)
    set_timestamp(message.sync_time, followed.sync_time)
    return message
