"""GET handlers: each page and its JSON twin from the same data, and the live stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from district.report import CSV_COLUMNS, flat_row, short_time, to_csv, to_html
from district.service import ServiceError, UnknownRoom, UnknownWindow
from district.web import fragments, views
from district.web.auth import PRE_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE_S
from district.web.live import stream_events
from district.web.text import recording_text, word
from district.web.timeline import build as build_timeline
from district.web.timeline import range_for

if TYPE_CHECKING:
    from district.web.app import Ctx, Dashboard, Handler

Sync = Callable[["Dashboard", Request, "Ctx", FormData | None], Response]


def threaded(fn: Sync) -> Handler:
    """Run a handler in a worker thread (the store blocks); a POST's form is read first."""

    async def handler(d: Dashboard, request: Request, ctx: Ctx) -> Response:
        form = await request.form() if request.method == "POST" else None
        return await run_in_threadpool(fn, d, request, ctx, form)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def json_response(data: Any, status: int = 200) -> JSONResponse:
    """A JSON twin (never cached)."""
    r = JSONResponse(data, status)
    r.headers["Cache-Control"] = "no-store"
    return r


def not_found(d: Dashboard, ctx: Ctx, request: Request, e: ServiceError | None = None
              ) -> Response:
    """404 with the reason, as JSON or an HTML fragment."""
    from district.web.app import refuse, wants_json

    reason = "; ".join(e.text(ctx.lang)) if e else word("not_found", ctx.lang)
    if wants_json(request):
        return json_response({"error": reason}, 404)
    return refuse(d, ctx, 404, reason)


# ------------------------------------------------------------------------------ login
def login_endpoint(d: Dashboard) -> Callable[[Request], Any]:
    """GET shows the form (and sets the pre-session cookie its CSRF token is bound to);
    POST checks the token, the rate limit, then the password."""
    import secrets

    from district.web.app import refuse, secure_headers, set_lang

    def safe_next(v: Any) -> str:
        v = v if isinstance(v, str) else "/"
        return v if v.startswith("/") and not v.startswith("//") and "\\" not in v else "/"

    def form_page(ctx: Ctx, pre: str, nxt: str, error: str = "", user: str = "",
                  status: int = 200) -> Response:
        html = d.fragment(ctx, "web/login.html", csrf_token=d.sessions.csrf(pre), next=nxt,
                          error=error, user=user, title=word("login", ctx.lang))
        r = d.html(ctx, html, status)
        return r

    async def endpoint(request: Request) -> Response:
        ctx = await run_in_threadpool(d.ctx, request)
        secure = request.url.scheme == "https"
        pre = request.cookies.get(PRE_COOKIE) or ""
        if request.method == "GET":
            nxt = safe_next(request.query_params.get("next"))
            if ctx.user is not None:
                return RedirectResponse(nxt, 303)
            fresh = not pre or len(pre) < 16
            if fresh:
                pre = secrets.token_urlsafe(18)
            r = form_page(ctx, pre, nxt)
            if fresh:
                r.set_cookie(PRE_COOKIE, pre, max_age=3600, httponly=True, samesite="lax",
                             secure=secure)
            if request.query_params.get("lang") in ("vi", "en"):
                set_lang(r, ctx.lang, request)
            return r
        form = await request.form()
        nxt = safe_next(form.get("next"))
        token = form.get("csrf")
        if not d.sessions.csrf_ok(pre, token if isinstance(token, str) else None):
            return refuse(d, ctx, 403, word("csrf", ctx.lang))
        name = str(form.get("user") or "").strip().lower()[:64]
        password = str(form.get("password") or "")
        addr = request.client.host if request.client else "?"
        keys = [f"user:{name}", f"addr:{addr}"]
        wait = d.limiter.wait(keys)
        if wait > 0:
            s = max(1, int(wait + 0.999))
            r = form_page(ctx, pre, nxt, word("login_wait", ctx.lang, s=s), name, 429)
            r.headers["Retry-After"] = str(s)
            return r
        user = await run_in_threadpool(d.console.authenticate, name, password)
        if user is None:
            d.limiter.fail(keys)
            return form_page(ctx, pre, nxt, word("login_failed", ctx.lang), name, 401)
        d.limiter.clear(keys[0])
        cookie, _session = d.sessions.issue(user.name)
        r = RedirectResponse(nxt, 303)
        secure_headers(r)
        r.set_cookie(SESSION_COOKIE, cookie, max_age=int(SESSION_MAX_AGE_S), httponly=True,
                     samesite="lax", secure=secure, path="/")
        r.delete_cookie(PRE_COOKIE)
        return r

    return endpoint


# ------------------------------------------------------------------------------ rooms
def _rooms_data(d: Dashboard, request: Request) -> tuple[views.Query, views.Page]:
    q = views.Query.parse(request.query_params, d.roster)
    return q, views.rooms_page(d.roster, q)


@threaded
def rooms(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Every room at a glance."""
    q, page = _rooms_data(d, request)
    return d.page(ctx, "web/rooms.html", live={"view": "rooms", **q.params()},
                  title=word("rooms_title", ctx.lang), page=page, q=q,
                  problems=views.PROBLEMS, sorts=views.SORTS)


async def rooms_redirect(d: Dashboard, request: Request, ctx: Ctx) -> Response:
    """``/rooms`` is ``/``."""
    q = request.url.query
    return RedirectResponse("/" + (f"?{q}" if q else ""), 303)


@threaded
def rooms_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The rooms page's twin: the same query, the same rooms."""
    q, page = _rooms_data(d, request)
    return json_response({
        "organisation": d.cfg.organisation.name.get(ctx.lang), "timezone": d.cfg.timezone,
        "generated_at": views.iso_local(d.clock(), d.zone), "counts": page.counts,
        "total": page.total, "matched": page.matched, "page": page.page, "pages": page.pages,
        "per_page": q.per_page, "query": q.params(),
        "recording": [{"kind": p.kind, "part": p.part, "parts": p.parts, "rooms": p.rooms,
                       "since": views.iso_local(p.since, d.zone), "detail": p.detail,
                       "text": recording_text(p, ctx.lang, d.when)}
                      for p in d.recording_problems()],
        "rooms": [t.json(d.zone) for t in page.items]})


def hours_of(params: Any) -> int:
    """The room page's timeline span (``?hours=``), 24 unless one of the choices."""
    from district.web.timeline import HOURS

    raw = params.get("hours", "24")
    # isdigit() is also true of "²" and other digits int() refuses: ASCII only.
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) in HOURS else 24


def room_data(d: Dashboard, site: str, lang: Any, window_id: str | None = None,
              hours: int = 24) -> dict[str, Any]:
    """Everything the room page shows (raises UnknownRoom / UnknownWindow)."""
    console = d.console
    if site not in d.roster.rooms:
        raise UnknownRoom(f"site: '{site}' is not in the roster")
    window = console.window(window_id) if window_id else None
    now = d.clock()
    t = views.with_gaps(d.roster, views.tiles(d.roster, [site]))[0]
    live = console.store.live(site)
    since, until = range_for(console, window, now, hours)
    return {
        "t": t, "lv": live, "room_cfg": d.roster.rooms[site],
        "timeline": build_timeline(console, site, since, until, lang),
        "events": console.events(site, limit=100),
        "commands": console.commands(site=site, limit=30),
        "alerts": console.alerts(open_only=False, site=site, limit=20),
        "windows": [w for w in console.store.windows(site=site, since=now - 86400)][-5:],
        "window": window, "now": now, "hours": hours,
    }


@threaded
def room(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """One room: its state, timeline, actions, events and commands."""
    site = request.path_params["site"]
    wid = request.query_params.get("window") or None
    try:
        data = room_data(d, site, ctx.lang, wid, hours_of(request.query_params))
    except ServiceError as e:
        return not_found(d, ctx, request, e)
    live = {"view": "room", "site": site, "hours": str(data["hours"]),
            **({"window": wid} if wid else {})}
    return d.page(ctx, "web/room.html", live=live, title=data["t"].name, **data)


@threaded
def room_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The room page's twin, with the timeline's bands and marks."""
    site = request.path_params["site"]
    wid = request.query_params.get("window") or None
    try:
        data = room_data(d, site, ctx.lang, wid, hours_of(request.query_params))
    except ServiceError as e:
        return not_found(d, ctx, request, e)
    z = d.zone
    live = data["lv"]
    return json_response({
        "room": data["t"].json(z), "state": live.state, "info": live.info, "host": live.host,
        "contacts": [c.model_dump() for c in data["room_cfg"].contacts],
        "timeline": data["timeline"].json(z),
        "events": [{"seq": e.seq, "kind": e.kind, "ts": views.iso_local(e.ts, z),
                    "received_at": views.iso_local(e.received_at, z), "window_id": e.window_id,
                    "late": e.late, "clock_trusted": e.clock_trusted, "data": e.data}
                   for e in data["events"]],
        "commands": [views.command_json(c, z) for c in data["commands"]],
        "alerts": [views.alert_json(a, d.roster, z) for a in data["alerts"]],
    })


# ------------------------------------------------------------------------------ windows
def windows_data(d: Dashboard, request: Request) -> list[Any]:
    """Windows of the last 7 days and ahead (``?all=1``: every one), newest first."""
    now = d.clock()
    since = None if request.query_params.get("all") else now - 7 * 86400
    return list(reversed(d.console.windows(since=since)))


def window_form_defaults(d: Dashboard) -> dict[str, str]:
    """The form as first shown: a test window from the next full hour, 90 minutes."""
    from district.timefmt import local

    start = local(d.clock() + 3600, d.zone).replace(minute=0, second=0, microsecond=0)
    end = start.timestamp() + 90 * 60
    return {"kind": "test", "title": "", "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": local(end, d.zone).strftime("%Y-%m-%dT%H:%M"), "rooms_mode": "all",
            "group": "", "sites_text": "", "duration_min": "60"}


@threaded
def windows(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The windows and the form to schedule one."""
    return d.page(ctx, "web/windows.html", live={"view": "windows"},
                  title=word("windows_title", ctx.lang), windows=windows_data(d, request),
                  values=window_form_defaults(d), chosen=[], errors={}, now=d.clock())


@threaded
def windows_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The windows page's twin."""
    now = d.clock()
    return json_response({"windows": [views.window_json(w, now, d.zone)
                                      for w in windows_data(d, request)]})


def window_data(d: Dashboard, request: Request) -> dict[str, Any]:
    """What a window's page shows (its rooms one page at a time, progress over all)."""
    w = d.console.window(request.path_params["wid"])
    now = d.clock()
    rows = views.window_rows(d.roster, w, now=now)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    per = views.PER_PAGE
    pages = max(1, -(-len(rows) // per))
    page = min(page, pages)
    return {"win": w, "rows": rows[(page - 1) * per: page * per], "page": page, "pages": pages,
            "progress": views.window_progress(rows), "now": now,
            "wstate": w.status(now)}


@threaded
def window(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """A window's live progress, its rooms and the technician's buttons."""
    try:
        data = window_data(d, request)
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)
    w = data["win"]
    live = {"view": "window", "id": w.id, **({"page": str(data["page"])}
                                             if data["page"] > 1 else {})}
    return d.page(ctx, "web/window.html", live=live, title=w.title, **data)


@threaded
def window_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The window page's twin."""
    try:
        data = window_data(d, request)
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)
    w = data["win"]
    return json_response({"window": views.window_json(w, data["now"], d.zone),
                          "progress": data["progress"], "page": data["page"],
                          "pages": data["pages"],
                          "rooms": [r.json(d.zone) for r in data["rows"]]})


# ------------------------------------------------------------------------------ reports
def _report(d: Dashboard, request: Request, ctx: Ctx) -> dict[str, Any]:
    return d.console.report(request.path_params["wid"], lang=ctx.lang)


@threaded
def report(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The compliance report (the same computation as the CLI, CSV, JSON and print)."""
    try:
        rep = _report(d, request, ctx)
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)
    rows = [(r, flat_row(r, ctx.lang, human=True)) for r in rep["rooms"]]
    columns = [(k, vi if ctx.lang == "vi" else en) for k, vi, en in CSV_COLUMNS]
    return d.page(ctx, "web/report.html", live={"view": "other"},
                  title=f"{word('report', ctx.lang)} {rep['window']['title']}", rep=rep,
                  rows=rows, columns=columns, wid=request.path_params["wid"],
                  short_time=short_time)


@threaded
def report_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The report as :meth:`district.service.Console.report` returns it."""
    try:
        return json_response(_report(d, request, ctx))
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)


@threaded
def report_csv(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The report as CSV, UTF-8 with a BOM (``district.report.to_csv``)."""
    try:
        rep = _report(d, request, ctx)
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)
    name = f"bao-cao-{request.path_params['wid']}.csv" if ctx.lang == "vi" else \
        f"report-{request.path_params['wid']}.csv"
    return Response(to_csv(rep, ctx.lang).encode("utf-8"), 200,
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@threaded
def report_print(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The printable page (``district.report.to_html``, its own template)."""
    from district.web.app import PRINT_CSP

    try:
        rep = _report(d, request, ctx)
    except UnknownWindow as e:
        return not_found(d, ctx, request, e)
    return d.html(ctx, to_html(rep, ctx.lang), csp=PRINT_CSP)


# ------------------------------------------------------------------------------ alerts
def alerts_data(d: Dashboard) -> dict[str, Any]:
    """Open alerts and the last 100 taken."""
    every = d.console.alerts(open_only=False, limit=300)
    return {"open": [a for a in every if a.open],
            "taken": [a for a in every if not a.open][:100]}


@threaded
def alerts(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Open alerts and those taken lately (who, when)."""
    return d.page(ctx, "web/alerts.html", live={"view": "alerts"},
                  title=word("alerts_title", ctx.lang), **alerts_data(d))


@threaded
def alerts_json(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """The alerts page's twin."""
    data = alerts_data(d)
    return json_response({k: [views.alert_json(a, d.roster, d.zone) for a in v]
                          for k, v in data.items()})


# ------------------------------------------------------------------------------ live
async def live(d: Dashboard, request: Request, ctx: Ctx) -> Response:
    """The page's server-sent events: one stream per tab (see :mod:`district.web.live`)."""
    render = await run_in_threadpool(fragments.renderer, d, ctx, request.query_params)
    return StreamingResponse(stream_events(d.hub, render), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
