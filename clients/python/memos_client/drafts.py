"""``CubeDraft``: the arguments of one cube to create, and their request protobufs.

Used by ``MemosClient.create_cube`` and ``batch_create_cubes``; a draft can be
built from a mapping such as a parsed JSON line (``CubeDraft.from_mapping``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2

from memos_client.types import SemanticType, Source
from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2

#: The payload of an activation or a parametric cube.
Payload = cube_pb2.ActivationPayload | cube_pb2.ParametricPayload


def to_timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_vector(values: Iterable[float]) -> vault_service_pb2.Vector:
    """A ``memos.v1.Vector`` from any iterable of numbers (a list, tuple or numpy array)."""
    return vault_service_pb2.Vector(values=[float(v) for v in values])


@dataclass(frozen=True)
class CubeDraft:
    """One cube to create; the fields mirror ``MemosClient.create_cube``'s arguments.

    Give ``text`` for a plaintext cube, or ``payload`` (an ``ActivationPayload``
    or ``ParametricPayload`` whose blob was uploaded with ``write_payload``).
    """

    text: str | None = None
    #: Text around a plaintext memory that helps find it (searched lexically, not embedded).
    context: str = ""
    cube_id: str = ""
    vector: Sequence[float] | None = None
    tags: Sequence[str] = ()
    labels: Mapping[str, str] | None = None
    semantic_type: SemanticType | str | None = None
    source: Source | str | None = None
    priority: int = 0
    expire_time: dt.datetime | None = None
    sensitivity_labels: Sequence[str] = ()
    model: str = ""
    origin: str = ""
    payload: Payload | None = None

    @classmethod
    def from_mapping(cls, item: Mapping[str, Any]) -> CubeDraft:
        """A draft from a mapping of field names (``id`` is accepted for ``cube_id``).

        ``expire_time`` may be a datetime or an RFC 3339 string. Unknown keys
        raise ValueError so that typos do not pass silently.
        """
        values = dict(item)
        if "id" in values:
            if "cube_id" in values:
                raise ValueError("give either 'id' or 'cube_id', not both")
            values["cube_id"] = values.pop("id")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown cube field(s): {', '.join(unknown)}")
        expire = values.get("expire_time")
        if isinstance(expire, str):
            values["expire_time"] = dt.datetime.fromisoformat(expire.replace("Z", "+00:00"))
        if isinstance(values.get("tags"), str) or isinstance(values.get("sensitivity_labels"), str):
            raise ValueError("tags and sensitivity_labels must be lists of strings")
        return cls(**values)

    def to_request(self, parent: str = "", *, validate_only: bool = False) -> vault_service_pb2.CreateCubeRequest:
        """The ``CreateCubeRequest`` for this draft (``parent`` may be empty inside a batch)."""
        if (self.text is None) == (self.payload is None):
            raise ValueError("give exactly one of text and payload")
        if self.context and self.text is None:
            raise ValueError("context goes with text: only a plaintext cube has one")
        cube = cube_pb2.MemCube(
            tags=list(self.tags),
            labels=dict(self.labels or {}),
            priority=int(self.priority),
            sensitivity_labels=list(self.sensitivity_labels),
            model=self.model,
            origin=self.origin,
        )
        if self.text is not None:
            cube.type = cube_pb2.MEMORY_TYPE_PLAINTEXT
            cube.plaintext.text = self.text
            cube.plaintext.context = self.context
        elif isinstance(self.payload, cube_pb2.ActivationPayload):
            cube.type = cube_pb2.MEMORY_TYPE_ACTIVATION
            cube.activation.CopyFrom(self.payload)
        elif isinstance(self.payload, cube_pb2.ParametricPayload):
            cube.type = cube_pb2.MEMORY_TYPE_PARAMETRIC
            cube.parametric.CopyFrom(self.payload)
        else:
            kind = type(self.payload).__name__
            raise TypeError(f"payload must be an ActivationPayload or ParametricPayload, not {kind}")
        if self.semantic_type is not None:
            cube.semantic_type = SemanticType.parse(self.semantic_type).to_proto()  # type: ignore[assignment]
        if self.source is not None:
            cube.source = Source.parse(self.source).to_proto()  # type: ignore[assignment]
        if self.expire_time is not None:
            cube.expire_time.CopyFrom(to_timestamp(self.expire_time))
        request = vault_service_pb2.CreateCubeRequest(
            parent=parent, cube_id=self.cube_id, cube=cube, validate_only=validate_only
        )
        if self.vector is not None:
            request.vector.CopyFrom(to_vector(self.vector))
        return request


def draft_of(item: CubeDraft | Mapping[str, Any]) -> CubeDraft:
    """``item`` itself when it is a draft, else ``CubeDraft.from_mapping(item)``."""
    return item if isinstance(item, CubeDraft) else CubeDraft.from_mapping(item)
