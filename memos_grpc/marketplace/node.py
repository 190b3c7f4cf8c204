"""The marketplace node: its two keys, its transparency log, and the publisher of witnessed checkpoints.

Turned on by ``marketplace_enabled``. At first start the node creates its marketplace key (signs license
grants, ``keys/marketplace.key``) and its log key (signs checkpoints, ``keys/log.key``), both mode 0600.
The publisher thread signs a checkpoint whenever the log has grown (appends in between share one), asks
every configured witness to cosign it (C2SP tlog-witness over gRPC, ``WitnessService.AddCheckpoint``), and
publishes it only once the quorum has: only published checkpoints are served, and a caller that needs a
proof of its entry waits for one (``wait_published``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from memos_grpc._proto.memos.v1 import witness_service_pb2, witness_service_pb2_grpc
from memos_grpc.errors import InvalidArgumentError, UnavailableError
from memos_grpc.interchange.keys import SigningKey
from memos_grpc.marketplace.log import SignedCheckpoint, TransparencyLog
from memos_grpc.settings import Settings
from memos_grpc.transparency import merkle
from memos_grpc.transparency._text import TransparencyFormatError
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.cosignature import CosignatureVerifier, verify_cosigned
from memos_grpc.transparency.note import COSIGNATURE_TYPE, NoteVerifier, parse_note, parse_vkey, sign_note
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import Connection

log = logging.getLogger(__name__)

#: A cosignature older than this, when the publisher checks it, is not counted (it was made just now).
_FRESH_SECONDS = 600
#: GetEntries: entries when the request names no number, and the most one call returns.
_DEFAULT_ENTRIES = 256
_MAX_ENTRIES = 1000


@contextmanager
def _proof_errors() -> Iterator[None]:
    """The Merkle library's refusals as the project's errors (its reasons are the wire's)."""
    try:
        yield
    except merkle.ProofError as exc:
        raise InvalidArgumentError(str(exc), reason=exc.reason) from exc


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
    return InvalidArgumentError(f"setting marketplace_witnesses: {message}", reason="INVALID_CONFIG")


class MarketplaceNode:
    """The keys, the log and the checkpoint publisher of a marketplace node."""

    def __init__(self, context: VaultContext, settings: Settings) -> None:
        self.context = context
        self.settings = settings
        self.marketplace_key = SigningKey.load_or_create(settings.key_dir / "marketplace.key")
        self.log_key = SigningKey.load_or_create(settings.key_dir / "log.key")
        self.origin = settings.marketplace_log_origin or f"memos-grpc.local/log/{self.log_key.key_id[:16]}"
        self.log_verifier = NoteVerifier.for_key(self.origin, self.log_key.public_key)
        self.log = TransparencyLog(context, self.origin, lambda body: sign_note(body, self.origin, self.log_key))
        self.witnesses = parse_witnesses(settings.marketplace_witnesses)
        wanted = settings.marketplace_witness_quorum or len(self.witnesses)
        if wanted > len(self.witnesses):
            raise InvalidArgumentError(
                f"setting marketplace_witness_quorum is {wanted} but only {len(self.witnesses)} witnesses are set",
                reason="INVALID_CONFIG",
            )
        self.quorum = wanted
        self._publisher = CheckpointPublisher(self)
        log.info(
            "marketplace on: log %s (log key %s, vkey %s), marketplace key %s, %d witnesses (quorum %d)",
            self.origin,
            self.log_key.key_id,
            self.log_verifier.vkey(),
            self.marketplace_key.key_id,
            len(self.witnesses),
            self.quorum,
        )

    def policy_text(self) -> str:
        """This log's C2SP tlog-policy: its key, its witnesses and the quorum it publishes with.

        What a buyer puts in its trust root to verify proofs offline (docs/marketplace.md).
        """
        lines = [f"log {self.log_verifier.vkey()}"]
        names = []
        for number, endpoint in enumerate(self.witnesses):
            names.append(f"w{number}")
            lines.append(f"witness w{number} {endpoint.verifier.vkey()}")
        if names:
            lines.append(f"group witnesses {self.quorum} {' '.join(names)}")
            lines.append("quorum witnesses")
        else:
            lines.append("quorum none")
        return "".join(line + "\n" for line in lines)

    # -- appends and what they wait for ----------------------------------------------------------------

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Appends entries durably and wakes the publisher; returns their indexes."""
        indexes = self.log.append(entries)
        self._publisher.wake()
        return indexes

    def published(self) -> PublishedCheckpoint | None:
        """The latest published checkpoint, or None before the first."""
        return self._publisher.latest()

    def wait_published(self, size: int, timeout: float | None = None) -> PublishedCheckpoint:
        """The first published checkpoint covering ``size`` entries; UNAVAILABLE if none comes in time."""
        return self._publisher.wait(size, self.settings.checkpoint_wait_seconds if timeout is None else timeout)

    @contextmanager
    def recording(self, entries: Sequence[bytes]) -> Iterator[list[int]]:
        """Appends entries whose rows the block writes; yields their indexes.

        Until the block ends the entries are in flight: a follower that finds an entry published but its row not
        yet written waits for the row (``awaiting_row``) instead of taking the entry for one a crash left bare.
        """
        self._publisher.begin_append()
        indexes: list[int] = []
        try:
            indexes = self.append(entries)
        finally:
            self._publisher.in_flight(indexes)
        try:
            yield indexes
        finally:
            self._publisher.landed(indexes)

    def awaiting_row(self, index: int) -> bool:
        """Whether entry ``index`` may still get its row: it, or an append not yet returned, is in flight."""
        return self._publisher.awaiting_row(index)

    def wait_for_size(self, size: int, timeout: float) -> PublishedCheckpoint | None:
        """The latest published checkpoint once it covers ``size`` entries; None after ``timeout`` or a stop.

        For followers of the log (Subscribe): unlike ``wait_published`` it neither raises nor hurries the
        publisher, so a subscriber waiting for the next entry costs nothing until one is published.
        """
        return self._publisher.wait_for_size(size, timeout)

    def changes(self) -> int:
        """A counter that grows with every published checkpoint and every ``notify_followers()`` call."""
        return self._publisher.changes()

    def wait_change(self, seen: int, timeout: float) -> bool:
        """Waits until ``changes()`` passes ``seen``; False after ``timeout`` or once the node stops."""
        return self._publisher.wait_change(seen, timeout)

    def notify_followers(self) -> None:
        """Wakes log followers: an appended entry's row is written (perhaps after its checkpoint), or a client left."""
        self._publisher.notify()

    @property
    def stopped(self) -> bool:
        return self._publisher.stopped

    def close(self) -> None:
        self._publisher.stop()

    # -- the published log, as TransparencyLogService serves it ------------------------------------------

    def require_published(self) -> PublishedCheckpoint:
        latest = self.published()
        if latest is None:
            raise UnavailableError(
                "the log has no published checkpoint yet: try again once its witnesses cosigned one",
                reason="NO_PUBLISHED_CHECKPOINT",
            )
        return latest

    def published_size(self, asked: int, what: str) -> tuple[int, PublishedCheckpoint | None]:
        """``asked`` checked against the published size (0: that size, with its checkpoint)."""
        latest = self.require_published()
        if asked < 0 or asked > latest.checkpoint.size:
            raise InvalidArgumentError(
                f"{what} {asked} is outside 0..{latest.checkpoint.size}, the latest published size",
                reason="SIZE_OUT_OF_RANGE",
            )
        return (latest.checkpoint.size, latest) if asked == 0 else (asked, None)

    def inclusion(self, index: int, tree_size: int) -> tuple[int, bytes, list[bytes], PublishedCheckpoint | None]:
        size, checkpoint = self.published_size(tree_size, "tree_size")
        if not 0 <= index < size:
            raise InvalidArgumentError(f"index {index} is not in a tree of {size} entries", reason="INDEX_OUT_OF_RANGE")
        with _proof_errors():
            return size, self.log.entries(index, index + 1)[0], self.log.inclusion_proof(index, size), checkpoint

    def consistency(self, old_size: int, new_size: int) -> tuple[int, list[bytes], PublishedCheckpoint | None]:
        size, checkpoint = self.published_size(new_size, "new_size")
        if not 0 <= old_size <= size:
            raise InvalidArgumentError(f"old_size {old_size} is outside 0..{size}", reason="SIZE_OUT_OF_RANGE")
        with _proof_errors():
            return size, self.log.consistency_proof(old_size, size) if old_size else [], checkpoint

    def entries(self, start: int, most: int) -> tuple[int, list[bytes]]:
        size = self.require_published().checkpoint.size
        if not 0 <= start <= size:
            raise InvalidArgumentError(
                f"start_index {start} is outside 0..{size}, the latest published size", reason="INDEX_OUT_OF_RANGE"
            )
        if most < 0:
            raise InvalidArgumentError("max_entries must not be negative", reason="INVALID_PAGE_SIZE")
        count = min(most or _DEFAULT_ENTRIES, _MAX_ENTRIES, size - start)
        with _proof_errors():
            return size, self.log.entries(start, start + count) if count else []


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
    #: Entries appended by ``recording`` whose rows are not written yet, and its appends not yet returned.
    in_flight: set[int] = field(default_factory=set)
    appending: int = 0


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
                        reason="WITNESS_QUORUM_UNAVAILABLE",
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

    def begin_append(self) -> None:
        with self._waiters.condition:
            self._waiters.appending += 1

    def in_flight(self, indexes: Sequence[int]) -> None:
        with self._waiters.condition:
            self._waiters.in_flight.update(indexes)
            self._waiters.appending -= 1

    def landed(self, indexes: Sequence[int]) -> None:
        with self._waiters.condition:
            self._waiters.in_flight.difference_update(indexes)
            self._waiters.changes += 1
            self._waiters.condition.notify_all()

    def awaiting_row(self, index: int) -> bool:
        with self._waiters.condition:
            return index in self._waiters.in_flight or self._waiters.appending > 0

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
        self._thread.join(timeout=30)
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
            self._grown.wait()
            if self._stop.is_set():
                return
            self._grown.clear()
            try:
                self._publish_once()
            except Exception:  # the next append or an interval retries; callers time out on their own
                log.exception("publishing a checkpoint failed")
                self._stop.wait(min(1.0, max(interval, 0.1)))
                self._grown.set()
            self._stop.wait(interval)

    def _publish_once(self) -> None:
        latest = self.latest()
        if latest is not None and latest.checkpoint.size == self._node.log.size():
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
        published = PublishedCheckpoint(Checkpoint.parse(parse_note(note).text), note, tuple(sorted(cosigners)))
        now = self._node.context.clock()

        def apply(cursor: Connection) -> None:
            cursor.execute(
                "INSERT INTO tlog_published VALUES (?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                [signed.size, note, now],
            )

        self._node.context.database.write(apply)
        with self._waiters.condition:
            self._waiters.latest = published
            self._waiters.changes += 1
            self._waiters.condition.notify_all()

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
                verify_cosigned(candidate, endpoint.verifier, int(time.time()), _FRESH_SECONDS)
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
            if self._settings.allow_plaintext_peers:
                state.channel = grpc.insecure_channel(endpoint.address)
            else:
                roots = Path(self._settings.peer_ca_file).read_bytes() if self._settings.peer_ca_file else None
                state.channel = grpc.secure_channel(
                    endpoint.address, grpc.ssl_channel_credentials(root_certificates=roots)
                )
            state.stub = witness_service_pb2_grpc.WitnessServiceStub(state.channel)  # type: ignore[no-untyped-call]
        return state.stub

    def _load_latest(self) -> PublishedCheckpoint | None:
        with self._node.context.database.read() as cursor:
            row = cursor.execute("SELECT note FROM tlog_published ORDER BY tree_size DESC LIMIT 1").fetchone()
        if row is None:
            return None
        note = str(row[0])
        parsed = parse_note(note)
        cosigners = tuple(sorted(s.name for s in parsed.signatures if s.name != self._node.origin))
        return PublishedCheckpoint(Checkpoint.parse(parsed.text), note, cosigners)


def _latest_size(error: grpc.RpcError) -> int | None:
    """The ``latest_size`` a witness's size-conflict refusal carries in its ErrorInfo, if any."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

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
