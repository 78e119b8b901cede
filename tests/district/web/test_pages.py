"""Every page with its JSON twin, in-process: the rooms grid (filter, sort, pages), a room's
timeline, windows (bad input changes nothing, reasons next to the field in the chosen
language), a window's progress and results, the report's HTML, JSON, CSV and print, alerts."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from district.web.app import STATIC, TEMPLATES
from tests.district.helpers import T0
from tests.district.web.helpers import OPERATOR, hx, login, web


def _tiles(html: str) -> list[str]:
    return re.findall(r'<a class="tile[^"]*" id="room-([a-z0-9-]+)"', html)


def test_rooms_page_and_its_twin_agree(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        login(c, OPERATOR)
        wb.online("xa-a")
        wb.state("xa-a")
        wb.clock.now += 60
        wb.online("xa-b")
        wb.state("xa-b", devices={"codec": {"power": "on", "health": "fault",
                                            "reason": "no answer"}},
                 lock={"locked": True, "window_id": "t-1", "kind": "test"})
        wb.online("xa-b", "offline")
        r = c.get("/")
        assert r.status_code == 200
        text = r.text
        assert _tiles(text) == ["xa-b", "xa-c", "xa-a"], "problems first, the most first"
        assert 'id="room-xa-b" href="/rooms/xa-b" data-availability="offline" ' \
               'data-locked="true" data-power="on" data-problems="offline fault"' in text
        assert "chưa từng kết nối" in text and "Trung tâm Thử nghiệm tỉnh" in text
        assert re.search(r'data-count="offline">1<', text)
        j = c.get("/rooms.json").json()
        assert j["counts"] == {"rooms": 3, "online": 1, "offline": 1, "never_connected": 1,
                               "locked": 1, "problems": 2, "alerts": 0}
        assert [x["site"] for x in j["rooms"]] == ["xa-b", "xa-c", "xa-a"]
        assert [x["site"] for x in c.get("/rooms.json?sort=roster").json()["rooms"]] == [
            "xa-a", "xa-b", "xa-c"]
        b = j["rooms"][0]
        assert (b["availability"], b["locked_by"], b["problems"]) == ("offline", "t-1",
                                                                    ["offline", "fault"])
        assert b["devices"] == [{"name": "codec", "power": "on", "health": "fault",
                                 "reason": "no answer", "in_call": False, "model": None,
                                 "serial": None}]
        assert b["last_seen_at"] == "2026-11-18T18:07:40+07:00", "times in the configured zone"

        # filters, sort, pages: the page and its twin take the same query
        assert _tiles(c.get("/?group=Cụm Nam").text) == ["xa-c"]
        assert _tiles(c.get("/?problem=offline").text) == ["xa-b", "xa-c"]
        assert _tiles(c.get("/?problem=fault").text) == ["xa-b"]
        assert _tiles(c.get("/?problem=locked").text) == ["xa-b"]
        assert _tiles(c.get("/?q=xã b").text) == ["xa-b"]
        assert _tiles(c.get("/?sort=last_seen").text) == ["xa-c", "xa-a", "xa-b"]
        p2 = c.get("/?per_page=2&page=2")
        assert _tiles(p2.text) == ["xa-a"] and "Trang 2/2" in p2.text
        j2 = c.get("/rooms.json?per_page=2&page=2&sort=roster").json()
        assert (j2["page"], j2["pages"], j2["matched"], [x["site"] for x in j2["rooms"]]) == \
            (2, 2, 3, ["xa-c"])
        assert c.get("/?group=nonsense&sort=nonsense&page=x").status_code == 200

        en = c.get("/?lang=en")
        assert "Every room" in en.text and "never connected" in en.text
        assert "Tất cả điểm cầu" not in en.text, "one language at a time"
        assert "lang=en" in en.headers["set-cookie"]
        assert "Every room" in c.get("/").text, "the choice is kept in a cookie"


def test_room_page_draws_its_timeline_and_its_twin_has_the_same_lanes(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        login(c, OPERATOR)
        wb.clock.now = T0 - 3 * 3600
        wb.online("xa-a")
        wb.state("xa-a", power="off")
        wb.clock.now = T0 - 2 * 3600
        wb.state("xa-a", power="on", lock={"locked": True, "window_id": "t-1"})
        wb.event("xa-a", "shutdown_refused", {"source": "button", "kind": "test", "title": "x"})
        wb.event("xa-a", "check_in", {"kind": "test"})
        wb.event("xa-a", "device_health", {"device": "codec", "status": "fault",
                                           "reason": "silent"})
        wb.clock.now = T0 - 3600
        wb.online("xa-a", "offline")
        wb.clock.now = T0
        r = c.get("/rooms/xa-a")
        assert r.status_code == 200
        svg = r.text[r.text.index("<svg"):r.text.index("</svg>")]
        for cls in ("b-online", "b-offline", "b-off", "b-on", "b-locked", "m-refused",
                    "m-checkin", "m-fault"):
            assert f'class="{cls}"' in svg, cls
        assert "từ chối tắt tại chỗ" in svg and "Kết nối" in svg
        assert "btn-power-off" in r.text and "Ghi đè khóa" in r.text
        j = c.get("/rooms/xa-a.json").json()
        link = [(b["value"], b["from"], b["to"]) for b in j["timeline"]["bands"]
                if b["lane"] == "link"]
        assert link == [("online", "2026-11-18T15:06:40+07:00", "2026-11-18T17:06:40+07:00"),
                        ("offline", "2026-11-18T17:06:40+07:00", "2026-11-18T18:06:40+07:00")]
        assert {m["class"] for m in j["timeline"]["marks"]} == {"refused", "checkin", "fault"}
        assert [e["kind"] for e in j["events"]] == ["device_health", "check_in",
                                                   "shutdown_refused"]
        assert j["room"]["availability"] == "offline"
        assert len(j["alerts"]) == 1 and j["alerts"][0]["kind"] == "device_fault"
        # an hour's span leaves the older bands out
        j1 = c.get("/rooms/xa-a.json?hours=1").json()
        assert [b["value"] for b in j1["timeline"]["bands"] if b["lane"] == "link"] == \
            ["offline"]
        assert c.get("/rooms/nope").status_code == 404
        nf = c.get("/rooms/nope.json")
        assert nf.status_code == 404 and "not in the roster" in nf.json()["error"]


def _window_form(**kw: str) -> dict[str, str]:
    form = {"kind": "test", "title": "Kiểm tra kết nối", "start": "2026-11-18T20:00",
            "end": "2026-11-18T21:30", "rooms_mode": "all", "action": "schedule",
            "duration_min": "60"}
    form.update(kw)
    return form


def test_bad_window_input_is_shown_by_its_field_and_changes_nothing(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        cases = [
            ({"end": "2026-11-18T19:00"}, "end", "phải sau thời điểm bắt đầu"),
            ({"start": "ngày mai"}, "start", "không phải thời điểm hợp lệ"),
            ({"title": " "}, "title", "không được để trống"),
            ({"rooms_mode": "some", "sites_text": "xa-a,xa-zz"}, "rooms",
             "'xa-zz' không có trong danh sách điểm cầu"),
            ({"rooms_mode": "group", "group": "Cụm Tây"}, "rooms", "không có cụm 'Cụm Tây'"),
            ({"action": "now", "duration_min": "nửa giờ"}, "duration_min", "phải là một số"),
            ({"action": "now", "duration_min": "0"}, "duration_min", "phải lớn hơn 0"),
            ({"end": "2026-11-18T10:00", "start": "2026-11-18T09:00"}, "end", "đã qua"),
        ]
        for change, field, text in cases:
            r = c.post("/windows", data=_window_form(**change), headers=hx(token))
            assert r.status_code == 400, (change, r.text)
            m = re.search(rf'data-error-for="{field}">([^<]*)<', r.text)
            assert m and text in html.unescape(m.group(1)), (change, r.text)
            assert 'id="window-form"' in r.text, "the form comes back as typed"
        r = c.post("/windows?lang=en", data=_window_form(end="2026-11-18T19:00"),
                   headers=hx(token))
        assert re.search(r'data-error-for="end">must be after start<', r.text)
        # without scripts: the whole page, status 400, the error by the field
        r = c.post("/windows", data={**_window_form(end="2026-11-18T19:00"), "csrf": token})
        assert r.status_code == 400 and 'data-error-for="end"' in r.text and "<html" in r.text
        # JSON clients get the errors by field
        r = c.post("/windows", data=_window_form(end="x"),
                   headers={**hx(token), "HX-Request": "", "Accept": "application/json"})
        assert r.status_code == 400 and r.json()["errors"]["end"]
        assert wb.console.windows() == [] and wb.console.commands() == []
        assert wb.store.latest_schedules() == {}


def test_window_progress_results_commands_and_report(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        wb.online("xa-a")
        wb.state("xa-a")
        r = c.post("/windows", data=_window_form(rooms_mode="some", sites_text="xa-a",
                                                 **{"sites": "xa-b"}), headers=hx(token))
        assert r.status_code == 204, r.text
        url = r.headers["hx-redirect"]
        wid = url.rsplit("/", 1)[1]
        w = wb.console.window(wid)
        assert w.sites == ("xa-a", "xa-b")
        page = c.get(url)
        assert page.status_code == 200 and 'id="wst-xa-a"' in page.text
        assert 'id="wst-xa-c"' not in page.text
        wb.clock.now = w.start + 60
        wb.state("xa-a", lock={"locked": True, "window_id": wid, "kind": "test"})
        wb.event("xa-a", "check_in", {"kind": "test"}, window_id=wid)
        wb.event("xa-a", "shutdown_refused", {"source": "button"}, window_id=wid)
        j = c.get(f"{url}.json").json()
        assert j["progress"] == {"rooms": 2, "online": 1, "on": 1, "locked": 1,
                                 "checked_in": 1, "refused": 1, "schedule": 0, "results": 0}
        a = j["rooms"][0]
        assert (a["site"], a["locked_here"], a["refused"], a["schedule_late"]) == \
            ("xa-a", True, 1, True)

        # results: bad input changes nothing, then good input is kept
        res = f"{url}/rooms/xa-a/result"
        r = c.post(res, data={"mic": "good", "speaker": "loud", "attendance": "-3"},
                   headers=hx(token))
        assert r.status_code == 400
        assert 'data-error-for="speaker"' in r.text and 'data-error-for="attendance"' in r.text
        assert wb.store.results(wid) == {}
        r = c.post(res, data={"mic": "good", "speaker": "poor", "attendance": "12"},
                   headers=hx(token))
        assert r.status_code == 200 and "Đã lưu." in r.text
        got = wb.store.results(wid)["xa-a"]
        assert (got.mic, got.speaker, got.attendance, got.by) == ("good", "poor", 12, "hung")
        assert c.post(f"{url}/rooms/xa-c/result", data={"mic": "good"},
                      headers=hx(token)).status_code == 404

        # commands: each shows its status; a reply changes it
        r = c.post(f"{url}/check", data={"site": "xa-a"}, headers=hx(token))
        assert r.status_code == 200 and "Đã gửi «Hỏi người trực» tới 1 điểm cầu" in r.text
        cid = re.search(r'id="cmd-([^"]+)" data-status="queued"', r.text).group(1)
        assert c.post(f"{url}/check", data={"site": "xa-c"},
                      headers=hx(token)).status_code == 404
        wb.clock.now += 1
        r = c.post(f"{url}/check", headers={**hx(token), "HX-Request": "",
                                            "Accept": "application/json"})
        assert [x["site"] for x in r.json()["commands"]] == ["xa-a", "xa-b"]
        assert c.get(f"{url}.json").json()["rooms"][0]["check"]["id"] != cid

        r = c.post(f"{url}/complete", headers=hx(token))
        assert r.status_code == 200 and r.text.count('id="cmd-') == 2
        assert wb.console.window(wid).completed_by == "console:hung"
        j = c.get(f"{url}.json").json()
        assert j["window"]["status"] == "completed"

        # the report: HTML, JSON, CSV (UTF-8 with a BOM), the printable page
        rep = c.get(f"{url}/report")
        assert rep.status_code == 200 and "Không bật" in rep.text and 'data-site="xa-b"' in rep.text
        cells = re.findall(r'<td class="(?:on_at|operator_at|released_at)">([^<]+)</td>', rep.text)
        assert cells and all(re.fullmatch(r"\d\d/\d\d \d\d:\d\d(:\d\d)?", x) for x in cells), \
            f"people read the report's times short, in the site's zone: {cells[:3]}"
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", rep.text.split("<table")[0]), \
            "the report's heading has an ISO time"
        rj = c.get(f"{url}/report.json").json()
        assert rj == wb.console.report(wid)
        assert rj["summary"]["not_switched_on"][0]["site"] == "xa-b"
        csv = c.get(f"{url}/report.csv")
        assert csv.content.startswith("\ufeff".encode()) and "Mã điểm cầu" in csv.text
        assert csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert f'filename="bao-cao-{wid}.csv"' in csv.headers["content-disposition"]
        assert "Site" in c.get(f"{url}/report.csv?lang=en").text
        pr = c.get(f"{url}/report/print")
        assert pr.status_code == 200 and "@page" in pr.text
        assert c.get("/windows/nope").status_code == 404
        assert c.get("/windows/nope/report.json").status_code == 404
        listing = c.get("/windows.json").json()["windows"]
        assert [x["id"] for x in listing] == [wid]


def test_alerts_stay_at_the_top_until_taken(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        wb.online("xa-a")
        wb.event("xa-a", "help_requested", {"source": "button"})
        for url in ("/", "/rooms/xa-b", "/windows", "/alerts"):
            page = c.get(url).text
            assert 'id="alerts" data-open="1"' in page, url
            assert "Điểm cầu xin hỗ trợ" in page and "Tiếp nhận" in page
        aid = wb.console.alerts()[0].id
        r = c.post(f"/alerts/{aid}/take", data={"note": "đã gọi điện"}, headers=hx(token))
        assert r.status_code == 200 and 'data-open="0"' in r.text
        j = c.get("/alerts.json").json()
        assert j["open"] == []
        assert (j["taken"][0]["taken_by"], j["taken"][0]["note"]) == ("hung", "đã gọi điện")
        assert "hung tiếp nhận lúc" in c.get("/alerts").text
        assert c.post("/alerts/999/take", headers=hx(token)).status_code == 400


def test_an_alert_names_its_window_by_title_not_id(tmp_path: Path) -> None:
    from district.service import Actor

    with web(tmp_path) as wb, wb.client() as c:
        login(c, OPERATOR)
        wb.online("xa-a")
        w = wb.console.create_window(Actor("hung"), kind="test", title="Kiểm tra định kỳ",
                                     start=T0 + 3600, end=T0 + 7200, rooms="all")
        wb.event("xa-a", "help_requested", {"source": "button"}, window_id=w.id)
        page = c.get("/").text
        banner = page[page.index('id="alerts"'):]
        banner = banner[:banner.index("</section>") if "</section>" in banner else 3000]
        assert f'href="/windows/{w.id}">Kiểm tra định kỳ</a>' in banner
        assert f">{w.id}</a>" not in page


def test_a_window_lists_the_rooms_to_phone_first(tmp_path: Path) -> None:
    from district.service import Actor
    from district.web import views

    with web(tmp_path) as wb:
        for site in ("xa-a", "xa-b"):
            wb.online(site)
        w = wb.console.create_window(Actor("hung"), kind="test", title="Kiểm tra định kỳ",
                                     start=T0 + 3600, end=T0 + 7200, rooms="all")
        for site in ("xa-a", "xa-b"):   # both run the window's schedule
            sched = wb.store.latest_schedule(site)
            wb.store.mark_schedule_published(sched.id, T0)
            wb.state(site, schedule={"version": None, "digest": sched.digest, "rejected": None})
        wb.event("xa-b", "shutdown_refused", {"source": "button"}, window_id=w.id)
        rows = views.window_rows(views.Roster(wb.console), w, now=T0)
        order = [r.tile.site for r in rows]
        calls = [r.needs_call for r in rows]
        assert calls == sorted(calls, reverse=True), order   # every room to phone comes first
        assert rows[-1].tile.site == "xa-a" and not rows[-1].needs_call
        assert [r.tile.site for r in rows if r.needs_call] == ["xa-b", "xa-c"]  # roster order


def test_answer_help_and_power_override_need_their_words(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        wb.online("xa-a")
        wb.event("xa-a", "help_requested", {"source": "button"})
        r = c.post("/rooms/xa-a/power", data={"on": "0", "override": "1", "reason": " "},
                   headers=hx(token))
        assert r.status_code == 400 and "ghi đè khóa phải nêu lý do" in r.text
        assert wb.console.commands() == []
        r = c.post("/rooms/xa-a/power", data={"on": "0", "override": "1",
                                              "reason": "sửa điện"}, headers=hx(token))
        assert r.status_code == 200
        cmd = wb.console.commands()[0]
        assert (cmd.args, cmd.note) == ({"on": False, "override": True}, "sửa điện")
        r = c.post("/rooms/xa-a/help", data={"note": "đang tới"}, headers=hx(token))
        assert r.status_code == 200 and wb.console.alerts() == []
        assert c.post("/rooms/nope/check", headers=hx(token)).status_code == 404


def test_vendored_scripts_are_the_pinned_files() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    base = (TEMPLATES / "web" / "base.html").read_text()
    for name in ("htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.min.js"):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert f"`{name}`" in table and digest in table, name
        assert f'src="/static/{name}"' in base
    assert "http" not in re.sub(r'content="[^"]*"', "", base.split("<body")[0]).replace(
        "htmx-config", ""), "no CDN"


def test_static_files_and_security_headers(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        login(c, OPERATOR)
        r = c.get("/")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        js = c.get("/static/htmx-2.0.11.min.js")
        assert js.status_code == 200 and "htmx" in js.text[:2000]
        assert c.get("/static/dashboard.css").status_code == 200


def test_unicode_digits_in_numbers_are_refused_not_a_crash() -> None:
    # "²".isdigit() is true, but int("²") raises: a span or a count like that is just wrong.
    from district.web.pages import hours_of

    assert hours_of({"hours": "²"}) == 24
    assert hours_of({"hours": "٣"}) == 24


CONTACTS = {"xa-a": [{"name": "Chị Lan", "role": "cán bộ văn phòng"},
                     {"name": "Anh Hùng", "role": "kỹ thuật", "phone": "0205 3870 111"}]}


def test_a_tile_shows_a_refused_switch_off_and_whom_to_phone(tmp_path: Path) -> None:
    """A technician reads the tile and phones: the room's roster phone (the first contact
    with one) is on its tile and its page; a switch-off refused in a window that is on now
    (or about to be: the room locks in its lead time) is on the tile, in the problems, in
    the twin; one refused in a window that is over is not."""
    from district.service import Actor

    with web(tmp_path, contacts=CONTACTS) as wb, wb.client() as c:
        login(c, OPERATOR)
        for site in ("xa-a", "xa-b", "xa-c"):
            wb.online(site)
            wb.state(site)
        staff = Actor("hung", "operator")
        wb.clock.now = T0 - 8000   # a window made before and over by now
        old = wb.console.create_window(staff, kind="test", title="Cũ", start=T0 - 7200,
                                       end=T0 - 3600, rooms="all")
        wb.clock.now = T0 - 700
        now = wb.console.create_window(staff, kind="test", title="Đang diễn ra",
                                       start=T0 - 600, end=T0 + 1800, rooms="all")
        wb.clock.now = T0
        for site in ("xa-a", "xa-b", "xa-c"):   # each runs the windows' schedule
            sched = wb.store.latest_schedule(site)
            wb.store.mark_schedule_published(sched.id, T0)
            wb.state(site, schedule={"version": None, "digest": sched.digest, "rejected": None},
                     lock={"locked": True, "window_id": now.id, "kind": "test"})
        wb.event("xa-c", "shutdown_refused", {"source": "button"}, window_id=old.id,
                 at=T0 - 5000)
        wb.event("xa-b", "shutdown_refused", {"source": "button"}, window_id=now.id)
        wb.event("xa-b", "shutdown_refused", {"source": "cli"}, window_id=now.id)

        def tile_html(page: str, site: str) -> str:
            m = re.search(rf'<a class="tile[^"]*" id="room-{site}".*?</a>', page, re.S)
            assert m, site
            return m.group(0)

        page = c.get("/").text
        b, a, cc = (tile_html(page, s) for s in ("xa-b", "xa-a", "xa-c"))
        assert 'data-problems="refused"' in b and "2 lần tắt bị từ chối" in b
        # The refusal's badge takes the lock's place (one badge: the name stays readable),
        # and still says the room is locked; a room locked without a refusal shows the lock.
        assert 'class="badge lock"' not in b and f"Khóa {now.id}" in b
        assert 'class="badge lock"' in a
        assert "bị từ chối" not in a and "bị từ chối" not in cc
        assert "0205 3870 111" in a and "Anh Hùng" in a
        assert "0205" not in b, "no contact with a phone: nothing to show"
        assert _tiles(page)[0] == "xa-b", "a refusal is a problem: sorted first"
        assert _tiles(c.get("/?problem=refused").text) == ["xa-b"]
        j = {x["site"]: x for x in c.get("/rooms.json?sort=roster").json()["rooms"]}
        assert (j["xa-a"]["refused"], j["xa-b"]["refused"], j["xa-c"]["refused"]) == (0, 2, 0)
        assert j["xa-b"]["problems"] == ["refused"]
        assert j["xa-a"]["contact"] == {"name": "Anh Hùng", "role": "kỹ thuật",
                                        "phone": "0205 3870 111"}
        assert j["xa-b"]["contact"] is None
        room = c.get("/rooms/xa-a").text
        assert 'href="tel:02053870111"' in room and "0205 3870 111" in room
        en = tile_html(c.get("/?lang=en").text, "xa-b")
        assert "2 refused switch-offs" in en and "bị từ chối" not in en
        # The window is marked complete: its refusals are no longer the room's news.
        wb.console.complete_window(staff, now.id)
        b = tile_html(c.get("/?lang=vi").text, "xa-b")
        assert "bị từ chối" not in b and "refused" not in b
        # The report's lists of rooms to phone carry the roster phone beside each name.
        lists = c.get(f"/windows/{now.id}/report").text.split('<div class="scroll-x">')[0]
        items = {m.group(1): m.group(0) for m in re.finditer(
            r'<li><a href="/rooms/(xa-[a-c])\?window=[^"]+">.*?</li>', lists, re.S)}
        assert "xa-a" in items and "xa-b" in items, lists
        assert 'href="tel:02053870111"' in items["xa-a"] and "☎ 0205 3870 111" in items["xa-a"]
        assert "☎" not in items["xa-b"], "no contact with a phone: nothing to show"
        j = {x["site"]: x for x in c.get("/rooms.json").json()["rooms"]}
        assert j["xa-b"]["refused"] == 0 and "refused" not in j["xa-b"]["problems"]


def test_a_phone_link_dials_the_number_not_its_extension() -> None:
    from district.web.views import tel

    assert tel("0205 3870 111") == "tel:02053870111"
    assert tel("+84 (205) 3870-111 máy lẻ 12") == "tel:+842053870111"
    assert tel("gọi 0205 3870 111") == "tel:02053870111"
