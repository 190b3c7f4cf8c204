import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEvent(_message.Message):
    __slots__ = ("name", "sequence", "time", "principal", "method", "resource", "outcome", "status_code", "reason", "previous_hash", "hash")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[AuditEvent.Outcome]
        OUTCOME_OK: _ClassVar[AuditEvent.Outcome]
        OUTCOME_DENIED: _ClassVar[AuditEvent.Outcome]
        OUTCOME_FAILED: _ClassVar[AuditEvent.Outcome]
    OUTCOME_UNSPECIFIED: AuditEvent.Outcome
    OUTCOME_OK: AuditEvent.Outcome
    OUTCOME_DENIED: AuditEvent.Outcome
    OUTCOME_FAILED: AuditEvent.Outcome
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    name: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    principal: str
    method: str
    resource: str
    outcome: AuditEvent.Outcome
    status_code: str
    reason: str
    previous_hash: str
    hash: str
    def __init__(self, name: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., method: _Optional[str] = ..., resource: _Optional[str] = ..., outcome: _Optional[_Union[AuditEvent.Outcome, str]] = ..., status_code: _Optional[str] = ..., reason: _Optional[str] = ..., previous_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...
