import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentBuild(_message.Message):
    __slots__ = ("region", "version", "evaluated", "total", "done", "started_at", "finished_at")
    REGION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    region: str
    version: int
    evaluated: int
    total: int
    done: bool
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, region: _Optional[str] = ..., version: _Optional[int] = ..., evaluated: _Optional[int] = ..., total: _Optional[int] = ..., done: _Optional[bool] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SegmentVersion(_message.Message):
    __slots__ = ("version", "author", "defined_at", "deleted", "definition")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    DEFINED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    version: int
    author: str
    defined_at: _timestamp_pb2.Timestamp
    deleted: bool
    definition: str
    def __init__(self, version: _Optional[int] = ..., author: _Optional[str] = ..., defined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted: _Optional[bool] = ..., definition: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("name", "version", "definition", "definition_json", "description", "author", "defined_at", "uses", "used_by", "builds", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    DEFINED_AT_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    USED_BY_FIELD_NUMBER: _ClassVar[int]
    BUILDS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    definition: str
    definition_json: str
    description: str
    author: str
    defined_at: _timestamp_pb2.Timestamp
    uses: _containers.RepeatedScalarFieldContainer[str]
    used_by: _containers.RepeatedScalarFieldContainer[str]
    builds: _containers.RepeatedCompositeFieldContainer[SegmentBuild]
    versions: _containers.RepeatedCompositeFieldContainer[SegmentVersion]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., definition: _Optional[str] = ..., definition_json: _Optional[str] = ..., description: _Optional[str] = ..., author: _Optional[str] = ..., defined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uses: _Optional[_Iterable[str]] = ..., used_by: _Optional[_Iterable[str]] = ..., builds: _Optional[_Iterable[_Union[SegmentBuild, _Mapping]]] = ..., versions: _Optional[_Iterable[_Union[SegmentVersion, _Mapping]]] = ...) -> None: ...

class DefineSegmentRequest(_message.Message):
    __slots__ = ("name", "definition", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    definition: str
    description: str
    def __init__(self, name: _Optional[str] = ..., definition: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DefineSegmentResponse(_message.Message):
    __slots__ = ("segment", "created", "changed", "diff")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    created: bool
    changed: bool
    diff: str
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., created: _Optional[bool] = ..., changed: _Optional[bool] = ..., diff: _Optional[str] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSegmentResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class EvaluateSegmentsRequest(_message.Message):
    __slots__ = ("identifier", "profile_id", "names", "purpose")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    profile_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    def __init__(self, identifier: _Optional[str] = ..., profile_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ...) -> None: ...

class SegmentMembership(_message.Message):
    __slots__ = ("segment", "version", "member", "matched_clauses", "next_change")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CHANGE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    version: int
    member: bool
    matched_clauses: _containers.RepeatedScalarFieldContainer[str]
    next_change: _timestamp_pb2.Timestamp
    def __init__(self, segment: _Optional[str] = ..., version: _Optional[int] = ..., member: _Optional[bool] = ..., matched_clauses: _Optional[_Iterable[str]] = ..., next_change: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EvaluateSegmentsResponse(_message.Message):
    __slots__ = ("profile_id", "region", "evaluated_at", "memberships")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    region: str
    evaluated_at: _timestamp_pb2.Timestamp
    memberships: _containers.RepeatedCompositeFieldContainer[SegmentMembership]
    def __init__(self, profile_id: _Optional[str] = ..., region: _Optional[str] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memberships: _Optional[_Iterable[_Union[SegmentMembership, _Mapping]]] = ...) -> None: ...

class CountSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CountSegmentResponse(_message.Message):
    __slots__ = ("count", "by_region")
    class ByRegionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    BY_REGION_FIELD_NUMBER: _ClassVar[int]
    count: int
    by_region: _containers.ScalarMap[str, int]
    def __init__(self, count: _Optional[int] = ..., by_region: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ListSegmentMembersRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token", "purpose")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    purpose: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class SegmentMember(_message.Message):
    __slots__ = ("profile_id", "region", "version", "since", "matched_clauses")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    region: str
    version: int
    since: _timestamp_pb2.Timestamp
    matched_clauses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, profile_id: _Optional[str] = ..., region: _Optional[str] = ..., version: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., matched_clauses: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSegmentMembersResponse(_message.Message):
    __slots__ = ("members", "next_page_token")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[SegmentMember]
    next_page_token: str
    def __init__(self, members: _Optional[_Iterable[_Union[SegmentMember, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchSegmentRequest(_message.Message):
    __slots__ = ("names", "cursor", "purpose")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    cursor: str
    purpose: str
    def __init__(self, names: _Optional[_Iterable[str]] = ..., cursor: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class SegmentChange(_message.Message):
    __slots__ = ("profile_id", "segment", "version", "change", "at", "cause", "matched_clauses", "region", "change_id", "cursor")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SegmentChange.Kind]
        ENTERED: _ClassVar[SegmentChange.Kind]
        EXITED: _ClassVar[SegmentChange.Kind]
    KIND_UNSPECIFIED: SegmentChange.Kind
    ENTERED: SegmentChange.Kind
    EXITED: SegmentChange.Kind
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    segment: str
    version: int
    change: SegmentChange.Kind
    at: _timestamp_pb2.Timestamp
    cause: str
    matched_clauses: _containers.RepeatedScalarFieldContainer[str]
    region: str
    change_id: str
    cursor: str
    def __init__(self, profile_id: _Optional[str] = ..., segment: _Optional[str] = ..., version: _Optional[int] = ..., change: _Optional[_Union[SegmentChange.Kind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cause: _Optional[str] = ..., matched_clauses: _Optional[_Iterable[str]] = ..., region: _Optional[str] = ..., change_id: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...

class CheckSegmentRequest(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: str
    def __init__(self, definition: _Optional[str] = ...) -> None: ...

class CheckSegmentResponse(_message.Message):
    __slots__ = ("canonical_text", "canonical_json", "uses")
    CANONICAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_JSON_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    canonical_text: str
    canonical_json: str
    uses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, canonical_text: _Optional[str] = ..., canonical_json: _Optional[str] = ..., uses: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewSegmentRequest(_message.Message):
    __slots__ = ("definition", "name", "samples")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    definition: str
    name: str
    samples: int
    def __init__(self, definition: _Optional[str] = ..., name: _Optional[str] = ..., samples: _Optional[int] = ...) -> None: ...

class PreviewMember(_message.Message):
    __slots__ = ("profile_id", "region", "matched_clauses")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    region: str
    matched_clauses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, profile_id: _Optional[str] = ..., region: _Optional[str] = ..., matched_clauses: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewSegmentResponse(_message.Message):
    __slots__ = ("count", "count_by_region", "samples", "identifier_types", "overlap", "profiles_evaluated", "canonical_text", "canonical_json")
    class CountByRegionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class IdentifierTypesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class OverlapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNT_BY_REGION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_TYPES_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    PROFILES_EVALUATED_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_JSON_FIELD_NUMBER: _ClassVar[int]
    count: int
    count_by_region: _containers.ScalarMap[str, int]
    samples: _containers.RepeatedCompositeFieldContainer[PreviewMember]
    identifier_types: _containers.ScalarMap[str, int]
    overlap: _containers.ScalarMap[str, int]
    profiles_evaluated: int
    canonical_text: str
    canonical_json: str
    def __init__(self, count: _Optional[int] = ..., count_by_region: _Optional[_Mapping[str, int]] = ..., samples: _Optional[_Iterable[_Union[PreviewMember, _Mapping]]] = ..., identifier_types: _Optional[_Mapping[str, int]] = ..., overlap: _Optional[_Mapping[str, int]] = ..., profiles_evaluated: _Optional[int] = ..., canonical_text: _Optional[str] = ..., canonical_json: _Optional[str] = ...) -> None: ...

class GetSegmentActivityRequest(_message.Message):
    __slots__ = ("name", "hours", "bucket_minutes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_MINUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    hours: int
    bucket_minutes: int
    def __init__(self, name: _Optional[str] = ..., hours: _Optional[int] = ..., bucket_minutes: _Optional[int] = ...) -> None: ...

class ActivityBucket(_message.Message):
    __slots__ = ("start", "entered", "exited", "size_at_end")
    START_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    SIZE_AT_END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    entered: int
    exited: int
    size_at_end: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entered: _Optional[int] = ..., exited: _Optional[int] = ..., size_at_end: _Optional[int] = ...) -> None: ...

class GetSegmentActivityResponse(_message.Message):
    __slots__ = ("size", "entered", "exited", "buckets", "log_starts_at", "recent")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    LOG_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    size: int
    entered: int
    exited: int
    buckets: _containers.RepeatedCompositeFieldContainer[ActivityBucket]
    log_starts_at: _timestamp_pb2.Timestamp
    recent: _containers.RepeatedCompositeFieldContainer[SegmentChange]
    def __init__(self, size: _Optional[int] = ..., entered: _Optional[int] = ..., exited: _Optional[int] = ..., buckets: _Optional[_Iterable[_Union[ActivityBucket, _Mapping]]] = ..., log_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recent: _Optional[_Iterable[_Union[SegmentChange, _Mapping]]] = ...) -> None: ...
