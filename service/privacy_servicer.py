"""The ``idgraph.v1.PrivacyService`` servicer: proto in, the privacy parts of the engine
(:mod:`idgraph.engine.consent`, :mod:`idgraph.engine.forget`,
:mod:`idgraph.engine.export_subject`), proto out.

As in :mod:`idgraph.service.servicer`, handlers raise
:class:`~idgraph.core.errors.IdGraphError` subclasses and the error interceptor maps them
to statuses; the checks here are only request-shape limits. Who may call what is the
auth interceptor's job (:data:`idgraph.service.interceptors.PRIVACY_ONLY_METHODS`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import grpc

from idgraph.privacy.ledger import FORGET_STATUSES
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import privacy_pb2_grpc as ppb_grpc
from idgraph.service.convert import seconds, timestamp
from idgraph.service.interceptors import current_principal
from idgraph.service.servicer import (
    PEOPLE_ROLES,
    InvalidRequestError,
    Metadata,
    _caller,
    _check_text,
)

if TYPE_CHECKING:
    from idgraph.engine.consent import ConsentService, ConsentView
    from idgraph.engine.explain import Explainer
    from idgraph.privacy.consent import ConsentEntry
    from idgraph.privacy.ledger import ForgetRequest
    from idgraph.privacy.suppression import SuppressionKeys

_LOG = logging.getLogger(__name__)

EXPORT_CHUNK = 256 * 1024
"""Bytes per ExportChunk message."""

DEFAULT_FORGET_PAGE = 50
MAX_FORGET_PAGE = 500

_STATUS = {
    ppb.RecordConsentRequest.GRANTED: "granted",
    ppb.RecordConsentRequest.DENIED: "denied",
    ppb.RecordConsentRequest.WITHDRAWN: "withdrawn",
}


def entry_proto(e: ConsentEntry) -> ppb.ConsentEntry:
    return ppb.ConsentEntry(
        entry_id=e.entry_id, subject=e.subject, purpose=e.purpose,
        purpose_version=e.purpose_version, status=e.status, legal_basis=e.legal_basis,
        source=e.source, collection_point=e.collection_point, method=e.method,
        notice_version=e.notice_version, jurisdiction=e.jurisdiction,
        captured_at=timestamp(e.captured_at), received_at=timestamp(e.received_at),
        actor=e.actor, region=e.region, event_id=e.event_id)


def view_protos(view: ConsentView) -> list[ppb.PurposeConsent]:
    out = []
    for name, d in sorted(view.decisions.items()):
        out.append(ppb.PurposeConsent(
            purpose=name, state=d.state, allowed=d.allowed,
            entry_id=d.entry.entry_id if d.entry else "",
            captured_at=timestamp(d.entry.captured_at) if d.entry else None))
    return out


def forget_proto(r: ForgetRequest) -> ppb.ForgetStatus:
    return ppb.ForgetStatus(
        request_id=r.request_id, status=r.status, profile_ids=r.profile_ids,
        erased=r.erased, suppressed=r.suppressed, requested_at=timestamp(r.requested_at),
        updated_at=timestamp(r.updated_at), error=r.error)


def forget_page_token(request: ForgetRequest) -> str:
    """The page token after ``request`` in ListForgetRequests' order (opaque to callers:
    its time and ID, base64)."""
    return base64.urlsafe_b64encode(
        f"{request.requested_at!r} {request.request_id}".encode()).decode()


def _after_token(token: str) -> tuple[float, str]:
    """The ``(requested_at, request_id)`` a page token names; InvalidRequestError when it
    is not one :func:`forget_page_token` makes."""
    try:
        if len(token) > 512:
            raise ValueError
        at, _, request_id = base64.urlsafe_b64decode(token.encode("ascii")).decode() \
            .partition(" ")
        after = float(at), request_id
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        raise InvalidRequestError("page_token is not valid") from None
    if not request_id or after[0] != after[0]:  # no ID, or NaN
        raise InvalidRequestError("page_token is not valid")
    return after


def _subject(request) -> tuple[str, str]:
    which = request.WhichOneof("subject")
    if which == "identifier":
        _check_text("identifier", request.identifier)
        return request.identifier, ""
    if which == "profile_id":
        _check_text("profile_id", request.profile_id)
        return "", request.profile_id
    raise InvalidRequestError("set identifier or profile_id")


class PrivacyServiceServicer(ppb_grpc.PrivacyServiceServicer):
    """Consent, forget requests, unsuppression and exports over one consent service (its
    ledger and profile queries). ``explainer`` adds the graph's edges to exports."""

    def __init__(self, consent: ConsentService, keys: SuppressionKeys, *,
                 identify: Callable[[Metadata], str] | None = None,
                 explainer: Explainer | None = None) -> None:
        self._consent = consent
        self._keys = keys
        self._identify = identify or _caller
        self._explainer = explainer
        self._regions = consent.queries.store.regions
        """Forget requests of profiles outside these regions are not shown here."""

    def _who(self, context: grpc.ServicerContext) -> str:
        return self._identify(context.invocation_metadata())

    def RecordConsent(self, request: ppb.RecordConsentRequest, context: grpc.ServicerContext
                      ) -> ppb.RecordConsentResponse:
        from idgraph.engine.consent import Statement

        _check_text("identifier", request.identifier)
        _check_text("purpose", request.purpose)
        status = _STATUS.get(request.status)
        if status is None:
            raise InvalidRequestError("status is required: GRANTED, DENIED or WITHDRAWN")
        statement = Statement(
            purpose=request.purpose.strip(), status=status, legal_basis=request.legal_basis,
            source=request.source, collection_point=request.collection_point,
            method=request.method, notice_version=request.notice_version,
            jurisdiction=request.jurisdiction,
            captured_at=seconds(request.captured_at, request.HasField("captured_at")))
        entry, profile = self._consent.record(request.identifier, statement, self._who(context))
        # no identifier value in the log: the entry ID and the purpose only
        _LOG.info("consent %s %s recorded (%s)", entry.purpose, entry.status, entry.entry_id)
        consent = view_protos(self._consent.view(profile)) if profile is not None else []
        return ppb.RecordConsentResponse(entry=entry_proto(entry),
                                         profile_id=profile.profile_id if profile else "",
                                         consent=consent)

    def GetConsent(self, request: ppb.GetConsentRequest, context: grpc.ServicerContext
                   ) -> ppb.GetConsentResponse:
        identifier, profile_id = _subject(request)
        if request.history_limit < 0:
            raise InvalidRequestError("history_limit is negative")
        limit = min(request.history_limit or 100, 1000)
        profile = self._consent.resolve(identifier, profile_id)
        self._consent.gate(profile, None)  # NOT_FOUND once a forget was requested
        view = self._consent.view(profile)
        if set(current_principal().roles) & PEOPLE_ROLES:
            self._consent.record_read(self._who(context), "GetConsent", [profile.profile_id])
        return ppb.GetConsentResponse(
            profile_id=profile.profile_id, region=profile.region, consent=view_protos(view),
            history=[entry_proto(e) for e in self._consent.entries(profile, limit)])

    def ListPurposes(self, request: ppb.ListPurposesRequest, context: grpc.ServicerContext
                     ) -> ppb.ListPurposesResponse:
        registry = self._consent.ledger.purposes()
        return ppb.ListPurposesResponse(
            registry_version=registry.version,
            purposes=[ppb.Purpose(name=p.name, version=p.version, description=p.description,
                                  legal_basis=p.legal_basis,
                                  opt_in_regions=p.opt_in_regions,
                                  expiry_days=p.expiry_days, attributes=p.attributes,
                                  event_types=p.event_types)
                      for _, p in sorted(registry.purposes.items())])

    def Forget(self, request: ppb.ForgetRequest, context: grpc.ServicerContext
               ) -> ppb.ForgetStatus:
        from idgraph.engine.forget import request_forget

        identifier, profile_id = _subject(request)
        forget = request_forget(self._consent.ledger, self._keys, self._consent.queries,
                                identifier=identifier, profile_id=profile_id,
                                reason=request.reason, actor=self._who(context))
        _LOG.info("forget request %s recorded (%d suppressions)", forget.request_id,
                  forget.suppressed)
        return forget_proto(forget)

    def GetForgetStatus(self, request: ppb.GetForgetStatusRequest,
                        context: grpc.ServicerContext) -> ppb.ForgetStatus:
        from idgraph.engine.forget import forget_request

        _check_text("request_id", request.request_id)
        return forget_proto(forget_request(self._consent.ledger, request.request_id,
                                           self._regions))

    def ListForgetRequests(self, request: ppb.ListForgetRequestsRequest,
                           context: grpc.ServicerContext) -> ppb.ListForgetRequestsResponse:
        """Forget requests newest first, of the served regions only (as GetForgetStatus:
        a request about a profile of another region is not shown)."""
        status = request.status.strip().lower()
        if status and status not in FORGET_STATUSES:
            raise InvalidRequestError(
                f"status must be one of {', '.join(FORGET_STATUSES)} or empty (all)")
        if request.page_size < 0:
            raise InvalidRequestError("page_size is negative")
        size = min(request.page_size or DEFAULT_FORGET_PAGE, MAX_FORGET_PAGE)
        after = _after_token(request.page_token) if request.page_token else None
        served = set(self._regions)
        page: list[ForgetRequest] = []
        while True:  # one more than the page: the next token only when one follows
            batch = self._consent.ledger.list_forget_requests(status, after, size + 1)
            page.extend(r for r in batch if set(r.regions) <= served)
            if len(page) > size or len(batch) <= size:
                break
            after = (batch[-1].requested_at, batch[-1].request_id)
        more = len(page) > size
        page = page[:size]
        return ppb.ListForgetRequestsResponse(
            requests=[forget_proto(r) for r in page],
            next_page_token=forget_page_token(page[-1]) if more else "")

    def Unsuppress(self, request: ppb.UnsuppressRequest, context: grpc.ServicerContext
                   ) -> ppb.UnsuppressResponse:
        from idgraph.engine.forget import unsuppress

        _check_text("request_id", request.request_id)
        removed = unsuppress(self._consent.ledger, request.request_id, request.reason,
                             self._who(context), regions=self._regions)
        _LOG.info("forget request %s unsuppressed (%d values)", request.request_id.strip(),
                  removed)
        return ppb.UnsuppressResponse(removed=removed)

    def ExportSubject(self, request: ppb.ExportSubjectRequest, context: grpc.ServicerContext
                      ) -> Iterator[ppb.ExportChunk]:
        from idgraph.engine.export_subject import export_subject

        identifier, profile_id = _subject(request)
        edges = None
        if self._explainer is not None:
            explainer = self._explainer

            def edges(pid: str):
                return explainer.profile(pid).edges
        _profile, data = export_subject(self._consent, identifier=identifier,
                                        profile_id=profile_id, edges=edges,
                                        requested_by=self._who(context))
        for start in range(0, len(data), EXPORT_CHUNK):
            yield ppb.ExportChunk(data=data[start:start + EXPORT_CHUNK])
