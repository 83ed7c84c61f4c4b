import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kith.v1 import common_pb2 as _common_pb2
from kith.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("id", "keys", "name", "traits", "company_memberships", "last_seen_at", "created_at", "updated_at")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    COMPANY_MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    keys: _containers.ScalarMap[str, str]
    name: str
    traits: _struct_pb2.Struct
    company_memberships: _containers.RepeatedCompositeFieldContainer[CompanyMembership]
    last_seen_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., keys: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., company_memberships: _Optional[_Iterable[_Union[CompanyMembership, _Mapping]]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Company(_message.Message):
    __slots__ = ("id", "keys", "name", "traits", "last_seen_at", "created_at", "updated_at")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    keys: _containers.ScalarMap[str, str]
    name: str
    traits: _struct_pb2.Struct
    last_seen_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., keys: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompanyMembership(_message.Message):
    __slots__ = ("id", "company_id", "user_id", "role", "company", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    company_id: str
    user_id: str
    role: _common_pb2.MemberRole
    company: Company
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., company_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.MemberRole, str]] = ..., company: _Optional[_Union[Company, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompanyKeys(_message.Message):
    __slots__ = ("keys",)
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpsertUserRequest(_message.Message):
    __slots__ = ("id", "keys", "name", "traits", "last_seen_at", "update_only", "company", "company_id", "companies", "company_ids", "replace_companies")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANIES_FIELD_NUMBER: _ClassVar[int]
    COMPANY_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_COMPANIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    keys: _containers.ScalarMap[str, str]
    name: str
    traits: _struct_pb2.Struct
    last_seen_at: _timestamp_pb2.Timestamp
    update_only: bool
    company: CompanyKeys
    company_id: str
    companies: _containers.RepeatedCompositeFieldContainer[CompanyKeys]
    company_ids: _containers.RepeatedScalarFieldContainer[str]
    replace_companies: bool
    def __init__(self, id: _Optional[str] = ..., keys: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_only: _Optional[bool] = ..., company: _Optional[_Union[CompanyKeys, _Mapping]] = ..., company_id: _Optional[str] = ..., companies: _Optional[_Iterable[_Union[CompanyKeys, _Mapping]]] = ..., company_ids: _Optional[_Iterable[str]] = ..., replace_companies: _Optional[bool] = ...) -> None: ...

class UpsertUserResponse(_message.Message):
    __slots__ = ("user", "created")
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    user: User
    created: bool
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class LookupUserRequest(_message.Message):
    __slots__ = ("keys",)
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LookupUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "company_id", "query")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    company_id: str
    query: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., company_id: _Optional[str] = ..., query: _Optional[str] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users", "next_page_token", "change_cursor")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHANGE_CURSOR_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    next_page_token: str
    change_cursor: str
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., change_cursor: _Optional[str] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("id", "keys")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    id: str
    keys: CompanyKeys
    def __init__(self, id: _Optional[str] = ..., keys: _Optional[_Union[CompanyKeys, _Mapping]] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class UpsertUserTraitRequest(_message.Message):
    __slots__ = ("keys", "trait", "incr", "set", "update_only")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    INCR_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    trait: str
    incr: int
    set: str
    update_only: bool
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ..., trait: _Optional[str] = ..., incr: _Optional[int] = ..., set: _Optional[str] = ..., update_only: _Optional[bool] = ...) -> None: ...

class UpsertUserTraitResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class UpsertCompanyRequest(_message.Message):
    __slots__ = ("id", "keys", "name", "traits", "last_seen_at", "update_only")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    keys: _containers.ScalarMap[str, str]
    name: str
    traits: _struct_pb2.Struct
    last_seen_at: _timestamp_pb2.Timestamp
    update_only: bool
    def __init__(self, id: _Optional[str] = ..., keys: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_only: _Optional[bool] = ...) -> None: ...

class UpsertCompanyResponse(_message.Message):
    __slots__ = ("company", "created")
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    company: Company
    created: bool
    def __init__(self, company: _Optional[_Union[Company, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetCompanyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetCompanyResponse(_message.Message):
    __slots__ = ("company",)
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    company: Company
    def __init__(self, company: _Optional[_Union[Company, _Mapping]] = ...) -> None: ...

class LookupCompanyRequest(_message.Message):
    __slots__ = ("keys",)
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LookupCompanyResponse(_message.Message):
    __slots__ = ("company",)
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    company: Company
    def __init__(self, company: _Optional[_Union[Company, _Mapping]] = ...) -> None: ...

class DeleteCompanyRequest(_message.Message):
    __slots__ = ("keys",)
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeleteCompanyResponse(_message.Message):
    __slots__ = ("company",)
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    company: Company
    def __init__(self, company: _Optional[_Union[Company, _Mapping]] = ...) -> None: ...

class UpsertCompanyTraitRequest(_message.Message):
    __slots__ = ("keys", "trait", "incr", "set", "update_only")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    INCR_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.ScalarMap[str, str]
    trait: str
    incr: int
    set: str
    update_only: bool
    def __init__(self, keys: _Optional[_Mapping[str, str]] = ..., trait: _Optional[str] = ..., incr: _Optional[int] = ..., set: _Optional[str] = ..., update_only: _Optional[bool] = ...) -> None: ...

class UpsertCompanyTraitResponse(_message.Message):
    __slots__ = ("company",)
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    company: Company
    def __init__(self, company: _Optional[_Union[Company, _Mapping]] = ...) -> None: ...

class GetOrCreateCompanyMembershipRequest(_message.Message):
    __slots__ = ("company_id", "user_id")
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    company_id: str
    user_id: str
    def __init__(self, company_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class GetOrCreateCompanyMembershipResponse(_message.Message):
    __slots__ = ("membership", "created")
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    membership: CompanyMembership
    created: bool
    def __init__(self, membership: _Optional[_Union[CompanyMembership, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListCompanyMembershipsRequest(_message.Message):
    __slots__ = ("company_id", "user_id", "page_size", "page_token")
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    company_id: str
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, company_id: _Optional[str] = ..., user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCompanyMembershipsResponse(_message.Message):
    __slots__ = ("memberships", "next_page_token", "change_cursor")
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHANGE_CURSOR_FIELD_NUMBER: _ClassVar[int]
    memberships: _containers.RepeatedCompositeFieldContainer[CompanyMembership]
    next_page_token: str
    change_cursor: str
    def __init__(self, memberships: _Optional[_Iterable[_Union[CompanyMembership, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., change_cursor: _Optional[str] = ...) -> None: ...

class DeleteCompanyMembershipRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteCompanyMembershipResponse(_message.Message):
    __slots__ = ("membership",)
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    membership: CompanyMembership
    def __init__(self, membership: _Optional[_Union[CompanyMembership, _Mapping]] = ...) -> None: ...
