"""Checks on what clients send: cube fields, vectors and update masks.

Each check raises ``InvalidArgumentError`` with a stable reason and a message
that names the field and the limit, before anything is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from google.protobuf import timestamp_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.settings import Settings
from memos_grpc.store.blobs import parse_digest

MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_LABELS = 64
MAX_LABEL_VALUE_CHARS = 256
MAX_SHORT_TEXT_CHARS = 512
LABEL_KEY = re.compile(r"[a-z][a-z0-9_.\-/]{0,62}")
PRINCIPAL_NAME = re.compile(r"principals/[a-z][a-z0-9-]{0,62}")

_PAYLOAD_OF_TYPE = {
    cube_pb2.MEMORY_TYPE_PLAINTEXT: "plaintext",
    cube_pb2.MEMORY_TYPE_ACTIVATION: "activation",
    cube_pb2.MEMORY_TYPE_PARAMETRIC: "parametric",
}
_TYPE_OF_PAYLOAD = {v: k for k, v in _PAYLOAD_OF_TYPE.items()}
# Enum.values() builds a new list on every call; these checks run for every cube of a bulk load or import.
_MEMORY_TYPES = frozenset(cube_pb2.MemoryType.values())
_SOURCES = frozenset(cube_pb2.Source.values())
_SEMANTIC_TYPES = frozenset(cube_pb2.SemanticType.values())
_SCOPES = frozenset(cube_pb2.CubeAccess.Scope.values())

#: Fields an UpdateCube mask may name (AIP-134), mapped to what they change.
UPDATABLE_PATHS = frozenset(
    {
        "plaintext.text",
        "plaintext.context",
        "plaintext",
        "tags",
        "labels",
        "priority",
        "semantic_type",
        "source",
        "origin",
        "model",
        "expire_time",
        "sensitivity_labels",
        "access",
    }
)


def invalid(message: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, reason=reason)


def check_text(text: str, settings: Settings, field: str = "cube.plaintext.text") -> None:
    if not text.strip():
        raise invalid(f"{field} is empty: a plaintext cube needs text", reasons.EMPTY_TEXT)
    size = len(text.encode("utf-8"))
    if size > settings.max_text_bytes:
        raise invalid(
            f"{field} is {size} bytes; the limit is {settings.max_text_bytes} (max_text_bytes)",
            reasons.TEXT_TOO_LONG,
        )


def check_context(context: str, settings: Settings, field: str = "cube.plaintext.context") -> None:
    """Optional text (a search context, a source text): bounded like a plaintext's text."""
    size = len(context.encode("utf-8"))
    if size > settings.max_text_bytes:
        raise invalid(
            f"{field} is {size} bytes; the limit is {settings.max_text_bytes} (max_text_bytes)",
            reasons.TEXT_TOO_LONG,
        )


def _check_strings(values: Sequence[str], field: str) -> None:
    if len(values) > MAX_TAGS:
        raise invalid(f"{field} has {len(values)} entries; the limit is {MAX_TAGS}", reasons.TOO_MANY_TAGS)
    for value in values:
        if not 1 <= len(value) <= MAX_TAG_CHARS or value != value.strip():
            raise invalid(
                f"{field} entry {value[:80]!r} must be 1..{MAX_TAG_CHARS} characters without surrounding spaces",
                reasons.INVALID_TAG,
            )
    if len(set(values)) != len(values):
        raise invalid(f"{field} has duplicate entries", reasons.INVALID_TAG)


def check_labels(labels: dict[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise invalid(f"cube.labels has {len(labels)} entries; the limit is {MAX_LABELS}", reasons.INVALID_LABEL)
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise invalid(
                f"label key {key[:80]!r} must be 1..63 characters of [a-z0-9_.-/] starting with a letter",
                reasons.INVALID_LABEL,
            )
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise invalid(
                f"label {key!r} value is {len(value)} characters; the limit is {MAX_LABEL_VALUE_CHARS}",
                reasons.INVALID_LABEL,
            )


def _check_blob_payload(payload: cube_pb2.ActivationPayload | cube_pb2.ParametricPayload, field: str) -> None:
    if not payload.blob.digest:
        raise invalid(
            f"{field}.blob.digest is required: upload the payload with WritePayload first", reasons.MISSING_BLOB
        )
    try:
        parse_digest(payload.blob.digest)
    except InvalidArgumentError as exc:
        raise invalid(f"{field}.blob.digest: {exc.message}", reasons.INVALID_DIGEST) from exc
    if not payload.model_fingerprint:
        raise invalid(f"{field}.model_fingerprint is required", reasons.MISSING_MODEL_FINGERPRINT)
    if any(d < 0 for d in payload.shape):
        raise invalid(f"{field}.shape has a negative dimension", reasons.INVALID_SHAPE)


def check_cube_fields(cube: cube_pb2.MemCube, settings: Settings) -> cube_pb2.MemoryType:
    """Checks a cube as sent for creation; returns its memory type."""
    payload = cube.WhichOneof("payload")
    memory_type = cube.type
    if payload is None:
        raise invalid("cube has no payload: set plaintext, activation or parametric", reasons.MISSING_PAYLOAD)
    if memory_type not in _MEMORY_TYPES:
        raise invalid(f"cube.type {memory_type} is not a known memory type", reasons.INVALID_ENUM)
    if memory_type == cube_pb2.MEMORY_TYPE_UNSPECIFIED:
        memory_type = _TYPE_OF_PAYLOAD[payload]
    elif _PAYLOAD_OF_TYPE.get(memory_type) != payload:
        raise invalid(
            f"cube.type {cube_pb2.MemoryType.Name(memory_type)} does not match its {payload} payload",
            reasons.PAYLOAD_TYPE_MISMATCH,
        )
    if payload == "plaintext":
        check_text(cube.plaintext.text, settings)
        check_context(cube.plaintext.context, settings)
    elif payload == "activation":
        _check_blob_payload(cube.activation, "cube.activation")
        check_context(cube.activation.source_text, settings, "cube.activation.source_text")
    else:
        _check_blob_payload(cube.parametric, "cube.parametric")
        check_context(cube.parametric.source_text, settings, "cube.parametric.source_text")
    check_metadata(cube)
    return memory_type


def check_timestamp(stamp: timestamp_pb2.Timestamp, field: str) -> None:
    """Refuses a timestamp outside 0001-01-01..9999-12-31 or with nanos out of range."""
    try:
        stamp.ToDatetime()
    except (ValueError, OverflowError) as exc:
        raise invalid(f"{field} is not a valid timestamp (years 1 to 9999): {exc}", reasons.INVALID_TIMESTAMP) from exc


def check_metadata(cube: cube_pb2.MemCube) -> None:
    """Checks the header fields a client may set (on create and update)."""
    if cube.HasField("expire_time"):
        check_timestamp(cube.expire_time, "cube.expire_time")
    _check_strings(list(cube.tags), "cube.tags")
    _check_strings(list(cube.sensitivity_labels), "cube.sensitivity_labels")
    check_labels(dict(cube.labels))
    if not 0 <= cube.priority <= 100:
        raise invalid(f"cube.priority must be in 0..100 (got {cube.priority})", reasons.INVALID_PRIORITY)
    for field in ("origin", "model"):
        if len(getattr(cube, field)) > MAX_SHORT_TEXT_CHARS:
            raise invalid(f"cube.{field} is longer than {MAX_SHORT_TEXT_CHARS} characters", reasons.FIELD_TOO_LONG)
    for enum_field, known in (("source", _SOURCES), ("semantic_type", _SEMANTIC_TYPES)):
        if getattr(cube, enum_field) not in known:
            raise invalid(f"cube.{enum_field} {getattr(cube, enum_field)} is not a known value", reasons.INVALID_ENUM)
    if cube.access.scope not in _SCOPES:  # stored as a SMALLINT: an unknown number may not even fit
        raise invalid(f"cube.access.scope {cube.access.scope} is not a known value", reasons.INVALID_ENUM)
    for principal in cube.access.principals:
        if not PRINCIPAL_NAME.fullmatch(principal):
            raise invalid(
                f"cube.access.principals entry {principal[:80]!r} is not principals/{{id}}", reasons.INVALID_NAME
            )


def check_vector(values: Sequence[float], dimension: int, field: str = "vector") -> FloatArray:
    if len(values) != dimension:
        raise invalid(
            f"{field} has {len(values)} dimensions; this space's vectors have {dimension}",
            reasons.VECTOR_DIMENSION_MISMATCH,
        )
    # float64, so that huge float32 components do not overflow the norm to infinity.
    vector = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(vector)):
        raise invalid(f"{field} contains NaN or infinite values", reasons.INVALID_VECTOR)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise invalid(f"{field} is all zeros: cosine similarity needs a direction", reasons.INVALID_VECTOR)
    unit: FloatArray = (vector / norm).astype(np.float32)
    return unit


def unit_vectors(values: Sequence[Sequence[float]], dimension: int) -> list[FloatArray | None]:
    """``check_vector``'s result for each of many vectors, computed as one matrix (a batch's ingest is dominated
    by per-vector array calls otherwise); None for one ``check_vector`` refuses, which the caller then calls on
    it, in its own order, for the error."""
    units: list[FloatArray | None] = [None] * len(values)
    fitting = [i for i, v in enumerate(values) if len(v) == dimension]
    if not fitting:
        return units
    matrix = np.array([values[i] for i in fitting], dtype=np.float64)  # float64, as check_vector
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    good = np.isfinite(matrix).all(axis=1) & (norms > 0.0) & np.isfinite(norms)
    scaled = (matrix / np.where(good, norms, 1.0)[:, None]).astype(np.float32)
    for row, i in enumerate(fitting):
        if good[row]:
            units[i] = scaled[row]
    return units


def check_update_mask(paths: Sequence[str], updatable: frozenset[str] = UPDATABLE_PATHS) -> list[str]:
    """Checks an AIP-134 mask: required, and naming only fields in ``updatable``."""
    if not paths:
        raise invalid("update_mask is required: name the fields to change (AIP-134)", reasons.MISSING_UPDATE_MASK)
    unknown = sorted(set(paths) - updatable)
    if unknown:
        raise invalid(
            f"update_mask names field(s) that cannot be updated: {', '.join(unknown)}; "
            f"updatable: {', '.join(sorted(updatable))}",
            reasons.INVALID_UPDATE_MASK,
        )
    return list(paths)
