"""Result objects and enums of the client: ``Space``, ``Cube``, ``CubeLicense``, ``ScoredCube``, ``BlobRef``.

Each result is a frozen dataclass built from its protobuf with ``from_proto``
and keeps the raw message in ``.proto``; the enums map to the memos.v1 enums.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from google.protobuf import timestamp_pb2

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2, vault_service_pb2


class _ProtoEnum(StrEnum):
    """A lowercase string enum that maps to a memos.v1 protobuf enum by name."""

    @classmethod
    def _proto_prefix(cls) -> str:
        return _PREFIXES[cls.__name__]

    @classmethod
    def parse(cls, value: Self | str) -> Self:
        """Accepts a member, its value ("task_prompt"), or its proto name ("SEMANTIC_TYPE_TASK_PROMPT")."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("-", "_")
        prefix = cls._proto_prefix().lower()
        if text.startswith(prefix):
            text = text[len(prefix) :]
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(m.value for m in cls if m.value != "unspecified")
            raise ValueError(f"unknown {cls.__name__} {value!r}; expected one of: {allowed}") from None

    @classmethod
    def from_proto(cls, number: int) -> Self:
        """The member for a proto enum number; UNSPECIFIED for numbers this client does not know."""
        for member in cls:
            if member.to_proto() == number:
                return member
        return cls("unspecified")

    def to_proto(self) -> int:
        """The proto enum number of this member."""
        return int(_PROTO_ENUMS[type(self).__name__].Value(self._proto_prefix() + self.value.upper()))


class MemoryType(_ProtoEnum):
    """The kind of memory a cube holds (``memos.v1.MemoryType``)."""

    UNSPECIFIED = "unspecified"
    PLAINTEXT = "plaintext"
    ACTIVATION = "activation"
    PARAMETRIC = "parametric"


class SemanticType(_ProtoEnum):
    """What a memory means to its agent (``memos.v1.SemanticType``)."""

    UNSPECIFIED = "unspecified"
    FACT = "fact"
    PREFERENCE = "preference"
    TASK_PROMPT = "task_prompt"
    EVENT = "event"
    PERSONA = "persona"
    SKILL = "skill"
    DIALOGUE = "dialogue"


class Source(_ProtoEnum):
    """Where a memory came from (``memos.v1.Source``)."""

    UNSPECIFIED = "unspecified"
    USER_INPUT = "user_input"
    INFERENCE = "inference"
    RETRIEVAL = "retrieval"
    FINE_TUNE = "fine_tune"
    IMPORT = "import"


class LifecycleState(_ProtoEnum):
    """Where a cube sits in the lifecycle state machine (``memos.v1.LifecycleState``)."""

    UNSPECIFIED = "unspecified"
    GENERATED = "generated"
    ACTIVATED = "activated"
    MERGED = "merged"
    ARCHIVED = "archived"
    FROZEN = "frozen"
    EXPIRED = "expired"


_PREFIXES = {
    "MemoryType": "MEMORY_TYPE_",
    "SemanticType": "SEMANTIC_TYPE_",
    "Source": "SOURCE_",
    "LifecycleState": "LIFECYCLE_STATE_",
}
_PROTO_ENUMS: dict[str, Any] = {
    "MemoryType": cube_pb2.MemoryType,
    "SemanticType": cube_pb2.SemanticType,
    "Source": cube_pb2.Source,
    "LifecycleState": cube_pb2.LifecycleState,
}


def _time(message: Any, field_name: str) -> dt.datetime | None:
    """A timestamp field as an aware UTC datetime, or None when unset."""
    if not message.HasField(field_name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field_name)
    return stamp.ToDatetime(tzinfo=dt.UTC)


@dataclass(frozen=True)
class BlobRef:
    """A content-addressed payload blob: its ``sha256:<hex>`` digest, size and media type."""

    digest: str
    size_bytes: int
    media_type: str
    proto: cube_pb2.BlobRef = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: cube_pb2.BlobRef) -> BlobRef:
        return cls(
            digest=message.digest,
            size_bytes=message.size_bytes,
            media_type=message.media_type,
            proto=message,
        )


@dataclass(frozen=True)
class Space:
    """A space: a governed container of cubes, named ``spaces/{space_id}``."""

    name: str
    space_id: str
    display_name: str
    description: str
    labels: dict[str, str] = field(hash=False)
    etag: str
    vector_dimension: int
    cube_count: int
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    proto: space_pb2.Space = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: space_pb2.Space) -> Space:
        return cls(
            name=message.name,
            space_id=message.name.removeprefix("spaces/"),
            display_name=message.display_name,
            description=message.description,
            labels=dict(message.labels),
            etag=message.etag,
            vector_dimension=message.vector_dimension,
            cube_count=message.cube_count,
            create_time=_time(message, "create_time"),
            update_time=_time(message, "update_time"),
            proto=message,
        )


@dataclass(frozen=True)
class CubeLicense:
    """The marketplace license a cube carries on a buyer's node (a licensed import), and what follows from it."""

    #: The license as this node holds it: ``heldLicenses/{hex}`` (``get_held_license`` shows its uses).
    held_license: str
    #: The release the cube came from: ``listings/{listing}/releases/{release}``.
    release: str
    #: The grant's SPDX license expression.
    license: str
    #: ``sha256:<hex>`` of the grant's statement.
    grant_digest: str

    @classmethod
    def from_proto(cls, message: cube_pb2.CubeLicense) -> CubeLicense:
        return cls(message.held_license, message.release, message.license, message.grant_digest)


@dataclass(frozen=True)
class Cube:
    """A MemCube: one governed memory, named ``spaces/{space}/cubes/{cube_id}``.

    ``text`` is set for plaintext cubes only; ``blob`` and ``source_text``
    (the text a cache covers, or an adapter was trained on) for activation and
    parametric cubes only. Times are timezone-aware UTC datetimes, or None
    when the server left them unset.
    """

    name: str
    space: str
    cube_id: str
    type: MemoryType
    text: str | None
    #: A plaintext cube's search context ("" when it has none).
    context: str
    blob: BlobRef | None
    source_text: str | None
    #: A parametric cube's training cubes, as they were named then (empty for other types).
    source_cubes: tuple[str, ...]
    tags: tuple[str, ...]
    labels: dict[str, str] = field(hash=False)
    semantic_type: SemanticType
    source: Source
    priority: int
    state: LifecycleState
    version: int
    etag: str
    provenance_id: str
    embedding_fingerprint: str
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    last_use_time: dt.datetime | None
    expire_time: dt.datetime | None
    usage_count: int
    sensitivity_labels: tuple[str, ...]
    model: str
    origin: str
    #: The marketplace license the cube was imported under, or None (not a licensed import).
    license: CubeLicense | None
    #: Who set ``expire_time``: ``principals/{principal}``, or ``spaces/{space}`` for its default TTL ("" if none).
    expire_time_setter: str
    #: For an expired cube's tombstone (state EXPIRED, listed with ``show_expired``): when the tombstone goes.
    purge_time: dt.datetime | None
    proto: cube_pb2.MemCube = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: cube_pb2.MemCube) -> Cube:
        space, _, cube_id = message.name.partition("/cubes/")
        payload = message.WhichOneof("payload")
        text = message.plaintext.text if payload == "plaintext" else None
        blob: BlobRef | None = None
        source_text: str | None = None
        if payload == "activation":
            source_text = message.activation.source_text
            if message.activation.HasField("blob"):
                blob = BlobRef.from_proto(message.activation.blob)
        elif payload == "parametric":
            source_text = message.parametric.source_text
            if message.parametric.HasField("blob"):
                blob = BlobRef.from_proto(message.parametric.blob)
        return cls(
            name=message.name,
            space=space,
            cube_id=cube_id,
            type=MemoryType.from_proto(message.type),
            text=text,
            context=message.plaintext.context,
            blob=blob,
            source_text=source_text,
            source_cubes=tuple(message.parametric.source_cubes),
            tags=tuple(message.tags),
            labels=dict(message.labels),
            semantic_type=SemanticType.from_proto(message.semantic_type),
            source=Source.from_proto(message.source),
            priority=message.priority,
            state=LifecycleState.from_proto(message.state),
            version=message.version,
            etag=message.etag,
            provenance_id=message.provenance_id,
            embedding_fingerprint=message.embedding_fingerprint,
            create_time=_time(message, "create_time"),
            update_time=_time(message, "update_time"),
            last_use_time=_time(message, "last_use_time"),
            expire_time=_time(message, "expire_time"),
            usage_count=message.usage_count,
            sensitivity_labels=tuple(message.sensitivity_labels),
            model=message.model,
            origin=message.origin,
            license=CubeLicense.from_proto(message.license) if message.HasField("license") else None,
            expire_time_setter=message.expire_time_setter,
            purge_time=_time(message, "purge_time"),
            proto=message,
        )


@dataclass(frozen=True)
class ScoredCube:
    """A search result: a cube and its cosine similarity to the query (higher is better)."""

    cube: Cube
    score: float
    proto: vault_service_pb2.ScoredCube = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: vault_service_pb2.ScoredCube) -> ScoredCube:
        return cls(cube=Cube.from_proto(message.cube), score=message.score, proto=message)
