"""A real headless Chromium (Debian's, driven by Playwright) against the real console process
on a real Mosquitto, with scripted contract-2.0 rooms: a technician logs in, sees a room go
offline without reloading, schedules a window (a bad one first), sees the room lock, takes an
alert, asks for an operator check and sees the reply, records a result, marks the window
complete and opens its report, in Vietnamese and then in English.

Every wait is on a page condition (or a room's message) with a timeout. Screenshots go to
``test-artifacts/web/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from agent.clock import iso_ms
from broker.local import LocalBroker
from tests.district.rooms import ScriptedRoom
from tests.district.web.conftest import ConsoleProcess
from tests.district.web.helpers import OPERATOR

WAIT_MS = 20_000


def _room(broker: LocalBroker, site: str) -> ScriptedRoom:
    r = ScriptedRoom(site, "127.0.0.1", broker.port, time.time)
    r.connect()
    r.state["devices"]["amplifier"] = {"power": "on", "health": "ok", "reason": "",
                                       "reported_power": "on", "in_call": False}
    r.state["devices"]["codec"].update(power="on", reported_power="on")
    r.publish_state(time.time(), power="on")
    return r


def _start_command(r: ScriptedRoom, name: str, after: int = 0) -> dict[str, Any]:
    """Wait for the room's next command called ``name`` (after the first ``after``)."""
    n = after + 1
    while True:
        cmds = r.wait_commands(n)
        for c in cmds[after:]:
            if c["name"] == name:
                return c
        n = len(cmds) + 1


def test_technician_runs_a_window_in_the_browser(broker: LocalBroker, console_process: tuple[
        ConsoleProcess, str, Path], chromium: Any, artifacts: Path) -> None:
    proc, base, _config = console_process
    rooms = {s: _room(broker, s) for s in ("xa-a", "xa-b")}  # xa-c never connects
    page = chromium.new_page(viewport={"width": 1440, "height": 900}, locale="vi-VN")
    page.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.accept()

    page.on("dialog", on_dialog)
    try:
        # -- log in (Vietnamese by default) -------------------------------------------------------
        page.goto(f"{base}/")
        page.wait_for_url(re.compile(r"/login\?next="))
        assert "Đăng nhập" in page.content()
        page.fill("#user", OPERATOR[0])
        page.fill("#password", OPERATOR[1])
        page.screenshot(path=str(artifacts / "01-login.png"))
        page.click("button[type=submit]")
        page.wait_for_selector("#room-xa-a[data-availability=online]")
        page.wait_for_selector("#room-xa-b[data-availability=online]")
        page.wait_for_selector("#room-xa-c[data-availability=never_connected]")
        page.wait_for_selector("body[data-live=on]")
        page.screenshot(path=str(artifacts / "02-rooms.png"), full_page=True)

        # -- a room goes offline: the page changes without a reload --
        page.evaluate("window.__sameDocument = 'yes'")
        rooms["xa-b"].drop()
        page.wait_for_selector("#room-xa-b[data-availability=offline]")
        page.wait_for_selector("#summary [data-count=offline]:text('1')")
        assert page.evaluate("window.__sameDocument") == "yes", "the page was reloaded"
        assert "mất kết nối" in page.inner_text("#room-xa-b")
        page.screenshot(path=str(artifacts / "03-room-offline.png"), full_page=True)

        # -- schedule a window: a bad one first (end before start), then start one now --
        page.click("header nav a[href='/windows']")
        page.wait_for_selector("#window-form")
        page.fill("#w-title", "Kiểm tra kết nối trước hội nghị")
        page.fill("#w-start", "2026-12-01T10:00")
        page.fill("#w-end", "2026-12-01T09:00")
        page.click("#btn-schedule")
        err = page.wait_for_selector("[data-error-for=end]")
        assert "phải sau thời điểm bắt đầu" in err.inner_text()
        assert page.evaluate("fetch('/windows.json').then(r => r.json())")["windows"] == []
        page.screenshot(path=str(artifacts / "04-window-form-error.png"), full_page=True)
        page.fill("#w-duration", "30")
        page.click("#btn-start-now")
        page.wait_for_url(re.compile(r"/windows/test-"))
        wid = page.url.rsplit("/", 1)[1]

        # -- the room locks (its state says so) and the page shows it live --
        a = rooms["xa-a"]
        start = _start_command(a, "start_window")
        assert start["args"]["window_id"] == wid
        a.wait_schedules(1)
        now = time.time()
        a.event("lock_engaged", {"kind": "test", "title": "x", "start": iso_ms(now),
                                 "end": iso_ms(now + 1800), "cap": iso_ms(now + 7200)},
                ts=now, window_id=wid)
        a.publish_state(now, lock={"locked": True, "window_id": wid, "kind": "test",
                                   "since": iso_ms(now), "start": iso_ms(now),
                                   "end": iso_ms(now + 1800), "cap": iso_ms(now + 7200)})
        page.wait_for_selector("#wst-xa-a[data-locked=true]")
        page.wait_for_selector("#wst-xa-a[data-schedule=applied]")
        page.wait_for_selector("#wprogress [data-p=locked]:text('1')")
        assert page.inner_text("#wst-xa-a").count("Khóa") == 1

        # -- alerts: xa-b lost during the window, xa-c without its schedule; take one --
        page.wait_for_selector("#alerts li:has-text('Mất kết nối trong khung giờ')")
        page.screenshot(path=str(artifacts / "05-window-locked.png"), full_page=True)
        before = int(page.get_attribute("#alerts", "data-open") or "0")
        page.click("#alerts li:has-text('Mất kết nối trong khung giờ') button.take")
        page.wait_for_function(
            "n => Number(document.querySelector('#alerts').dataset.open) < n", arg=before)

        # -- operator check: each room's reply shows up in place --
        page.click("#btn-check-all")
        page.wait_for_selector("#action-result .cmd")
        check = _start_command(a, "operator_check", after=1)
        page.wait_for_selector(f"#cmd-{check['id']}[data-status=accepted]")
        a.event("operator_check_acknowledged", {"check_id": check["id"], "latency_s": 4.2},
                ts=time.time(), window_id=wid)
        page.wait_for_selector("#wst-xa-a[data-checked-in=true]")
        assert "chưa có trả lời" in page.inner_text("#action-result") or \
            "chưa gửi" in page.inner_text("#action-result"), "xa-b cannot have answered"

        # -- record xa-a's result (a bad number first) --
        form = "#wres-xa-a form"
        page.select_option(f"{form} select[name=mic]", "good")
        page.select_option(f"{form} select[name=speaker]", "poor")
        page.fill(f"{form} input[name=attendance]", "mười hai")
        page.click(f"{form} button")
        page.wait_for_selector("#wres-xa-a [data-error-for=attendance]")
        page.fill(f"{form} input[name=attendance]", "12")
        page.click(f"{form} button")
        page.wait_for_selector("#wres-xa-a .ok-msg")
        page.wait_for_selector("#wprogress [data-p=results]:text('1')")
        page.screenshot(path=str(artifacts / "06-window-checked.png"), full_page=True)

        # -- complete the window: the room releases its lock; open the report --
        page.click("#btn-complete")
        page.wait_for_selector("#wstatus[data-status=completed]")
        page.wait_for_selector("#btn-complete", state="detached")
        assert dialogs and "Kết thúc khung giờ này" in dialogs[0]
        done = _start_command(a, "complete_window", after=2)
        page.wait_for_selector(f"#cmd-{done['id']}[data-status=accepted]")
        a.publish_state(time.time(), lock={"locked": False})
        page.wait_for_selector("#wst-xa-a[data-locked=false]")
        page.screenshot(path=str(artifacts / "07-window-complete.png"), full_page=True)
        page.click("#report-link")
        page.wait_for_selector("#report-summary")
        summary = page.inner_text("#report-summary")
        assert "Không bật" in summary and "UBND xã B" in summary and "UBND xã C" in summary
        row = page.inner_text("#report-table tr[data-site=xa-a]")
        assert "tốt" in row and "kém" in row and "12" in row
        page.screenshot(path=str(artifacts / "08-report.png"), full_page=True)
        csv = page.request.get(f"{base}/windows/{wid}/report.csv")
        assert csv.status == 200 and csv.body().startswith("\ufeff".encode())
        assert "Mã điểm cầu" in csv.body().decode("utf-8")

        # -- the room's timeline, and English --
        page.goto(f"{base}/rooms/xa-a")
        page.wait_for_selector("#timeline svg rect.b-locked")
        page.wait_for_selector("#timeline svg circle.m-checkin")
        page.screenshot(path=str(artifacts / "09-room-timeline.png"), full_page=True)
        page.goto(f"{base}/windows/{wid}/report?lang=en")
        page.wait_for_selector("#report-summary")
        assert "Not switched on" in page.inner_text("#report-summary")
        page.goto(f"{base}/")
        page.wait_for_selector("#room-xa-b[data-availability=offline]")
        assert "offline" in page.inner_text("#room-xa-b") and "Every room" in page.content()
        page.screenshot(path=str(artifacts / "10-rooms-en.png"), full_page=True)
    except BaseException:
        page.screenshot(path=str(artifacts / "failed.png"), full_page=True)
        (artifacts / "failed-console.log").write_text("".join(proc.lines), encoding="utf-8")
        raise
    finally:
        page.close()
        for r in rooms.values():
            r.close()
    assert proc.stop() == 0
    log = "".join(proc.lines)
    assert OPERATOR[1] not in log, "a password reached the log"
    assert "Traceback" not in log, log


def test_sixty_five_rooms_fit_on_one_screen(tmp_path: Path, chromium: Any,
                                            artifacts: Path) -> None:
    from broker.local import free_port
    from district.web.server import WebServer
    from tests.district.web.helpers import web

    sites = [f"xa-{i:02d}" for i in range(1, 66)]
    groups = {s: f"Cụm {1 + i // 13}" for i, s in enumerate(sites)}
    contacts = {s: [{"name": f"Anh Cán bộ {i}", "role": "kỹ thuật",
                     "phone": f"0205 3870 {i:03d}"}] for i, s in enumerate(sites)}
    with web(tmp_path, rooms=sites, groups=groups, contacts=contacts) as wb:
        for i, s in enumerate(sites):
            if i % 11 == 10:
                continue  # never connected
            wb.online(s)
            devices = {"codec": {"power": "on", "health": "fault" if i % 17 == 3 else "ok"},
                       "camera": {"power": "on", "health": "ok"},
                       "amplifier": {"power": "off" if i % 9 == 4 else "on", "health": "ok"}}
            wb.state(s, devices=devices, power="mixed" if i % 9 == 4 else "on",
                     lock={"locked": True, "window_id": "t-1"} if i % 3 == 0
                     else {"locked": False},
                     operator={"check": None, "last_check_in": iso_ms(wb.clock() - 60)
                               if i % 4 == 0 else None, "last_ack": None,
                               "help_requested": iso_ms(wb.clock()) if i == 7 else None})
            if i % 13 == 5:
                wb.online(s, "offline")
        from district.model import Actor

        on = wb.console.create_window(Actor("hung", "operator"), kind="test", title="Kiểm tra",
                                      start=wb.clock() + 60, end=wb.clock() + 3600,
                                      rooms="all")
        for s in sites[::6]:   # refused a switch-off in the window, while checked in
            wb.event(s, "shutdown_refused", {"source": "button"}, window_id=on.id)
        port = free_port()
        server = WebServer(wb.console.cfg, wb.console, listen=f"127.0.0.1:{port}")
        server.start()
        page = chromium.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(f"http://127.0.0.1:{port}/login")
            page.fill("#user", OPERATOR[0])
            page.fill("#password", OPERATOR[1])
            page.click("button[type=submit]")
            page.wait_for_selector("#room-xa-65")
            page.wait_for_selector("body[data-live=on]")
            page.screenshot(path=str(artifacts / "11-sixty-five-rooms.png"))
            bottom = page.evaluate(
                "document.querySelector('#room-xa-65').getBoundingClientRect().bottom")
            assert bottom <= 1080, f"the 65th room ends at {bottom}px, below the screen"
            page.set_viewport_size({"width": 1366, "height": 768})
            page.screenshot(path=str(artifacts / "12-sixty-five-rooms-1366.png"))
            bottom = page.evaluate(
                "document.querySelector('#room-xa-65').getBoundingClientRect().bottom")
            assert bottom <= 768, f"at 1366x768 the 65th room ends at {bottom}px"
            # Whom to phone and the refusal are read whole on the busiest tile (locked,
            # checked in, schedule not sent, refused), not cut at its edge.
            cut = page.evaluate("""() => {
                const t = document.querySelector('#room-xa-01');
                const right = t.getBoundingClientRect().right;
                return ['.phone', '.refused'].filter(
                    sel => t.querySelector(sel).getBoundingClientRect().right > right);
            }""")
            assert cut == [], f"cut on the tile: {cut}"
        finally:
            page.close()
            server.stop()
