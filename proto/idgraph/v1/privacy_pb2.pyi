import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsentEntry(_message.Message):
    __slots__ = ("entry_id", "subject", "purpose", "purpose_version", "status", "legal_basis", "source", "collection_point", "method", "notice_version", "jurisdiction", "captured_at", "received_at", "actor", "region", "event_id")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_POINT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    subject: str
    purpose: str
    purpose_version: int
    status: str
    legal_basis: str
    source: str
    collection_point: str
    method: str
    notice_version: str
    jurisdiction: str
    captured_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    actor: str
    region: str
    event_id: str
    def __init__(self, entry_id: _Optional[str] = ..., subject: _Optional[str] = ..., purpose: _Optional[str] = ..., purpose_version: _Optional[int] = ..., status: _Optional[str] = ..., legal_basis: _Optional[str] = ..., source: _Optional[str] = ..., collection_point: _Optional[str] = ..., method: _Optional[str] = ..., notice_version: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., region: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class RecordConsentRequest(_message.Message):
    __slots__ = ("identifier", "purpose", "status", "legal_basis", "source", "collection_point", "method", "notice_version", "jurisdiction", "captured_at")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RecordConsentRequest.Status]
        GRANTED: _ClassVar[RecordConsentRequest.Status]
        DENIED: _ClassVar[RecordConsentRequest.Status]
        WITHDRAWN: _ClassVar[RecordConsentRequest.Status]
    STATUS_UNSPECIFIED: RecordConsentRequest.Status
    GRANTED: RecordConsentRequest.Status
    DENIED: RecordConsentRequest.Status
    WITHDRAWN: RecordConsentRequest.Status
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_POINT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    purpose: str
    status: RecordConsentRequest.Status
    legal_basis: str
    source: str
    collection_point: str
    method: str
    notice_version: str
    jurisdiction: str
    captured_at: _timestamp_pb2.Timestamp
    def __init__(self, identifier: _Optional[str] = ..., purpose: _Optional[str] = ..., status: _Optional[_Union[RecordConsentRequest.Status, str]] = ..., legal_basis: _Optional[str] = ..., source: _Optional[str] = ..., collection_point: _Optional[str] = ..., method: _Optional[str] = ..., notice_version: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurposeConsent(_message.Message):
    __slots__ = ("purpose", "state", "allowed", "entry_id", "captured_at")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    state: str
    allowed: bool
    entry_id: str
    captured_at: _timestamp_pb2.Timestamp
    def __init__(self, purpose: _Optional[str] = ..., state: _Optional[str] = ..., allowed: _Optional[bool] = ..., entry_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordConsentResponse(_message.Message):
    __slots__ = ("entry", "profile_id", "consent")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    entry: ConsentEntry
    profile_id: str
    consent: _containers.RepeatedCompositeFieldContainer[PurposeConsent]
    def __init__(self, entry: _Optional[_Union[ConsentEntry, _Mapping]] = ..., profile_id: _Optional[str] = ..., consent: _Optional[_Iterable[_Union[PurposeConsent, _Mapping]]] = ...) -> None: ...

class GetConsentRequest(_message.Message):
    __slots__ = ("identifier", "profile_id", "history_limit")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    profile_id: str
    history_limit: int
    def __init__(self, identifier: _Optional[str] = ..., profile_id: _Optional[str] = ..., history_limit: _Optional[int] = ...) -> None: ...

class GetConsentResponse(_message.Message):
    __slots__ = ("profile_id", "region", "consent", "history")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    region: str
    consent: _containers.RepeatedCompositeFieldContainer[PurposeConsent]
    history: _containers.RepeatedCompositeFieldContainer[ConsentEntry]
    def __init__(self, profile_id: _Optional[str] = ..., region: _Optional[str] = ..., consent: _Optional[_Iterable[_Union[PurposeConsent, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[ConsentEntry, _Mapping]]] = ...) -> None: ...

class ListPurposesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Purpose(_message.Message):
    __slots__ = ("name", "version", "description", "legal_basis", "opt_in_regions", "expiry_days", "attributes", "event_types")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    OPT_IN_REGIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_DAYS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    description: str
    legal_basis: str
    opt_in_regions: _containers.RepeatedScalarFieldContainer[str]
    expiry_days: int
    attributes: _containers.RepeatedScalarFieldContainer[str]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., legal_basis: _Optional[str] = ..., opt_in_regions: _Optional[_Iterable[str]] = ..., expiry_days: _Optional[int] = ..., attributes: _Optional[_Iterable[str]] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPurposesResponse(_message.Message):
    __slots__ = ("purposes", "registry_version")
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_VERSION_FIELD_NUMBER: _ClassVar[int]
    purposes: _containers.RepeatedCompositeFieldContainer[Purpose]
    registry_version: int
    def __init__(self, purposes: _Optional[_Iterable[_Union[Purpose, _Mapping]]] = ..., registry_version: _Optional[int] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("identifier", "profile_id", "reason")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    profile_id: str
    reason: str
    def __init__(self, identifier: _Optional[str] = ..., profile_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForgetStatus(_message.Message):
    __slots__ = ("request_id", "status", "profile_ids", "erased", "suppressed", "requested_at", "updated_at", "error")
    class ErasedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: str
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    erased: _containers.ScalarMap[str, int]
    suppressed: int
    requested_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    error: str
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[str] = ..., profile_ids: _Optional[_Iterable[str]] = ..., erased: _Optional[_Mapping[str, int]] = ..., suppressed: _Optional[int] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class GetForgetStatusRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class UnsuppressRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UnsuppressResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class ExportSubjectRequest(_message.Message):
    __slots__ = ("identifier", "profile_id")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    profile_id: str
    def __init__(self, identifier: _Optional[str] = ..., profile_id: _Optional[str] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ListForgetRequestsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListForgetRequestsResponse(_message.Message):
    __slots__ = ("requests", "next_page_token")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ForgetStatus]
    next_page_token: str
    def __init__(self, requests: _Optional[_Iterable[_Union[ForgetStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
