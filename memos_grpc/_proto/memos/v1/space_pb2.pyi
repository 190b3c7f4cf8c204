import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Space(_message.Message):
    __slots__ = ("name", "display_name", "description", "create_time", "update_time", "labels", "etag", "vector_dimension", "cube_count", "owner", "default_ttl", "redaction_rules")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    VECTOR_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    CUBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TTL_FIELD_NUMBER: _ClassVar[int]
    REDACTION_RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    etag: str
    vector_dimension: int
    cube_count: int
    owner: str
    default_ttl: _duration_pb2.Duration
    redaction_rules: _containers.RepeatedCompositeFieldContainer[RedactionRule]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., etag: _Optional[str] = ..., vector_dimension: _Optional[int] = ..., cube_count: _Optional[int] = ..., owner: _Optional[str] = ..., default_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., redaction_rules: _Optional[_Iterable[_Union[RedactionRule, _Mapping]]] = ...) -> None: ...

class RedactionRule(_message.Message):
    __slots__ = ("sensitivity_label", "action", "audience")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[RedactionRule.Action]
        ACTION_WITHHOLD: _ClassVar[RedactionRule.Action]
        ACTION_REDACT_TEXT: _ClassVar[RedactionRule.Action]
    ACTION_UNSPECIFIED: RedactionRule.Action
    ACTION_WITHHOLD: RedactionRule.Action
    ACTION_REDACT_TEXT: RedactionRule.Action
    class Audience(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        AUDIENCE_UNSPECIFIED: _ClassVar[RedactionRule.Audience]
        AUDIENCE_VIEWERS: _ClassVar[RedactionRule.Audience]
        AUDIENCE_EXPORT: _ClassVar[RedactionRule.Audience]
    AUDIENCE_UNSPECIFIED: RedactionRule.Audience
    AUDIENCE_VIEWERS: RedactionRule.Audience
    AUDIENCE_EXPORT: RedactionRule.Audience
    SENSITIVITY_LABEL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    sensitivity_label: str
    action: RedactionRule.Action
    audience: RedactionRule.Audience
    def __init__(self, sensitivity_label: _Optional[str] = ..., action: _Optional[_Union[RedactionRule.Action, str]] = ..., audience: _Optional[_Union[RedactionRule.Audience, str]] = ...) -> None: ...
