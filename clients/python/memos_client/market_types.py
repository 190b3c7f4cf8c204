"""Result objects of the marketplace calls: listings, releases, terms, licenses, events, the log's proofs,
and a buyer node's held licenses and followed logs.

Each is a frozen dataclass built from its protobuf with ``from_proto``; the
message itself stays in ``.proto`` for fields the dataclass leaves out.
Enum values are lowercase strings ("active", "yanked", "publish", "import", "suspended").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from memos_client.bundle_types import BundleVerification
from memos_client.types import MemoryType, _time
from memos_grpc._proto.memos.v1 import (
    held_license_service_pb2,
    marketplace_service_pb2,
    transparency_log_service_pb2,
    witness_service_pb2,
)

_h = held_license_service_pb2
_m = marketplace_service_pb2
_t = transparency_log_service_pb2


def _enum_name(enum: object, number: int, prefix: str) -> str:
    """``TERMS_ACTION_IMPORT`` → ``import``; a number this client does not know → ``unspecified``."""
    try:
        name: str = enum.Name(number)  # type: ignore[attr-defined]
    except ValueError:
        return "unspecified"
    return name.removeprefix(prefix).lower()


def _action(number: int) -> str:
    return _enum_name(_m.TermsAction, number, "TERMS_ACTION_")


@dataclass(frozen=True)
class TermsConstraint:
    """One limit on a permitted action: at most ``count`` uses, until ``date_time``, or for ``elapsed_time``."""

    count: int | None
    date_time: dt.datetime | None
    elapsed_time: dt.timedelta | None

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.TermsConstraint) -> TermsConstraint:
        which = message.WhichOneof("limit")
        return cls(
            count=message.count if which == "count" else None,
            date_time=message.date_time.ToDatetime(tzinfo=dt.UTC) if which == "date_time" else None,
            elapsed_time=message.elapsed_time.ToTimedelta() if which == "elapsed_time" else None,
        )


@dataclass(frozen=True)
class TermsPermission:
    """A permitted action ("import", "recall", ...) and its limits (all apply; none: no limit)."""

    action: str
    constraints: tuple[TermsConstraint, ...]


@dataclass(frozen=True)
class Terms:
    """The terms of a release: ``json`` is the terms, verbatim; the rest is the server's parsed copy."""

    json: str
    digest: str
    license: str
    permissions: tuple[TermsPermission, ...]
    prohibitions: tuple[str, ...]
    price_label: str
    max_offline_seconds: int

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.Terms) -> Terms:
        return cls(
            json=message.json,
            digest=message.digest,
            license=message.license,
            permissions=tuple(
                TermsPermission(_action(p.action), tuple(TermsConstraint.from_proto(c) for c in p.constraints))
                for p in message.permissions
            ),
            prohibitions=tuple(_action(a) for a in message.prohibitions),
            price_label=message.price_label,
            max_offline_seconds=message.max_offline_seconds,
        )


@dataclass(frozen=True)
class Yank:
    """Why and when a release was yanked, and the log index of the yank entry."""

    reason: str
    yank_time: dt.datetime | None
    log_index: int

    @classmethod
    def of(cls, message: marketplace_service_pb2.Yank) -> Yank:
        return cls(message.reason, _time(message, "yank_time"), message.log_index)


@dataclass(frozen=True)
class Revocation:
    """Why and when a license was revoked, and the log index of the revoke entry."""

    reason: str
    revoke_time: dt.datetime | None
    log_index: int

    @classmethod
    def of(cls, message: marketplace_service_pb2.Revocation) -> Revocation:
        return cls(message.reason, _time(message, "revoke_time"), message.log_index)


@dataclass(frozen=True)
class Listing:
    """A MemBlock offered on the marketplace, named ``listings/{listing}``."""

    name: str
    title: str
    description: str
    tags: tuple[str, ...]
    owner: str
    publisher_threshold: int
    publisher_keys: tuple[str, ...]
    latest_release: str
    license: str
    license_ids: tuple[str, ...]
    memory_types: tuple[MemoryType, ...]
    release_count: int
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    etag: str
    proto: marketplace_service_pb2.Listing = field(repr=False, compare=False, hash=False)

    @property
    def listing_id(self) -> str:
        return self.name.removeprefix("listings/")

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.Listing) -> Listing:
        return cls(
            name=message.name,
            title=message.title,
            description=message.description,
            tags=tuple(message.tags),
            owner=message.owner,
            publisher_threshold=message.publisher_threshold,
            publisher_keys=tuple(message.publisher_keys),
            latest_release=message.latest_release,
            license=message.license,
            license_ids=tuple(message.license_ids),
            memory_types=tuple(MemoryType.from_proto(t) for t in message.memory_types),
            release_count=message.release_count,
            create_time=_time(message, "create_time"),
            update_time=_time(message, "update_time"),
            etag=message.etag,
            proto=message,
        )


@dataclass(frozen=True)
class ScoredListing:
    """A listing found by ``search_listings`` and its score (higher is better)."""

    listing: Listing
    score: float

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.ScoredListing) -> ScoredListing:
        return cls(Listing.from_proto(message.listing), message.score)


@dataclass(frozen=True)
class Release:
    """An immutable release of a listing, ``listings/{listing}/releases/{version}``; ``state`` active or yanked."""

    name: str
    state: str
    yank: Yank | None
    bundle_digest: str
    size_bytes: int
    statement_digest: str
    license: str
    terms: Terms
    cube_count: int
    memory_types: tuple[MemoryType, ...]
    embedding_fingerprint: str
    model_fingerprints: tuple[str, ...]
    publisher: str
    signer_keys: tuple[str, ...]
    log_index: int
    create_time: dt.datetime | None
    proto: marketplace_service_pb2.Release = field(repr=False, compare=False, hash=False)

    @property
    def listing(self) -> str:
        """The listing's name, ``listings/{listing}``."""
        return self.name.partition("/releases/")[0]

    @property
    def release_id(self) -> str:
        """The SemVer release id, the last part of the name."""
        return self.name.rpartition("/")[2]

    @property
    def yanked(self) -> bool:
        return self.state == "yanked"

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.Release) -> Release:
        return cls(
            name=message.name,
            state=_enum_name(_m.Release.State, message.state, "STATE_"),
            yank=Yank.of(message.yank) if message.HasField("yank") else None,
            bundle_digest=message.bundle_digest,
            size_bytes=message.size_bytes,
            statement_digest=message.statement_digest,
            license=message.license,
            terms=Terms.from_proto(message.terms),
            cube_count=message.cube_count,
            memory_types=tuple(MemoryType.from_proto(t) for t in message.memory_types),
            embedding_fingerprint=message.embedding_fingerprint,
            model_fingerprints=tuple(message.model_fingerprints),
            publisher=message.publisher,
            signer_keys=tuple(message.signer_keys),
            log_index=message.log_index,
            create_time=_time(message, "create_time"),
            proto=message,
        )


@dataclass(frozen=True)
class PublishResult:
    """What ``publish_release`` returns: the release, its publish entry's tlog-proof and the bundle's report."""

    release: Release
    tlog_proof: str
    verification: BundleVerification

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.PublishReleaseResponse) -> PublishResult:
        return cls(
            Release.from_proto(message.release),
            message.tlog_proof,
            BundleVerification.from_proto(message.verification),
        )


@dataclass(frozen=True)
class License:
    """A grant of one release to one licensee, ``licenses/{license}``; ``state`` active or revoked.

    ``grant_envelope`` (the signed grant, DSSE JSON) and ``tlog_proof`` (its
    log entry's C2SP tlog-proof@v1 text; empty until a published checkpoint
    covers it) are the two files ``memos-grpc market verify`` reads.
    """

    name: str
    release: str
    licensee: str
    licensee_key: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    acquirer: str
    terms: Terms
    grant_envelope: bytes = field(repr=False)
    grant_digest: str
    log_index: int
    tlog_proof: str = field(repr=False)
    state: str
    revocation: Revocation | None
    release_yank: Yank | None
    create_time: dt.datetime | None
    proto: marketplace_service_pb2.License = field(repr=False, compare=False, hash=False)

    @property
    def revoked(self) -> bool:
        return self.state == "revoked"

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.License) -> License:
        return cls(
            name=message.name,
            release=message.release,
            licensee=message.licensee,
            licensee_key=message.licensee_key,
            not_before=_time(message, "not_before"),
            not_after=_time(message, "not_after"),
            acquirer=message.acquirer,
            terms=Terms.from_proto(message.terms),
            grant_envelope=message.grant_envelope,
            grant_digest=message.grant_digest,
            log_index=message.log_index,
            tlog_proof=message.tlog_proof,
            state=_enum_name(_m.License.State, message.state, "STATE_"),
            revocation=Revocation.of(message.revocation) if message.HasField("revocation") else None,
            release_yank=Yank.of(message.release_yank) if message.HasField("release_yank") else None,
            create_time=_time(message, "create_time"),
            proto=message,
        )


@dataclass(frozen=True)
class MarketEvent:
    """A publish, yank or revoke, as ``subscribe`` delivers it: a hint to verify against the log.

    ``entry`` is the log entry verbatim, at ``log_index``, covered by a published
    checkpoint of ``tree_size``. ``ref_index`` is, for a yank or a revoke, the
    index of the publish or grant entry it refers to.
    """

    log_index: int
    type: str
    entry: bytes = field(repr=False)
    tree_size: int
    release: Release | None
    license: str
    revocation: Revocation | None
    score: float
    ref_index: int
    proto: marketplace_service_pb2.MarketplaceEvent = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: marketplace_service_pb2.MarketplaceEvent) -> MarketEvent:
        return cls(
            log_index=message.log_index,
            type=_enum_name(_m.EventType, message.type, "EVENT_TYPE_"),
            entry=message.entry,
            tree_size=message.tree_size,
            release=Release.from_proto(message.release) if message.HasField("release") else None,
            license=message.license,
            revocation=Revocation.of(message.revocation) if message.HasField("revocation") else None,
            score=message.score,
            ref_index=message.ref_index,
            proto=message,
        )


@dataclass(frozen=True)
class LogCheckpoint:
    """A published checkpoint of a marketplace log; ``note`` (the signed note) is what to verify."""

    origin: str
    size: int
    root_hash: bytes
    note: str
    cosigners: tuple[str, ...]

    @classmethod
    def from_proto(cls, message: transparency_log_service_pb2.Checkpoint) -> LogCheckpoint:
        return cls(message.origin, message.size, message.root_hash, message.note, tuple(message.cosigners))


@dataclass(frozen=True)
class InclusionProof:
    """An entry's inclusion path in a tree size; with the checkpoint and tlog-proof text when asked at the latest."""

    index: int
    tree_size: int
    entry: bytes
    hashes: tuple[bytes, ...]
    checkpoint: LogCheckpoint | None
    tlog_proof: str

    @classmethod
    def from_proto(cls, message: transparency_log_service_pb2.InclusionProof) -> InclusionProof:
        return cls(
            message.index,
            message.tree_size,
            message.entry,
            tuple(message.hashes),
            LogCheckpoint.from_proto(message.checkpoint) if message.HasField("checkpoint") else None,
            message.tlog_proof,
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` entries is a prefix of the tree of ``new_size`` entries."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]
    checkpoint: LogCheckpoint | None

    @classmethod
    def from_proto(cls, message: transparency_log_service_pb2.ConsistencyProof) -> ConsistencyProof:
        return cls(
            message.old_size,
            message.new_size,
            tuple(message.hashes),
            LogCheckpoint.from_proto(message.checkpoint) if message.HasField("checkpoint") else None,
        )


@dataclass(frozen=True)
class LogEntry:
    """One entry of a marketplace log: its index and its memstore-entry/v1 text, verbatim."""

    index: int
    data: bytes


@dataclass(frozen=True)
class LogEntries:
    """A run of entries and the published tree size they were read under."""

    entries: tuple[LogEntry, ...]
    tree_size: int

    @classmethod
    def from_proto(cls, message: transparency_log_service_pb2.GetEntriesResponse) -> LogEntries:
        return cls(tuple(LogEntry(e.index, e.data) for e in message.entries), message.tree_size)


@dataclass(frozen=True)
class Cosignatures:
    """A witness's answer to ``add_checkpoint``: its cosignature lines and the size it now holds as latest."""

    cosignatures: str
    size: int

    @classmethod
    def from_proto(cls, message: witness_service_pb2.AddCheckpointResponse) -> Cosignatures:
        return cls(message.cosignatures, message.size)


# -- The buyer's node: held licenses and followed logs -------------------------


@dataclass(frozen=True)
class ActionUse:
    """One action the terms name ("import", "recall", "search", "export", "transform") and its uses on this node.

    ``limit`` is the terms' count (0: not limited); ``allowed`` says whether one
    more use is allowed now, and ``reason`` why not (the ErrorInfo reason a
    refused use gets, e.g. ``LICENSE_LIMIT_REACHED``).
    """

    action: str
    uses: int
    limit: int
    allowed: bool
    reason: str

    @classmethod
    def from_proto(cls, message: held_license_service_pb2.ActionUse) -> ActionUse:
        return cls(message.action, message.uses, message.limit, message.allowed, message.reason)


@dataclass(frozen=True)
class HeldLicense:
    """A license a buyer's node holds, ``heldLicenses/{hex}``: the grant it verified at import, and its uses.

    ``state`` is "active", "suspended" (no fresh cosigned checkpoint within the
    terms' ``maxOfflineSeconds``), "expired" (outside the grant's window) or
    "revoked", with ``state_reason`` (its ErrorInfo reason) when not active.
    """

    name: str
    release: str
    license: str
    licensee: str
    licensee_key_id: str
    terms: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    log_origin: str
    grant_log_index: int
    publish_log_index: int
    state: str
    state_reason: str
    actions: tuple[ActionUse, ...]
    release_yanked: bool
    cube_count: int
    import_time: dt.datetime | None
    grant: bytes = field(repr=False)
    proto: held_license_service_pb2.HeldLicense = field(repr=False, compare=False, hash=False)

    @property
    def grant_digest(self) -> str:
        """``sha256:<hex>`` of the grant's statement: the marketplace's ``License.grant_digest``."""
        return "sha256:" + self.name.removeprefix("heldLicenses/")

    def action(self, name: str) -> ActionUse | None:
        """The uses of one action, or None when the terms do not name it."""
        return next((a for a in self.actions if a.action == name), None)

    @classmethod
    def from_proto(cls, message: held_license_service_pb2.HeldLicense) -> HeldLicense:
        return cls(
            name=message.name,
            release=message.release,
            license=message.license,
            licensee=message.licensee,
            licensee_key_id=message.licensee_key_id,
            terms=message.terms,
            not_before=_time(message, "not_before"),
            not_after=_time(message, "not_after"),
            log_origin=message.log_origin,
            grant_log_index=message.grant_log_index,
            publish_log_index=message.publish_log_index,
            state=_enum_name(_h.HeldLicenseState, message.state, "HELD_LICENSE_STATE_"),
            state_reason=message.state_reason,
            actions=tuple(ActionUse.from_proto(a) for a in message.actions),
            release_yanked=message.release_yanked,
            cube_count=message.cube_count,
            import_time=_time(message, "import_time"),
            grant=message.grant,
            proto=message,
        )


@dataclass(frozen=True)
class FollowedLog:
    """What a buyer's node has accepted of a marketplace log it follows.

    ``fresh_time`` is when a quorum of the policy's witnesses last cosigned an
    accepted checkpoint (``maxOfflineSeconds`` is measured from it);
    ``last_error_reason`` and ``last_error`` describe the last failed sync since
    the last accepted one ("" if none).
    """

    origin: str
    tree_size: int
    root_hash: bytes
    checkpoint: str
    fresh_time: dt.datetime | None
    sync_time: dt.datetime | None
    last_error_reason: str
    last_error: str
    proto: held_license_service_pb2.FollowedLog = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: held_license_service_pb2.FollowedLog) -> FollowedLog:
        return cls(
            origin=message.origin,
            tree_size=message.tree_size,
            root_hash=message.root_hash,
            checkpoint=message.checkpoint,
            fresh_time=_time(message, "fresh_time"),
            sync_time=_time(message, "sync_time"),
            last_error_reason=message.last_error_reason,
            last_error=message.last_error,
            proto=message,
        )
