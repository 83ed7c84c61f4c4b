import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kith.v1 import customers_pb2 as _customers_pb2
from kith.v1 import entities_pb2 as _entities_pb2
from kith.v1 import people_pb2 as _people_pb2
from kith.v1 import rules_pb2 as _rules_pb2
from kith.v1 import users_pb2 as _users_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_CUSTOMER: _ClassVar[ChangeKind]
    CHANGE_KIND_ENTITY: _ClassVar[ChangeKind]
    CHANGE_KIND_ENTITY_TYPE: _ClassVar[ChangeKind]
    CHANGE_KIND_PERSON: _ClassVar[ChangeKind]
    CHANGE_KIND_USER: _ClassVar[ChangeKind]
    CHANGE_KIND_COMPANY: _ClassVar[ChangeKind]
    CHANGE_KIND_MEMBERSHIP: _ClassVar[ChangeKind]

class ChangeOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_OPERATION_UNSPECIFIED: _ClassVar[ChangeOperation]
    CHANGE_OPERATION_CREATED: _ClassVar[ChangeOperation]
    CHANGE_OPERATION_UPDATED: _ClassVar[ChangeOperation]
    CHANGE_OPERATION_DELETED: _ClassVar[ChangeOperation]
    CHANGE_OPERATION_ARCHIVED: _ClassVar[ChangeOperation]
    CHANGE_OPERATION_UNARCHIVED: _ClassVar[ChangeOperation]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_CUSTOMER: ChangeKind
CHANGE_KIND_ENTITY: ChangeKind
CHANGE_KIND_ENTITY_TYPE: ChangeKind
CHANGE_KIND_PERSON: ChangeKind
CHANGE_KIND_USER: ChangeKind
CHANGE_KIND_COMPANY: ChangeKind
CHANGE_KIND_MEMBERSHIP: ChangeKind
CHANGE_OPERATION_UNSPECIFIED: ChangeOperation
CHANGE_OPERATION_CREATED: ChangeOperation
CHANGE_OPERATION_UPDATED: ChangeOperation
CHANGE_OPERATION_DELETED: ChangeOperation
CHANGE_OPERATION_ARCHIVED: ChangeOperation
CHANGE_OPERATION_UNARCHIVED: ChangeOperation

class Change(_message.Message):
    __slots__ = ("seq", "kind", "operation", "record_id", "external_id", "owner_id", "revision", "api_key_id", "committed_at", "customer", "entity", "entity_type", "person", "user", "company", "membership")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERSON_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: ChangeKind
    operation: ChangeOperation
    record_id: str
    external_id: str
    owner_id: str
    revision: int
    api_key_id: str
    committed_at: _timestamp_pb2.Timestamp
    customer: _customers_pb2.Customer
    entity: _entities_pb2.Entity
    entity_type: _entities_pb2.EntityType
    person: _people_pb2.Person
    user: _users_pb2.User
    company: _users_pb2.Company
    membership: _users_pb2.CompanyMembership
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., operation: _Optional[_Union[ChangeOperation, str]] = ..., record_id: _Optional[str] = ..., external_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., revision: _Optional[int] = ..., api_key_id: _Optional[str] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer: _Optional[_Union[_customers_pb2.Customer, _Mapping]] = ..., entity: _Optional[_Union[_entities_pb2.Entity, _Mapping]] = ..., entity_type: _Optional[_Union[_entities_pb2.EntityType, _Mapping]] = ..., person: _Optional[_Union[_people_pb2.Person, _Mapping]] = ..., user: _Optional[_Union[_users_pb2.User, _Mapping]] = ..., company: _Optional[_Union[_users_pb2.Company, _Mapping]] = ..., membership: _Optional[_Union[_users_pb2.CompanyMembership, _Mapping]] = ...) -> None: ...

class ChangeFilter(_message.Message):
    __slots__ = ("kinds", "owner_id", "record_id")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[ChangeKind]
    owner_id: str
    record_id: str
    def __init__(self, kinds: _Optional[_Iterable[_Union[ChangeKind, str]]] = ..., owner_id: _Optional[str] = ..., record_id: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("filter", "cursor", "max_changes")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANGES_FIELD_NUMBER: _ClassVar[int]
    filter: ChangeFilter
    cursor: str
    max_changes: int
    def __init__(self, filter: _Optional[_Union[ChangeFilter, _Mapping]] = ..., cursor: _Optional[str] = ..., max_changes: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("changes", "cursor")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    cursor: str
    def __init__(self, changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListChangesRequest(_message.Message):
    __slots__ = ("filter", "cursor", "page_size")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    filter: ChangeFilter
    cursor: str
    page_size: int
    def __init__(self, filter: _Optional[_Union[ChangeFilter, _Mapping]] = ..., cursor: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListChangesResponse(_message.Message):
    __slots__ = ("changes", "next_cursor")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    next_cursor: str
    def __init__(self, changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...
