"""The console's web application: routes, sign-in, CSRF and security headers.

Every page is rendered on the server (Jinja2 templates, htmx for the parts that change in
place). Each handler reads the signed-in :class:`~idgraph.console.sessions.Session`, calls
the gRPC API as that person (:class:`~idgraph.console.backend.Caller`) and renders what
came back. The console hides what a role may not do, but never decides it: a refused call
shows the server's status. Identifiers travel in form posts, never in URLs (which end up
in browser history and proxy logs); the request log has the route, status and time only.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from idgraph.console import builder
from idgraph.console.backend import Caller, CallFailed, Gateway
from idgraph.console.pictures import (
    GraphEdge,
    GraphNode,
    bars_svg,
    graph_svg,
    histogram_svg,
    line_svg,
)
from idgraph.console.sessions import Session, Sessions
from idgraph.console.settings import ConsoleSettings
from idgraph.proto.idgraph.v1 import admin_pb2 as apb
from idgraph.proto.idgraph.v1 import privacy_pb2 as ppb
from idgraph.proto.idgraph.v1 import profiles_pb2 as pb
from idgraph.proto.idgraph.v1 import segments_pb2 as spb

log = logging.getLogger("idgraph.console")

HERE = Path(__file__).parent
COOKIE = "idgraph_console"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HTTP_OF = {
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.UNIMPLEMENTED: 501,
}
NAV = (  # (path, label, any of these permissions shows it)
    ("/profiles", "Profiles", ("profiles.read", "profiles.read.masked")),
    ("/segments", "Segments", ("segments.read",)),
    ("/reviews", "Reviews", ("reviews.read",)),
    ("/privacy", "Privacy", ("subjects.forget", "consent.read")),
    ("/admin", "Keys and audit", ("keys.manage", "audit.read")),
)


class SignInNeeded(Exception):
    """No live session: the page redirects to the sign-in form."""


@dataclass(slots=True)
class Console:
    """What the routes share: the settings, the channel, the sessions, the templates."""

    settings: ConsoleSettings
    gateway: Gateway
    sessions: Sessions
    templates: Jinja2Templates
    secure_cookie: bool

    def session(self, request: Request) -> Session:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise SignInNeeded
        return session

    def caller(self, request: Request, session: Session) -> Caller:
        return self.gateway.as_caller(session.key, request.state.request_id)

    def page(self, request: Request, template: str, session: Session | None,
             status_code: int = 200, **context: Any) -> HTMLResponse:
        nav = [(path, label) for path, label, perms in NAV
               if session is not None and any(session.may(p) for p in perms)]
        flash = list(session.flash) if session is not None else []
        if session is not None:
            session.flash.clear()
        return self.templates.TemplateResponse(
            request, template, {"session": session, "nav": nav, "flash": flash,
                                "csrf": session.csrf if session else "", **context},
            status_code=status_code)

    def failed(self, request: Request, session: Session | None, exc: CallFailed,
               fragment: bool = False) -> HTMLResponse:
        status = _HTTP_OF.get(exc.code, 502)
        return self.page(request, "_error.html" if fragment else "error.html", session,
                         status_code=status, error=exc)


def _ts(value: Timestamp) -> str:
    if not value.seconds and not value.nanos:
        return ""
    return datetime.fromtimestamp(value.seconds, UTC).strftime("%Y-%m-%d %H:%M")


async def _form(request: Request, session: Session) -> dict[str, str]:
    """The posted form, after its CSRF token (a field or the ``X-CSRF-Token`` header
    htmx sends) is checked against the session's; ``{}`` for a GET."""
    if request.method != "POST":
        return {}
    form = await request.form()
    token = form.get("csrf") or request.headers.get("x-csrf-token")
    if not session.csrf_ok(str(token) if token is not None else None):
        raise PermissionError("the form's CSRF token is missing or stale: reload the page")
    return {k: str(v) for k, v in form.items()}


async def _run(fn: Callable[..., Response], request: Request, session: Session) -> Response:
    """A page handler, in the thread pool: its gRPC calls block."""
    form = await _form(request, session)
    return await run_in_threadpool(fn, request, session, form)


def _handler(console: Console, fn: Callable[..., Any], fragment: bool = False):
    async def endpoint(request: Request) -> Response:
        try:
            session = console.session(request)
            return await _run(fn, request, session)
        except SignInNeeded:
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": "/signin"})
            return RedirectResponse("/signin", status_code=303)
        except CallFailed as exc:
            if exc.code == grpc.StatusCode.UNAUTHENTICATED:  # the key was revoked or expired
                console.sessions.end(request.cookies.get(COOKIE))
                return RedirectResponse("/signin?ended=1", status_code=303)
            return console.failed(request, console.sessions.get(request.cookies.get(COOKIE)),
                                  exc, fragment or bool(request.headers.get("hx-request")))
        except PermissionError as exc:
            return HTMLResponse(f"<p class='error'>{exc}</p>", status_code=403)
    return endpoint


# --- sign-in ---------------------------------------------------------------------------


def _signin_routes(c: Console) -> list[Route]:
    async def form(request: Request) -> Response:
        ended = request.query_params.get("ended") == "1"
        return c.page(request, "signin.html", None, ended=ended, error="")

    async def submit(request: Request) -> Response:
        data = await request.form()
        key = str(data.get("key", "")).strip()
        if not key:
            return c.page(request, "signin.html", None, status_code=400,
                          error="Paste your API key.", ended=False)
        try:
            who = await run_in_threadpool(
                c.gateway.as_caller(key).call, "admin", "WhoAmI", apb.WhoAmIRequest())
        except CallFailed as exc:
            message = ("The server refused this key (unknown, revoked or expired)."
                       if exc.code == grpc.StatusCode.UNAUTHENTICATED else
                       f"Sign-in failed: {exc.status}: {exc.details}")
            log.info("console sign-in refused: %s", exc.status)
            return c.page(request, "signin.html", None, status_code=401, error=message,
                          ended=False)
        session = c.sessions.start(
            key=key, principal=who.principal, owner=who.owner, roles=list(who.roles),
            regions=list(who.regions), permissions=frozenset(who.permissions),
            unmask=who.unmask)
        log.info("console sign-in: %s roles=%s", who.principal, ",".join(who.roles))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session.session_id, httponly=True, samesite="strict",
                            secure=c.secure_cookie, path="/")
        return response

    async def signout(request: Request) -> Response:
        session = c.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            await _form(request, session)
            c.sessions.end(session.session_id)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return [Route("/signin", form, methods=["GET"]), Route("/signin", submit, methods=["POST"]),
            Route("/signout", signout, methods=["POST"])]


# --- home and profiles -----------------------------------------------------------------


def _profile_routes(c: Console) -> list[Route]:
    def home(request: Request, s: Session, form: dict[str, str]) -> Response:
        return c.page(request, "home.html", s)

    def search(request: Request, s: Session, form: dict[str, str]) -> Response:
        if request.method == "GET":
            return c.page(request, "profiles.html", s, error=None, query="")
        query = form.get("identifier", "").strip()
        calls = c.caller(request, s)
        try:
            if query.startswith("p_") and ":" not in query:
                found = calls.call("profiles", "GetProfile", pb.GetProfileRequest(profile_id=query))
                pid = found.profile.profile_id
            else:
                found = calls.call("profiles", "Lookup", pb.LookupRequest(identifier=query))
                pid = found.profile.profile_id
        except CallFailed as exc:
            if exc.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return c.page(request, "profiles.html", s, status_code=_HTTP_OF[exc.code],
                              error=exc, query=query)
            raise
        return RedirectResponse(f"/profiles/{pid}", status_code=303)

    def profile(request: Request, s: Session, form: dict[str, str]) -> Response:
        pid = request.path_params["pid"]
        calls = c.caller(request, s)
        got = calls.call("profiles", "GetProfile", pb.GetProfileRequest(profile_id=pid))
        p = got.profile
        explain = graph = None
        if s.may("links.explain"):
            explain = calls.call("profiles", "Explain", pb.ExplainRequest(profile_id=p.profile_id))
            graph = _graph(p, explain)
        history = _optional(lambda: calls.call(
            "profiles", "GetProfileHistory",
            pb.GetProfileHistoryRequest(profile_id=p.profile_id, max_events=100)))
        consent = (_optional(lambda: calls.call(
            "privacy", "GetConsent", ppb.GetConsentRequest(profile_id=p.profile_id)))
            if s.may("consent.read") else None)
        segments = (_optional(lambda: calls.call(
            "segments", "EvaluateSegments",
            spb.EvaluateSegmentsRequest(profile_id=p.profile_id)))
            if s.may("segments.evaluate") else None)
        return c.page(request, "profile.html", s, p=p, alias=got.resolved_from_alias,
                      explain=explain, graph=graph, history=history, consent=consent,
                      segments=segments, ts=_ts)

    def edge(request: Request, s: Session, form: dict[str, str]) -> Response:
        pid, index = request.path_params["pid"], request.path_params["index"]
        explain = c.caller(request, s).call("profiles", "Explain",
                                            pb.ExplainRequest(profile_id=pid))
        if index >= len(explain.edges):
            return HTMLResponse("<p class='error'>That edge is gone: reload the page.</p>",
                                status_code=404)
        e = explain.edges[index]
        bars = bars_svg([(x.comparison, x.match_weight) for x in e.contributions])
        return c.page(request, "_edge.html", s, e=e, index=index, bars=bars, ts=_ts)

    return [
        Route("/", _handler(c, home)),
        Route("/profiles", _handler(c, search), methods=["GET", "POST"]),
        Route("/profiles/{pid}", _handler(c, profile)),
        Route("/profiles/{pid}/edges/{index:int}", _handler(c, edge, fragment=True)),
    ]


def _optional(call: Callable[[], Any]) -> Any:
    """A section of a page the caller's role may not see (or the server does not
    serve): None instead of the page failing."""
    try:
        return call()
    except CallFailed as exc:
        if exc.code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED,
                        grpc.StatusCode.FAILED_PRECONDITION):
            return None
        raise


def _graph(p: pb.Profile, explain: pb.ExplainResponse) -> Any:
    nodes: dict[str, GraphNode] = {}
    for i in p.identifiers:
        nodes[f"identifier:{i.identifier}"] = GraphNode(
            f"identifier:{i.identifier}", i.identifier, "identifier", i.type)
    edges = []
    for index, e in enumerate(explain.edges):
        a = f"record:{e.record_key}"
        nodes.setdefault(a, GraphNode(a, e.record_key, "record", e.record_key.split(":", 1)[0]))
        if e.other_record:
            b = f"record:{e.other_record}"
            nodes.setdefault(b, GraphNode(b, e.other_record, "record",
                                          e.other_record.split(":", 1)[0]))
        else:
            b = f"identifier:{e.identifier}"
            nodes.setdefault(b, GraphNode(b, e.identifier, "identifier",
                                          e.identifier.split(":", 1)[0]))
        weight = e.match_weight if e.HasField("match_weight") else None
        edges.append(GraphEdge(index, a, b, e.linked, e.rule, weight))
    url = f"/profiles/{p.profile_id}/edges/{{index}}"
    return {"svg": graph_svg(list(nodes.values()), edges, url),
            "identifiers": sorted(n.label for n in nodes.values() if n.kind == "identifier"),
            "records": sorted(n.label for n in nodes.values() if n.kind == "record")}


# --- segments --------------------------------------------------------------------------


def _segment_routes(c: Console) -> list[Route]:
    def listing(request: Request, s: Session, form: dict[str, str]) -> Response:
        calls = c.caller(request, s)
        segments = calls.call("segments", "ListSegments", spb.ListSegmentsRequest()).segments
        rows = []
        for seg in segments:
            count = (_optional(lambda seg=seg: calls.call(
                "segments", "CountSegment", spb.CountSegmentRequest(name=seg.name)))
                if s.may("segments.count") else None)
            activity = _optional(lambda seg=seg: calls.call(
                "segments", "GetSegmentActivity",
                spb.GetSegmentActivityRequest(name=seg.name, hours=24)))
            rows.append({"segment": seg, "count": count, "activity": activity})
        return c.page(request, "segments.html", s, rows=rows, ts=_ts)

    def view(request: Request, s: Session, form: dict[str, str]) -> Response:
        name = request.query_params.get("name", "")
        calls = c.caller(request, s)
        seg = calls.call("segments", "GetSegment", spb.GetSegmentRequest(name=name))
        count = (_optional(lambda: calls.call("segments", "CountSegment",
                                              spb.CountSegmentRequest(name=name)))
                 if s.may("segments.count") else None)
        activity = _optional(lambda: calls.call(
            "segments", "GetSegmentActivity",
            spb.GetSegmentActivityRequest(name=name, hours=24, bucket_minutes=60)))
        chart = None
        if activity is not None:
            chart = line_svg([(_ts(b.start)[11:], b.size_at_end) for b in activity.buckets],
                             label="members, last 24 h")
        members: list = []
        if s.may("segments.members"):
            for page in calls.stream("segments", "ListSegmentMembers",
                                     spb.ListSegmentMembersRequest(name=name, page_size=20)):
                members = list(page.members)
                break
        versions = [v for v in seg.versions if not v.deleted]
        diff_to = int(request.query_params.get("v", "0") or 0) or seg.version
        diff = _version_diff(versions, diff_to)
        return c.page(request, "segment.html", s, seg=seg, count=count, activity=activity,
                      chart=chart, members=members, versions=versions, diff=diff,
                      diff_to=diff_to, ts=_ts)

    def edit(request: Request, s: Session, form: dict[str, str]) -> Response:
        name = request.query_params.get("name", "")
        calls = c.caller(request, s)
        text, description, json_form = 'has_identifier(email)', "", None
        if name:
            seg = calls.call("segments", "GetSegment", spb.GetSegmentRequest(name=name))
            text, description, json_form = seg.definition, seg.description, seg.definition_json
        if json_form is None:
            json_form = calls.call("segments", "CheckSegment",
                                   spb.CheckSegmentRequest(definition=text)).canonical_json
        combine, rows = builder.json_to_rows(json.loads(json_form))
        segments = [x.name for x in calls.call("segments", "ListSegments",
                                               spb.ListSegmentsRequest()).segments]
        return c.page(request, "segment_edit.html", s, name=name, text=text,
                      description=description, combine=combine, rows=rows, b=builder,
                      segments=segments, error=None, oob=False)

    def sync(request: Request, s: Session, form: dict[str, str]) -> Response:
        """htmx: the text or the rows changed; the other side follows through JSON."""
        calls = c.caller(request, s)
        source = request.query_params.get("from", "text")
        segments = [x.name for x in calls.call("segments", "ListSegments",
                                               spb.ListSegmentsRequest()).segments]
        error = None
        text = form.get("definition", "")
        if source == "builder":
            combine, rows = builder.rows_from_form(form)
            try:
                draft = json.dumps(builder.rows_to_json(combine, rows))
                checked = calls.call("segments", "CheckSegment",
                                     spb.CheckSegmentRequest(definition=draft))
                text = checked.canonical_text
            except builder.BuilderError as exc:
                error = str(exc)
            except CallFailed as exc:
                if exc.code not in (grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.FAILED_PRECONDITION):
                    raise
                error = exc.details
            return c.page(request, "_builder.html", s, combine=combine, rows=rows, b=builder,
                          segments=segments, error=error, text=text, oob=error is None)
        try:
            checked = calls.call("segments", "CheckSegment",
                                 spb.CheckSegmentRequest(definition=text))
            combine, rows = builder.json_to_rows(json.loads(checked.canonical_json))
        except CallFailed as exc:
            if exc.code not in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION):
                raise
            error = exc.details
            combine, rows = builder.rows_from_form(form)
        return c.page(request, "_builder.html", s, combine=combine, rows=rows, b=builder,
                      segments=segments, error=error, text=text, oob=False)

    def preview(request: Request, s: Session, form: dict[str, str]) -> Response:
        started = time.perf_counter()
        try:
            answer = c.caller(request, s).call("segments", "PreviewSegment",
                                               spb.PreviewSegmentRequest(
                                                   definition=form.get("definition", ""),
                                                   name=form.get("name", ""), samples=20))
        except CallFailed as exc:
            if exc.code not in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return c.page(request, "_error.html", s, error=exc)
        ms = (time.perf_counter() - started) * 1000
        return c.page(request, "_preview.html", s, pv=answer, ms=ms)

    def save(request: Request, s: Session, form: dict[str, str]) -> Response:
        name = form.get("name", "").strip()
        try:
            done = c.caller(request, s).call("segments", "DefineSegment", spb.DefineSegmentRequest(
                name=name, definition=form.get("definition", ""),
                description=form.get("description", "")))
        except CallFailed as exc:
            if exc.code not in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return c.page(request, "_error.html", s, error=exc, status_code=400)
        s.flash.append(f"Saved version {done.segment.version}." if done.changed else
                       "No change: that is the current definition.")
        return Response(status_code=204,
                        headers={"HX-Redirect": f"/segments/view?name={quote(name)}"})

    def delete(request: Request, s: Session, form: dict[str, str]) -> Response:
        name = form.get("name", "")
        c.caller(request, s).call("segments", "DeleteSegment", spb.DeleteSegmentRequest(name=name))
        s.flash.append("Segment deleted.")
        return RedirectResponse("/segments", status_code=303)

    return [
        Route("/segments", _handler(c, listing)),
        Route("/segments/view", _handler(c, view)),
        Route("/segments/edit", _handler(c, edit)),
        Route("/segments/sync", _handler(c, sync, True), methods=["POST"]),
        Route("/segments/preview", _handler(c, preview, True), methods=["POST"]),
        Route("/segments/save", _handler(c, save, True), methods=["POST"]),
        Route("/segments/delete", _handler(c, delete), methods=["POST"]),
    ]


def _version_diff(versions: list, upto: int) -> str:
    """Unified diff of the canonical text of version ``upto`` from the one before it."""
    by_number = {v.version: v for v in versions}
    if upto not in by_number:
        return ""
    earlier = [v for v in versions if v.version < upto]
    before = earlier[-1].definition if earlier else ""
    return "\n".join(difflib.unified_diff(
        before.splitlines(), by_number[upto].definition.splitlines(),
        f"version {earlier[-1].version}" if earlier else "(new)", f"version {upto}",
        lineterm=""))


# --- reviews ---------------------------------------------------------------------------


def _review_routes(c: Console) -> list[Route]:
    def queue(request: Request, s: Session, form: dict[str, str]) -> Response:
        calls = c.caller(request, s)
        status = request.query_params.get("status", "open")
        page = calls.call("profiles", "ListReviews",
                          pb.ListReviewsRequest(status=status, page_size=20,
                                                page_token=request.query_params.get("page", "")))
        weights, token = [], ""
        for _ in range(20):  # the histogram: up to 2,000 reviews of this status
            more = calls.call("profiles", "ListReviews", pb.ListReviewsRequest(
                status=status, page_size=100, page_token=token))
            weights.extend(r.match_weight for r in more.reviews)
            token = more.next_page_token
            if not token:
                break
        cards = [{"r": r, "bars": bars_svg([(x.comparison, x.match_weight)
                                            for x in r.contributions])} for r in page.reviews]
        return c.page(request, "reviews.html", s, cards=cards, status=status,
                      next_page=page.next_page_token, ts=_ts,
                      histogram=histogram_svg(weights, label="match weight"),
                      total=len(weights))

    def decide(request: Request, s: Session, form: dict[str, str]) -> Response:
        accept = form.get("decision") == "accept"
        review = c.caller(request, s).call("profiles", "DecideReview", pb.DecideReviewRequest(
            review_id=request.path_params["rid"], note=form.get("note", ""),
            decision=pb.DecideReviewRequest.ACCEPT if accept else pb.DecideReviewRequest.REJECT))
        card = {"r": review, "bars": bars_svg([(x.comparison, x.match_weight)
                                               for x in review.contributions])}
        return c.page(request, "_review.html", s, card=card, ts=_ts)

    return [Route("/reviews", _handler(c, queue)),
            Route("/reviews/{rid}/decide", _handler(c, decide, True), methods=["POST"])]


# --- privacy ---------------------------------------------------------------------------


def _subject(form: dict[str, str]) -> dict[str, str]:
    subject = form.get("subject", "").strip()
    if subject.startswith("p_") and ":" not in subject:
        return {"profile_id": subject}
    return {"identifier": subject}


def _privacy_routes(c: Console) -> list[Route]:
    def overview(request: Request, s: Session, **extra: Any) -> Response:
        calls = c.caller(request, s)
        requests = (_optional(lambda: calls.call(
            "privacy", "ListForgetRequests", ppb.ListForgetRequestsRequest(page_size=50)))
            if s.may("subjects.forget") else None)
        purposes = (_optional(lambda: calls.call("privacy", "ListPurposes",
                                                 ppb.ListPurposesRequest()))
                    if s.may("purposes.read") else None)
        context = {"requests": requests, "purposes": purposes, "consent": None,
                   "forgot": None, "error": None, "recorded": None, **extra}
        return c.page(request, "privacy.html", s, ts=_ts, **context)

    def page(request: Request, s: Session, form: dict[str, str]) -> Response:
        return overview(request, s)

    def forget(request: Request, s: Session, form: dict[str, str]) -> Response:
        try:
            status = c.caller(request, s).call("privacy", "Forget", ppb.ForgetRequest(
                reason=form.get("reason", ""), **_subject(form)))
        except CallFailed as exc:
            response = overview(request, s, error=exc)
            response.status_code = _HTTP_OF.get(exc.code, 502)
            return response
        return overview(request, s, forgot=status)

    def consent(request: Request, s: Session, form: dict[str, str]) -> Response:
        calls = c.caller(request, s)
        try:
            recorded = None
            if form.get("status"):
                status = getattr(ppb.RecordConsentRequest, form["status"].upper())
                recorded = calls.call("privacy", "RecordConsent", ppb.RecordConsentRequest(
                    identifier=form.get("subject", "").strip(), purpose=form.get("purpose", ""),
                    status=status, source="console",
                    collection_point=form.get("collection_point", "") or "console"))
            shown = calls.call("privacy", "GetConsent",
                               ppb.GetConsentRequest(**_subject(form), history_limit=50))
        except (CallFailed, AttributeError) as exc:
            if isinstance(exc, AttributeError):
                exc = CallFailed("RecordConsent", grpc.StatusCode.INVALID_ARGUMENT,
                                 "choose granted, denied or withdrawn")
            response = overview(request, s, error=exc)
            response.status_code = _HTTP_OF.get(exc.code, 502)
            return response
        return overview(request, s, consent=shown, recorded=recorded)

    def export(request: Request, s: Session, form: dict[str, str]) -> Response:
        calls = c.caller(request, s)
        chunks: Iterator = calls.stream("privacy", "ExportSubject",
                                        ppb.ExportSubjectRequest(**_subject(form)))
        first = next(chunks, None)  # a refusal fails here, before any byte is sent
        def body() -> Iterator[bytes]:
            if first is not None:
                yield first.data
            for chunk in chunks:
                yield chunk.data
        return StreamingResponse(body(), media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="subject-export.zip"'})

    return [Route("/privacy", _handler(c, page)),
            Route("/privacy/forget", _handler(c, forget), methods=["POST"]),
            Route("/privacy/consent", _handler(c, consent), methods=["POST"]),
            Route("/privacy/export", _handler(c, export), methods=["POST"])]


# --- keys and audit --------------------------------------------------------------------


def _admin_routes(c: Console) -> list[Route]:
    def overview(request: Request, s: Session, **extra: Any) -> Response:
        calls = c.caller(request, s)
        keys = (_optional(lambda: calls.call("admin", "ListKeys",
                                             apb.ListKeysRequest(include_inactive=True)))
                if s.may("keys.manage") else None)
        audit = None
        if s.may("audit.read"):
            after = max(0, int(request.query_params.get("after", "0") or 0))
            audit = _optional(lambda: calls.call("admin", "ReadAudit", apb.ReadAuditRequest(
                after_seq=after, limit=100)))
        context = {"keys": keys, "audit": audit, "issued": None, "verified": None,
                   "error": None, **extra}
        return c.page(request, "admin.html", s, ts=_ts, **context)

    def page(request: Request, s: Session, form: dict[str, str]) -> Response:
        return overview(request, s)

    def act(request: Request, s: Session, form: dict[str, str]) -> Response:
        calls = c.caller(request, s)
        action = request.path_params["action"]
        try:
            if action == "create":
                issued = calls.call("admin", "CreateKey", apb.CreateKeyRequest(
                    owner=form.get("owner", ""), roles=[r for r in builder_roles(form)],
                    regions=[r.strip() for r in form.get("regions", "").split(",")
                             if r.strip()],
                    expires_in_days=float(form.get("days") or 0),
                    unmask=form.get("unmask") == "on",
                    description=form.get("description", "")))
                return overview(request, s, issued=issued)
            if action == "rotate":
                rotated = calls.call("admin", "RotateKey", apb.RotateKeyRequest(
                    key_id=form.get("key_id", ""),
                    overlap_seconds=float(form.get("overlap_hours") or 0) * 3600))
                return overview(request, s, issued=rotated.successor)
            if action == "revoke":
                calls.call("admin", "RevokeKey", apb.RevokeKeyRequest(
                    key_id=form.get("key_id", ""), reason=form.get("reason", "")))
                s.flash.append("Key revoked.")
                return overview(request, s)
            if action == "verify":
                verified = calls.call("admin", "VerifyAudit", apb.VerifyAuditRequest())
                return overview(request, s, verified=verified)
        except CallFailed as exc:
            response = overview(request, s, error=exc)
            response.status_code = _HTTP_OF.get(exc.code, 502)
            return response
        except ValueError:
            exc = CallFailed(action, grpc.StatusCode.INVALID_ARGUMENT, "days and hours are numbers")
            response = overview(request, s, error=exc)
            response.status_code = 400
            return response
        return Response(status_code=404)

    return [Route("/admin", _handler(c, page)),
            Route("/admin/{action}", _handler(c, act), methods=["POST"])]


def builder_roles(form: dict[str, str]) -> list[str]:
    """The roles ticked in the key form (``role-NAME`` check boxes)."""
    return [k[5:] for k, v in form.items() if k.startswith("role-") and v == "on"]


# --- the application -------------------------------------------------------------------


class _Headers(BaseHTTPMiddleware):
    """Security headers on every answer, a request ID per request, and one log line per
    request: method, route, status, milliseconds (no query, no form, no identifier)."""

    async def dispatch(self, request: Request, call_next: Callable) -> Response:
        request.state.request_id = "console-" + secrets.token_hex(8)
        started = time.perf_counter()
        response = await call_next(request)
        headers = response.headers
        headers["Content-Security-Policy"] = CSP
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            headers["Cache-Control"] = "no-store"
        route = request.scope.get("route")
        log.info("%s %s %d %.1fms", request.method,
                 getattr(route, "path", "static" if request.url.path.startswith("/static/")
                         else "?"), response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response


def create_app(settings: ConsoleSettings, gateway: Gateway | None = None) -> Starlette:
    """The console over ``settings.server`` (or ``gateway``). Serve it with uvicorn
    (``idgraph console`` does)."""
    gateway = gateway or Gateway(settings.server, settings.server_tls_ca_file,
                                 settings.call_timeout_seconds)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    console = Console(
        settings=settings, gateway=gateway,
        sessions=Sessions(settings.session_idle_minutes * 60, settings.session_max_hours * 3600),
        templates=templates, secure_cookie=settings.tls_cert_file is not None)
    routes = [*_signin_routes(console), *_profile_routes(console), *_segment_routes(console),
              *_review_routes(console), *_privacy_routes(console), *_admin_routes(console),
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        gateway.close()

    app = Starlette(routes=routes, middleware=[Middleware(_Headers)], lifespan=lifespan)
    app.state.console = console
    return app
