import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as _interchange_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HeldLicenseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HELD_LICENSE_STATE_UNSPECIFIED: _ClassVar[HeldLicenseState]
    HELD_LICENSE_STATE_ACTIVE: _ClassVar[HeldLicenseState]
    HELD_LICENSE_STATE_SUSPENDED: _ClassVar[HeldLicenseState]
    HELD_LICENSE_STATE_EXPIRED: _ClassVar[HeldLicenseState]
    HELD_LICENSE_STATE_REVOKED: _ClassVar[HeldLicenseState]
HELD_LICENSE_STATE_UNSPECIFIED: HeldLicenseState
HELD_LICENSE_STATE_ACTIVE: HeldLicenseState
HELD_LICENSE_STATE_SUSPENDED: HeldLicenseState
HELD_LICENSE_STATE_EXPIRED: HeldLicenseState
HELD_LICENSE_STATE_REVOKED: HeldLicenseState

class ActionUse(_message.Message):
    __slots__ = ("action", "uses", "limit", "allowed", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: str
    uses: int
    limit: int
    allowed: bool
    reason: str
    def __init__(self, action: _Optional[str] = ..., uses: _Optional[int] = ..., limit: _Optional[int] = ..., allowed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class HeldLicense(_message.Message):
    __slots__ = ("name", "release", "license", "licensee", "licensee_key_id", "terms", "not_before", "not_after", "log_origin", "grant_log_index", "publish_log_index", "state", "state_reason", "actions", "release_yanked", "cube_count", "import_time", "grant")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    LICENSEE_FIELD_NUMBER: _ClassVar[int]
    LICENSEE_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    GRANT_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_YANKED_FIELD_NUMBER: _ClassVar[int]
    CUBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    IMPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    release: str
    license: str
    licensee: str
    licensee_key_id: str
    terms: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    log_origin: str
    grant_log_index: int
    publish_log_index: int
    state: HeldLicenseState
    state_reason: str
    actions: _containers.RepeatedCompositeFieldContainer[ActionUse]
    release_yanked: bool
    cube_count: int
    import_time: _timestamp_pb2.Timestamp
    grant: bytes
    def __init__(self, name: _Optional[str] = ..., release: _Optional[str] = ..., license: _Optional[str] = ..., licensee: _Optional[str] = ..., licensee_key_id: _Optional[str] = ..., terms: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., log_origin: _Optional[str] = ..., grant_log_index: _Optional[int] = ..., publish_log_index: _Optional[int] = ..., state: _Optional[_Union[HeldLicenseState, str]] = ..., state_reason: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[ActionUse, _Mapping]]] = ..., release_yanked: _Optional[bool] = ..., cube_count: _Optional[int] = ..., import_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., grant: _Optional[bytes] = ...) -> None: ...

class GetHeldLicenseRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListHeldLicensesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHeldLicensesResponse(_message.Message):
    __slots__ = ("held_licenses", "next_page_token")
    HELD_LICENSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    held_licenses: _containers.RepeatedCompositeFieldContainer[HeldLicense]
    next_page_token: str
    def __init__(self, held_licenses: _Optional[_Iterable[_Union[HeldLicense, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class FollowedLog(_message.Message):
    __slots__ = ("origin", "tree_size", "root_hash", "checkpoint", "fresh_time", "sync_time", "last_error_reason", "last_error")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    FRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    origin: str
    tree_size: int
    root_hash: bytes
    checkpoint: str
    fresh_time: _timestamp_pb2.Timestamp
    sync_time: _timestamp_pb2.Timestamp
    last_error_reason: str
    last_error: str
    def __init__(self, origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., checkpoint: _Optional[str] = ..., fresh_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error_reason: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class ImportReleaseRequest(_message.Message):
    __slots__ = ("parent", "license", "marketplace_token", "conflict_policy")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    MARKETPLACE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    license: str
    marketplace_token: str
    conflict_policy: _interchange_service_pb2.ConflictPolicy
    def __init__(self, parent: _Optional[str] = ..., license: _Optional[str] = ..., marketplace_token: _Optional[str] = ..., conflict_policy: _Optional[_Union[_interchange_service_pb2.ConflictPolicy, str]] = ...) -> None: ...

class SyncMarketplaceLogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFollowedLogsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFollowedLogsResponse(_message.Message):
    __slots__ = ("logs",)
    LOGS_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[FollowedLog]
    def __init__(self, logs: _Optional[_Iterable[_Union[FollowedLog, _Mapping]]] = ...) -> None: ...
