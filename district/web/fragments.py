"""What one open page receives for a batch of changes: only the parts it shows that changed,
each an element with the id it has on the page and ``hx-swap-oob``.

A page says what it shows in its stream's query (``/live?view=rooms&group=…&page=2``,
``view=room&site=…``, ``view=window&id=…``, ``view=alerts``, ``view=windows``); the rooms on
it are worked out once when the stream opens (the page's rooms keep their place; they change
in place, and a reload re-sorts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from district.service import ServiceError
from district.web import views
from district.web.live import Batch

if TYPE_CHECKING:
    from district.web.app import Ctx, Dashboard

MAX_COMMAND_FRAGMENTS = 50


def renderer(d: Dashboard, ctx: Ctx, params: Mapping[str, str]) -> Callable[[Batch], str]:
    """The render function of one stream (called in a worker thread per batch)."""
    view = params.get("view", "other")
    if view == "rooms":
        q = views.Query.parse(params, d.roster)
        page = views.rooms_page(d.roster, q)
        return _rooms(d, ctx, [t.site for t in page.items], page)
    if view == "room" and params.get("site") in d.roster.rooms:
        from district.web.pages import hours_of

        return _room(d, ctx, params["site"], params.get("window") or None, hours_of(params))
    if view == "window" and params.get("id"):
        try:
            w = d.console.window(params["id"])
        except ServiceError:
            return _common(d, ctx)
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        per = views.PER_PAGE
        shown = list(w.sites[(page - 1) * per: page * per])
        return _window(d, ctx, w.id, shown)
    if view == "alerts":
        return _alerts(d, ctx)
    if view == "windows":
        return _windows(d, ctx)
    return _common(d, ctx)


def _viewer(ctx: Ctx) -> tuple[str, bool]:
    """What a shared fragment depends on of the viewer."""
    return (str(ctx.lang), ctx.may_command)


def _banner(d: Dashboard, ctx: Ctx, batch: Batch) -> list[str]:
    out = []
    if batch.health or batch.full:
        out.append(batch.once(("health", ctx.lang), lambda: d.health_banner(ctx, oob=True)))
    if batch.alerts or batch.full:
        out.append(batch.once(("banner", _viewer(ctx)), lambda: d.alerts_banner(ctx, oob=True)))
    return out


def _common(d: Dashboard, ctx: Ctx) -> Callable[[Batch], str]:
    def render(batch: Batch) -> str:
        return "\n".join(_banner(d, ctx, batch))
    return render


def _rooms(d: Dashboard, ctx: Ctx, shown: list[str],
           opened: views.Page | None = None) -> Callable[[Batch], str]:
    """``opened``: the page read as the stream opened, used for its first full render (the
    same moment: every room's tiles are not built a second time)."""
    first = [opened]

    def render(batch: Batch) -> str:
        parts = _banner(d, ctx, batch)
        page, first[0] = first[0], None
        if batch.full and page is not None:  # the stream's first message: what it read
            parts += [d.fragment(ctx, "web/_tile.html", t=t, oob=True) for t in page.items]
            parts.append(d.fragment(ctx, "web/_summary.html", counts=page.counts, oob=True))
            return "\n".join(parts)
        if batch.full:  # this tab's own refresh (it fell behind)
            ts = views.with_gaps(d.roster, views.tiles(d.roster, shown))
            parts += [d.fragment(ctx, "web/_tile.html", t=t, oob=True) for t in ts]
        else:
            # Every room the batch changed, read once for every tab; each tab takes its own.
            changed = batch.once("tiles", lambda: {
                t.site: t for t in views.with_gaps(d.roster, views.tiles(
                    d.roster, sorted(batch.sites & d.roster.rooms.keys())))})
            for s in shown:
                if s in changed:
                    t = changed[s]
                    parts.append(batch.once(("tile", s, _viewer(ctx)), lambda t=t: d.fragment(
                        ctx, "web/_tile.html", t=t, oob=True)))
        if batch.full or batch.sites or batch.alerts:
            counts = batch.once("counts", lambda: views.counts_of(d.roster.kept.current()))
            parts.append(batch.once(("summary", _viewer(ctx)), lambda: d.fragment(
                ctx, "web/_summary.html", counts=counts, oob=True)))
        return "\n".join(parts)

    return render


def _commands(d: Dashboard, ctx: Ctx, batch: Batch, match: Callable[[Any], bool]) -> list[str]:
    out = []
    for cid in sorted(batch.commands)[:MAX_COMMAND_FRAGMENTS * 4]:
        c = d.console.command(cid)
        if c is not None and match(c):
            out.append(d.fragment(ctx, "web/_command.html", c=c, oob=True))
            if len(out) >= MAX_COMMAND_FRAGMENTS:
                break
    return out


def _room(d: Dashboard, ctx: Ctx, site: str, window_id: str | None,
          hours: int) -> Callable[[Batch], str]:
    from district.web.pages import room_data

    def render(batch: Batch) -> str:
        parts = _banner(d, ctx, batch)
        if batch.full or site in batch.sites:
            try:
                data = room_data(d, site, ctx.lang, window_id, hours)
            except ServiceError:
                return "\n".join(parts)
            for name in ("web/_room_head.html", "web/_timeline.html", "web/_room_commands.html",
                         "web/_room_events.html"):
                parts.append(d.fragment(ctx, name, oob=True, **data))
        if batch.commands:
            parts += _commands(d, ctx, batch, lambda c: c.site == site)
        return "\n".join(parts)

    return render


def _window(d: Dashboard, ctx: Ctx, wid: str, shown: list[str]) -> Callable[[Batch], str]:
    def render(batch: Batch) -> str:
        parts = _banner(d, ctx, batch)
        try:
            w = d.console.window(wid)
        except ServiceError:
            return "\n".join(parts)
        touched = batch.full or wid in batch.windows or bool(batch.sites & set(w.sites))
        if touched:
            now = d.clock()
            rows = views.window_rows(d.roster, w, now=now)
            progress = views.window_progress(rows)
            parts.append(d.fragment(ctx, "web/_window_status.html", win=w, now=now,
                                    wstate=w.status(now), progress=progress, oob=True))
            if wid in batch.windows or batch.full:
                parts.append(d.fragment(ctx, "web/_window_buttons.html", win=w, oob=True))
            changed = set(shown) if batch.full or wid in batch.windows else \
                batch.sites & set(shown)
            for r in rows:
                if r.tile.site in changed:
                    parts.append(d.fragment(ctx, "web/_window_cell.html", r=r, win=w,
                                            oob=True))
        if batch.commands:
            parts += _commands(d, ctx, batch, lambda c: c.window_id == wid)
        return "\n".join(parts)

    return render


def _alerts(d: Dashboard, ctx: Ctx) -> Callable[[Batch], str]:
    from district.web.pages import alerts_data

    def render(batch: Batch) -> str:
        parts = _banner(d, ctx, batch)
        if batch.alerts or batch.full:
            parts.append(d.fragment(ctx, "web/_alert_list.html", oob=True, **alerts_data(d)))
        return "\n".join(parts)

    return render


def _windows(d: Dashboard, ctx: Ctx) -> Callable[[Batch], str]:
    def render(batch: Batch) -> str:
        parts = _banner(d, ctx, batch)
        if batch.windows or batch.full:
            ws = list(reversed(d.console.windows(since=d.clock() - 7 * 86400)))
            parts.append(d.fragment(ctx, "web/_window_list.html", windows=ws, now=d.clock(),
                                    oob=True))
        return "\n".join(parts)

    return render
