"""Buyer-side marketplace calls of the client: held licenses, the followed log, and licensed imports.

``HeldLicenseCalls`` is mixed into ``MemosClient``; it builds on ``InterchangeCalls``
(a licensed import is ``import_bundle_file`` with a grant and proof) and relies
on the client's ``_unary`` and its held-license stub. These are
calls to the buyer's own node (the one the release is imported into), not to
the marketplace: the node verified the grant at import, counts its uses, and
follows the marketplace's log to learn of revocations and yanks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from memos_client._stubs import HeldLicenseStub
from memos_client.bundle_types import ImportResult
from memos_client.interchange import InterchangeCalls, Progress, conflict_policy_number
from memos_client.market_types import FollowedLog, HeldLicense, License
from memos_client.names import space_name
from memos_grpc._proto.memos.v1 import held_license_service_pb2

_h = held_license_service_pb2


def held_license_name(held_license: str) -> str:
    """``heldLicenses/{hex}`` for a held license's name, its hex id, or a ``sha256:<hex>`` grant digest."""
    if held_license.startswith("heldLicenses/"):
        return held_license
    return "heldLicenses/" + held_license.removeprefix("sha256:")


class HeldLicenseCalls(InterchangeCalls):
    """The licenses this node holds for imported releases (HeldLicenseService), and licensed imports."""

    _held: HeldLicenseStub

    def import_release(
        self,
        parent: str,
        bundle_path: str | os.PathLike[str],
        license: License,
        *,
        conflict_policy: str = "skip",
        progress: Progress = None,
    ) -> ImportResult:
        """Imports a release's bundle file into ``parent`` under ``license``, as ``acquire_license`` returned it.

        The license's grant envelope and tlog-proof go with the bundle
        (``import_bundle_file(..., grant=..., proof=...)``); the caller must be
        the licensee, with the licensed key registered to it on this node. A
        license whose grant no published checkpoint covered yet has no proof:
        read it again (``get_license``) once the marketplace has published one.
        """
        if not license.tlog_proof:
            raise ValueError(
                f"{license.name} has no tlog-proof yet (no published checkpoint covers its grant); "
                "get the license again once one does"
            )
        return self.import_bundle_file(
            parent,
            bundle_path,
            conflict_policy=conflict_policy,
            grant=license.grant_envelope,
            proof=license.tlog_proof,
            progress=progress,
        )

    def get_held_license(self, held_license: str) -> HeldLicense:
        """A held license by name (``heldLicenses/{hex}``), hex id or grant digest: its state and uses per action."""
        request = _h.GetHeldLicenseRequest(name=held_license_name(held_license))
        return HeldLicense.from_proto(self._unary(self._held.GetHeldLicense, request))

    def list_held_licenses(self, *, page_size: int = 0) -> Iterator[HeldLicense]:
        """Yields the held licenses the caller may see (its own; admins: all) in name order, following pages."""
        token = ""
        while True:
            request = _h.ListHeldLicensesRequest(page_size=page_size, page_token=token)
            response = self._unary(self._held.ListHeldLicenses, request)
            yield from (HeldLicense.from_proto(x) for x in response.held_licenses)
            token = response.next_page_token
            if not token:
                return

    def pull_release(
        self, parent: str, license_name: str, marketplace_token: str, *, conflict_policy: str = "skip"
    ) -> ImportResult:
        """Has this node pull a licensed release from the marketplace it follows and import it into ``parent``.

        ``license_name`` is ``licenses/{id}`` on the marketplace, acquired for the caller's key here;
        ``marketplace_token`` is the caller's token there, used by the node for this call only. The node reads
        the license's grant and proof and streams the bundle into the same checks as ``import_release``.
        """
        request = _h.ImportReleaseRequest(
            parent=space_name(parent),
            license=license_name,
            marketplace_token=marketplace_token,
            conflict_policy=conflict_policy_number(conflict_policy),  # type: ignore[arg-type]
        )
        return ImportResult.from_proto(self._unary(self._held.ImportRelease, request))

    def sync_marketplace_log(self) -> FollowedLog:
        """Has the node follow the marketplace log now (admins) and returns what it accepted.

        The latest cosigned checkpoint is checked against the trust root's log
        policy and for consistency with the last one accepted; the revocations
        and yanks read take effect. A refused checkpoint raises
        ``FailedPreconditionError`` (``TLOG_QUORUM_NOT_MET``, ``TLOG_FORK_DETECTED``, ...);
        an unreachable marketplace ``UnavailableError`` (``MARKETPLACE_UNAVAILABLE``).
        """
        return FollowedLog.from_proto(self._unary(self._held.SyncMarketplaceLog, _h.SyncMarketplaceLogRequest()))

    def list_followed_logs(self) -> list[FollowedLog]:
        """What the node has accepted of each marketplace log it follows, and its last failed sync (admins)."""
        response = self._unary(self._held.ListFollowedLogs, _h.ListFollowedLogsRequest())
        return [FollowedLog.from_proto(x) for x in response.logs]
