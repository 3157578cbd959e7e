import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttributeValue(_message.Message):
    __slots__ = ("value", "source", "record_key", "observed_at", "rule")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    value: str
    source: str
    record_key: str
    observed_at: _timestamp_pb2.Timestamp
    rule: str
    def __init__(self, value: _Optional[str] = ..., source: _Optional[str] = ..., record_key: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class ProfileIdentifier(_message.Message):
    __slots__ = ("identifier", "type", "first_seen", "last_seen", "sources", "linked")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    type: str
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    sources: _containers.RepeatedScalarFieldContainer[str]
    linked: bool
    def __init__(self, identifier: _Optional[str] = ..., type: _Optional[str] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sources: _Optional[_Iterable[str]] = ..., linked: _Optional[bool] = ...) -> None: ...

class SourceCounter(_message.Message):
    __slots__ = ("source", "event_count", "record_count", "first_seen", "last_seen")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    source: str
    event_count: int
    record_count: int
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[str] = ..., event_count: _Optional[int] = ..., record_count: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("profile_id", "region", "aliases", "identifiers", "attributes", "sources", "record_count", "event_count", "first_seen", "last_seen", "consent", "updated_at")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    class ConsentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bool
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bool] = ...) -> None: ...
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    region: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    identifiers: _containers.RepeatedCompositeFieldContainer[ProfileIdentifier]
    attributes: _containers.MessageMap[str, AttributeValue]
    sources: _containers.RepeatedCompositeFieldContainer[SourceCounter]
    record_count: int
    event_count: int
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    consent: _containers.ScalarMap[str, bool]
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, profile_id: _Optional[str] = ..., region: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., identifiers: _Optional[_Iterable[_Union[ProfileIdentifier, _Mapping]]] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ..., sources: _Optional[_Iterable[_Union[SourceCounter, _Mapping]]] = ..., record_count: _Optional[int] = ..., event_count: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consent: _Optional[_Mapping[str, bool]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("identifier", "purpose")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    purpose: str
    def __init__(self, identifier: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("profile", "matched_identifier", "shared", "other_profile_ids")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    OTHER_PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    matched_identifier: str
    shared: bool
    other_profile_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., matched_identifier: _Optional[str] = ..., shared: _Optional[bool] = ..., other_profile_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("profile_id", "purpose")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    purpose: str
    def __init__(self, profile_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetProfileResponse(_message.Message):
    __slots__ = ("profile", "resolved_from_alias")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FROM_ALIAS_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    resolved_from_alias: bool
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., resolved_from_alias: _Optional[bool] = ...) -> None: ...

class BatchLookupRequest(_message.Message):
    __slots__ = ("identifiers", "purpose")
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    identifiers: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    def __init__(self, identifiers: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ...) -> None: ...

class BatchLookupResult(_message.Message):
    __slots__ = ("identifier", "result", "code", "error")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    result: LookupResponse
    code: int
    error: str
    def __init__(self, identifier: _Optional[str] = ..., result: _Optional[_Union[LookupResponse, _Mapping]] = ..., code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class BatchLookupResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchLookupResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchLookupResult, _Mapping]]] = ...) -> None: ...

class IdentifierPair(_message.Message):
    __slots__ = ("identifier_a", "identifier_b")
    IDENTIFIER_A_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_B_FIELD_NUMBER: _ClassVar[int]
    identifier_a: str
    identifier_b: str
    def __init__(self, identifier_a: _Optional[str] = ..., identifier_b: _Optional[str] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("profile_id", "pair")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PAIR_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    pair: IdentifierPair
    def __init__(self, profile_id: _Optional[str] = ..., pair: _Optional[_Union[IdentifierPair, _Mapping]] = ...) -> None: ...

class Contribution(_message.Message):
    __slots__ = ("comparison", "level", "match_weight")
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MATCH_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    comparison: str
    level: str
    match_weight: float
    def __init__(self, comparison: _Optional[str] = ..., level: _Optional[str] = ..., match_weight: _Optional[float] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("record_key", "identifier", "other_record", "linked", "rule", "reason", "source", "event_id", "at", "match_weight", "probability", "model_version", "contributions")
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    OTHER_RECORD_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MATCH_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    record_key: str
    identifier: str
    other_record: str
    linked: bool
    rule: str
    reason: str
    source: str
    event_id: str
    at: _timestamp_pb2.Timestamp
    match_weight: float
    probability: float
    model_version: str
    contributions: _containers.RepeatedCompositeFieldContainer[Contribution]
    def __init__(self, record_key: _Optional[str] = ..., identifier: _Optional[str] = ..., other_record: _Optional[str] = ..., linked: _Optional[bool] = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ..., source: _Optional[str] = ..., event_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., match_weight: _Optional[float] = ..., probability: _Optional[float] = ..., model_version: _Optional[str] = ..., contributions: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("profile_id", "joined", "other_profile_id", "edges")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    OTHER_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    joined: bool
    other_profile_id: str
    edges: _containers.RepeatedCompositeFieldContainer[Edge]
    def __init__(self, profile_id: _Optional[str] = ..., joined: _Optional[bool] = ..., other_profile_id: _Optional[str] = ..., edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("review_id", "record_a", "record_b", "match_weight", "probability", "model_version", "contributions", "status", "created_at", "decided_at", "decided_by", "note", "fields", "profile_a", "profile_b")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_A_FIELD_NUMBER: _ClassVar[int]
    RECORD_B_FIELD_NUMBER: _ClassVar[int]
    MATCH_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_A_FIELD_NUMBER: _ClassVar[int]
    PROFILE_B_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    record_a: str
    record_b: str
    match_weight: float
    probability: float
    model_version: str
    contributions: _containers.RepeatedCompositeFieldContainer[Contribution]
    status: str
    created_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    decided_by: str
    note: str
    fields: _containers.RepeatedCompositeFieldContainer[ReviewField]
    profile_a: str
    profile_b: str
    def __init__(self, review_id: _Optional[str] = ..., record_a: _Optional[str] = ..., record_b: _Optional[str] = ..., match_weight: _Optional[float] = ..., probability: _Optional[float] = ..., model_version: _Optional[str] = ..., contributions: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ..., note: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[ReviewField, _Mapping]]] = ..., profile_a: _Optional[str] = ..., profile_b: _Optional[str] = ...) -> None: ...

class ReviewField(_message.Message):
    __slots__ = ("name", "value_a", "value_b")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_A_FIELD_NUMBER: _ClassVar[int]
    VALUE_B_FIELD_NUMBER: _ClassVar[int]
    name: str
    value_a: str
    value_b: str
    def __init__(self, name: _Optional[str] = ..., value_a: _Optional[str] = ..., value_b: _Optional[str] = ...) -> None: ...

class ListReviewsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReviewsResponse(_message.Message):
    __slots__ = ("reviews", "next_page_token")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    next_page_token: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DecideReviewRequest(_message.Message):
    __slots__ = ("review_id", "decision", "note")
    class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DECISION_UNSPECIFIED: _ClassVar[DecideReviewRequest.Decision]
        ACCEPT: _ClassVar[DecideReviewRequest.Decision]
        REJECT: _ClassVar[DecideReviewRequest.Decision]
    DECISION_UNSPECIFIED: DecideReviewRequest.Decision
    ACCEPT: DecideReviewRequest.Decision
    REJECT: DecideReviewRequest.Decision
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    decision: DecideReviewRequest.Decision
    note: str
    def __init__(self, review_id: _Optional[str] = ..., decision: _Optional[_Union[DecideReviewRequest.Decision, str]] = ..., note: _Optional[str] = ...) -> None: ...

class GetProfileHistoryRequest(_message.Message):
    __slots__ = ("profile_id", "max_events")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    max_events: int
    def __init__(self, profile_id: _Optional[str] = ..., max_events: _Optional[int] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("kind", "subject", "related", "at", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RELATED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    subject: str
    related: _containers.RepeatedScalarFieldContainer[str]
    at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, kind: _Optional[str] = ..., subject: _Optional[str] = ..., related: _Optional[_Iterable[str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class TimelineEvent(_message.Message):
    __slots__ = ("type", "source", "record_key", "at", "properties")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    type: str
    source: str
    record_key: str
    at: _timestamp_pb2.Timestamp
    properties: _containers.ScalarMap[str, str]
    def __init__(self, type: _Optional[str] = ..., source: _Optional[str] = ..., record_key: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., properties: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MembershipChange(_message.Message):
    __slots__ = ("segment", "entered", "at", "cause", "version", "matched_clauses")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    segment: str
    entered: bool
    at: _timestamp_pb2.Timestamp
    cause: str
    version: int
    matched_clauses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, segment: _Optional[str] = ..., entered: _Optional[bool] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cause: _Optional[str] = ..., version: _Optional[int] = ..., matched_clauses: _Optional[_Iterable[str]] = ...) -> None: ...

class GetProfileHistoryResponse(_message.Message):
    __slots__ = ("profile_id", "history", "events", "memberships", "event_count")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    events: _containers.RepeatedCompositeFieldContainer[TimelineEvent]
    memberships: _containers.RepeatedCompositeFieldContainer[MembershipChange]
    event_count: int
    def __init__(self, profile_id: _Optional[str] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[TimelineEvent, _Mapping]]] = ..., memberships: _Optional[_Iterable[_Union[MembershipChange, _Mapping]]] = ..., event_count: _Optional[int] = ...) -> None: ...
