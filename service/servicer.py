"""The ``idgraph.v1.ProfileService`` servicer: proto in, ProfileQueries, proto out.

No resolution logic here (that is :class:`idgraph.queries.ProfileQueries`) and no error
handling: handlers raise :class:`idgraph.errors.IdGraphError` subclasses and
:class:`service.interceptors.ErrorMappingInterceptor` turns them into statuses.
The only checks made here are request-shape limits that protect the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from idgraph.errors import IdGraphError
from proto.idgraph.v1 import profiles_pb2 as pb
from proto.idgraph.v1 import profiles_pb2_grpc as pb_grpc
from service import convert
from service.interceptors import status_for

if TYPE_CHECKING:  # idgraph.queries pulls in the resolver; only the type is needed here
    from idgraph.queries import ProfileQueries

MAX_ID_LENGTH = 2048
"""Longest identifier or profile ID accepted (characters); longer ones are INVALID_ARGUMENT."""

_BATCH_METHOD = "/idgraph.v1.ProfileService/BatchLookup"


class InvalidRequestError(IdGraphError):
    """A request breaks a protocol limit (too long, too many, empty); INVALID_ARGUMENT."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


def _check_text(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidRequestError(f"{field} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequestError(f"{field} is longer than {MAX_ID_LENGTH} characters")


class ProfileServiceServicer(pb_grpc.ProfileServiceServicer):
    """Serves Lookup, GetProfile and BatchLookup from a :class:`ProfileQueries`."""

    def __init__(self, queries: ProfileQueries, max_batch_lookup: int = 1000,
                 cache_size: int = 100_000) -> None:
        self._queries = queries
        self._max_batch = max_batch_lookup
        self._protos: dict[str, tuple[float, pb.Profile]] = {}
        self._cache_size = cache_size

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
