"""POST handlers: what staff do. Each goes through :class:`district.service.Console` (which
checks the role again and refuses bad input changing nothing) and answers with the fragment
htmx swaps in — the commands sent and each room's reply, updating live — or JSON (``Accept:
application/json``), or a redirect back for a browser without scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from district.model import CommandRow
from district.service import PermissionDenied, ServiceError, UnknownRoom, UnknownWindow
from district.web import forms, views
from district.web.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from district.web.pages import not_found, threaded, windows_data
from district.web.text import word

if TYPE_CHECKING:
    from district.web.app import Ctx, Dashboard


def respond(d: Dashboard, request: Request, ctx: Ctx, html: str, data: dict[str, Any],
            status: int = 200, back: str | None = None) -> Response:
    """A fragment for htmx, JSON for scripts, else back to the page (or the fragment in a
    page when something was refused)."""
    from district.web.app import secure_headers, wants_json

    if request.headers.get("hx-request"):
        return d.html(ctx, html, status)
    if wants_json(request):
        r = JSONResponse(data, status)
        secure_headers(r)
        return r
    if status < 400:
        return RedirectResponse(back or request.headers.get("referer") or "/", 303)
    return d.page(ctx, "web/message.html", status=status, body=html,
                  title=word("actions", ctx.lang))


def _commands_reply(d: Dashboard, request: Request, ctx: Ctx, what: str,
                    cmds: list[CommandRow], back: str) -> Response:
    cmds = sorted(cmds, key=lambda c: d.roster.position.get(c.site, len(d.roster.ids)))
    html = d.fragment(ctx, "web/_action.html", what=what, commands=cmds[:20],
                      more=max(0, len(cmds) - 20), errors={})
    return respond(d, request, ctx, html,
                   {"commands": [views.command_json(c, d.zone) for c in cmds]}, 200, back)


def _refused(d: Dashboard, request: Request, ctx: Ctx, e: ServiceError,
             known: tuple[str, ...] = ()) -> Response:
    if isinstance(e, UnknownWindow | UnknownRoom) and not known:
        return not_found(d, ctx, request, e)
    status = 403 if isinstance(e, PermissionDenied) else 400
    errors = forms.field_errors(e, ctx.lang, known)
    html = d.fragment(ctx, "web/_action.html", what="", commands=[], more=0, errors=errors)
    return respond(d, request, ctx, html, {"errors": errors}, status)


# ------------------------------------------------------------------------------ session
@threaded
def logout(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """End the session (its cookie is refused from now on)."""
    from district.web.app import refuse

    token = request.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) if form else None)
    assert ctx.session is not None
    if not d.sessions.csrf_ok(ctx.session.nonce, token if isinstance(token, str) else None):
        return refuse(d, ctx, 403, word("csrf", ctx.lang))
    d.sessions.revoke(ctx.session)
    r = RedirectResponse("/login", 303)
    r.delete_cookie(SESSION_COOKIE, path="/")
    return r


# ------------------------------------------------------------------------------ rooms
@threaded
def power(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Switch a room on or off (off with an override and a reason for a locked room)."""
    site = request.path_params["site"]
    on = forms._s(form, "on") == "1"
    override = forms._s(form, "override") == "1"
    try:
        cmds = d.console.power(ctx.actor, [site], on, override=override,
                               reason=forms._s(form, "reason"))
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    what = word("power_on" if on else "power_off", ctx.lang)
    return _commands_reply(d, request, ctx, what, cmds, f"/rooms/{site}")


@threaded
def room_check(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Ask one room whether anyone is there."""
    site = request.path_params["site"]
    try:
        cmds = d.console.operator_check(ctx.actor, [site])
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    return _commands_reply(d, request, ctx, word("operator_check", ctx.lang), cmds,
                           f"/rooms/{site}")


@threaded
def answer_help(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Tell a room its help request was seen (and take its help alerts)."""
    site = request.path_params["site"]
    try:
        cmd = d.console.answer_help(ctx.actor, site, forms._s(form, "note"))
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    return _commands_reply(d, request, ctx, word("answer_help", ctx.lang), [cmd],
                           f"/rooms/{site}")


# ------------------------------------------------------------------------------ windows
@threaded
def create_window(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Schedule a window (or start one now) for all rooms, a group or a selection."""
    f = forms.window_form(form, d.zone, ctx.lang)
    w = None
    if not f.errors:
        try:
            if f.now:
                w = d.console.start_window_now(ctx.actor, kind=f.values["kind"],  # type: ignore[arg-type]
                                               title=f.values["title"],
                                               duration_min=f.duration_min, rooms=f.rooms)
            else:
                w = d.console.create_window(ctx.actor, kind=f.values["kind"],  # type: ignore[arg-type]
                                            title=f.values["title"], start=f.start, end=f.end,
                                            rooms=f.rooms)
        except PermissionDenied as e:
            return _refused(d, request, ctx, e)
        except ServiceError as e:
            f.errors = forms.field_errors(e, ctx.lang, forms.WINDOW_FIELDS)
    if w is None:
        html = d.fragment(ctx, "web/_window_form.html", values=f.values, chosen=f.chosen,
                          errors=f.errors)
        if not request.headers.get("hx-request") and not _json(request):
            return d.page(ctx, "web/windows.html", status=400, title=word("windows_title",
                                                                           ctx.lang),
                          windows=windows_data(d, request), values=f.values,
                          chosen=f.chosen, errors=f.errors, now=d.clock(),
                          live={"view": "windows"})
        return respond(d, request, ctx, html, {"errors": f.errors}, 400)
    url = f"/windows/{w.id}"
    if request.headers.get("hx-request"):
        r = Response(status_code=204, headers={"HX-Redirect": url})
        return r
    if _json(request):
        return JSONResponse({"window": views.window_json(w, d.clock(), d.zone)}, 201,
                            headers={"Location": url})
    return RedirectResponse(url, 303)


def _json(request: Request) -> bool:
    from district.web.app import wants_json

    return wants_json(request)


@threaded
def complete_window(d: Dashboard, request: Request, ctx: Ctx,
                    form: FormData | None) -> Response:
    """Mark a window complete (rooms may switch off); each room's reply shows up live."""
    wid = request.path_params["wid"]
    try:
        w = d.console.complete_window(ctx.actor, wid)
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    cmds = [c for c in d.console.commands(window_id=w.id, limit=None)
            if c.name == "complete_window"]
    return _commands_reply(d, request, ctx, word("complete", ctx.lang), cmds, f"/windows/{wid}")


@threaded
def window_check(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """Operator check for the window's rooms (or one of them, ``site``)."""
    wid = request.path_params["wid"]
    site = forms._s(form, "site")
    try:
        w = d.console.window(wid)
        if site and site not in w.sites:
            raise UnknownRoom(f"site: '{site}' is not in window {wid}")
        cmds = d.console.operator_check(ctx.actor, [site] if site else list(w.sites),
                                        window_id=wid)
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    return _commands_reply(d, request, ctx, word("operator_check", ctx.lang), cmds,
                           f"/windows/{wid}")


@threaded
def record_result(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """A room's microphone and speaker result and attendance, recorded by the technician."""
    wid, site = request.path_params["wid"], request.path_params["site"]
    try:
        w = d.console.window(wid)
    except ServiceError as e:
        return not_found(d, ctx, request, e)
    if site not in w.sites:
        return not_found(d, ctx, request)
    f = forms.result_form(form, ctx.lang)
    status = 200
    if not f.errors:
        try:
            d.console.record_result(ctx.actor, wid, site, mic=f.mic, speaker=f.speaker,
                                    attendance=f.attendance)
        except PermissionDenied as e:
            return _refused(d, request, ctx, e)
        except ServiceError as e:
            f.errors = forms.field_errors(e, ctx.lang, ("mic", "speaker", "attendance"))
    if f.errors:
        status = 400
    row = views.window_rows(d.roster, w, [site], now=d.clock())[0]
    html = d.fragment(ctx, "web/_window_result.html", r=row, win=w, errors=f.errors,
                      values=f.values if f.errors else None, saved=not f.errors)
    data = {"errors": f.errors} if f.errors else {"room": row.json(d.zone)}
    return respond(d, request, ctx, html, data, status, f"/windows/{wid}")


# ------------------------------------------------------------------------------ alerts
@threaded
def take_alert(d: Dashboard, request: Request, ctx: Ctx, form: FormData | None) -> Response:
    """A staff member takes an alert (who and when are kept); answers with the banner."""
    try:
        a = d.console.take_alert(ctx.actor, request.path_params["aid"], forms._s(form, "note"))
    except ServiceError as e:
        return _refused(d, request, ctx, e)
    html = d.alerts_banner(ctx)
    return respond(d, request, ctx, html, {"alert": views.alert_json(a, d.roster, d.zone)},
                   200, "/alerts")
