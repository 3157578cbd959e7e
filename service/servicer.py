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

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from idgraph.core.errors import IdGraphError, NotFoundError
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from idgraph.service import convert
from idgraph.service.interceptors import ANONYMOUS, status_for

if TYPE_CHECKING:  # idgraph.engine.queries pulls in the resolver; only the types are needed here
    from idgraph.coordination import ReviewQueue
    from idgraph.engine.explain import Explainer
    from idgraph.engine.queries import ProfileQueries

_LOG = logging.getLogger(__name__)

MAX_ID_LENGTH = 2048
"""Longest identifier or profile ID accepted (characters); longer ones are INVALID_ARGUMENT."""

MAX_NOTE_LENGTH = 1000
"""Longest DecideReview note accepted (characters); longer ones are INVALID_ARGUMENT."""

REVIEW_STATUSES = ("open", "accepted", "rejected", "applied")
"""Review statuses ListReviews filters on (``coordination.STATUSES``;
kept here so the servicer does not import the resolver), plus ``all``."""

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

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


def _anonymous(_metadata: Metadata) -> str:
    return ANONYMOUS


def _check_text(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidRequestError(f"{field} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequestError(f"{field} is longer than {MAX_ID_LENGTH} characters")


class ProfileServiceServicer(pb_grpc.ProfileServiceServicer):
    """Serves Lookup, GetProfile and BatchLookup from a :class:`ProfileQueries`, Explain
    from an :class:`Explainer` and ListReviews/DecideReview from a :class:`ReviewQueue`.

    Without ``explainer`` (``reviews``) those rpcs answer UNIMPLEMENTED. ``identify`` maps
    a call's metadata to the caller identity recorded as ``decided_by``
    (:meth:`idgraph.service.interceptors.AuthInterceptor.identity`; "anonymous" by default).
    """

    def __init__(self, queries: ProfileQueries, max_batch_lookup: int = 1000,
                 cache_size: int = 100_000, *, explainer: Explainer | None = None,
                 reviews: ReviewQueue | None = None,
                 identify: Callable[[Metadata], str] | None = None) -> None:
        self._queries = queries
        self._max_batch = max_batch_lookup
        self._protos: dict[str, tuple[float, pb.Profile]] = {}
        self._cache_size = cache_size
        self._explainer = explainer
        self._reviews = reviews
        self._reviews_lock = threading.Lock()  # one SQLite connection shared by the pool
        self._identify = identify or _anonymous

    def _profile_proto(self, profile_id: str, version: float) -> pb.Profile:
        """The rendered profile, reused while its version (head ``updated_at``) is unchanged.

        Folding and converting a profile is most of a lookup's own work (~230 us). The cache
        holds proto messages, not Python objects graphs: a cache of folded dataclasses made
        the cyclic GC's full collections stall the server for tens of ms (measured).
        """
        hit = self._protos.get(profile_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        profile = self._queries.profile(profile_id)
        msg = convert.profile_to_proto(profile)
        if len(self._protos) >= self._cache_size:
            self._protos.clear()
        self._protos[profile_id] = (profile.updated_at, msg)
        return msg

    def Lookup(self, request: pb.LookupRequest, context: grpc.ServicerContext) -> pb.LookupResponse:
        _check_text("identifier", request.identifier)
        located = self._queries.locate(request.identifier)
        return pb.LookupResponse(
            profile=self._profile_proto(located.profile_id, located.version),
            matched_identifier=located.identifier,
            shared=located.shared,
            other_profile_ids=located.other_profile_ids,
        )

    def GetProfile(
        self, request: pb.GetProfileRequest, context: grpc.ServicerContext
    ) -> pb.GetProfileResponse:
        _check_text("profile_id", request.profile_id)
        profile = self._queries.get_profile(request.profile_id)
        return pb.GetProfileResponse(
            profile=convert.profile_fields(profile),
            resolved_from_alias=profile.profile_id != request.profile_id.strip(),
        )

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
        if to_query:
            answers = self._queries.batch_lookup([texts[i] for i in to_query])
            if len(answers) != len(to_query):
                raise RuntimeError("batch_lookup returned a different number of results")
            for i, answer in zip(to_query, answers, strict=True):
                outcomes[i] = answer

        results = []
        for text, outcome in zip(texts, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                code, message = status_for(outcome, _BATCH_METHOD)
                results.append({"identifier": text, "code": code.value[0], "error": message})
            else:
                results.append(
                    {"identifier": text, "result": convert.lookup_result_fields(outcome)}
                )
        return pb.BatchLookupResponse(results=results)

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
        return convert.explanation_to_proto(explanation)

    def _queue(self) -> ReviewQueue:
        if self._reviews is None:
            raise NotAvailableError("reviews are not available: no review queue")
        return self._reviews

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
                    queue.get(after)
                except NotFoundError:
                    raise InvalidRequestError("page_token is not valid") from None
            page = queue.list(status, limit=size, after=after)
            # the next token only when another review follows (no empty last page)
            more = len(page) == size and bool(queue.list(status, limit=1,
                                                         after=page[-1].review_id))
        return pb.ListReviewsResponse(
            reviews=[convert.review_fields(r) for r in page],
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
        with self._reviews_lock:
            review = queue.decide(request.review_id.strip(), accept, decided_by, request.note)
        # audit trail: the review ID and who, never the record keys (they can hold e-mails)
        _LOG.info("review %s %s by %s (now %s)", review.review_id,
                  "accepted" if accept else "rejected", decided_by, review.status)
        return convert.review_to_proto(review)
