from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_FORMAT_UNSPECIFIED: _ClassVar[TextFormat]
    TEXT_FORMAT_PLAIN: _ClassVar[TextFormat]
    TEXT_FORMAT_STORABLE: _ClassVar[TextFormat]
    TEXT_FORMAT_UUID: _ClassVar[TextFormat]
    TEXT_FORMAT_EMAIL: _ClassVar[TextFormat]
    TEXT_FORMAT_COUNTRY: _ClassVar[TextFormat]
    TEXT_FORMAT_ENTITY_ID: _ClassVar[TextFormat]
    TEXT_FORMAT_OWNER_ID: _ClassVar[TextFormat]
    TEXT_FORMAT_TIME_ZONE: _ClassVar[TextFormat]
TEXT_FORMAT_UNSPECIFIED: TextFormat
TEXT_FORMAT_PLAIN: TextFormat
TEXT_FORMAT_STORABLE: TextFormat
TEXT_FORMAT_UUID: TextFormat
TEXT_FORMAT_EMAIL: TextFormat
TEXT_FORMAT_COUNTRY: TextFormat
TEXT_FORMAT_ENTITY_ID: TextFormat
TEXT_FORMAT_OWNER_ID: TextFormat
TEXT_FORMAT_TIME_ZONE: TextFormat
REQUIRED_ONEOF_FIELD_NUMBER: _ClassVar[int]
required_oneof: _descriptor.FieldDescriptor
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor

class FieldRules(_message.Message):
    __slots__ = ("min_chars", "max_chars", "format", "min_items", "max_items", "min", "max", "items", "keys", "flat")
    MIN_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MIN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    FLAT_FIELD_NUMBER: _ClassVar[int]
    min_chars: int
    max_chars: int
    format: TextFormat
    min_items: int
    max_items: int
    min: int
    max: int
    items: FieldRules
    keys: FieldRules
    flat: bool
    def __init__(self, min_chars: _Optional[int] = ..., max_chars: _Optional[int] = ..., format: _Optional[_Union[TextFormat, str]] = ..., min_items: _Optional[int] = ..., max_items: _Optional[int] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., items: _Optional[_Union[FieldRules, _Mapping]] = ..., keys: _Optional[_Union[FieldRules, _Mapping]] = ..., flat: _Optional[bool] = ...) -> None: ...
