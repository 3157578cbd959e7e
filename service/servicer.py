"""The ``idgraph.v1.ProfileService`` servicer: proto in, ProfileQueries, proto out.

No resolution logic here (that is :class:`idgraph.engine.queries.ProfileQueries`, for Explain
:class:`idgraph.engine.explain.Explainer`, for the review rpcs
:class:`idgraph.coordination.ReviewQueue`) and no error handling: handlers raise
:class:`idgraph.core.errors.IdGraphError` subclasses and
:class:`idgraph.service.interceptors.ErrorMappingInterceptor` turns them into statuses.
The only checks made here are request-shape limits that protect the server.
Who may call what is :class:`idgraph.service.interceptors.AuthInterceptor`'s job.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from idgraph.auth.roles import MARKETER, PRIVACY, STEWARD
from idgraph.core.errors import IdGraphError, NotFoundError
from idgraph.privacy.consent import carried_states, subjects_of
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.service import convert
from idgraph.service.interceptors import caller_name, current_principal, status_for
from idgraph.service.masking import mask_lookup, mask_profile, mask_record_key

if TYPE_CHECKING:  # idgraph.engine.queries pulls in the resolver; only the types are needed here
    from idgraph.coordination import Review, ReviewQueue
    from idgraph.engine.consent import ConsentService
    from idgraph.engine.explain import Explainer
    from idgraph.engine.queries import ProfileQueries
    from idgraph.profile_store.base import Profile, RecordEvent, StoredRecord
    from idgraph.service.access import Access

_LOG = logging.getLogger(__name__)

FREEZE_EVERY = 1000
"""New cache entries between two `gc.freeze()` calls (see `_profile_proto`)."""

MAX_ID_LENGTH = 2048
"""Longest identifier or profile ID accepted (characters); longer ones are INVALID_ARGUMENT."""

MAX_NOTE_LENGTH = 1000
"""Longest DecideReview note accepted (characters); longer ones are INVALID_ARGUMENT."""

REVIEW_STATUSES = ("open", "accepted", "rejected", "applied")
"""Review statuses ListReviews filters on (``coordination.STATUSES``;
kept here so the servicer does not import the resolver), plus ``all``."""

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

DEFAULT_HISTORY_EVENTS = 200
MAX_HISTORY_EVENTS = 5000
"""GetProfileHistory's ``max_events``: the default, and the most one answer holds."""

_DERIVED_COLUMNS = frozenset({"email_user", "email_domain"})
"""Matching-row columns made from another (the email): not shown twice in a review."""

_BATCH_METHOD = "/idgraph.v1.ProfileService/BatchLookup"

_ACCEPT = pb.DecideReviewRequest.ACCEPT
_REJECT = pb.DecideReviewRequest.REJECT

Metadata = Iterable[tuple[str, Any]] | None


class InvalidRequestError(IdGraphError):
    """A request breaks a protocol limit (too long, too many, empty); INVALID_ARGUMENT."""

    status = "INVALID_ARGUMENT"


class NotAvailableError(IdGraphError):
    """This server was started without what an rpc needs (graph view, review queue)."""

    status = "UNIMPLEMENTED"


PEOPLE_ROLES = frozenset({STEWARD, PRIVACY, MARKETER})
"""Roles held by people: their profile reads go into each subject's access history."""


def _caller(_metadata: Metadata) -> str:
    """The current caller's name (:func:`~idgraph.service.interceptors.caller_name`)."""
    return caller_name()


def _check_text(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidRequestError(f"{field} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequestError(f"{field} is longer than {MAX_ID_LENGTH} characters")


def compared_values(record: StoredRecord | None) -> dict[str, str]:
    """The values of ``record`` the matching model compares, as stored (a record's
    attributes; its email and phone from its identifiers when no attribute names one, as
    :func:`~idgraph.resolver.probabilistic.features.match_row` takes them), by the name of
    the model's column; empty for a record no longer stored."""
    if record is None:
        return {}
    from idgraph.resolver.probabilistic.features import COLUMNS

    values = {a: v for a, (v, _t) in record.attributes.items() if v}
    for kind in ("email", "phone"):
        if kind not in values:
            found = next((i.split(":", 1)[1] for i in record.identifiers
                          if i.startswith(f"{kind}:")), "")
            if found:
                values[kind] = found
    return {c: values[c] for c in COLUMNS if c not in _DERIVED_COLUMNS and c in values}


def review_proto(review: Review, records: dict[str, StoredRecord]) -> pb.Review:
    """A review with its two records side by side (the fields either has a value of) and
    the profiles they are in now, from ``records`` (the stored records by key)."""
    from idgraph.resolver.probabilistic.features import COLUMNS

    msg = convert.review_to_proto(review)
    a, b = records.get(review.record_a), records.get(review.record_b)
    msg.profile_a = a.profile_id if a is not None else ""
    msg.profile_b = b.profile_id if b is not None else ""
    values_a, values_b = compared_values(a), compared_values(b)
    msg.fields.extend(pb.ReviewField(name=c, value_a=values_a.get(c, ""),
                                     value_b=values_b.get(c, ""))
                      for c in COLUMNS if c in values_a or c in values_b)
    return msg


def timeline_event(record_key: str, event: RecordEvent, masked: bool) -> pb.TimelineEvent:
    """A timeline event; masked (the marketer's view): its record key masked, no
    properties (they can name what a person bought, read or wrote)."""
    return pb.TimelineEvent(
        type=event.type, source=event.source,
        record_key=mask_record_key(record_key) if masked else record_key,
        at=convert.timestamp(event.at),
        properties={} if masked else {k: str(v) for k, v in event.properties.items()})


class ProfileServiceServicer(pb_grpc.ProfileServiceServicer):
    """Serves Lookup, GetProfile, BatchLookup and GetProfileHistory from a
    :class:`ProfileQueries`, Explain from an :class:`Explainer` and ListReviews/DecideReview
    from a :class:`ReviewQueue` (each review with its two records' values: a read of their
    profiles, audited as one).

    With ``consent`` (a :class:`~idgraph.engine.consent.ConsentService`) every profile
    answer is gated by the consent ledger, read on every call: a request's ``purpose``
    must be allowed, data used only for refused purposes is left out, and a profile a
    forget was requested for is not found. Without ``explainer`` (``reviews``) those rpcs
    answer UNIMPLEMENTED. ``identify`` maps
    a call's metadata to the caller identity recorded as ``decided_by``
    (:meth:`idgraph.service.interceptors.AuthInterceptor.identity`; "anonymous" by default).

    Residency: the served regions are those of the store ``queries`` reads. Lookups and
    Explain see only its profiles; ListReviews shows, and DecideReview decides, only reviews
    both of whose records are stored in those regions (recorded with the review when it
    was queued, and checked against the store, since records move with their profiles): any
    other review is NOT_FOUND, as if it did not exist, like a profile of another region.
    """

    def __init__(self, queries: ProfileQueries, max_batch_lookup: int = 1000,
                 cache_size: int = 100_000, *, explainer: Explainer | None = None,
                 reviews: ReviewQueue | None = None,
                 identify: Callable[[Metadata], str] | None = None,
                 consent: ConsentService | None = None,
                 access: Access | None = None) -> None:
        self._queries = queries
        self._access = access
        self._personal = access.personal_attributes if access is not None else frozenset()
        self._max_batch = max_batch_lookup
        self._consent = consent
        self._protos: dict[str, tuple[float, pb.Profile, list[str], list, str]] = {}
        self._cache_size = cache_size
        self._inserts = 0
        self._explainer = explainer
        self._reviews = reviews
        self._reviews_lock = threading.Lock()  # one SQLite connection shared by the pool
        self._identify = identify or _caller

    def _profile_proto(self, profile_id: str, version: float, purpose: str) -> pb.Profile:
        """The rendered profile, gated by consent (class docstring). The rendering is
        reused while the profile's version (head ``updated_at``) is unchanged; the consent
        ledger is read every time.

        Folding and converting a profile is most of a lookup's own work (~230 us). The cache
        holds proto messages, not Python objects graphs: a cache of folded dataclasses made
        the cyclic GC's full collections stall the server for tens of ms (measured). The
        entries still hold a few tracked objects each (~6.6: the tuple, lists, consent
        states), so every :data:`FREEZE_EVERY` new entries the heap is frozen
        (``gc.freeze()``): a full collection then skips the cache instead of walking it
        while calls wait (10 ms at 5k cached profiles, measured in issue 20's profile).
        Entries hold no reference cycles, so evicted ones are still freed (by reference
        counting).
        """
        hit = self._protos.get(profile_id)
        if hit is None or hit[0] != version:
            profile = self._queries.profile(profile_id)
            hit = (profile.updated_at, convert.profile_to_proto(profile),
                   subjects_of(profile), carried_states(profile), profile.region)
            if len(self._protos) >= self._cache_size:
                self._protos.clear()
            self._protos[profile_id] = hit
            self._inserts += 1
            if self._inserts % FREEZE_EVERY == 0:
                gc.freeze()
        msg = hit[1]
        if self._consent is None:
            return msg
        answer = self._consent.answer(hit[2], hit[3], hit[4], purpose)
        if not answer.withheld_attributes and answer.consent == dict(msg.consent):
            return msg
        gated = pb.Profile()
        gated.CopyFrom(msg)
        for name in answer.withheld_attributes:
            if name in gated.attributes:
                del gated.attributes[name]
        gated.consent.clear()
        gated.consent.update(answer.consent)
        return gated

    def _gate(self, profile: Profile, purpose: str) -> Profile:
        return profile if self._consent is None else self._consent.gate(profile, purpose)

    def _read(self, context: grpc.ServicerContext, rpc: str, *profile_ids: str,
              region: str = "") -> None:
        """Audit a read of profiles: in the audit log (every caller, batched), and for
        people (not activation channels) in each subject's access history too
        (:meth:`ConsentService.record_read`, what a subject's export shows)."""
        principal = current_principal()
        if self._access is not None:
            self._access.reads(principal, "profile.read", profile_ids, region)
        if self._consent is not None and set(principal.roles) & PEOPLE_ROLES:
            self._consent.record_read(self._identify(context.invocation_metadata()), rpc,
                                      profile_ids)

    def Lookup(self, request: pb.LookupRequest, context: grpc.ServicerContext) -> pb.LookupResponse:
        _check_text("identifier", request.identifier)
        located = self._queries.locate(request.identifier)
        profile = self._profile_proto(located.profile_id, located.version, request.purpose)
        self._read(context, "Lookup", located.profile_id, region=profile.region)
        answer = pb.LookupResponse(
            profile=profile,
            matched_identifier=located.identifier,
            shared=located.shared,
            other_profile_ids=located.other_profile_ids,
        )
        return mask_lookup(answer, self._personal) if current_principal().masked else answer

    def GetProfile(
        self, request: pb.GetProfileRequest, context: grpc.ServicerContext
    ) -> pb.GetProfileResponse:
        _check_text("profile_id", request.profile_id)
        profile = self._gate(self._queries.get_profile(request.profile_id), request.purpose)
        self._read(context, "GetProfile", profile.profile_id, region=profile.region)
        answer = pb.GetProfileResponse(
            profile=convert.profile_fields(profile),
            resolved_from_alias=profile.profile_id != request.profile_id.strip(),
        )
        if current_principal().masked:
            answer.profile.CopyFrom(mask_profile(answer.profile, self._personal))
        return answer

    def BatchLookup(
        self, request: pb.BatchLookupRequest, context: grpc.ServicerContext
    ) -> pb.BatchLookupResponse:
        texts = list(request.identifiers)
        if len(texts) > self._max_batch:
            raise InvalidRequestError(
                f"batch of {len(texts)} identifiers exceeds the limit of {self._max_batch} "
                "(setting grpc.max_batch_lookup)"
            )
        outcomes: list[Any] = [None] * len(texts)
        to_query: list[int] = []
        for i, text in enumerate(texts):
            try:
                _check_text("identifier", text)
                to_query.append(i)
            except InvalidRequestError as exc:
                outcomes[i] = exc
        if request.purpose and self._consent is not None:
            self._consent.check_purpose(request.purpose)  # unknown: the whole call fails
        if to_query:
            answers = self._queries.batch_lookup([texts[i] for i in to_query])
            if len(answers) != len(to_query):
                raise RuntimeError("batch_lookup returned a different number of results")
            for i, answer in zip(to_query, answers, strict=True):
                if not isinstance(answer, BaseException):
                    try:
                        answer.profile = self._gate(answer.profile, request.purpose)
                    except IdGraphError as exc:
                        answer = exc
                outcomes[i] = answer

        by_region: dict[str, list[str]] = {}
        for o in outcomes:
            if not isinstance(o, BaseException):
                by_region.setdefault(o.profile.region, []).append(o.profile.profile_id)
        for region, ids in by_region.items():
            self._read(context, "BatchLookup", *ids, region=region)
        results = []
        for text, outcome in zip(texts, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                code, message = status_for(outcome, _BATCH_METHOD)
                results.append({"identifier": text, "code": code.value[0], "error": message})
            else:
                results.append(
                    {"identifier": text, "result": convert.lookup_result_fields(outcome)}
                )
        answer = pb.BatchLookupResponse(results=results)
        if current_principal().masked:
            for result in answer.results:
                if result.HasField("result"):
                    result.result.CopyFrom(mask_lookup(result.result, self._personal))
        return answer

    # --- Explain and reviews (steward rpcs; the interceptor checks the token's role) ------

    def Explain(self, request: pb.ExplainRequest, context: grpc.ServicerContext
                ) -> pb.ExplainResponse:
        explainer = self._explainer
        if explainer is None:
            raise NotAvailableError("explain is not available: no identity graph view")
        subject = request.WhichOneof("subject")
        if subject == "profile_id":
            _check_text("profile_id", request.profile_id)
            explanation = explainer.profile(request.profile_id)
        elif subject == "pair":
            _check_text("identifier_a", request.pair.identifier_a)
            _check_text("identifier_b", request.pair.identifier_b)
            explanation = explainer.between(request.pair.identifier_a, request.pair.identifier_b)
        else:
            raise InvalidRequestError("set profile_id or pair (identifier_a and identifier_b)")
        self._read(context, "Explain", explanation.profile_id)
        return convert.explanation_to_proto(explanation)

    def _queue(self) -> ReviewQueue:
        if self._reviews is None:
            raise NotAvailableError("reviews are not available: no review queue")
        return self._reviews

    def _served_reviews(self, reviews: list[Review],
                        records: dict[str, StoredRecord] | None = None) -> list[Review]:
        """Those of ``reviews`` both of whose records the store holds in the served regions
        (the records read are added to ``records``, by key)."""
        keys = {k for r in reviews for k in (r.record_a, r.record_b)}
        stored = self._queries.store.get_records(keys) if keys else {}
        if records is not None:
            records.update(stored)
        return [r for r in reviews if r.record_a in stored and r.record_b in stored]

    def _review_page(self, queue: ReviewQueue, status: str, size: int, after: str,
                     records: dict[str, StoredRecord]) -> tuple[list[Review], bool]:
        """Up to ``size`` served reviews after ``after``, and whether another one follows
        (their records added to ``records``)."""
        regions = self._queries.store.regions
        fetch = min(size + 1, MAX_PAGE_SIZE)
        page: list[Review] = []
        while True:
            batch = queue.list(status, limit=fetch, after=after, regions=regions)
            page.extend(self._served_reviews(batch, records))
            if len(page) > size:
                return page[:size], True
            if len(batch) < fetch:
                return page, False
            after = batch[-1].review_id

    def _reviews_read(self, context: grpc.ServicerContext, rpc: str, reviews: list[Review],
                      records: dict[str, StoredRecord]) -> list[pb.Review]:
        """The reviews as answered, with their records' values: a read of the profiles
        those records are in (audited as :meth:`_read` says)."""
        pids = [records[k].profile_id for r in reviews for k in (r.record_a, r.record_b)
                if k in records]
        if pids:
            self._read(context, rpc, *pids)
        return [review_proto(r, records) for r in reviews]

    def ListReviews(self, request: pb.ListReviewsRequest, context: grpc.ServicerContext
                    ) -> pb.ListReviewsResponse:
        queue = self._queue()
        status = request.status.strip().lower() or "open"
        if status != "all" and status not in REVIEW_STATUSES:
            raise InvalidRequestError(
                f"status must be one of {', '.join(REVIEW_STATUSES)} or all"
            )
        if request.page_size < 0:
            raise InvalidRequestError("page_size is negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = request.page_token
        if after and len(after) > MAX_ID_LENGTH:
            raise InvalidRequestError("page_token is not valid")
        with self._reviews_lock:
            if after:
                try:
                    queue.get(after, self._queries.store.regions)
                except NotFoundError:
                    raise InvalidRequestError("page_token is not valid") from None
            # the next token only when another review follows (no empty last page)
            records: dict[str, StoredRecord] = {}
            page, more = self._review_page(queue, status, size, after, records)
        return pb.ListReviewsResponse(
            reviews=self._reviews_read(context, "ListReviews", page, records),
            next_page_token=page[-1].review_id if more else "",
        )

    def DecideReview(self, request: pb.DecideReviewRequest, context: grpc.ServicerContext
                     ) -> pb.Review:
        queue = self._queue()
        _check_text("review_id", request.review_id)
        if request.decision not in (_ACCEPT, _REJECT):
            raise InvalidRequestError("decision is required: ACCEPT or REJECT")
        if len(request.note) > MAX_NOTE_LENGTH:
            raise InvalidRequestError(f"note is longer than {MAX_NOTE_LENGTH} characters")
        accept = request.decision == _ACCEPT
        decided_by = self._identify(context.invocation_metadata())
        review_id = request.review_id.strip()
        regions = self._queries.store.regions
        records: dict[str, StoredRecord] = {}
        with self._reviews_lock:
            # a review of records this server does not serve is not found, like an unknown one
            if not self._served_reviews([queue.get(review_id, regions)], records):
                raise NotFoundError("no review with this ID")
            review = queue.decide(review_id, accept, decided_by, request.note, regions)
        # audit trail: the review ID and who, never the record keys (they can hold e-mails)
        _LOG.info("review %s %s by %s (now %s)", review.review_id,
                  "accepted" if accept else "rejected", decided_by, review.status)
        return self._reviews_read(context, "DecideReview", [review], records)[0]

    # --- history --------------------------------------------------------------------------

    def GetProfileHistory(self, request: pb.GetProfileHistoryRequest,
                          context: grpc.ServicerContext) -> pb.GetProfileHistoryResponse:
        """The profile's merges and splits, its timeline and its segment changes still in
        the change log (newest first), read like GetProfile: aliases followed, residency,
        NOT_FOUND once a forget was requested, event types consent withholds left out, a
        read audited, masked for a marketer without unmask (record keys masked, no event
        properties; profile IDs, types, sources, times, segment names stay)."""
        _check_text("profile_id", request.profile_id)
        if request.max_events < 0:
            raise InvalidRequestError("max_events is negative")
        limit = min(request.max_events or DEFAULT_HISTORY_EVENTS, MAX_HISTORY_EVENTS)
        profile, events = self._queries.timeline(request.profile_id)
        if self._consent is not None:  # NOT_FOUND after a forget request
            withheld = self._consent.answer(subjects_of(profile), carried_states(profile),
                                            profile.region, None).withheld_event_types
            events = [item for item in events if item[1].type not in withheld]
        pid = profile.profile_id
        self._read(context, "GetProfileHistory", pid, region=profile.region)
        store = self._queries.store
        masked = current_principal().masked
        changes = [change for _at, change in store.segment_log(profile_id=pid)]
        return pb.GetProfileHistoryResponse(
            profile_id=pid,
            history=[pb.HistoryEntry(kind=h.kind, subject=h.profile_id, related=h.related_ids,
                                     at=convert.timestamp(h.at), reason=h.reason)
                     for h in store.history(pid)],
            events=[timeline_event(key, e, masked) for key, e in events[:limit]],
            memberships=[pb.MembershipChange(
                segment=c.segment, entered=c.change == "entered", at=convert.timestamp(c.at),
                cause=c.cause, version=c.version, matched_clauses=c.clauses)
                for c in reversed(changes)],
            event_count=len(events))
