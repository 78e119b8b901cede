"""The web dashboard as an ASGI app (Starlette): pages, their JSON twins, actions, live stream.

:func:`create_app` builds it over a :class:`~district.service.Console`; ``district/web/
server.py`` serves it with uvicorn inside ``diemcau-district run``. URL layout (every HTML page
has its ``.json`` twin; see ``docs/console.md``)::

    GET  /login  POST /login  POST /logout
    GET  /  /rooms.json                       every room (filter, sort, page)
    GET  /rooms/<site>  /rooms/<site>.json    one room: state, timeline, events, commands
    POST /rooms/<site>/power|check|help
    GET  /windows  /windows.json              POST /windows (schedule, or start now)
    GET  /windows/<id>  /windows/<id>.json    POST /windows/<id>/complete|check
    POST /windows/<id>/rooms/<site>/result
    GET  /windows/<id>/report(.json|.csv)  /windows/<id>/report/print
    GET  /alerts  /alerts.json                POST /alerts/<n>/take
    GET  /live?view=…                         the page's server-sent events
    GET  /static/…

Example::

    app = create_app(console, secret=b"x" * 64)
    with TestClient(app) as client: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from district import health
from district.config import Lang
from district.i18n import t as report_word
from district.model import Actor, Change, User
from district.service import Console
from district.timefmt import iso_local, local, show
from district.web import actions, pages, views
from district.web.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANG_COOKIE,
    SESSION_COOKIE,
    RateLimiter,
    Session,
    Sessions,
)
from district.web.live import Hub
from district.web.text import command_name, event_kind, recording_text, short_device, word
from district.web.views import Roster

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE.parent / "templates"
STATIC = HERE / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_BODY = 256 * 1024
"""No form of the dashboard is near this; a bigger body is refused before it is read."""
PRINT_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HTMX_CONFIG = json.dumps({
    "includeIndicatorStyles": False,
    "allowEval": False,
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "(400|403|404|409|429)", "swap": True, "error": False},
        {"code": "[45]..", "swap": False, "error": True},
    ],
})


class Ctx:
    """One request's viewer: language, user, role, CSRF token."""

    def __init__(self, lang: Lang, session: Session | None, user: User | None,
                 csrf: str) -> None:
        self.lang = lang
        self.session = session
        self.user = user
        self.csrf = csrf

    @property
    def may_command(self) -> bool:
        """Whether this viewer may act (an operator)."""
        return self.user is not None and self.user.may_command

    @property
    def actor(self) -> Actor:
        """The signed-in user as the service's :class:`~district.model.Actor`."""
        assert self.user is not None
        return Actor(self.user.name, self.user.role)


class Dashboard:
    """Shared parts of every handler: the console, sessions, templates, the live hub."""

    def __init__(self, console: Console, secret: bytes, *,
                 clock: Callable[[], float] | None = None,
                 limiter: RateLimiter | None = None, coalesce_s: float = 0.5) -> None:
        self.console = console
        self.cfg = console.cfg
        self.zone = console.cfg.zone
        self.clock = clock or console.clock
        self.sessions = Sessions(secret, clock=self.clock)
        self.limiter = limiter or RateLimiter()
        self.hub = Hub(coalesce_s)
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.globals.update(htmx_config=HTMX_CONFIG, csrf_field=CSRF_FIELD,
                                window_title=self.window_title)
        self._roster: Roster | None = None
        self.recording_seen: tuple[health.Problem, ...] | None = None
        """What :meth:`watch_recording` saw last."""

    def window_title(self, window_id: str) -> str:
        """What people call a window (its title), for links that would otherwise show its id."""
        w = self.console.store.window(window_id)
        return w.title if w is not None and w.title else window_id

    @property
    def roster(self) -> Roster:
        """The roster with fast look-ups (rebuilt if the config object changed)."""
        if self._roster is None or self._roster.console is not self.console:
            self._roster = Roster(self.console)
        return self._roster

    # -- who is asking ------------------------------------------------------------------------
    def lang_of(self, request: Request) -> Lang:
        """``?lang=`` if given, else the cookie, else Vietnamese."""
        q = request.query_params.get("lang")
        if q in ("vi", "en"):
            return q  # type: ignore[return-value]
        c = request.cookies.get(LANG_COOKIE)
        return "en" if c == "en" else "vi"

    def ctx(self, request: Request) -> Ctx:
        """Who is asking: the session (if valid), its user (read fresh), its CSRF token."""
        lang = self.lang_of(request)
        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        user = None
        if session is not None:
            found = self.console.store.user(session.user)  # one row, not the whole table
            user = found[0] if found is not None else None
            if user is None:
                session = None
        csrf = self.sessions.csrf(session.nonce) if session else ""
        return Ctx(lang, session, user, csrf)

    # -- rendering -------------------------------------------------------------------------------
    def when(self, ts: float | None, with_date: bool | None = None) -> str:
        """A time for people in the configured zone; the date only when it is not today."""
        if ts is None:
            return "—"
        if with_date is None:
            with_date = local(ts, self.zone).date() != local(self.clock(), self.zone).date()
        return show(ts, self.zone, with_date)

    def globals(self, ctx: Ctx) -> dict[str, Any]:
        """What every template sees (words, times, names, the viewer)."""
        lang = ctx.lang

        def w(key: str, **fmt: Any) -> str:
            return word(key, lang, **fmt)

        return {"lang": lang, "w": w, "when": self.when, "ctx": ctx,
                "iso": lambda ts: iso_local(ts, self.zone) or "",
                "ev": lambda k: event_kind(k, lang), "rt": lambda k: report_word(k, lang),
                "cmd": lambda n: command_name(n, lang), "short": lambda n: short_device(n, lang),
                "org": self.cfg.organisation.name.get(lang),
                "level": self.cfg.organisation.level.get(lang),
                "zone_name": self.cfg.timezone, "roster": self.roster,
                "qs": lambda d: urlencode(d), "tel": views.tel}

    def fragment(self, ctx: Ctx, name: str, **kw: Any) -> str:
        """Render one template (a page or a fragment) for the viewer."""
        return self.env.get_template(name).render(**self.globals(ctx), **kw)

    def alerts_banner(self, ctx: Ctx, oob: bool = False) -> str:
        """The open alerts at the top of every page (``oob``: for the live stream)."""
        open_ = self.console.alerts(open_only=True, limit=None)
        return self.fragment(ctx, "web/_alerts.html", alerts=open_[:5], more=len(open_) - 5,
                             total=len(open_), oob=oob)

    def recording_problems(self) -> list[health.Problem]:
        """What is wrong with the recording now (``district/health.py``)."""
        return health.problems(self.cfg, self.console.store, self.clock())

    def health_banner(self, ctx: Ctx, oob: bool = False) -> str:
        """What is wrong with the recording itself (``district/health.py``: a recorder part
        stopped, its broker link down, another configuration), above the alerts."""
        texts = [recording_text(p, ctx.lang, self.when) for p in self.recording_problems()]
        return self.fragment(ctx, "web/_health.html", problems=texts, oob=oob)

    async def watch_recording(self, every_s: float) -> None:
        """Look at the recording's problems every ``every_s`` and tell the live pages when
        they change (a part stopping is noticed by time passing, not by a message; every
        process's dashboard looks for itself)."""
        while True:
            try:
                now = tuple(await asyncio.to_thread(self.recording_problems))
                if now != self.recording_seen:
                    first, self.recording_seen = self.recording_seen is None, now
                    if not first:   # a page renders what is wrong as it is drawn
                        self.hub.on_change(Change("health"))
            except Exception:
                log.exception("could not look at the recording's heartbeats")
            await asyncio.sleep(every_s)

    def page(self, ctx: Ctx, name: str, *, status: int = 200, live: dict[str, str] | None = None,
             title: str = "", **kw: Any) -> HTMLResponse:
        """A whole page: the recording's problems and the alert banner, the template, the
        live stream of its view."""
        banner = self.health_banner(ctx) + self.alerts_banner(ctx) if ctx.user else ""
        html = self.fragment(ctx, name, banner=banner, title=title,
                             live_query=urlencode(live or {"view": "other"}), **kw)
        return self.html(ctx, html, status)

    def html(self, ctx: Ctx, html: str, status: int = 200, csp: str = CSP) -> HTMLResponse:
        """An HTML response with the security headers."""
        r = HTMLResponse(html, status)
        secure_headers(r, csp)
        return r


def secure_headers(r: Response, csp: str = CSP) -> None:
    """The headers every dashboard response carries (CSP, no framing, no caching)."""
    r.headers["Content-Security-Policy"] = csp
    r.headers["X-Content-Type-Options"] = "nosniff"
    r.headers["Referrer-Policy"] = "same-origin"
    r.headers["X-Frame-Options"] = "DENY"
    r.headers.setdefault("Cache-Control", "no-store")


def wants_json(request: Request) -> bool:
    """A JSON twin or a script asking for JSON."""
    return request.url.path.endswith(".json") or \
        "application/json" in request.headers.get("accept", "")


Handler = Callable[[Dashboard, Request, Ctx], Awaitable[Response]]


def guarded(d: Dashboard, fn: Handler, *, write: bool = False) -> Callable[[Request],
                                                                         Awaitable[Response]]:
    """Wrap a handler: a session is needed (login page / 401), a POST needs the CSRF token
    (403) and an operator (403)."""

    async def endpoint(request: Request) -> Response:
        ctx = await run_in_threadpool(d.ctx, request)
        if ctx.user is None:
            if wants_json(request) or request.method != "GET" or \
                    request.url.path == "/live":
                return refuse(d, ctx, 401, word("session_needed", ctx.lang))
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": nxt}), 303)
        if write:
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                form = await request.form()
                raw = form.get(CSRF_FIELD)
                token = raw if isinstance(raw, str) else None
            assert ctx.session is not None
            if not d.sessions.csrf_ok(ctx.session.nonce, token):
                return refuse(d, ctx, 403, word("csrf", ctx.lang))
            if not ctx.may_command:
                return refuse(d, ctx, 403, word("viewer_refused", ctx.lang))
        response = await fn(d, request, ctx)
        if request.query_params.get("lang") in ("vi", "en"):
            set_lang(response, ctx.lang, request)
        return response

    return endpoint


def set_lang(response: Response, lang: str, request: Request) -> None:
    """Remember the chosen language in a cookie."""
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def refuse(d: Dashboard, ctx: Ctx, status: int, reason: str,
           headers: dict[str, str] | None = None) -> Response:
    """A refusal with its reason: JSON ``{"error": …}`` or a small HTML fragment."""
    r: Response
    if status == 401:
        r = JSONResponse({"error": reason}, status, headers=headers)
    else:
        r = HTMLResponse(d.fragment(ctx, "web/_refusal.html", reason=reason, status=status),
                         status, headers=headers)
    secure_headers(r)
    return r


def create_app(console: Console, secret: bytes, *, clock: Callable[[], float] | None = None,
               limiter: RateLimiter | None = None, coalesce_s: float = 0.5,
               health_s: float = health.BEAT_S) -> Starlette:
    """The dashboard app over ``console``; ``secret`` signs sessions (see
    :func:`district.web.auth.load_secret`); ``health_s``: how often it looks at the
    recorders' heartbeats."""
    d = Dashboard(console, secret, clock=clock, limiter=limiter, coalesce_s=coalesce_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every room's tile read as the dashboard starts and after each batch of changes,
        # so the rooms page finds them read (district/web/views.py, KeptTiles).
        d.hub.after_batch = lambda: d.roster.kept.refresh()
        await d.hub.start()
        unsubscribe = console.subscribe(d.hub.on_change)
        watcher = asyncio.create_task(d.watch_recording(health_s))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            unsubscribe()
            await d.hub.stop()
            d.hub.after_batch = None

    def r(path: str, fn: Handler, methods: tuple[str, ...] = ("GET",),
          write: bool = False) -> Route:
        return Route(path, guarded(d, fn, write=write), methods=list(methods))

    post = ("POST",)
    routes = [
        Route("/login", pages.login_endpoint(d), methods=["GET", "POST"]),
        r("/logout", actions.logout, post, write=False),
        r("/", pages.rooms),
        r("/rooms", pages.rooms_redirect),
        r("/rooms.json", pages.rooms_json),
        r("/rooms/{site}.json", pages.room_json),
        r("/rooms/{site}", pages.room),
        r("/rooms/{site}/power", actions.power, post, write=True),
        r("/rooms/{site}/check", actions.room_check, post, write=True),
        r("/rooms/{site}/help", actions.answer_help, post, write=True),
        r("/windows.json", pages.windows_json),
        r("/windows", pages.windows),
        r("/windows", actions.create_window, post, write=True),
        r("/windows/{wid}.json", pages.window_json),
        r("/windows/{wid}", pages.window),
        r("/windows/{wid}/complete", actions.complete_window, post, write=True),
        r("/windows/{wid}/check", actions.window_check, post, write=True),
        r("/windows/{wid}/rooms/{site}/result", actions.record_result, post, write=True),
        r("/windows/{wid}/report.json", pages.report_json),
        r("/windows/{wid}/report.csv", pages.report_csv),
        r("/windows/{wid}/report/print", pages.report_print),
        r("/windows/{wid}/report", pages.report),
        r("/alerts.json", pages.alerts_json),
        r("/alerts", pages.alerts),
        r("/alerts/{aid:int}/take", actions.take_alert, post, write=True),
        r("/live", pages.live),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, max_body_size=MAX_BODY,
                    exception_handlers={404: _not_found(d)})
    app.state.dashboard = d
    return app


def _not_found(d: Dashboard) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        ctx = d.ctx(request)
        status = getattr(exc, "status_code", 404)
        if wants_json(request):
            return JSONResponse({"error": word("not_found", ctx.lang)}, status)
        return refuse(d, ctx, status, word("not_found", ctx.lang))
    return handler
