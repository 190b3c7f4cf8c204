"""The checkpoint publisher of a marketplace node: sign the grown log, have witnesses cosign, publish.

The publisher thread signs a checkpoint whenever the log has grown (appends in between share one), asks every
configured witness to cosign it (C2SP tlog-witness over gRPC, ``WitnessService.AddCheckpoint``, retrying once
from the size a conflict answer names), and publishes it only once the quorum has. Callers wait on it for the
first published checkpoint that covers their entry.

A buyer trusts a checkpoint only while its quorum cosignatures are fresh (the terms' ``maxOfflineSeconds``),
so an idle log must not let them age: once the quorum's cosignatures of the published checkpoint are older
than ``checkpoint_refresh_seconds`` by the node's clock, the thread asks the witnesses to cosign the SAME
checkpoint again (old size = size, an empty proof, as tlog-witness allows) and republishes it with the new
cosignatures. The log's signature line stays byte for byte (the stored signed checkpoint is reused), the row
of that tree size is updated in place, and a round the quorum does not answer keeps the older note.

Of the servers sharing a PostgreSQL database, one publishes: each round starts by asking the database's claim
(``PUBLISHER_CLAIM``), and a server that does not hold it asks again every ``_CLAIM_RETRY_SECONDS``, taking over
once the holder stops. Every server follows ``MARKET_LOG`` in the change log: another server's append wakes the
publisher (of the one that holds the claim), and another server's publication is read from the database, so its
callers waiting for a checkpoint and its Subscribe streams see it. Publishing twice is harmless (a size is signed
once, its published row kept; a witness cosigns the same checkpoint again), as a claim may change hands.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import witness_service_pb2, witness_service_pb2_grpc
from memos_grpc.errors import InvalidArgumentError, UnavailableError
from memos_grpc.interchange.peer import dial_configured
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store import market_log
from memos_grpc.store.database import Connection
from memos_grpc.store.market_log import MARKET_LOG, SignedCheckpoint
from memos_grpc.transparency._text import TransparencyFormatError
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.cosignature import CosignatureVerifier, verify_cosignature, verify_cosigned
from memos_grpc.transparency.note import COSIGNATURE_TYPE, parse_note, parse_vkey

if TYPE_CHECKING:
    from memos_grpc.marketplace.node import MarketplaceNode

log = logging.getLogger(__name__)

#: A cosignature older than this, when the publisher checks it, is not counted (it was made just now).
_FRESH_SECONDS = 600
#: The claim of the publisher's job: one server of a database publishes.
PUBLISHER_CLAIM = "marketplace/checkpoint-publisher"
#: How often a server that does not publish asks for the claim (the server that held it may have stopped).
_CLAIM_RETRY_SECONDS = 1.0
#: Longest pause between two refresh rounds, whatever the clocks say: a witness whose clock lags the node's
#: (its cosignatures born old) or a quorum that does not answer is asked again after this, not in a loop.
_REFRESH_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the marketplace asks to cosign: its cosignature key and where it answers."""

    verifier: CosignatureVerifier
    address: str


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A checkpoint the node published: the log's signed note with the cosignatures its quorum gave."""

    checkpoint: Checkpoint
    note: str
    cosigners: tuple[str, ...] = ()
    #: Unix seconds by which the quorum had cosigned (its oldest counted cosignature); None without witnesses.
    quorum_time: int | None = None


def parse_witnesses(text: str) -> list[WitnessEndpoint]:
    """``marketplace_witnesses``: comma-separated ``<vkey>@<host:port>``; INVALID_CONFIG names what is wrong."""
    endpoints: list[WitnessEndpoint] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        vkey, at, address = item.rpartition("@")
        if not at or not vkey or not address:
            raise _config(f"{item[:120]!r} is not <witness vkey>@<host:port>")
        try:
            name, key_id, key_type, public_key = parse_vkey(vkey)
        except TransparencyFormatError as exc:
            raise _config(f"{vkey[:120]!r} is not a vkey: {exc}") from exc
        if key_type != COSIGNATURE_TYPE:
            raise _config(f"{vkey[:120]!r} is not a cosignature (witness) key: its type is {key_type:#04x}")
        verifier = CosignatureVerifier.for_key(name, public_key)
        if verifier.key_id != key_id:
            raise _config(f"{vkey[:120]!r}: the key id does not match the key")
        endpoints.append(WitnessEndpoint(verifier, address))
    if len({e.verifier.name for e in endpoints}) != len(endpoints):
        raise _config("two witnesses share a key name")
    return endpoints


def _config(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"setting marketplace_witnesses: {message}", reason=reasons.INVALID_CONFIG)


@dataclass
class _WitnessState:
    """What the publisher believes a witness last cosigned (corrected by its conflict answers)."""

    size: int = 0
    channel: grpc.Channel | None = None
    stub: witness_service_pb2_grpc.WitnessServiceStub | None = None


@dataclass
class _Waiters:
    condition: threading.Condition = field(default_factory=threading.Condition)
    latest: PublishedCheckpoint | None = None
    #: Grows on every publish and every notify: a follower waits for it to pass what it last saw.
    changes: int = 0


class CheckpointPublisher:
    """Signs checkpoints as the log grows, has witnesses cosign them, and publishes them (one thread)."""

    def __init__(self, node: MarketplaceNode) -> None:
        self._node = node
        self._settings = node.settings
        self._waiters = _Waiters(latest=self._load_latest())
        self._stop = threading.Event()
        self._grown = threading.Event()
        self._witnesses = {w.verifier.name: _WitnessState() for w in node.witnesses}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(node.witnesses)), thread_name_prefix="witness-call")
        #: ``time.monotonic()`` before which no refresh round starts (see _REFRESH_RETRY_SECONDS).
        self._refresh_not_before = 0.0
        #: Whether this server held the publisher's claim when it last asked, and how many rounds it ran holding it.
        self.publishing = False
        self.rounds = 0
        follower = node.context.store.follower
        if follower is not None:
            # Another server appended (the claim's holder publishes it) or published (its callers wait for it).
            follower.subscribe(MARKET_LOG, lambda _change: self._log_changed())
        self._grown.set()  # publish what an earlier run left unpublished
        self._thread = threading.Thread(target=self._run, name="checkpoint-publisher", daemon=True)
        self._thread.start()

    # -- what callers see ---------------------------------------------------------------------------------

    def latest(self) -> PublishedCheckpoint | None:
        with self._waiters.condition:
            return self._waiters.latest

    def wait(self, size: int, timeout: float) -> PublishedCheckpoint:
        deadline = time.monotonic() + timeout
        with self._waiters.condition:
            self._grown.set()
            while (latest := self._waiters.latest) is None or latest.checkpoint.size < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    raise UnavailableError(
                        f"no checkpoint covering {size} log entries was published within {timeout:.0f} s "
                        f"(the witness quorum is {self._node.quorum}); the entry is logged and its proof "
                        "comes with the next published checkpoint",
                        reason=reasons.WITNESS_QUORUM_UNAVAILABLE,
                        metadata={"tree_size": str(size)},
                    )
                self._waiters.condition.wait(remaining)
            return latest

    def wait_for_size(self, size: int, timeout: float) -> PublishedCheckpoint | None:
        deadline = time.monotonic() + timeout
        with self._waiters.condition:
            while (latest := self._waiters.latest) is None or latest.checkpoint.size < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._waiters.condition.wait(remaining)
            return latest

    def changes(self) -> int:
        with self._waiters.condition:
            return self._waiters.changes

    def wait_change(self, seen: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._waiters.condition:
            while self._waiters.changes <= seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._waiters.condition.wait(remaining)
            return True

    def notify(self) -> None:
        with self._waiters.condition:
            self._waiters.changes += 1
            self._waiters.condition.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        self._grown.set()

    def stop(self) -> None:
        self._stop.set()
        self._grown.set()
        self._thread.join(timeout=THREAD_STOP_SECONDS)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for state in self._witnesses.values():
            if state.channel is not None:
                state.channel.close()
        with self._waiters.condition:
            self._waiters.condition.notify_all()

    # -- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        interval = self._settings.checkpoint_interval_seconds
        while not self._stop.is_set():
            # Woken by an append, a waiter, stop(), or the moment the published cosignatures need a refresh; a
            # server that does not publish only asks for the claim now and then.
            self._grown.wait(self._until_refresh() if self.publishing else _CLAIM_RETRY_SECONDS)
            if self._stop.is_set():
                return
            self._grown.clear()
            try:
                self.publishing = self._node.context.database.claim(PUBLISHER_CLAIM)
                if not self.publishing:
                    continue
                self.rounds += 1
                self._publish_once()
            except Exception:  # the next append or an interval retries; callers time out on their own
                log.exception("publishing a checkpoint failed")
                self._stop.wait(min(1.0, max(interval, 0.1)))
                self._grown.set()
            self._stop.wait(interval)

    def _publish_once(self) -> None:
        self._reload_latest()  # another server may have published until this one took the claim over
        latest = self.latest()
        if latest is not None and latest.checkpoint.size == self._node.log.size():
            if self._until_refresh() == 0.0:
                self._refresh(latest)
            return
        signed = self._node.log.checkpoint()
        if latest is not None and signed.size <= latest.checkpoint.size:
            return
        note, cosigners = self._cosign(signed)
        if len(cosigners) < self._node.quorum:
            log.warning(
                "checkpoint of size %d has %d of the %d cosignatures it needs; not published",
                signed.size,
                len(cosigners),
                self._node.quorum,
            )
            self._stop.wait(1.0)
            self._grown.set()  # try again: witnesses may come back
            return
        published = self._published(note)
        now = self._node.context.clock()

        def apply(cursor: Connection) -> None:
            market_log.publish_checkpoint(cursor, signed.size, note, now)

        self._node.context.database.write(apply)
        self._set_latest(published)

    def _until_refresh(self) -> float | None:
        """Seconds until the published checkpoint needs fresh cosignatures (0: now); None when it never does."""
        latest = self.latest()
        if latest is None or not self._node.witnesses:
            return None  # nothing published yet (an append wakes the thread), or no cosignature to age
        now = self._node.context.clock().timestamp()
        # A note whose quorum cannot be read back (never published so) is due at once.
        due = 0.0 if latest.quorum_time is None else latest.quorum_time + self._settings.checkpoint_refresh_seconds
        return max(0.0, due - now, self._refresh_not_before - time.monotonic())

    def _refresh(self, latest: PublishedCheckpoint) -> None:
        """Has the witnesses cosign the published checkpoint again and republishes it with their new lines."""
        self._refresh_not_before = time.monotonic() + min(
            _REFRESH_RETRY_SECONDS, self._settings.checkpoint_refresh_seconds
        )
        signed = self._node.log.checkpoint()
        if signed.size != latest.checkpoint.size:
            self._grown.set()  # the log grew meanwhile: its new checkpoint is published instead
            return
        if signed.root != latest.checkpoint.root or not latest.note.startswith(signed.note):
            # Never a second root (or a second log signature) for a published size: leave the note as it is.
            log.error("the stored checkpoint of size %d is not the published one; not refreshed", signed.size)
            return
        note, cosigners = self._cosign(signed)
        if len(cosigners) < self._node.quorum:
            log.warning(
                "refreshing the checkpoint of size %d: %d of the %d cosignatures it needs; the older ones stay",
                signed.size,
                len(cosigners),
                self._node.quorum,
            )
            return
        published = self._published(note)
        now = self._node.context.clock()

        def apply(cursor: Connection) -> None:
            market_log.republish_checkpoint(cursor, signed.size, note, now)

        self._node.context.database.write(apply)
        self._set_latest(published)
        log.info("checkpoint of size %d cosigned again by %s", signed.size, ", ".join(published.cosigners))

    def _published(self, note: str) -> PublishedCheckpoint:
        """The published form of a cosigned note: its checkpoint, its cosigners and the time its quorum is from."""
        parsed = parse_note(note)
        text = parsed.text
        times: dict[str, int] = {}
        for endpoint in self._node.witnesses:
            verifier = endpoint.verifier
            for signature in parsed.signatures:
                if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
                    continue
                try:
                    stamp = verify_cosignature(text, signature, verifier)
                except TransparencyFormatError:
                    continue
                times[verifier.name] = max(stamp, times.get(verifier.name, stamp))
        newest_first = sorted(times.values(), reverse=True)
        quorum = self._node.quorum
        quorum_time = newest_first[quorum - 1] if quorum and len(newest_first) >= quorum else None
        return PublishedCheckpoint(Checkpoint.parse(text), note, tuple(sorted(times)), quorum_time)

    def _cosign(self, signed: SignedCheckpoint) -> tuple[str, list[str]]:
        """The note with every cosignature the witnesses gave and verified, and their names."""
        if not self._node.witnesses:
            return signed.note, []
        calls = {w.verifier.name: self._pool.submit(self._ask, w, signed) for w in self._node.witnesses}
        note, cosigners = signed.note, []
        for endpoint in self._node.witnesses:
            name = endpoint.verifier.name
            try:
                lines = calls[name].result(timeout=self._settings.marketplace_witness_timeout_seconds + 5)
            except Exception as exc:
                log.warning("witness %s at %s did not cosign size %d: %s", name, endpoint.address, signed.size, exc)
                continue
            candidate = note + lines
            try:
                now = int(self._node.context.clock().timestamp())
                verify_cosigned(candidate, endpoint.verifier, now, _FRESH_SECONDS)
            except TransparencyFormatError as exc:
                log.warning("witness %s answered a cosignature that does not verify: %s", name, exc)
                continue
            note = candidate
            cosigners.append(name)
        return note, cosigners

    def _ask(self, endpoint: WitnessEndpoint, signed: SignedCheckpoint) -> str:
        """One witness's cosignature lines; retries once from the size its conflict answer names."""
        state = self._witnesses[endpoint.verifier.name]
        stub = self._stub(endpoint, state)
        for _attempt in range(2):
            old = min(state.size, signed.size)
            request = witness_service_pb2.AddCheckpointRequest(
                old_size=old,
                consistency_proof=self._node.log.consistency_proof(old, signed.size) if old else [],
                checkpoint=signed.note,
            )
            try:
                reply = stub.AddCheckpoint(request, timeout=self._settings.marketplace_witness_timeout_seconds)
            except grpc.RpcError as exc:
                latest = _latest_size(exc)
                if latest is None or latest > signed.size:
                    raise
                state.size = latest  # the witness knows better: prove from there
                continue
            state.size = int(reply.size)
            return str(reply.cosignatures)
        raise RuntimeError(f"witness {endpoint.verifier.name} keeps answering a size conflict")

    def _stub(self, endpoint: WitnessEndpoint, state: _WitnessState) -> witness_service_pb2_grpc.WitnessServiceStub:
        if state.stub is None:
            state.channel = dial_configured(endpoint.address, self._settings)
            state.stub = witness_service_pb2_grpc.WitnessServiceStub(state.channel)  # type: ignore[no-untyped-call]
        return state.stub

    def _load_latest(self) -> PublishedCheckpoint | None:
        with self._node.context.database.read() as cursor:
            note = market_log.latest_published_note(cursor)
        return None if note is None else self._published(note)

    def _reload_latest(self) -> None:
        """Takes up the latest checkpoint the database holds as published (by any server)."""
        with self._node.context.database.read() as cursor:
            note = market_log.latest_published_note(cursor)
        latest = self.latest()
        if note is not None and (latest is None or note != latest.note):
            self._set_latest(self._published(note))

    def _set_latest(self, published: PublishedCheckpoint) -> None:
        """Makes ``published`` the latest unless a larger one, or the same one cosigned later, is known already
        (the database's and this server's own publications may arrive in either order)."""
        with self._waiters.condition:
            latest = self._waiters.latest
            if latest is not None:
                size, newer = published.checkpoint.size, latest.checkpoint.size
                if size < newer or (size == newer and (published.quorum_time or 0) < (latest.quorum_time or 0)):
                    return
            self._waiters.latest = published
            self._waiters.changes += 1
            self._waiters.condition.notify_all()

    def _log_changed(self) -> None:
        """Another server appended or published: read what is published and wake the thread."""
        self._reload_latest()
        self._grown.set()


def _latest_size(error: grpc.RpcError) -> int | None:
    """The ``latest_size`` a witness's size-conflict refusal carries in its ErrorInfo, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and "latest_size" in info.metadata:
            try:
                return int(info.metadata["latest_size"])
            except ValueError:
                return None
    return None
