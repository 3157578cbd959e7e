"""The ``idgraph.v1.SegmentService`` servicer: proto in, segment definitions and queries,
proto out.

The logic is in :class:`idgraph.engine.segment_definitions.SegmentDefinitions` (define,
list, show, delete, and the parse a check shares with define) and
:class:`idgraph.engine.segment_queries.SegmentQueries` (evaluate, count, members, watch,
activity, the preview of a draft); errors are :class:`idgraph.core.errors.IdGraphError`
subclasses that :class:`idgraph.service.interceptors.ErrorMappingInterceptor` maps to
statuses. Who
may call what is :class:`idgraph.service.interceptors.AuthInterceptor`'s job (define and
delete need a steward token).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import grpc

from idgraph.core.errors import IdGraphError
from idgraph.proto.idgraph.v1 import segments_pb2 as spb
from idgraph.proto.idgraph.v1 import segments_pb2_grpc as spb_grpc
from idgraph.service.convert import timestamp
from idgraph.service.servicer import InvalidRequestError, Metadata, _caller, _check_text

if TYPE_CHECKING:
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.segment_definitions import SegmentDefinitions
    from idgraph.engine.segment_queries import SegmentQueries
    from idgraph.profile_store.segment_state import (
        Membership,
        SegmentBuild,
        SegmentChange,
        SegmentDefinition,
    )

_LOG = logging.getLogger(__name__)

MAX_NAMES = 1000
DEFAULT_MEMBER_PAGE = 1000
MAX_MEMBER_PAGE = 10_000
DEFAULT_SAMPLES = 20
MAX_SAMPLES = 100
"""PreviewSegment's sample members: the default, and the most one answer holds."""
DEFAULT_ACTIVITY_HOURS = 24
DEFAULT_BUCKET_MINUTES = 60
MIN_BUCKET_MINUTES, MAX_BUCKET_MINUTES = 5, 1440

_KIND = {"entered": spb.SegmentChange.ENTERED, "exited": spb.SegmentChange.EXITED}


class TooManyWatchersError(IdGraphError):
    status = "RESOURCE_EXHAUSTED"


def _build_proto(b: SegmentBuild) -> spb.SegmentBuild:
    return spb.SegmentBuild(region=b.region, version=max(b.version, 0), evaluated=b.evaluated,
                            total=b.total, done=b.done, started_at=timestamp(b.started_at),
                            finished_at=timestamp(b.finished_at))


def segment_proto(d: SegmentDefinition, uses: tuple[str, ...] = (),
                  used_by: tuple[str, ...] = (), builds: list[SegmentBuild] | None = None,
                  versions: list[SegmentDefinition] | None = None) -> spb.Segment:
    return spb.Segment(
        name=d.name, version=d.version, definition=d.text, definition_json=d.definition,
        description=d.description, author=d.author, defined_at=timestamp(d.defined_at),
        uses=uses, used_by=used_by, builds=[_build_proto(b) for b in builds or []],
        versions=[spb.SegmentVersion(version=v.version, author=v.author,
                                     defined_at=timestamp(v.defined_at), deleted=v.deleted,
                                     definition=v.text) for v in versions or []])


def member_proto(m: Membership) -> spb.SegmentMember:
    return spb.SegmentMember(profile_id=m.profile_id, region=m.region, version=m.version,
                             since=timestamp(m.since), matched_clauses=m.clauses)


def change_proto(c: SegmentChange, cursor: str) -> spb.SegmentChange:
    return spb.SegmentChange(
        profile_id=c.profile_id, segment=c.segment, version=c.version, change=_KIND[c.change],
        at=timestamp(c.at), cause=c.cause, matched_clauses=c.clauses, region=c.region,
        change_id=c.change_id, cursor=cursor)


class SegmentServiceServicer(spb_grpc.SegmentServiceServicer):
    """Serves the segment rpcs; ``identify`` names the caller (the author of a version).
    ``log_retention_hours`` (``segments.log_retention_hours``) is how far back
    GetSegmentActivity may look."""

    def __init__(self, definitions: SegmentDefinitions, queries: SegmentQueries, *,
                 identify: Callable[[Metadata], str] | None = None, max_watchers: int = 4,
                 watch_poll_seconds: float = 0.02, cache_size: int = 100_000,
                 clock: Callable[[], float] = time.time,
                 consent: ConsentService | None = None,
                 log_retention_hours: float = 24.0) -> None:
        self._consent = consent
        self._max_hours = max(1, int(log_retention_hours))
        self._definitions = definitions
        self._queries = queries
        self._answers: dict[str, tuple[float, int, float, spb.EvaluateSegmentsResponse]] = {}
        self._cache_size = cache_size
        self._clock = clock
        self._identify = identify or _caller
        self._max_watchers = max_watchers
        self._poll = watch_poll_seconds
        self._watchers = 0
        self._watchers_lock = threading.Lock()
        self.stopping = threading.Event()
        """Set when the server stops: open WatchSegment streams end."""

    def _full(self, d: SegmentDefinition, with_versions: bool) -> spb.Segment:
        live = self._queries.live()
        deps = live.dependencies
        uses = deps.uses(d.name) if d.name in live.trees else ()
        used_by = deps.dependents(d.name) if d.name in live.trees else ()
        builds = [b for b in self._queries.builds() if b.segment == d.name]
        versions = self._definitions.versions(d.name) if with_versions else None
        return segment_proto(d, uses, used_by, builds, versions)

    def DefineSegment(self, request: spb.DefineSegmentRequest, context: grpc.ServicerContext
                      ) -> spb.DefineSegmentResponse:
        _check_text("name", request.name)
        author = self._identify(context.invocation_metadata())
        applied = self._definitions.apply(request.name, request.definition, author,
                                          request.description)
        self._queries.refresh()
        if applied.changed:
            _LOG.info("segment defined: version %d by %s", applied.definition.version, author)
        return spb.DefineSegmentResponse(segment=segment_proto(applied.definition),
                                         created=applied.created, changed=applied.changed,
                                         diff=applied.diff)

    def GetSegment(self, request: spb.GetSegmentRequest, context: grpc.ServicerContext
                   ) -> spb.Segment:
        _check_text("name", request.name)
        return self._full(self._definitions.get(request.name), with_versions=True)

    def ListSegments(self, request: spb.ListSegmentsRequest, context: grpc.ServicerContext
                     ) -> spb.ListSegmentsResponse:
        return spb.ListSegmentsResponse(
            segments=[self._full(d, with_versions=False) for d in self._definitions.list()])

    def DeleteSegment(self, request: spb.DeleteSegmentRequest, context: grpc.ServicerContext
                      ) -> spb.DeleteSegmentResponse:
        _check_text("name", request.name)
        author = self._identify(context.invocation_metadata())
        deleted = self._definitions.delete(request.name, author)
        self._queries.refresh()
        _LOG.info("segment deleted: version %d by %s", deleted.version, author)
        return spb.DeleteSegmentResponse(version=deleted.version)

    def _answer(self, pid: str, version: float | None) -> spb.EvaluateSegmentsResponse:
        """Every live segment's membership for ``pid``, rendered; reused while the
        profile's version, the catalog version and the answers' earliest deadline hold.
        The cache keeps proto messages, not Python object graphs (those made the cyclic
        GC stall the server as the cache filled, measured)."""
        live = self._queries.live()
        hit = self._answers.get(pid)
        if hit is not None and version is not None and hit[0] == version \
                and hit[1] == live.catalog_version and self._clock() < hit[2]:
            return hit[3]
        ev = self._queries.evaluate([], profile_id=pid)
        msg = spb.EvaluateSegmentsResponse(
            profile_id=ev.profile_id, region=ev.region,
            memberships=[spb.SegmentMembership(
                segment=name, version=ev.versions[name], member=r.matched,
                matched_clauses=r.clauses,
                next_change=timestamp(r.next_change.timestamp()) if r.next_change else None)
                for name, r in ev.results.items()])
        if len(self._answers) >= self._cache_size:
            self._answers.clear()
        self._answers[ev.profile_id] = (ev.version, ev.catalog_version, ev.valid_until, msg)
        return msg

    def EvaluateSegments(self, request: spb.EvaluateSegmentsRequest,
                         context: grpc.ServicerContext) -> spb.EvaluateSegmentsResponse:
        if len(request.names) > MAX_NAMES:
            raise InvalidRequestError(f"more than {MAX_NAMES} segment names")
        subject = request.WhichOneof("subject")
        if subject == "identifier":
            _check_text("identifier", request.identifier)
            pid, version = self._queries.current(identifier=request.identifier)
        elif subject == "profile_id":
            _check_text("profile_id", request.profile_id)
            pid, version = self._queries.current(profile_id=request.profile_id)
        else:
            raise InvalidRequestError("set identifier or profile_id")
        wanted = self._queries.names(request.names)
        if request.purpose and self._consent is not None:  # the ledger, read on every call
            self._consent.check_purpose(request.purpose)
            self._consent.check_profile(pid, request.purpose)
        full = self._answer(pid, version)
        by_name = {m.segment: m for m in full.memberships}
        return spb.EvaluateSegmentsResponse(
            profile_id=full.profile_id, region=full.region,
            evaluated_at=timestamp(self._clock()),
            memberships=[by_name[name] for name in wanted])

    def CountSegment(self, request: spb.CountSegmentRequest, context: grpc.ServicerContext
                     ) -> spb.CountSegmentResponse:
        _check_text("name", request.name)
        by_region = self._queries.count(request.name.strip())
        return spb.CountSegmentResponse(count=sum(by_region.values()), by_region=by_region)

    def ListSegmentMembers(self, request: spb.ListSegmentMembersRequest,
                           context: grpc.ServicerContext
                           ) -> Iterator[spb.ListSegmentMembersResponse]:
        _check_text("name", request.name)
        if request.page_size < 0 or request.page_size > MAX_MEMBER_PAGE:
            raise InvalidRequestError(f"page_size must be between 0 and {MAX_MEMBER_PAGE}")
        size = request.page_size or DEFAULT_MEMBER_PAGE
        token = request.page_token
        if len(token) > 2048:
            raise InvalidRequestError("page_token is not valid")
        name = request.name.strip()
        purpose = request.purpose
        if purpose and self._consent is not None:
            self._consent.check_purpose(purpose)
        while True:
            page, token = self._queries.members(name, token, size)
            if purpose and self._consent is not None and page:
                allowed = self._consent.check_profiles([m.profile_id for m in page], purpose)
                page = [m for m in page if m.profile_id in allowed]
            yield spb.ListSegmentMembersResponse(members=[member_proto(m) for m in page],
                                                 next_page_token=token)
            if not token or not context.is_active():
                return

    def WatchSegment(self, request: spb.WatchSegmentRequest, context: grpc.ServicerContext
                     ) -> Iterator[spb.SegmentChange]:
        if len(request.names) > MAX_NAMES:
            raise InvalidRequestError(f"more than {MAX_NAMES} segment names")
        if len(request.cursor) > 2048:
            raise InvalidRequestError("cursor is not valid")
        with self._watchers_lock:
            if self._watchers >= self._max_watchers:
                raise TooManyWatchersError(
                    f"this server already serves {self._max_watchers} WatchSegment streams "
                    "(grpc.max_watchers)")
            self._watchers += 1
        try:
            def active() -> bool:
                return context.is_active() and not self.stopping.is_set()

            purpose = request.purpose
            if purpose and self._consent is not None:
                self._consent.check_purpose(purpose)
            for change, cursor in self._queries.watch(request.names, request.cursor, active,
                                                      self._poll):
                # an entry is withheld when the consent (read as each change is sent) does
                # not allow the purpose; exits always go out: they tell a channel to stop
                if purpose and self._consent is not None and change.change == "entered" \
                        and not self._consent.check_profiles([change.profile_id], purpose):
                    continue
                yield change_proto(change, cursor)
        finally:
            with self._watchers_lock:
                self._watchers -= 1

    def CheckSegment(self, request: spb.CheckSegmentRequest, context: grpc.ServicerContext
                     ) -> spb.CheckSegmentResponse:
        """The draft parsed as DefineSegment parses it (the same errors), nothing stored;
        ``uses`` names every segment it uses, defined or not. Starts warming the profiles
        a preview reads (:meth:`PreviewProfiles.warm`)."""
        from idgraph.engine.segment_definitions import json_text, parse_definition
        from idgraph.segments import to_text
        from idgraph.segments.dependencies import references

        tree = parse_definition(request.definition)
        # someone is editing a draft: fold the profiles its previews will read meanwhile
        self._queries.preview_profiles.warm()
        return spb.CheckSegmentResponse(canonical_text=to_text(tree),
                                        canonical_json=json_text(tree),
                                        uses=sorted(references(tree)))

    def PreviewSegment(self, request: spb.PreviewSegmentRequest, context: grpc.ServicerContext
                       ) -> spb.PreviewSegmentResponse:
        """The exact preview of a draft over every live profile this caller's regions hold
        (:meth:`SegmentQueries.preview`); profile IDs, regions and the draft's own
        clauses only."""
        from idgraph.engine.segment_definitions import check_name, json_text, parse_definition
        from idgraph.segments import to_text

        if request.samples < 0:
            raise InvalidRequestError("samples is negative")
        name = check_name(request.name) if request.name.strip() else ""
        tree = parse_definition(request.definition)
        view, evaluated = self._queries.preview(
            tree, name, min(request.samples or DEFAULT_SAMPLES, MAX_SAMPLES))
        return spb.PreviewSegmentResponse(
            count=view.count, count_by_region=dict(view.by_region),
            samples=[spb.PreviewMember(profile_id=m.profile_id, region=m.region,
                                       matched_clauses=m.clauses) for m in view.samples],
            identifier_types=dict(view.identifier_types), overlap=dict(view.overlap),
            profiles_evaluated=evaluated, canonical_text=to_text(tree),
            canonical_json=json_text(tree))

    def GetSegmentActivity(self, request: spb.GetSegmentActivityRequest,
                           context: grpc.ServicerContext) -> spb.GetSegmentActivityResponse:
        """Entries and exits of a live segment by the time they were logged
        (:meth:`SegmentQueries.activity`)."""
        _check_text("name", request.name)
        hours = request.hours or min(DEFAULT_ACTIVITY_HOURS, self._max_hours)
        if not 1 <= hours <= self._max_hours:
            raise InvalidRequestError(f"hours must be between 1 and {self._max_hours} (the "
                                      "change log's retention, segments.log_retention_hours)")
        minutes = request.bucket_minutes or DEFAULT_BUCKET_MINUTES
        if not MIN_BUCKET_MINUTES <= minutes <= MAX_BUCKET_MINUTES:
            raise InvalidRequestError(f"bucket_minutes must be between {MIN_BUCKET_MINUTES} "
                                      f"and {MAX_BUCKET_MINUTES}")
        activity = self._queries.activity(request.name.strip(), hours, minutes * 60)
        return spb.GetSegmentActivityResponse(
            size=activity.size, entered=activity.entered, exited=activity.exited,
            buckets=[spb.ActivityBucket(start=timestamp(b.start), entered=b.entered,
                                        exited=b.exited, size_at_end=b.size_at_end)
                     for b in activity.buckets],
            log_starts_at=timestamp(activity.log_starts_at or 0.0),
            recent=[change_proto(c, "") for c in activity.recent])
