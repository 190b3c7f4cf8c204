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
    __slots__ = ("parent", "query", "token_budget", "types", "filter", "max_items", "mode")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    query: str
    token_budget: int
    types: _containers.RepeatedScalarFieldContainer[_cube_pb2.MemoryType]
    filter: str
    max_items: int
    mode: _vault_service_pb2.SearchMode
    def __init__(self, parent: _Optional[str] = ..., query: _Optional[str] = ..., token_budget: _Optional[int] = ..., types: _Optional[_Iterable[_Union[_cube_pb2.MemoryType, str]]] = ..., filter: _Optional[str] = ..., max_items: _Optional[int] = ..., mode: _Optional[_Union[_vault_service_pb2.SearchMode, str]] = ...) -> None: ...

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
