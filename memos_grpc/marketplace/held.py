"""The buyer's license book: the licenses this node holds, their uses, and whether each action may use them now.

A licensed import (ImportBundle with a ReleaseLicense) is admitted here: the grant must be signed by a marketplace
key of this node's trust root, name the caller as licensee with a key registered to it here, be inside its time
window, bind the bundle's statement, release and license, and come with a proof that its log entry is in a
checkpoint signed by the log key and cosigned by a fresh quorum of the trust root's log policy; the log must not
hold a revocation of the grant or a yank of the release that this node has read; and the terms must permit the
import. The imported cubes then carry the license (``MemCube.license``).

Afterwards every use the terms can limit is decided and counted here (the ``UsageGate`` of vault/licensing.py):
recall, search, export, transform, import. A use is allowed when the grant is not revoked, inside its window, the
node has a fresh cosigned checkpoint of the log (within the terms' ``maxOfflineSeconds``), and the terms permit
one more. A use a ``count`` limit depends on is written with its audit event before the call is answered, and the
limit is decided again in that transaction from the stored count (uses.py), so neither concurrent calls nor
servers sharing a PostgreSQL database pass it, and a crash loses no counted use that was answered. What the log
says (revocations, yanks, freshness) is kept by ``FollowedLogs`` (followed.py), which the follower (follower.py)
feeds. The rows are the store's (``memos_grpc.store.held_licenses``).

On PostgreSQL another server's licensed import and counted uses reach this one through the change log
(``LICENSES``): it reads the counts again, and the licenses new to it; a license a call names that this server
has not read yet is read at once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc.errors import FailedPreconditionError, MemosError, NotFoundError, PermissionDeniedError
from memos_grpc.governance.audit import append_in
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import Principals
from memos_grpc.interchange.bundle import BundleReport
from memos_grpc.interchange.trust import TrustRoot
from memos_grpc.interchange.trust_store import TrustStore
from memos_grpc.marketplace.followed import FollowedLogs
from memos_grpc.marketplace.grants import Grant, read_grant, verify_grant
from memos_grpc.marketplace.offline import check_release_license
from memos_grpc.marketplace.uses import (
    COLLECTION,
    LEAVE_OUT,
    RECORD,
    REFUSE,
    Held,
    UseCounts,
    count_in,
    counted_against_a_limit,
    exhausted,
    held_license_name,
    limit_reached,
    use_record,
)
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store import held_licenses
from memos_grpc.store.database import Connection
from memos_grpc.store.followed_logs import Followed as Followed
from memos_grpc.store.held_licenses import LICENSES
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.postgres.changes import Change, last_number
from memos_grpc.store.rows import set_timestamp
from memos_grpc.transparency.note import parse_note
from memos_grpc.transparency.proof import TlogProof, fresh_quorum_time
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import EXPORT, IMPORT, RECALL, SEARCH, TRANSFORM
from memos_grpc.vault.validation import invalid

log = logging.getLogger(__name__)

#: The uses this node meters, in the order a held license lists them.
METERED = (IMPORT, RECALL, SEARCH, EXPORT, TRANSFORM)
_HEX = frozenset("0123456789abcdef")
#: Terms refusals as the reasons a refused use carries (docs/api.md).
_TERMS_REASONS = {
    reasons.TERMS_ACTION_PROHIBITED: reasons.LICENSE_ACTION_NOT_PERMITTED,
    reasons.TERMS_ACTION_NOT_PERMITTED: reasons.LICENSE_ACTION_NOT_PERMITTED,
    reasons.TERMS_DATETIME_PASSED: reasons.LICENSE_EXPIRED,
    reasons.TERMS_ELAPSED_TIME_PASSED: reasons.LICENSE_EXPIRED,
    reasons.TERMS_COUNT_EXHAUSTED: reasons.LICENSE_LIMIT_REACHED,
}


def parse_held_license_name(name: str) -> str:
    prefix, _, license_id = name.partition("/")
    if prefix != COLLECTION or len(license_id) != 64 or not set(license_id) <= _HEX:
        raise invalid(f"name {name[:100]!r} is not heldLicenses/<64 lowercase hex>", reasons.INVALID_NAME)
    return license_id


@dataclass(frozen=True)
class Refusal:
    """Why a held license may not be used now: a stable reason and a message, turned into a status by ``error``."""

    reason: str
    message: str

    def error(self) -> MemosError:
        if self.reason == reasons.LICENSE_ACTION_NOT_PERMITTED:
            return PermissionDeniedError(self.message, reason=self.reason)
        return FailedPreconditionError(self.message, reason=self.reason)


@dataclass
class LicensedImport:
    """An admitted licensed import: the license its cubes carry, written with them in one transaction."""

    book: LicenseBook
    held: Held
    new: bool
    principal: str
    fresh_time: datetime
    #: Set once the import committed or was abandoned: its reserved use is then settled.
    settled: bool = False
    #: The license's stored counts as the import's transaction left them.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def cube_license(self) -> cube_pb2.CubeLicense:
        grant = self.held.grant
        return cube_pb2.CubeLicense(
            held_license=held_license_name(self.held.license_id),
            release=grant.release,
            license=grant.license,
            grant_digest=f"sha256:{self.held.license_id}",
        )

    def write(self, cursor: Connection) -> None:
        """Inside the import's transaction: the held license (first time), the import counted, the freshness."""
        self.book._write_import(cursor, self)

    def committed(self) -> None:
        self.book._imported(self)

    def abandon(self) -> None:
        """The import failed after admission: its reserved use goes back."""
        self.book._abandoned(self)


@dataclass
class Reservation:
    """Uses reserved in memory (they count against this server's limits already), until written, committed or
    given back.

    ``write`` counts them in the caller's transaction, with the change they are uses of, and refuses the whole
    transaction (LICENSE_LIMIT_REACHED) when the stored count leaves none (another server took the last);
    ``committed`` is called once that committed; ``commit`` counts them in a transaction of their own, once the
    action happened (so even past the limit: the record says what happened), or before it (``happened=False``:
    refused past the limit); ``release`` gives back what was none of these (the action was refused after its
    license check): a refused call counts no use.
    """

    book: LicenseBook
    action: str
    held: list[Held]
    principal: str
    now: datetime
    settled: bool = False
    #: Per license, the count the transaction that wrote the uses left.
    counts: dict[str, tuple[int, bool]] = field(default_factory=dict)

    def write(self, cursor: Connection) -> None:
        self.counts = count_in(cursor, self.held, self.action, self.principal, self.now, past_limit=REFUSE)

    def committed(self) -> None:
        if not self.settled:
            self.settled = True
            self.book._settle(self.action, self.held, self.counts)

    def commit(self, *, happened: bool = True) -> None:
        if not self.held:
            self.settled = True
            return
        past_limit = RECORD if happened else REFUSE

        def apply(cursor: Connection) -> None:
            self.counts = count_in(cursor, self.held, self.action, self.principal, self.now, past_limit=past_limit)

        try:
            self.book._context.database.write(apply, lambda _: self.committed())
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if not self.settled:
            self.settled = True
            self.book._settle(self.action, self.held, {})


class LicenseBook:
    """The held licenses and their uses; the node's UsageGate (see the module). ``logs`` is what it knows of the
    marketplace logs the grants are in."""

    def __init__(self, context: VaultContext, trust: TrustStore, principals: Principals) -> None:
        self._context = context
        self._trust = trust
        self._principals = principals
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}
        self.logs = FollowedLogs(context)
        #: This server's uses not yet committed: reserved, imports admitted, and the deferred ones below.
        self._uses = UseCounts()
        #: Uses counted in memory that no limit depends on, to write in the next batch: (license, action, who, when).
        self._deferred: list[tuple[str, str, str, datetime]] = []
        self._flush_lock = threading.Lock()
        #: The change-log number the counts were last read through: another server's changes up to it are in them.
        self._read_through = 0
        self._load()
        if context.store.follower is not None:
            context.store.follower.subscribe(LICENSES, self._licenses_changed)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="license-uses", daemon=True)
        self._flusher.start()

    def _load(self) -> None:
        with self._context.database.read() as cursor:
            rows = held_licenses.held_licenses(cursor)
            uses = held_licenses.license_uses(cursor)
        for row in rows:
            self._held[row.license_id] = _held_of(row)
        for license_id, action, count in uses:
            if license_id in self._held:
                self._held[license_id].uses[action] = count

    # -- what other servers change -----------------------------------------------------------------------------

    def _known(self, license_ids: Collection[str]) -> None:
        """Reads the held licenses among ``license_ids`` this server has not read yet (another server imported
        them, and its change has not been applied here yet)."""
        with self._lock:
            missing = [license_id for license_id in license_ids if license_id not in self._held]
        if not missing:
            return
        found: list[Held] = []
        with self._context.database.read() as cursor:
            for license_id in missing:
                row = held_licenses.held_license(cursor, license_id)
                if row is not None:
                    held = _held_of(row)
                    held.uses = {action: held_licenses.use_count(cursor, license_id, action) for action in METERED}
                    found.append(held)
        if found:
            self.logs.reload()  # the import that kept them noted the freshness its proof showed
        with self._lock:
            for held in found:
                self._held.setdefault(held.license_id, held)

    def _licenses_changed(self, change: Change) -> None:
        """Another server kept a license or counted uses: every count is read again, with the licenses new here.

        The read is a transaction of this server's writer, so it lands in commit order among this server's own
        count writes (see uses.py); one read covers every change up to the number it saw.
        """
        if change.number > self._read_through:
            self._context.database.write(self._read_counts, self._counts_read)

    def _read_counts(self, cursor: Connection) -> tuple[int, list[Held], list[tuple[str, str, int]]]:
        through = last_number(cursor)
        with self._lock:
            known = set(self._held)
        new = []
        for license_id in held_licenses.held_license_ids(cursor):
            if license_id not in known and (row := held_licenses.held_license(cursor, license_id)) is not None:
                new.append(_held_of(row))
        return through, new, held_licenses.license_uses(cursor)

    def _counts_read(self, read: tuple[int, list[Held], list[tuple[str, str, int]]]) -> None:
        through, new, uses = read
        with self._lock:
            for held in new:
                self._held.setdefault(held.license_id, held)
            for license_id, action, count in uses:
                if (known := self._held.get(license_id)) is not None:
                    known.uses[action] = count
            self._read_through = max(self._read_through, through)

    # -- deciding --------------------------------------------------------------------------------------------

    def refusal(self, held: Held, action: str, now: datetime) -> Refusal | None:
        """Why ``action`` may not use ``held`` once more at ``now`` (None: it may)."""
        grant = held.grant
        name = held_license_name(held.license_id)
        if self.logs.revoked(grant.log_origin, held.grant_index):
            return Refusal(reasons.LICENSE_REVOKED, f"{name} ({grant.release}) was revoked by the marketplace")
        if now < grant.not_before:
            return Refusal(reasons.LICENSE_NOT_YET_VALID, f"{name} is valid from {_text(grant.not_before)}")
        if now >= grant.not_after:
            return Refusal(reasons.LICENSE_EXPIRED, f"{name} expired at {_text(grant.not_after)}")
        fresh = self.logs.fresh_time(grant.log_origin)
        offline = (now - fresh).total_seconds()
        if offline > grant.terms.max_offline_seconds:
            return Refusal(
                reasons.LICENSE_SUSPENDED,
                f"{name} is suspended: this node has no checkpoint of {grant.log_origin} cosigned in the last "
                f"{grant.terms.max_offline_seconds} s (maxOfflineSeconds; the freshest is from {_text(fresh)}); "
                "it is usable again once the node syncs the log",
            )
        decision = grant.terms.permits(action, self._uses.of(held, action), grant.not_before, now)
        if not decision:
            reason = _TERMS_REASONS.get(decision.reason, reasons.LICENSE_ACTION_NOT_PERMITTED)
            return Refusal(reason, f"{name} ({grant.release}): {_explain(decision.reason, action)}")
        return None

    def blocked(self, action: str) -> frozenset[str]:
        now = self._context.clock()
        with self._lock:
            return frozenset(i for i, held in self._held.items() if self.refusal(held, action, now) is not None)

    def use(self, action: str, license_ids: Collection[str], principal: str) -> frozenset[str]:
        """Counts one use of each license (see the module); a use a ``count`` limit depends on is written before
        this returns, one no limit depends on is written with the next batch (``license_flush_seconds``)."""
        self._known(license_ids)
        now = self._context.clock()
        refused: set[str] = set()
        reserved: list[Held] = []
        with self._lock:
            for license_id in sorted(license_ids):
                held = self._held.get(license_id)
                if held is None or self.refusal(held, action, now) is not None:
                    refused.add(license_id)
                    continue
                self._uses.add(license_id, action)
                if counted_against_a_limit(held, action):
                    reserved.append(held)
                else:
                    self._deferred.append((held.license_id, action, principal, now))
        refused |= self._persist_uses(reserved, action, principal, now)
        return frozenset(refused)

    def flush(self) -> None:
        """Writes the uses counted but not yet written (those no limit depends on), with their audit events."""
        with self._flush_lock:
            with self._lock:
                pending, self._deferred = self._deferred, []
            if not pending:
                return
            totals = Counter((license_id, action) for license_id, action, _, _ in pending)

            def apply(cursor: Connection) -> dict[tuple[str, str], int]:
                counts = {}
                for (license_id, action), uses in totals.items():
                    # Increments: the uses other servers write meanwhile add up.
                    after = held_licenses.count_use(cursor, license_id, action, uses)
                    if after is not None:
                        counts[(license_id, action)] = after
                for license_id, action, principal, when in pending:
                    append_in(cursor, use_record(principal, action, license_id), when)
                return counts

            def committed(counts: dict[tuple[str, str], int]) -> None:
                with self._lock:
                    for (license_id, action), uses in totals.items():
                        self._uses.settle(license_id, action, uses)
                        held = self._held.get(license_id)
                        if held is not None and (license_id, action) in counts:
                            held.uses[action] = counts[(license_id, action)]

            try:
                self._context.database.write(apply, committed)
            except BaseException:
                with self._lock:  # written next time
                    self._deferred[:0] = pending
                raise

    def close(self) -> None:
        """Stops the flusher and writes what it holds."""
        self._stop.set()
        self._flusher.join(timeout=THREAD_STOP_SECONDS)
        self.flush()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self._context.settings.license_flush_seconds):
            try:
                self.flush()
            except MemosError:
                log.exception("writing license uses failed; they are written with the next batch")

    def require(self, action: str, license_ids: Collection[str], principal: str) -> None:
        self.reserve(action, license_ids, principal).commit(happened=False)

    def reserve(self, action: str, license_ids: Collection[str], principal: str) -> Reservation:
        self._known(license_ids)
        now = self._context.clock()
        reserved: list[Held] = []
        with self._lock:
            for license_id in sorted(license_ids):
                held = self._held.get(license_id)
                refusal = (
                    Refusal(reasons.LICENSE_NOT_HELD, f"{held_license_name(license_id)} is not held by this node")
                    if held is None
                    else self.refusal(held, action, now)
                )
                if refusal is not None:
                    for done in reserved:
                        self._uses.settle(done.license_id, action)
                    raise refusal.error()
                assert held is not None
                self._uses.add(license_id, action)
                reserved.append(held)
        return Reservation(self, action, reserved, principal, now)

    def _settle(self, action: str, held: list[Held], counts: dict[str, tuple[int, bool]]) -> None:
        """Uses reserved here are no longer pending: ``counts`` holds what the committed transaction left (empty:
        given back, nothing was counted)."""
        with self._lock:
            for one in held:
                self._uses.settle(one.license_id, action)
                if one.license_id in counts:
                    one.uses[action] = counts[one.license_id][0]

    def _persist_uses(self, reserved: list[Held], action: str, principal: str, now: datetime) -> set[str]:
        """Writes uses a limit depends on, each decided in the transaction; returns the licenses it refused (the
        stored count left none: another server took the last)."""
        if not reserved:
            return set()

        def apply(cursor: Connection) -> dict[str, tuple[int, bool]]:
            return count_in(cursor, reserved, action, principal, now, past_limit=LEAVE_OUT)

        try:
            counts = self._context.database.write(apply, lambda counts: self._settle(action, reserved, counts))
        except BaseException:
            self._settle(action, reserved, {})  # not counted after all: give the reservations back
            raise
        return {license_id for license_id, (_, counted) in counts.items() if not counted}

    # -- importing -------------------------------------------------------------------------------------------

    def admit_import(self, grant: bytes, proof: str, report: BundleReport, caller: Caller) -> LicensedImport:
        """Checks a licensed import before anything is written (see the module); raises the first refusal."""
        now = self._context.clock()
        root = self._trust.root
        licensee = self._licensee(grant, caller, now)
        checked = check_release_license(report, grant, proof, root, now=now, licensee=licensee)
        if not checked:
            first = checked.shortfalls[0]
            raise FailedPreconditionError(
                f"the release cannot be imported: {first.step.value}: {first.message}", reason=first.reason
            )
        assert checked.grant is not None and checked.proof is not None and checked.proof.checkpoint is not None
        found = checked.grant
        # The grant's statement digest: what the marketplace calls its grant_digest and logs in the grant entry.
        license_id = found.statement_digest.removeprefix("sha256:")
        grant_index = checked.proof.index
        assert grant_index is not None
        self._known([license_id])
        with self._lock:
            if self.logs.revoked(found.log_origin, grant_index):
                raise FailedPreconditionError(
                    f"the marketplace revoked this grant (log entry {grant_index} of {found.log_origin})",
                    reason=reasons.LICENSE_REVOKED,
                )
            if self.logs.yanked(found.log_origin, found.publish_log_index):
                raise FailedPreconditionError(
                    f"{found.release} was yanked (log entry {found.publish_log_index} of {found.log_origin} "
                    "is yanked): it is not imported again",
                    reason=reasons.RELEASE_YANKED,
                )
            existing = self._held.get(license_id)
            held = existing or Held(license_id, found, grant, str(proof), grant_index, now)
            fresh = _proof_freshness(root, found, proof, now, checked.max_age)
            # This server's imports in flight count already; another server's are decided at the commit.
            decision = found.terms.permits(IMPORT, self._uses.of(held, IMPORT), found.not_before, now)
            if not decision:
                reason = _TERMS_REASONS.get(decision.reason, reasons.LICENSE_ACTION_NOT_PERMITTED)
                raise Refusal(reason, f"{found.release}: {_explain(decision.reason, IMPORT)}").error()
            self._uses.add(license_id, IMPORT)  # reserved: concurrent imports cannot pass a count
        return LicensedImport(self, held, existing is None, caller.principal, fresh)

    def _licensee(self, grant: bytes, caller: Caller, now: datetime) -> tuple[str, str]:
        """(the caller, the key of the caller's the grant names): the grant must be for a key registered here."""
        named = verify_grant(grant, self._trust.root.keys_for("marketplace"), "", "", now).grant
        if named is None or named.licensee_principal != caller.principal:
            return caller.principal, ""  # the grant check reports what is wrong (other licensee, bad grant)
        try:
            keys = list(self._principals.get(caller.principal).public_keys)
        except NotFoundError:
            keys = []
        for key in keys:
            if key.key_id != named.licensee_key_id:
                continue
            if key.HasField("not_before") and now < key.not_before.ToDatetime(UTC):
                break
            if key.HasField("not_after") and now >= key.not_after.ToDatetime(UTC):
                break
            return caller.principal, key.key_id
        raise FailedPreconditionError(
            f"the grant licenses {caller.principal} with key {named.licensee_key_id[:16]}..., which is not a key "
            f"registered to {caller.principal} on this node and valid now (AddPublicKey registers one)",
            reason=reasons.LICENSEE_KEY_NOT_REGISTERED,
        )

    def _write_import(self, cursor: Connection, admitted: LicensedImport) -> None:
        held = admitted.held
        if admitted.new:
            row = held_licenses.HeldRow(held.license_id, held.envelope, held.proof, held.grant_index, held.import_time)
            held_licenses.insert_held_license(
                cursor, row, admitted.principal, held.grant.log_origin, held.grant.publish_log_index
            )
        # One count per metered action from the first import on, so that counting a use is a plain update.
        held_licenses.open_use_counts(cursor, held.license_id, METERED)
        # The limit decided from the stored count: another server's import may have taken the last since admission,
        # and then this one writes nothing.
        if exhausted(held, IMPORT, held_licenses.use_count(cursor, held.license_id, IMPORT)):
            raise limit_reached(held, IMPORT)
        held_licenses.count_use(cursor, held.license_id, IMPORT)
        now = self._context.clock()
        append_in(cursor, use_record(admitted.principal, IMPORT, held.license_id), now)
        self.logs.write_fresh(cursor, held.grant.log_origin, admitted.fresh_time)
        admitted.counts = {action: held_licenses.use_count(cursor, held.license_id, action) for action in METERED}

    def _settle_import(self, admitted: LicensedImport) -> bool:
        """Releases the import's reservation once; False if it was settled already. Called under the lock."""
        if admitted.settled:
            return False
        admitted.settled = True
        self._uses.settle(admitted.held.license_id, IMPORT)
        return True

    def _abandoned(self, admitted: LicensedImport) -> None:
        with self._lock:
            self._settle_import(admitted)

    def _imported(self, admitted: LicensedImport) -> None:
        held = admitted.held
        with self._lock:
            self._settle_import(admitted)
            kept = self._held.setdefault(held.license_id, held)
            kept.uses.update(admitted.counts)
            self.logs.saw_fresh(held.grant.log_origin, admitted.fresh_time)

    # -- the followed logs -----------------------------------------------------------------------------------

    def followed_logs(self) -> list[Followed]:
        """Every followed log, by origin (``FollowedLogs.all``)."""
        return self.logs.all()

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, name: str, viewer: Caller) -> h.HeldLicense:
        license_id = parse_held_license_name(name)
        self._known([license_id])
        with self._lock:
            held = self._held.get(license_id)
            if held is None or not _sees(viewer, held):
                raise NotFoundError(f"{name} is not held by this node", reason=reasons.HELD_LICENSE_NOT_FOUND)
            return self._message(held, self._context.clock())

    def list(self, requested_size: int, token: str, viewer: Caller) -> tuple[list[h.HeldLicense], str]:
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(token, COLLECTION, viewer.principal) or ""
        now = self._context.clock()
        with self._lock:
            ids = sorted(i for i, held in self._held.items() if i > after and _sees(viewer, held))
            page = [self._message(self._held[i], now) for i in ids[:size]]
        next_token = encode_token(ids[size - 1], COLLECTION, viewer.principal) if len(ids) > size else ""
        return page, next_token

    def _message(self, held: Held, now: datetime) -> h.HeldLicense:
        grant = held.grant
        message = h.HeldLicense(
            name=held_license_name(held.license_id),
            release=grant.release,
            license=grant.license,
            licensee=grant.licensee_principal,
            licensee_key_id=grant.licensee_key_id,
            terms=grant.terms.raw.decode(),
            log_origin=grant.log_origin,
            grant_log_index=held.grant_index,
            publish_log_index=grant.publish_log_index,
            release_yanked=self.logs.yanked(grant.log_origin, grant.publish_log_index),
            cube_count=self._context.catalog.licensed_count(held.license_id),
            grant=held.envelope,
        )
        set_timestamp(message.not_before, grant.not_before)
        set_timestamp(message.not_after, grant.not_after)
        set_timestamp(message.import_time, held.import_time)
        state, reason = h.HELD_LICENSE_STATE_ACTIVE, ""
        for action in METERED:
            refusal = self.refusal(held, action, now)
            permission = grant.terms.permission(action)
            message.actions.append(
                h.ActionUse(
                    action=action,
                    uses=self._uses.of(held, action),
                    limit=permission.count or 0 if permission is not None else 0,
                    allowed=refusal is None,
                    reason=refusal.reason if refusal is not None else "",
                )
            )
            if refusal is not None and refusal.reason in _STATES and not reason:
                state, reason = _STATES[refusal.reason], refusal.reason
        message.state = state
        message.state_reason = reason
        return message


_STATES = {
    reasons.LICENSE_REVOKED: h.HELD_LICENSE_STATE_REVOKED,
    reasons.LICENSE_EXPIRED: h.HELD_LICENSE_STATE_EXPIRED,
    reasons.LICENSE_NOT_YET_VALID: h.HELD_LICENSE_STATE_EXPIRED,
    reasons.LICENSE_SUSPENDED: h.HELD_LICENSE_STATE_SUSPENDED,
}


def _sees(viewer: Caller, held: Held) -> bool:
    return viewer.admin or viewer.principal == held.grant.licensee_principal


def _proof_freshness(root: TrustRoot, grant: Grant, proof: str, now: datetime, max_age: int) -> datetime:
    """When a fresh quorum cosigned the checkpoint of a proof that verified (now for a policy without witnesses)."""
    found = root.log_policy(grant.log_origin)
    assert found is not None  # the proof verified under it
    note = parse_note(TlogProof.parse(proof).checkpoint)
    moment = fresh_quorum_time(note.text, note.signatures, found[0], now, max_age)
    return now if moment is None else datetime.fromtimestamp(moment, UTC)


def _explain(reason: str, action: str) -> str:
    return {
        reasons.TERMS_ACTION_PROHIBITED: f"the terms prohibit {action}",
        reasons.TERMS_ACTION_NOT_PERMITTED: f"the terms do not permit {action}",
        reasons.TERMS_DATETIME_PASSED: f"the terms permit {action} only until a time that has passed",
        reasons.TERMS_ELAPSED_TIME_PASSED: f"the terms permit {action} only for a time from the grant that has passed",
        reasons.TERMS_COUNT_EXHAUSTED: f"every {action} the terms permit has been used",
    }.get(reason, f"the terms do not permit {action}")


def _held_of(row: held_licenses.HeldRow) -> Held:
    """A stored held license as the book keeps it (its counts still to be read)."""
    return Held(row.license_id, read_grant(row.envelope), row.envelope, row.proof, row.grant_index, row.import_time)


def _text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
