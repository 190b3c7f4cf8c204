import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from memos_grpc._proto.memos.v1 import cube_pb2 as _cube_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as _vault_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecallRequest(_message.Message):
    __slots__ = ("parent", "query", "token_budget", "types", "filter", "max_items", "mode", "model_fingerprint")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    query: str
    token_budget: int
    types: _containers.RepeatedScalarFieldContainer[_cube_pb2.MemoryType]
    filter: str
    max_items: int
    mode: _vault_service_pb2.SearchMode
    model_fingerprint: str
    def __init__(self, parent: _Optional[str] = ..., query: _Optional[str] = ..., token_budget: _Optional[int] = ..., types: _Optional[_Iterable[_Union[_cube_pb2.MemoryType, str]]] = ..., filter: _Optional[str] = ..., max_items: _Optional[int] = ..., mode: _Optional[_Union[_vault_service_pb2.SearchMode, str]] = ..., model_fingerprint: _Optional[str] = ...) -> None: ...

class ScoreParts(_message.Message):
    __slots__ = ("relevance", "priority", "recency", "usage")
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    relevance: float
    priority: float
    recency: float
    usage: float
    def __init__(self, relevance: _Optional[float] = ..., priority: _Optional[float] = ..., recency: _Optional[float] = ..., usage: _Optional[float] = ...) -> None: ...

class RecallItem(_message.Message):
    __slots__ = ("cube", "kind", "score", "parts", "tokens")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[RecallItem.Kind]
        KIND_PLAINTEXT: _ClassVar[RecallItem.Kind]
        KIND_ACTIVATION: _ClassVar[RecallItem.Kind]
        KIND_PARAMETRIC: _ClassVar[RecallItem.Kind]
    KIND_UNSPECIFIED: RecallItem.Kind
    KIND_PLAINTEXT: RecallItem.Kind
    KIND_ACTIVATION: RecallItem.Kind
    KIND_PARAMETRIC: RecallItem.Kind
    CUBE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    cube: _cube_pb2.MemCube
    kind: RecallItem.Kind
    score: float
    parts: ScoreParts
    tokens: int
    def __init__(self, cube: _Optional[_Union[_cube_pb2.MemCube, _Mapping]] = ..., kind: _Optional[_Union[RecallItem.Kind, str]] = ..., score: _Optional[float] = ..., parts: _Optional[_Union[ScoreParts, _Mapping]] = ..., tokens: _Optional[int] = ...) -> None: ...

class RecallPlan(_message.Message):
    __slots__ = ("items", "token_budget", "tokens_used", "tokenizer", "candidate_count", "over_budget_count")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OVER_BUDGET_COUNT_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RecallItem]
    token_budget: int
    tokens_used: int
    tokenizer: str
    candidate_count: int
    over_budget_count: int
    def __init__(self, items: _Optional[_Iterable[_Union[RecallItem, _Mapping]]] = ..., token_budget: _Optional[int] = ..., tokens_used: _Optional[int] = ..., tokenizer: _Optional[str] = ..., candidate_count: _Optional[int] = ..., over_budget_count: _Optional[int] = ...) -> None: ...

class TransformCubeRequest(_message.Message):
    __slots__ = ("parent", "names", "target_type", "cube_id", "training")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    CUBE_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    parent: str
    names: _containers.RepeatedScalarFieldContainer[str]
    target_type: _cube_pb2.MemoryType
    cube_id: str
    training: LoraTraining
    def __init__(self, parent: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., target_type: _Optional[_Union[_cube_pb2.MemoryType, str]] = ..., cube_id: _Optional[str] = ..., training: _Optional[_Union[LoraTraining, _Mapping]] = ...) -> None: ...

class LoraTraining(_message.Message):
    __slots__ = ("steps", "learning_rate", "rank", "target_modules", "seed")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    steps: int
    learning_rate: float
    rank: int
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., rank: _Optional[int] = ..., target_modules: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("name", "state", "done", "request", "step", "total_steps", "initial_loss", "loss", "creator", "create_time", "update_time", "end_time", "cube", "error")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Operation.State]
        STATE_QUEUED: _ClassVar[Operation.State]
        STATE_RUNNING: _ClassVar[Operation.State]
        STATE_SUCCEEDED: _ClassVar[Operation.State]
        STATE_FAILED: _ClassVar[Operation.State]
        STATE_CANCELLED: _ClassVar[Operation.State]
    STATE_UNSPECIFIED: Operation.State
    STATE_QUEUED: Operation.State
    STATE_RUNNING: Operation.State
    STATE_SUCCEEDED: Operation.State
    STATE_FAILED: Operation.State
    STATE_CANCELLED: Operation.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CUBE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: Operation.State
    done: bool
    request: TransformCubeRequest
    step: int
    total_steps: int
    initial_loss: float
    loss: float
    creator: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    cube: str
    error: OperationError
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[Operation.State, str]] = ..., done: _Optional[bool] = ..., request: _Optional[_Union[TransformCubeRequest, _Mapping]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., initial_loss: _Optional[float] = ..., loss: _Optional[float] = ..., creator: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cube: _Optional[str] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ...) -> None: ...

class OperationError(_message.Message):
    __slots__ = ("code", "message", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("fingerprint", "model_type", "num_layers", "num_kv_heads", "head_dim", "dtype", "parameter_count", "max_positions", "default_target_modules")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    NUM_KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    model_type: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    parameter_count: int
    max_positions: int
    default_target_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fingerprint: _Optional[str] = ..., model_type: _Optional[str] = ..., num_layers: _Optional[int] = ..., num_kv_heads: _Optional[int] = ..., head_dim: _Optional[int] = ..., dtype: _Optional[str] = ..., parameter_count: _Optional[int] = ..., max_positions: _Optional[int] = ..., default_target_modules: _Optional[_Iterable[str]] = ...) -> None: ...
