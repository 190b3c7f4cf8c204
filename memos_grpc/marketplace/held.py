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
one more. Counting reserves the use in memory under a lock, then writes it with an audit event in one
transaction, so concurrent calls never exceed a ``count`` limit and a crash loses no counted use that was
answered. What the log says (revocations, yanks, freshness) is kept by ``FollowedLogs`` (followed.py), which the
follower (follower.py) feeds. The rows are the store's (``memos_grpc.store.held_licenses``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import audit_pb2, cube_pb2
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc.errors import FailedPreconditionError, MemosError, NotFoundError, PermissionDeniedError
from memos_grpc.governance.audit import AuditRecord, append_in
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import Principals
from memos_grpc.interchange.bundle import BundleReport
from memos_grpc.interchange.trust import TrustRoot
from memos_grpc.interchange.trust_store import TrustStore
from memos_grpc.marketplace.followed import FollowedLogs
from memos_grpc.marketplace.grants import Grant, read_grant, verify_grant
from memos_grpc.marketplace.offline import check_release_license
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store import held_licenses
from memos_grpc.store.database import Connection
from memos_grpc.store.followed_logs import Followed as Followed
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.rows import set_timestamp
from memos_grpc.transparency.note import parse_note
from memos_grpc.transparency.proof import TlogProof, fresh_quorum_time
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import EXPORT, IMPORT, RECALL, SEARCH, TRANSFORM
from memos_grpc.vault.validation import invalid

log = logging.getLogger(__name__)

#: The uses this node meters, in the order a held license lists them.
METERED = (IMPORT, RECALL, SEARCH, EXPORT, TRANSFORM)
#: ``heldLicenses/{id}``: the id is the lowercase hex sha256 of the grant's statement (its grant digest).
COLLECTION = "heldLicenses"
_HEX = frozenset("0123456789abcdef")
#: Terms refusals as the reasons a refused use carries (docs/api.md).
_TERMS_REASONS = {
    reasons.TERMS_ACTION_PROHIBITED: reasons.LICENSE_ACTION_NOT_PERMITTED,
    reasons.TERMS_ACTION_NOT_PERMITTED: reasons.LICENSE_ACTION_NOT_PERMITTED,
    reasons.TERMS_DATETIME_PASSED: reasons.LICENSE_EXPIRED,
    reasons.TERMS_ELAPSED_TIME_PASSED: reasons.LICENSE_EXPIRED,
    reasons.TERMS_COUNT_EXHAUSTED: reasons.LICENSE_LIMIT_REACHED,
}


def held_license_name(license_id: str) -> str:
    return f"{COLLECTION}/{license_id}"


def parse_held_license_name(name: str) -> str:
    prefix, _, license_id = name.partition("/")
    if prefix != COLLECTION or len(license_id) != 64 or not set(license_id) <= _HEX:
        raise invalid(f"name {name[:100]!r} is not heldLicenses/<64 lowercase hex>", reasons.INVALID_NAME)
    return license_id


@dataclass
class Held:
    """One held license as the book keeps it."""

    license_id: str
    grant: Grant
    envelope: bytes
    proof: str
    grant_index: int
    import_time: datetime
    uses: dict[str, int] = field(default_factory=dict)


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
    """Uses reserved in memory (they count against the limits already), until written, committed or given back.

    ``write`` counts them in the caller's transaction, with the change they are uses of, and ``committed`` is
    called once that committed; ``commit`` counts them in a transaction of their own; ``release`` gives back
    what was neither (the action was refused after its license check): a refused call counts no use.
    """

    book: LicenseBook
    action: str
    held: list[Held]
    principal: str
    now: datetime
    settled: bool = False

    def write(self, cursor: Connection) -> None:
        for held in self.held:
            held_licenses.count_use(cursor, held.license_id, self.action)
            append_in(cursor, _use_record(self.principal, self.action, held.license_id), self.now)

    def committed(self) -> None:
        self.settled = True

    def commit(self) -> None:
        if not self.held:
            self.settled = True
            return
        try:
            self.book._context.database.write(self.write)
        except BaseException:
            self.release()
            raise
        self.settled = True

    def release(self) -> None:
        if not self.settled:
            self.settled = True
            self.book._give_back(self)


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
        #: Imports admitted and not yet committed, per license: they count against an import limit already.
        self._importing: dict[str, int] = {}
        #: Uses counted in memory that no limit depends on, to write in the next batch: (license, action, who, when).
        self._deferred: list[tuple[str, str, str, datetime]] = []
        self._flush_lock = threading.Lock()
        self._load()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="license-uses", daemon=True)
        self._flusher.start()

    def _load(self) -> None:
        with self._context.database.read() as cursor:
            rows = held_licenses.held_licenses(cursor)
            uses = held_licenses.license_uses(cursor)
        for row in rows:
            grant = read_grant(row.envelope)
            self._held[row.license_id] = Held(
                row.license_id, grant, row.envelope, row.proof, row.grant_index, row.import_time
            )
        for license_id, action, count in uses:
            if license_id in self._held:
                self._held[license_id].uses[action] = count

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
        decision = grant.terms.permits(action, held.uses.get(action, 0), grant.not_before, now)
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
        now = self._context.clock()
        refused: set[str] = set()
        reserved: list[Held] = []
        with self._lock:
            for license_id in sorted(license_ids):
                held = self._held.get(license_id)
                if held is None or self.refusal(held, action, now) is not None:
                    refused.add(license_id)
                    continue
                held.uses[action] = held.uses.get(action, 0) + 1
                if _counted_against_a_limit(held, action):
                    reserved.append(held)
                else:
                    self._deferred.append((held.license_id, action, principal, now))
        self._persist_uses(reserved, action, principal, now)
        return frozenset(refused)

    def flush(self) -> None:
        """Writes the uses counted but not yet written (those no limit depends on), with their audit events."""
        with self._flush_lock:
            with self._lock:
                pending, self._deferred = self._deferred, []
            if not pending:
                return
            totals: dict[tuple[str, str], int] = {}
            for license_id, action, _, _ in pending:
                totals[(license_id, action)] = totals.get((license_id, action), 0) + 1

            def apply(cursor: Connection) -> None:
                for (license_id, action), uses in totals.items():
                    held_licenses.count_use(cursor, license_id, action, uses)
                for license_id, action, principal, when in pending:
                    append_in(cursor, _use_record(principal, action, license_id), when)

            try:
                self._context.database.write(apply)
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
        self.reserve(action, license_ids, principal).commit()

    def reserve(self, action: str, license_ids: Collection[str], principal: str) -> Reservation:
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
                        done.uses[action] -= 1
                    raise refusal.error()
                assert held is not None
                held.uses[action] = held.uses.get(action, 0) + 1
                reserved.append(held)
        return Reservation(self, action, reserved, principal, now)

    def _give_back(self, reservation: Reservation) -> None:
        with self._lock:
            for held in reservation.held:
                held.uses[reservation.action] -= 1

    def _persist_uses(self, reserved: list[Held], action: str, principal: str, now: datetime) -> None:
        if not reserved:
            return

        def apply(cursor: Connection) -> None:
            for held in reserved:
                held_licenses.count_use(cursor, held.license_id, action)
                append_in(cursor, _use_record(principal, action, held.license_id), now)

        try:
            self._context.database.write(apply)
        except BaseException:
            with self._lock:  # not counted after all: give the reservations back
                for held in reserved:
                    held.uses[action] -= 1
            raise

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
            in_flight = self._importing.get(license_id, 0)
            decision = found.terms.permits(IMPORT, held.uses.get(IMPORT, 0) + in_flight, found.not_before, now)
            if not decision:
                reason = _TERMS_REASONS.get(decision.reason, reasons.LICENSE_ACTION_NOT_PERMITTED)
                raise Refusal(reason, f"{found.release}: {_explain(decision.reason, IMPORT)}").error()
            self._importing[license_id] = in_flight + 1  # reserved: concurrent imports cannot pass a count
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
        held_licenses.count_use(cursor, held.license_id, IMPORT)
        now = self._context.clock()
        append_in(cursor, _use_record(admitted.principal, IMPORT, held.license_id), now)
        self.logs.write_fresh(cursor, held.grant.log_origin, admitted.fresh_time)

    def _settle(self, admitted: LicensedImport) -> bool:
        """Releases the import's reservation once; False if it was settled already. Called under the lock."""
        if admitted.settled:
            return False
        admitted.settled = True
        license_id = admitted.held.license_id
        left = self._importing.get(license_id, 0) - 1
        if left > 0:
            self._importing[license_id] = left
        else:
            self._importing.pop(license_id, None)
        return True

    def _abandoned(self, admitted: LicensedImport) -> None:
        with self._lock:
            self._settle(admitted)

    def _imported(self, admitted: LicensedImport) -> None:
        held = admitted.held
        with self._lock:
            self._settle(admitted)
            kept = self._held.setdefault(held.license_id, held)
            kept.uses[IMPORT] = kept.uses.get(IMPORT, 0) + 1
            self.logs.saw_fresh(held.grant.log_origin, admitted.fresh_time)

    # -- the followed logs -----------------------------------------------------------------------------------

    def followed_logs(self) -> list[Followed]:
        """Every followed log, by origin (``FollowedLogs.all``)."""
        return self.logs.all()

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, name: str, viewer: Caller) -> h.HeldLicense:
        license_id = parse_held_license_name(name)
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
                    uses=held.uses.get(action, 0),
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


def _counted_against_a_limit(held: Held, action: str) -> bool:
    """Whether the terms limit how many times ``action`` may use ``held`` (then each use is written at once)."""
    permission = held.grant.terms.permission(action)
    return permission is not None and permission.count is not None


def _sees(viewer: Caller, held: Held) -> bool:
    return viewer.admin or viewer.principal == held.grant.licensee_principal


def _use_record(principal: str, action: str, license_id: str) -> AuditRecord:
    """The audit event of one counted use (method ``license.<action>``, the held license as resource)."""
    return AuditRecord(
        principal, f"license.{action}", held_license_name(license_id), audit_pb2.AuditEvent.OUTCOME_OK, "OK", ""
    )


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


def _text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
