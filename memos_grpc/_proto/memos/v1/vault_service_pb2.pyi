from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from memos_grpc._proto.memos.v1 import cube_pb2 as _cube_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_DENSE: _ClassVar[SearchMode]
    SEARCH_MODE_LEXICAL: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_DENSE: SearchMode
SEARCH_MODE_LEXICAL: SearchMode
SEARCH_MODE_HYBRID: SearchMode

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class CreateCubeRequest(_message.Message):
    __slots__ = ("parent", "cube_id", "cube", "vector", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CUBE_ID_FIELD_NUMBER: _ClassVar[int]
    CUBE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    cube_id: str
    cube: _cube_pb2.MemCube
    vector: Vector
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., cube_id: _Optional[str] = ..., cube: _Optional[_Union[_cube_pb2.MemCube, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class BatchCreateCubesRequest(_message.Message):
    __slots__ = ("parent", "requests")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    requests: _containers.RepeatedCompositeFieldContainer[CreateCubeRequest]
    def __init__(self, parent: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[CreateCubeRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateCubesResponse(_message.Message):
    __slots__ = ("cubes",)
    CUBES_FIELD_NUMBER: _ClassVar[int]
    cubes: _containers.RepeatedCompositeFieldContainer[_cube_pb2.MemCube]
    def __init__(self, cubes: _Optional[_Iterable[_Union[_cube_pb2.MemCube, _Mapping]]] = ...) -> None: ...

class GetCubeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCubesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter", "show_expired")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SHOW_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    show_expired: bool
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., show_expired: _Optional[bool] = ...) -> None: ...

class ListCubesResponse(_message.Message):
    __slots__ = ("cubes", "next_page_token")
    CUBES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cubes: _containers.RepeatedCompositeFieldContainer[_cube_pb2.MemCube]
    next_page_token: str
    def __init__(self, cubes: _Optional[_Iterable[_Union[_cube_pb2.MemCube, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCubeRequest(_message.Message):
    __slots__ = ("cube", "update_mask", "vector")
    CUBE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    cube: _cube_pb2.MemCube
    update_mask: _field_mask_pb2.FieldMask
    vector: Vector
    def __init__(self, cube: _Optional[_Union[_cube_pb2.MemCube, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class DeleteCubeRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class SearchCubesRequest(_message.Message):
    __slots__ = ("parent", "text", "vector", "filter", "top_k", "include_archived", "mode")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    text: str
    vector: Vector
    filter: str
    top_k: int
    include_archived: bool
    mode: SearchMode
    def __init__(self, parent: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., filter: _Optional[str] = ..., top_k: _Optional[int] = ..., include_archived: _Optional[bool] = ..., mode: _Optional[_Union[SearchMode, str]] = ...) -> None: ...

class ScoredCube(_message.Message):
    __slots__ = ("cube", "score")
    CUBE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    cube: _cube_pb2.MemCube
    score: float
    def __init__(self, cube: _Optional[_Union[_cube_pb2.MemCube, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchCubesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoredCube]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoredCube, _Mapping]]] = ...) -> None: ...

class WritePayloadRequest(_message.Message):
    __slots__ = ("parent", "expected_digest", "expected_size", "media_type", "data")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    parent: str
    expected_digest: str
    expected_size: int
    media_type: str
    data: bytes
    def __init__(self, parent: _Optional[str] = ..., expected_digest: _Optional[str] = ..., expected_size: _Optional[int] = ..., media_type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class WritePayloadResponse(_message.Message):
    __slots__ = ("blob",)
    BLOB_FIELD_NUMBER: _ClassVar[int]
    blob: _cube_pb2.BlobRef
    def __init__(self, blob: _Optional[_Union[_cube_pb2.BlobRef, _Mapping]] = ...) -> None: ...

class ReadPayloadRequest(_message.Message):
    __slots__ = ("name", "read_offset", "read_limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    READ_OFFSET_FIELD_NUMBER: _ClassVar[int]
    READ_LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    read_offset: int
    read_limit: int
    def __init__(self, name: _Optional[str] = ..., read_offset: _Optional[int] = ..., read_limit: _Optional[int] = ...) -> None: ...

class ReadPayloadResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ListCubeVersionsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCubeVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_cube_pb2.MemCube]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[_cube_pb2.MemCube, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RollbackCubeRequest(_message.Message):
    __slots__ = ("name", "version", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    etag: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class FreezeCubeRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class UnfreezeCubeRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ArchiveCubeRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class MergeCubesRequest(_message.Message):
    __slots__ = ("parent", "names", "cube_id", "cube", "vector")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    CUBE_ID_FIELD_NUMBER: _ClassVar[int]
    CUBE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    parent: str
    names: _containers.RepeatedScalarFieldContainer[str]
    cube_id: str
    cube: _cube_pb2.MemCube
    vector: Vector
    def __init__(self, parent: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., cube_id: _Optional[str] = ..., cube: _Optional[_Union[_cube_pb2.MemCube, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...
