import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ROLE_UNSPECIFIED: _ClassVar[KeyRole]
    KEY_ROLE_ADMIN: _ClassVar[KeyRole]
    KEY_ROLE_NODE: _ClassVar[KeyRole]
    KEY_ROLE_PUBLISHER: _ClassVar[KeyRole]
    KEY_ROLE_MARKETPLACE: _ClassVar[KeyRole]
KEY_ROLE_UNSPECIFIED: KeyRole
KEY_ROLE_ADMIN: KeyRole
KEY_ROLE_NODE: KeyRole
KEY_ROLE_PUBLISHER: KeyRole
KEY_ROLE_MARKETPLACE: KeyRole

class TrustedKey(_message.Message):
    __slots__ = ("key_id", "public_key", "name", "not_before", "not_after", "revoke_time")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key: bytes
    name: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., name: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrustRole(_message.Message):
    __slots__ = ("role", "key_ids", "threshold")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    role: KeyRole
    key_ids: _containers.RepeatedScalarFieldContainer[str]
    threshold: int
    def __init__(self, role: _Optional[_Union[KeyRole, str]] = ..., key_ids: _Optional[_Iterable[str]] = ..., threshold: _Optional[int] = ...) -> None: ...

class TrustRoot(_message.Message):
    __slots__ = ("version", "expire_time", "keys", "roles", "signed_envelope", "log_policies")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    SIGNED_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    LOG_POLICIES_FIELD_NUMBER: _ClassVar[int]
    version: int
    expire_time: _timestamp_pb2.Timestamp
    keys: _containers.RepeatedCompositeFieldContainer[TrustedKey]
    roles: _containers.RepeatedCompositeFieldContainer[TrustRole]
    signed_envelope: bytes
    log_policies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[TrustedKey, _Mapping]]] = ..., roles: _Optional[_Iterable[_Union[TrustRole, _Mapping]]] = ..., signed_envelope: _Optional[bytes] = ..., log_policies: _Optional[_Iterable[str]] = ...) -> None: ...
