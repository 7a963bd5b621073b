"""The Starlette application of the supervisor view: log-in, the live floor, its
server-sent-events stream, the supervisor's form posts, and a contact's explanation.

Every action calls the very use cases the gRPC supervisor API calls
(``Supervision.set_skill`` / ``remove_skill`` then ``agent_changed``, ``Engine.set_state``),
with the web session as the audit actor; their errors are shown next to the field.
The tenant always comes from the session, never from the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.assign import rule_for
from router.convert import resource_id
from router.domain import AgentId, AgentState, ContactId
from router.engine import Engine
from router.errors import Conflict, InvalidArgument, NotFound
from router.rules import RuleBook, check_name
from router.supervision import Supervision
from router.web import pages
from router.web.feed import Feed
from router.web.pages import FormState
from router.web.render import fragments
from router.web.session import COOKIE, MAX_AGE_S, LoginRefused, Sessions, WebSession, same_origin
from router.web.snapshot import read_snapshot

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_FILTERS = ("q", "skill", "state")
_MAX_FORM_BYTES = 8192
KEEPALIVE_S = 15.0


@dataclass
class WebContext:
    """What the pages need of the replica (or of the standalone web process)."""

    engine: Engine
    supervision: Supervision
    sessions: Sessions
    feed: Feed


class SecurityHeaders:
    """ASGI middleware: CSP and friends on every response (streams included)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self._app(scope, receive, send_with_headers)


Handler = Callable[[Request, WebSession], Awaitable[Response]]


def create_app(ctx: WebContext) -> ASGIApp:
    """The web view's ASGI application."""

    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await ctx.sessions.resolve(request)
            if session is None:
                if request.method == "GET" and request.url.path != "/events":
                    return RedirectResponse("/login", 303)
                return PlainTextResponse("sign in first", 401)
            structlog.contextvars.bind_contextvars(tenant=session.tenant)
            if request.method == "POST" and not same_origin(request):
                log.warning("web_cross_site_refused", path=request.url.path)
                return PlainTextResponse("cross-site request refused", 403)
            return await handler(request, session)

        return endpoint

    async def login_form(request: Request) -> Response:
        return HTMLResponse(pages.login_page())

    async def login(request: Request) -> Response:
        if not same_origin(request):
            return PlainTextResponse("cross-site request refused", 403)
        form = await _form(request)
        try:
            session, cookie = await ctx.sessions.log_in(form.get("api_key", ""))
        except LoginRefused as exc:
            log.warning("web_login_refused", reason=str(exc))
            return HTMLResponse(pages.login_page(str(exc)), 401)
        log.info("web_login", tenant=session.tenant, actor=session.actor)
        response = RedirectResponse("/floor", 303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request, session: WebSession) -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    async def floor(request: Request, session: WebSession) -> Response:
        return await _floor(ctx, request, session)

    async def events(request: Request, session: WebSession) -> Response:
        sub = ctx.feed.subscribe(session.tenant)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while not sub.closed:
                    message = await sub.next(KEEPALIVE_S)
                    if message is not None:
                        yield message.text
                    elif not sub.closed:
                        yield ": keep-alive\n\n"
            finally:
                ctx.feed.unsubscribe(sub)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def skill_action(request: Request, session: WebSession) -> Response:
        form = await _form(request)
        if not ctx.sessions.check_form_token(session, form.get("csrf", "")):
            return PlainTextResponse("form token missing or stale: reload the page", 403)
        errors = await _set_skill(ctx, session, form)
        done = "remove" if form.get("op") == "remove" else "skill"
        if errors:
            return await _floor(ctx, request, session, skill_form=FormState(form, errors))
        return RedirectResponse(_back(form, done), 303)

    async def state_action(request: Request, session: WebSession) -> Response:
        form = await _form(request)
        if not ctx.sessions.check_form_token(session, form.get("csrf", "")):
            return PlainTextResponse("form token missing or stale: reload the page", 403)
        errors = await _set_state(ctx, session, form)
        if errors:
            return await _floor(ctx, request, session, state_form=FormState(form, errors))
        return RedirectResponse(_back(form, "state"), 303)

    async def contact(request: Request, session: WebSession) -> Response:
        contact_id = str(request.path_params["contact_id"])
        try:
            resource_id("contact", contact_id, "contact")
            record = await ctx.engine.get_contact(session.tenant, ContactId(contact_id))
        except (InvalidArgument, NotFound):
            return HTMLResponse(
                pages.message_page("Not found", f"No contact {contact_id[:40]!r}."), 404
            )
        rules = RuleBook(await ctx.supervision.list_rules(session.tenant))
        now = await ctx.engine.state.now_ms()
        required = rule_for(rules, record.contact.issue).requirements(record.contact, now / 1000)
        need = ", ".join(f"{s} ≥ {lvl}" for s, lvl in sorted(required.items())) or "nothing"
        return HTMLResponse(pages.contact_page(record, now, need))

    async def root(request: Request) -> Response:
        return RedirectResponse("/floor", 303)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", root),
        Route("/healthz", health),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(logout), methods=["POST"]),
        Route("/floor", page(floor), methods=["GET"]),
        Route("/events", page(events), methods=["GET"]),
        Route("/actions/skill", page(skill_action), methods=["POST"]),
        Route("/actions/state", page(state_action), methods=["POST"]),
        Route("/contacts/{contact_id}", page(contact), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return SecurityHeaders(Starlette(routes=routes))


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0].strip() for k, v in parsed.items() if v}


def _filters(params: Mapping[str, str]) -> dict[str, str]:
    return {k: str(params.get(k, ""))[:64] for k in _FILTERS if params.get(k)}


def _back(form: Mapping[str, str], done: str) -> str:
    previous = {k: v[0] for k, v in parse_qs(form.get("back", "")).items()}
    return "/floor?" + urlencode({**_filters(previous), "done": done})


async def _floor(
    ctx: WebContext,
    request: Request,
    session: WebSession,
    *,
    skill_form: FormState | None = None,
    state_form: FormState | None = None,
) -> Response:
    """The floor page with the newest shared snapshot's fragments (the stream follows)."""
    snap = await read_snapshot(ctx.engine.state, ctx.feed.store, session.tenant)
    params = request.query_params
    html = pages.floor_page(
        session.tenant,
        fragments(snap),
        _filters(params),
        ctx.sessions.form_token(session),
        wallboard=params.get("wallboard") == "1",
        skill_form=skill_form,
        state_form=state_form,
        done=params.get("done", ""),
    )
    status = 400 if (skill_form or state_form) else 200
    return HTMLResponse(html, status)


def _field_of(exc: InvalidArgument, fields: Mapping[str, str]) -> str:
    for prefix, name in fields.items():
        if exc.field.startswith(prefix):
            return name
    return "form"


async def _set_skill(
    ctx: WebContext, session: WebSession, form: Mapping[str, str]
) -> dict[str, str]:
    """Set or remove a skill through Supervision; the problems by field."""
    agent, skill, level = form.get("agent", ""), form.get("skill", ""), form.get("proficiency")
    errors: dict[str, str] = {}
    try:
        resource_id("agent", agent, "agent")
    except InvalidArgument as exc:
        errors["agent"] = "required" if not agent else exc.problem
    try:
        check_name("skill", skill)
    except InvalidArgument as exc:
        errors["skill"] = exc.problem
    op = form.get("op", "set")
    number = 0
    if op != "remove":
        try:
            number = int(level or "")
        except ValueError:
            errors["proficiency"] = "a whole number 1–5"
    if errors:
        return errors
    try:
        if op == "remove":
            await ctx.supervision.remove_skill(session.tenant, AgentId(agent), skill, session.actor)
        else:
            await ctx.supervision.set_skill(
                session.tenant, AgentId(agent), skill, number, session.actor
            )
    except InvalidArgument as exc:
        return {_field_of(exc, {"skill.proficiency": "proficiency", "skill": "skill"}): exc.problem}
    except NotFound as exc:
        return {"skill" if "has no skill" in str(exc) else "agent": str(exc)}
    except Conflict as exc:
        return {"form": str(exc)}
    ctx.engine.router(session.tenant).agent_changed(AgentId(agent))
    log.info("web_skill_changed", agent_id=agent, skill=skill, op=op, actor=session.actor)
    return {}


async def _set_state(
    ctx: WebContext, session: WebSession, form: Mapping[str, str]
) -> dict[str, str]:
    """Force an agent's state through the engine; the problems by field."""
    agent, reason = form.get("agent", ""), form.get("reason", "")
    errors: dict[str, str] = {}
    try:
        resource_id("agent", agent, "agent")
    except InvalidArgument as exc:
        errors["agent"] = "required" if not agent else exc.problem
    try:
        state = AgentState(form.get("state", ""))
    except ValueError:
        errors["state"] = "choose available, away or signed out"
        state = AgentState.AWAY
    if state is AgentState.AWAY and not reason:
        errors["reason"] = "required when the state is away"
    elif state is AgentState.AWAY:
        try:
            check_name("away_reason", reason)
        except InvalidArgument as exc:
            errors["reason"] = exc.problem
    if errors:
        return errors
    try:
        await ctx.engine.set_state(
            session.tenant,
            AgentId(agent),
            state,
            reason if state is AgentState.AWAY else "",
            session.actor,
        )
    except InvalidArgument as exc:
        return {_field_of(exc, {"away_reason": "reason"}): exc.problem}
    except NotFound as exc:
        return {"agent": str(exc)}
    except Conflict as exc:
        return {"state": str(exc)}
    log.info("web_state_forced", agent_id=agent, state=state.value, actor=session.actor)
    return {}
