import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemoryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_TYPE_UNSPECIFIED: _ClassVar[MemoryType]
    MEMORY_TYPE_PLAINTEXT: _ClassVar[MemoryType]
    MEMORY_TYPE_ACTIVATION: _ClassVar[MemoryType]
    MEMORY_TYPE_PARAMETRIC: _ClassVar[MemoryType]

class LifecycleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STATE_UNSPECIFIED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_GENERATED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_ACTIVATED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_MERGED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_ARCHIVED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_FROZEN: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_EXPIRED: _ClassVar[LifecycleState]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_USER_INPUT: _ClassVar[Source]
    SOURCE_INFERENCE: _ClassVar[Source]
    SOURCE_RETRIEVAL: _ClassVar[Source]
    SOURCE_FINE_TUNE: _ClassVar[Source]
    SOURCE_IMPORT: _ClassVar[Source]

class SemanticType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEMANTIC_TYPE_UNSPECIFIED: _ClassVar[SemanticType]
    SEMANTIC_TYPE_FACT: _ClassVar[SemanticType]
    SEMANTIC_TYPE_PREFERENCE: _ClassVar[SemanticType]
    SEMANTIC_TYPE_TASK_PROMPT: _ClassVar[SemanticType]
    SEMANTIC_TYPE_EVENT: _ClassVar[SemanticType]
    SEMANTIC_TYPE_PERSONA: _ClassVar[SemanticType]
    SEMANTIC_TYPE_SKILL: _ClassVar[SemanticType]
    SEMANTIC_TYPE_DIALOGUE: _ClassVar[SemanticType]

class StorageMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORAGE_MODE_UNSPECIFIED: _ClassVar[StorageMode]
    STORAGE_MODE_INLINE: _ClassVar[StorageMode]
    STORAGE_MODE_BLOB: _ClassVar[StorageMode]
MEMORY_TYPE_UNSPECIFIED: MemoryType
MEMORY_TYPE_PLAINTEXT: MemoryType
MEMORY_TYPE_ACTIVATION: MemoryType
MEMORY_TYPE_PARAMETRIC: MemoryType
LIFECYCLE_STATE_UNSPECIFIED: LifecycleState
LIFECYCLE_STATE_GENERATED: LifecycleState
LIFECYCLE_STATE_ACTIVATED: LifecycleState
LIFECYCLE_STATE_MERGED: LifecycleState
LIFECYCLE_STATE_ARCHIVED: LifecycleState
LIFECYCLE_STATE_FROZEN: LifecycleState
LIFECYCLE_STATE_EXPIRED: LifecycleState
SOURCE_UNSPECIFIED: Source
SOURCE_USER_INPUT: Source
SOURCE_INFERENCE: Source
SOURCE_RETRIEVAL: Source
SOURCE_FINE_TUNE: Source
SOURCE_IMPORT: Source
SEMANTIC_TYPE_UNSPECIFIED: SemanticType
SEMANTIC_TYPE_FACT: SemanticType
SEMANTIC_TYPE_PREFERENCE: SemanticType
SEMANTIC_TYPE_TASK_PROMPT: SemanticType
SEMANTIC_TYPE_EVENT: SemanticType
SEMANTIC_TYPE_PERSONA: SemanticType
SEMANTIC_TYPE_SKILL: SemanticType
SEMANTIC_TYPE_DIALOGUE: SemanticType
STORAGE_MODE_UNSPECIFIED: StorageMode
STORAGE_MODE_INLINE: StorageMode
STORAGE_MODE_BLOB: StorageMode

class CubeAccess(_message.Message):
    __slots__ = ("scope", "principals", "owner")
    class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SCOPE_UNSPECIFIED: _ClassVar[CubeAccess.Scope]
        SCOPE_SPACE: _ClassVar[CubeAccess.Scope]
        SCOPE_OWNER: _ClassVar[CubeAccess.Scope]
        SCOPE_PRINCIPALS: _ClassVar[CubeAccess.Scope]
    SCOPE_UNSPECIFIED: CubeAccess.Scope
    SCOPE_SPACE: CubeAccess.Scope
    SCOPE_OWNER: CubeAccess.Scope
    SCOPE_PRINCIPALS: CubeAccess.Scope
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    scope: CubeAccess.Scope
    principals: _containers.RepeatedScalarFieldContainer[str]
    owner: str
    def __init__(self, scope: _Optional[_Union[CubeAccess.Scope, str]] = ..., principals: _Optional[_Iterable[str]] = ..., owner: _Optional[str] = ...) -> None: ...

class BlobRef(_message.Message):
    __slots__ = ("digest", "size_bytes", "media_type")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size_bytes: int
    media_type: str
    def __init__(self, digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., media_type: _Optional[str] = ...) -> None: ...

class PlaintextPayload(_message.Message):
    __slots__ = ("text", "context")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    context: str
    def __init__(self, text: _Optional[str] = ..., context: _Optional[str] = ...) -> None: ...

class ActivationPayload(_message.Message):
    __slots__ = ("blob", "model_fingerprint", "dtype", "shape", "num_layers", "num_heads", "token_count", "source_text")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    blob: BlobRef
    model_fingerprint: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    num_layers: int
    num_heads: int
    token_count: int
    source_text: str
    def __init__(self, blob: _Optional[_Union[BlobRef, _Mapping]] = ..., model_fingerprint: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., num_layers: _Optional[int] = ..., num_heads: _Optional[int] = ..., token_count: _Optional[int] = ..., source_text: _Optional[str] = ...) -> None: ...

class ParametricPayload(_message.Message):
    __slots__ = ("blob", "model_fingerprint", "dtype", "shape", "rank", "target_modules", "adapter_config_json", "source_text", "source_cubes", "training_steps")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CUBES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_STEPS_FIELD_NUMBER: _ClassVar[int]
    blob: BlobRef
    model_fingerprint: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    rank: int
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    adapter_config_json: str
    source_text: str
    source_cubes: _containers.RepeatedScalarFieldContainer[str]
    training_steps: int
    def __init__(self, blob: _Optional[_Union[BlobRef, _Mapping]] = ..., model_fingerprint: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., rank: _Optional[int] = ..., target_modules: _Optional[_Iterable[str]] = ..., adapter_config_json: _Optional[str] = ..., source_text: _Optional[str] = ..., source_cubes: _Optional[_Iterable[str]] = ..., training_steps: _Optional[int] = ...) -> None: ...

class MemCube(_message.Message):
    __slots__ = ("name", "type", "plaintext", "activation", "parametric", "create_time", "last_use_time", "source", "origin", "model", "usage_count", "priority", "expire_time", "access", "tags", "embedding_fingerprint", "storage_mode", "semantic_type", "sensitivity_labels", "provenance_id", "state", "version", "etag", "labels", "update_time", "embedding", "merged_from", "license", "expire_time_setter", "purge_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    PARAMETRIC_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_MODE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TYPE_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_LABELS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MERGED_FROM_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_SETTER_FIELD_NUMBER: _ClassVar[int]
    PURGE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: MemoryType
    plaintext: PlaintextPayload
    activation: ActivationPayload
    parametric: ParametricPayload
    create_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    source: Source
    origin: str
    model: str
    usage_count: int
    priority: int
    expire_time: _timestamp_pb2.Timestamp
    access: CubeAccess
    tags: _containers.RepeatedScalarFieldContainer[str]
    embedding_fingerprint: str
    storage_mode: StorageMode
    semantic_type: SemanticType
    sensitivity_labels: _containers.RepeatedScalarFieldContainer[str]
    provenance_id: str
    state: LifecycleState
    version: int
    etag: str
    labels: _containers.ScalarMap[str, str]
    update_time: _timestamp_pb2.Timestamp
    embedding: _containers.RepeatedScalarFieldContainer[float]
    merged_from: _containers.RepeatedScalarFieldContainer[str]
    license: CubeLicense
    expire_time_setter: str
    purge_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[MemoryType, str]] = ..., plaintext: _Optional[_Union[PlaintextPayload, _Mapping]] = ..., activation: _Optional[_Union[ActivationPayload, _Mapping]] = ..., parametric: _Optional[_Union[ParametricPayload, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[Source, str]] = ..., origin: _Optional[str] = ..., model: _Optional[str] = ..., usage_count: _Optional[int] = ..., priority: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., access: _Optional[_Union[CubeAccess, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., embedding_fingerprint: _Optional[str] = ..., storage_mode: _Optional[_Union[StorageMode, str]] = ..., semantic_type: _Optional[_Union[SemanticType, str]] = ..., sensitivity_labels: _Optional[_Iterable[str]] = ..., provenance_id: _Optional[str] = ..., state: _Optional[_Union[LifecycleState, str]] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., embedding: _Optional[_Iterable[float]] = ..., merged_from: _Optional[_Iterable[str]] = ..., license: _Optional[_Union[CubeLicense, _Mapping]] = ..., expire_time_setter: _Optional[str] = ..., purge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CubeLicense(_message.Message):
    __slots__ = ("held_license", "release", "license", "grant_digest")
    HELD_LICENSE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    GRANT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    held_license: str
    release: str
    license: str
    grant_digest: str
    def __init__(self, held_license: _Optional[str] = ..., release: _Optional[str] = ..., license: _Optional[str] = ..., grant_digest: _Optional[str] = ...) -> None: ...
