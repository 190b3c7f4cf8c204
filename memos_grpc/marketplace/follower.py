"""Following a marketplace's transparency log from a buyer's node.

Every ``marketplace_sync_seconds`` (and on SyncMarketplaceLog) the follower fetches the marketplace's latest
published checkpoint and accepts it only if

1. its origin is a log of this node's trust root, and the log key of that root's policy signed it;
2. a quorum of the policy's witnesses cosigned it (unwitnessed checkpoints are refused, whatever the log says);
3. it extends what this node accepted before: not smaller (a rollback), not another root for the same size (a
   fork), and the entries read since, appended to the RFC 6962 frontier kept from every earlier entry, give
   exactly its root — so the entries are the ones the checkpoint signs, and the old tree is a prefix of the new
   one, proved without trusting any proof the log hands out.

The revocations and yanks among the new entries go to the license book's followed logs (followed.py), with
the time the quorum cosigned the checkpoint (the freshness ``maxOfflineSeconds`` is measured from). A refused
checkpoint changes nothing: the node keeps what it had, and its licensed cubes are suspended once that grows
too old.

Servers sharing a PostgreSQL database follow one marketplace together: the periodic sync runs on the server that
holds the claim ``FOLLOW_CLAIM`` (another takes it over when that one stops), SyncMarketplaceLog runs where it is
called, and a checkpoint is accepted only over the one the sync started from (``FollowedLogs.accept``): a sync
that finds another server's checkpoint accepted meanwhile starts again from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import marketplace_service_pb2_grpc as m_grpc
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2_grpc as t_grpc
from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError, MemosError
from memos_grpc.interchange.peer import dial_configured, peer_error
from memos_grpc.interchange.trust_store import TrustStore
from memos_grpc.marketplace.entries import REF_TYPES, EntryError, parse
from memos_grpc.marketplace.held import LicenseBook
from memos_grpc.marketplace.licenses import parse_license_name
from memos_grpc.settings import THREAD_STOP_SECONDS, Settings
from memos_grpc.store.followed_logs import Followed, LogEvent
from memos_grpc.transparency import merkle
from memos_grpc.transparency._text import TransparencyFormatError
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import open_note, parse_note
from memos_grpc.transparency.proof import fresh_quorum_time
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)

#: Entries asked for per GetEntries call (the server's own cap).
_PAGE = 1000
#: Cosignatures are read for their time whatever their age: how old is too old is each license's to say.
_ANY_AGE = 10 * 366 * 86400
#: The claim of the periodic sync: one server of a database follows the marketplace's log on its own.
FOLLOW_CLAIM = "marketplace/log-follower"
#: Syncs one call runs while other servers' syncs keep accepting before it (each one's is as good).
_SYNC_ATTEMPTS = 3


class LogFollower:
    """Follows the marketplace of ``marketplace_follow`` (see the module); idle when that setting is empty."""

    def __init__(self, context: VaultContext, book: LicenseBook, trust: TrustStore) -> None:
        self._context = context
        self._settings: Settings = context.settings
        self._logs = book.logs
        self._trust = trust
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._channel: grpc.Channel | None = None
        self._thread: threading.Thread | None = None
        #: Periodic syncs this server ran (it held the claim when each began).
        self.rounds = 0
        if self._settings.marketplace_follow:
            self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=THREAD_STOP_SECONDS)
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._context.database.claim(FOLLOW_CLAIM):
                    self.rounds += 1
                    self.sync()
            except MemosError as error:
                log.warning("following %s failed (%s): %s", self._settings.marketplace_follow, error.reason, error)
            except Exception:  # the next interval retries
                log.exception("following %s failed", self._settings.marketplace_follow)
            self._stop.wait(self._settings.marketplace_sync_seconds)

    # -- pulling a release ----------------------------------------------------------------------------------

    def pull_release(self, license_name: str, token: str) -> PulledRelease:
        """The license's grant and proof, and its release's bundle as it streams from the marketplace.

        Only reads here: what arrives is checked by the licensed import like any file would be. ``token`` is the
        caller's on the marketplace, sent on these calls alone.
        """
        target = self._settings.marketplace_follow
        if not target:
            raise FailedPreconditionError(
                "this node follows no marketplace (its setting marketplace_follow is empty): import the release "
                "from files with ImportBundle and its license",
                reason=reasons.MARKETPLACE_NOT_FOLLOWED,
            )
        parse_license_name(license_name, "license")
        if not token:
            raise InvalidArgumentError(
                "marketplace_token is empty: the marketplace needs the caller's credential there",
                reason=reasons.MISSING_MARKETPLACE_TOKEN,
            )
        metadata = [("authorization", f"Bearer {token}")]
        with self._lock:
            channel = self._open()
        stub = m_grpc.MarketplaceServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            found: m.License = stub.GetLicense(
                m.GetLicenseRequest(name=license_name), metadata=metadata, timeout=self._settings.peer_timeout_seconds
            )
        except grpc.RpcError as error:
            raise _unreachable(target, error) from None
        if not found.tlog_proof:
            raise FailedPreconditionError(
                f"{license_name} has no published proof yet on the marketplace: try again once its log publishes",
                reason=reasons.LICENSE_PROOF_PENDING,
            )
        call = stub.DownloadRelease(
            m.DownloadReleaseRequest(name=found.release, license=license_name),
            metadata=metadata,
            timeout=self._settings.peer_timeout_seconds,
        )
        return PulledRelease(bytes(found.grant_envelope), found.tlog_proof, _chunks(target, call))

    # -- one sync --------------------------------------------------------------------------------------------

    def sync(self) -> Followed:
        """Accepts the marketplace's latest checkpoint and the entries up to it, or raises why not."""
        target = self._settings.marketplace_follow
        if not target:
            raise FailedPreconditionError(
                "this node follows no marketplace log (its setting marketplace_follow is empty)",
                reason=reasons.MARKETPLACE_NOT_FOLLOWED,
            )
        with self._lock:
            stub = self._stub()
            for _attempt in range(_SYNC_ATTEMPTS):
                try:
                    reply: t.Checkpoint = stub.GetCheckpoint(
                        t.GetCheckpointRequest(), metadata=self._metadata(), timeout=self._settings.peer_timeout_seconds
                    )
                except grpc.RpcError as error:
                    raise _unreachable(target, error) from None
                origin = reply.origin
                try:
                    accepted = self._accept(stub, reply.note)
                except MemosError as error:
                    self._logs.failed(origin, error.reason, str(error))
                    raise
                if accepted is not None:
                    return accepted
                self._logs.reload()  # another server accepted meanwhile: verify again from what it accepted
        # Other servers' syncs kept accepting first; what they accepted is followed as well as this one's would be.
        followed = self._logs.followed(origin)
        assert followed is not None
        return followed

    def _accept(self, stub: t_grpc.TransparencyLogServiceStub, note: str) -> Followed | None:
        """Verifies and accepts the checkpoint ``note``; None when another server accepted one meanwhile."""
        now = self._context.clock()
        try:
            checkpoint = Checkpoint.parse(parse_note(note).text)
        except TransparencyFormatError as error:
            raise _refused(error.reason, f"the marketplace's checkpoint is malformed: {error.message}") from None
        found = self._trust.root.log_policy(checkpoint.origin)
        if found is None:
            raise _refused(
                reasons.TLOG_UNKNOWN_LOG,
                f"the marketplace serves the log {checkpoint.origin!r}, which this node's trust root does not name",
            )
        policy, log_key = found
        try:
            opened = open_note(note, [log_key])
        except TransparencyFormatError as error:
            raise _refused(error.reason, f"the checkpoint is not signed by the log key: {error.message}") from None
        moment = fresh_quorum_time(opened.text, opened.signatures, policy, now, _ANY_AGE)
        if moment is None:
            raise _refused(
                reasons.TLOG_QUORUM_NOT_MET,
                f"the checkpoint of size {checkpoint.size} of {checkpoint.origin} is not cosigned by the quorum "
                f"{policy.quorum!r} of the trust root's log policy: refused",
            )
        prior = self._logs.followed(checkpoint.origin)
        size, root, frontier = (0, merkle.EMPTY_ROOT, []) if prior is None else (prior.size, prior.root, prior.frontier)
        if checkpoint.size < size:
            raise _refused(
                reasons.TLOG_ROLLBACK,
                f"the log {checkpoint.origin} shows size {checkpoint.size}, below the {size} this node accepted",
            )
        if checkpoint.size == size and checkpoint.root != root:
            raise _refused(
                reasons.TLOG_FORK_DETECTED,
                f"the log {checkpoint.origin} signed two roots for size {size}: it forked",
            )
        frontier, events = self._read(stub, checkpoint, size, frontier)
        if merkle.frontier_root(frontier) != checkpoint.root:
            raise _refused(
                reasons.TLOG_INCONSISTENT,
                f"the entries {size}..{checkpoint.size - 1} of {checkpoint.origin} and the ones this node accepted "
                "before do not give the checkpoint's root: the log rewrote its history or served other entries",
            )
        fresh = datetime.fromtimestamp(moment, UTC)
        if not self._logs.accept(checkpoint, note, frontier, fresh, events, (size, root)):
            return None
        accepted = self._logs.followed(checkpoint.origin)
        assert accepted is not None
        return accepted

    def _read(
        self, stub: t_grpc.TransparencyLogServiceStub, checkpoint: Checkpoint, start: int, frontier: list[bytes]
    ) -> tuple[list[bytes], list[LogEvent]]:
        """The frontier after entries ``start .. checkpoint.size - 1``, and the revocations and yanks among them."""
        events: list[LogEvent] = []
        index = start
        while index < checkpoint.size:
            try:
                reply: t.GetEntriesResponse = stub.GetEntries(
                    t.GetEntriesRequest(start_index=index, max_entries=min(_PAGE, checkpoint.size - index)),
                    metadata=self._metadata(),
                    timeout=self._settings.peer_timeout_seconds,
                )
            except grpc.RpcError as error:
                raise _unreachable(self._settings.marketplace_follow, error) from None
            if not reply.entries:
                raise _refused(reasons.TLOG_ENTRIES_MISSING, f"the log served no entry at index {index}")
            for entry in reply.entries:
                if entry.index != index or index >= checkpoint.size:
                    break
                data = bytes(entry.data)
                frontier = merkle.frontier_append(frontier, index, merkle.leaf_hash(data))
                try:
                    parsed = parse(data)
                except EntryError as error:
                    raise _refused(error.reason, f"log entry {index} is malformed: {error.message}") from None
                if parsed.type in REF_TYPES and parsed.ref is not None:
                    events.append(LogEvent(index, parsed.type, parsed.subject, parsed.ref))
                index += 1
            else:
                continue
            raise _refused(reasons.TLOG_ENTRIES_MISSING, f"the log served entries out of order at index {index}")
        return frontier, events

    def _stub(self) -> t_grpc.TransparencyLogServiceStub:
        return t_grpc.TransparencyLogServiceStub(self._open())  # type: ignore[no-untyped-call]

    def _open(self) -> grpc.Channel:
        """The channel to the marketplace, opened once (callers hold the lock)."""
        if self._channel is None:
            self._channel = dial_configured(self._settings.marketplace_follow, self._settings)
        return self._channel

    def _metadata(self) -> list[tuple[str, str]]:
        path = self._settings.marketplace_follow_token_file
        if not path:
            return []
        try:
            token = Path(path).read_text().strip()
        except OSError as error:
            raise FailedPreconditionError(
                f"cannot read marketplace_follow_token_file {path}: {error}", reason=reasons.FOLLOW_TOKEN_UNREADABLE
            ) from error
        return [("authorization", f"Bearer {token}")]


@dataclass(frozen=True)
class PulledRelease:
    """What the marketplace sent for one license: the grant, its proof, and the bundle's chunks as they arrive."""

    grant: bytes
    proof: str
    chunks: Iterator[bytes]


def _chunks(target: str, call: Iterator[m.DownloadReleaseResponse]) -> Iterator[bytes]:
    try:
        for reply in call:
            yield reply.chunk
    except grpc.RpcError as error:
        raise _unreachable(target, error) from None
    finally:
        cancel = getattr(call, "cancel", None)
        if cancel is not None:  # the import stopped reading (a refusal): end the download too
            cancel()


def _refused(reason: str, message: str) -> FailedPreconditionError:
    return FailedPreconditionError(message, reason=reason)


def _unreachable(target: str, error: grpc.RpcError) -> MemosError:
    return peer_error(target, error, "the marketplace", reasons.MARKETPLACE_UNAVAILABLE, reasons.MARKETPLACE_REFUSED)
