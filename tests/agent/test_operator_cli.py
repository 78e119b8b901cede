"""The operator's command line, one language at a time, against a simulated room: the real
agent on mock pins with its serial devices emulated on pseudo-terminals, a real Mosquitto.

``status`` in Vietnamese or English (never both), times in the site's zone in words from an
injected ``now``, support contacts without ``--config``; ``request-off`` refused while locked
(saying until when) and switching off outside; ``selftest`` outside a window switching each
device off and on, confirmed over RS-232 (or by its relay only), refused inside, and a device
that does not answer reported as failed; the printable LED card."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import cli as cli_module
from agent import operator_text as text
from agent.cli import cmd_local, main, serve
from agent.config import parse_config
from agent.core.led import patterns
from agent.hardware.pins import mock_factory
from agent.runtime import Agent, Stop
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import SITE, RunningAgent, Watcher, running, schedule, watcher

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CENTRE_VI, CENTRE_EN = "Trung tâm CNTT tỉnh Lạng Sơn", "the Lạng Sơn IT centre"
PHONE = "+84 205 3830 000"


def site(broker: Any, language: str = "vi", camera_grace: float = 5,
         camera_ready: float = 10) -> str:
    """A room with two serial devices (codec, camera) and one on its relay only (amplifier)."""
    return f"""\
site:
  id: {SITE}
  name: "Xã Thử"
  language: {language}
  centre: {{vi: "{CENTRE_VI}", en: "{CENTRE_EN}"}}
broker: {{host: 127.0.0.1, port: {broker.port}, keepalive_s: 5}}
devices:
  codec:
    role: codec
    label: "Codec Cisco"
    relay: {{pin: 26}}
    order: 1
    off_grace_s: 5
    ready_timeout_s: 10
    driver: cisco_xapi
    serial: {{url: /dev/codec, baudrate: 115200}}
    poll_s: 1
    simulation: {{boot_s: 0.3}}
  camera:
    role: camera
    label: "Camera"
    relay: {{pin: 20}}
    order: 2
    off_grace_s: {camera_grace}
    ready_timeout_s: {camera_ready}
    driver: sony_visca
    serial: {{url: /dev/camera}}
    poll_s: 1
    simulation: {{boot_s: 0.2}}
  amplifier:
    role: amplifier
    label: "Ampli"
    relay: {{pin: 21}}
    order: 3
    on_delay_s: 0
button: {{pin: 16, hold_s: 0.5, bounce_s: 0}}
timing: {{lead_min: 15, heartbeat_s: 30}}
support:
  - {{name: "Tổ kỹ thuật", role: "Hỗ trợ kỹ thuật", role_en: "Technical support",
     phone: "{PHONE}"}}
"""


# Names that come from the config (or the schedule) may be in either language.
CONFIG_NAMES = ("Xã Thử", CENTRE_VI, CENTRE_EN, "Codec Cisco", "Camera", "Ampli", "Tổ kỹ thuật",
                "Technical support",
                "Hỗ trợ kỹ thuật", "Kiểm tra kết nối", "Họp giao ban")
ENGLISH_RAW = re.compile(r"\b(session|ok|on|off|done|locked|power|support|room|window|health|"
                         r"standby|today|tomorrow|next|link|light|test|fault|degraded|unknown|"
                         r"partial|powering)\b", re.IGNORECASE)
NOT_ASCII = re.compile(r"[^\x00-\x7f«»•—]")


def without_names(out: str) -> str:
    for name in sorted(CONFIG_NAMES, key=len, reverse=True):
        out = out.replace(name, "")
    return out


def assert_vietnamese_only(out: str) -> None:
    rest = without_names(out)
    assert not ENGLISH_RAW.findall(rest), f"English words in the Vietnamese text:\n{out}"
    assert not re.search(r"\((on|off)\)", out) and "(ok)" not in out


def assert_english_only(out: str) -> None:
    rest = without_names(out)
    assert not NOT_ASCII.findall(rest), f"Vietnamese in the English text:\n{out}"
    assert "session" not in rest and not re.search(r"\((on|off)\)", out)


def args(state: Path, cmd: str, lang: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(state_dir=str(state), cmd=cmd, json=False, config=None, lang=lang)


def cli(capsys: pytest.CaptureFixture[str], state: Path, cmd: str, lang: str | None = None,
        now: datetime | None = None) -> tuple[int, str, str]:
    """Run one operator command in this process (as ``diemcau-agent CMD``)."""
    capsys.readouterr()
    rc = cmd_local(args(state, cmd, lang), now=now)
    got = capsys.readouterr()
    return rc, got.out, got.err


@pytest.fixture
def room(broker: LocalBroker, short_tmp: Path) -> Iterator[tuple[RunningAgent, Watcher]]:
    cfg = parse_config(site(broker))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as r:
        w.availability("online")
        yield r, w


def state_dir(r: RunningAgent) -> Path:
    return r.agent.store.root


def thursday_ahead() -> datetime:
    """A Thursday 08:00 in the site's zone at least 3 days ahead (and not in the first days
    of a year, so three days before it is the same year)."""
    d = datetime.now(ZONE).date() + timedelta(days=3)
    while d.weekday() != 3 or (d.month == 1 and d.day <= 3):
        d += timedelta(days=1)
    return datetime(d.year, d.month, d.day, 8, 0, tzinfo=ZONE)


def at_local(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=ZONE)


# --------------------------------------------------------------------------- status


def test_status_speaks_one_language_with_times_in_words_and_support(
        room: tuple[RunningAgent, Watcher], capsys: pytest.CaptureFixture[str]) -> None:
    r, w = room
    start = thursday_ahead()
    end = start + timedelta(hours=2)
    w.publish("schedule", {"version": "v1", "site": SITE, "windows": [
        {"id": "s-42", "kind": "session", "title": "Họp giao ban",
         "start": start.isoformat(), "end": end.isoformat()}]}, retain=True)
    w.event("schedule_applied", version="v1")
    st = state_dir(r)
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    for now, vi, en in (
            (at_local(start.date(), 0, 30), "hôm nay 08:00", "today 08:00"),
            (at_local(start.date() - timedelta(days=1), 12), "ngày mai 08:00",
             "tomorrow 08:00"),
            (at_local(start.date() - timedelta(days=3), 9),
             f"thứ Năm {start.day:02d}/{start.month:02d} 08:00",
             f"Thu {start.day} {months[start.month - 1]} 08:00")):
        rc, out_vi, _ = cli(capsys, st, "status", None, now)   # the room's language: vi
        assert rc == 0
        assert f"Lịch tiếp theo: phiên họp «Họp giao ban», {vi}" in out_vi
        assert PHONE in out_vi and "Tổ kỹ thuật (Hỗ trợ kỹ thuật)" in out_vi   # no --config
        assert "Điểm cầu: Xã Thử" in out_vi and f"Kết nối với {CENTRE_VI}: tốt, từ" in out_vi
        assert "s-42" not in out_vi and SITE not in out_vi
        assert_vietnamese_only(out_vi)
        rc, out_en, _ = cli(capsys, st, "status", "en", now)
        assert rc == 0
        assert f"Next: meeting «Họp giao ban», {en}" in out_en
        assert PHONE in out_en and "Room: Xã Thử" in out_en and CENTRE_EN in out_en
        assert "Tổ kỹ thuật (Technical support)" in out_en   # the role in English
        assert "Technical support" not in out_vi
        assert "s-42" not in out_en
        assert_english_only(out_en)
    # Devices by their labels, in words; the LED in the chosen language only.
    assert "  • Codec Cisco: bật, hoạt động tốt" in out_vi
    assert "  • Ampli: bật (chỉ có rơ-le, không có cổng RS-232)" in out_vi
    assert "Đèn: " in out_vi and "Light: " in out_en
    assert "  • Codec Cisco: on, working" in out_en


def test_the_room_language_from_its_config(broker: LocalBroker, short_tmp: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = parse_config(site(broker, language="en"))
    with running(cfg, short_tmp / "st") as r:
        rc, out, _ = cli(capsys, state_dir(r), "status")
        assert rc == 0 and "Room: Xã Thử" in out and "Power: on" in out
        assert_english_only(out)
        rc, out, _ = cli(capsys, state_dir(r), "status", "vi")   # --lang wins
        assert rc == 0 and "Nguồn: bật" in out
        assert_vietnamese_only(out)


# --------------------------------------------------------------------------- request-off


def test_request_off_is_refused_while_locked_saying_until_when_and_switches_off_outside(
        room: tuple[RunningAgent, Watcher], capsys: pytest.CaptureFixture[str]) -> None:
    r, w = room
    sched = schedule(5)   # a test window in 5 min, lead 15: the room locks now
    w.publish("schedule", sched, retain=True)
    w.event("lock_engaged", window_id="t1")
    end = datetime.fromisoformat(sched["windows"][0]["end"])   # type: ignore[index]
    until = end.astimezone(ZONE).strftime("%H:%M")
    st = state_dir(r)
    rc, vi, _ = cli(capsys, st, "request-off", None, end)
    assert rc == 1
    assert f"KHÔNG ĐƯỢC TẮT: phòng đang khoá vì đang kiểm tra kết nối «Kiểm tra kết nối» đến " \
           f"{until}." in vi
    assert CENTRE_VI in vi and "t1" not in vi
    assert_vietnamese_only(vi)
    rc, en, _ = cli(capsys, st, "off", "en", end)   # `off` is the same request
    assert rc == 1
    assert f"Not switched off: the room is locked for a connection test «Kiểm tra kết nối» " \
           f"until {until}." in en
    assert_english_only(en)
    w.event("shutdown_refused", source="cli")
    rc, status_vi, _ = cli(capsys, st, "status", "vi", end)
    assert f"Đang khoá: đang kiểm tra kết nối «Kiểm tra kết nối» đến {until}." in status_vi
    assert r.agent.state_message()["power"] == "on"
    # The centre marks it complete: the lock is gone, the room switches off in order.
    assert w.command("c-done", "complete_window", window_id="t1")["status"] == "accepted"
    w.event("lock_released", reason="completed")
    rc, vi, _ = cli(capsys, st, "request-off")
    assert rc == 0, vi
    assert "Đang tắt lần lượt: Ampli, Camera, Codec Cisco." in vi
    assert_vietnamese_only(vi)
    w.event("power_sequence_finished", on=False, reason="local:cli", timeout=30)
    assert r.agent.state_message()["power"] == "off"


# --------------------------------------------------------------------------- selftest


def selftest_steps(w: Watcher) -> list[tuple[str, bool, str]]:
    return [(e["data"]["device"], e["data"]["on"], e["data"]["outcome"]) for e in w.events()
            if e["kind"] == "power_step" and e["data"]["reason"].startswith("selftest:")]


def test_selftest_switches_each_device_off_and_on_confirmed_over_rs232(
        room: tuple[RunningAgent, Watcher], capsys: pytest.CaptureFixture[str]) -> None:
    r, w = room
    emus = r.agent.emulated.emulators
    w.event("device_health", device="camera", status="ok", timeout=15)
    marks = {n: len(e.log) for n, e in emus.items()}
    rc, out, err = cli(capsys, state_dir(r), "selftest")
    assert rc == 0, out + err
    assert "Tự kiểm tra: tắt rồi bật lại từng thiết bị theo thứ tự." in out
    assert "  • Codec Cisco: tắt đã xác nhận, bật đã xác nhận (qua cổng RS-232)." in out
    assert "  • Camera: tắt đã xác nhận, bật đã xác nhận (qua cổng RS-232)." in out
    assert "  • Ampli: đã tắt, đã bật — chỉ xác nhận bằng rơ-le (thiết bị không có cổng " \
           "RS-232)." in out
    assert "Kết quả: cả 3 thiết bị đều tốt." in out
    assert_vietnamese_only(out)
    # Each device off then on, in the configured order, each serial one confirmed.
    finished = w.event("selftest_finished")["data"]
    assert finished["ok"] is True and finished["failed"] == []
    assert selftest_steps(w) == [
        ("codec", False, "confirmed"), ("codec", True, "confirmed"),
        ("camera", False, "confirmed"), ("camera", True, "confirmed"),
        ("amplifier", False, "done"), ("amplifier", True, "done")]
    devices = [e["data"] for e in w.events() if e["kind"] == "selftest_device"]
    assert [(d["device"], d["ok"], d["off"], d["on"]) for d in devices] == [
        ("codec", True, "confirmed", "confirmed"), ("camera", True, "confirmed", "confirmed"),
        ("amplifier", True, "relay_only", "relay_only")]
    w.event("selftest_started", source="cli", devices=["codec", "camera", "amplifier"])
    # The emulators were told to stand by, lost power and were asked their power state again.
    standby = {"codec": b"xCommand Standby Activate", "camera": bytes.fromhex("8101040003ff")}
    for name, cmd in standby.items():
        log = emus[name].log[marks[name]:]
        assert any(cmd in x.received for x in log), f"{name}: no standby sent"
        assert any(x.reply for x in log), f"{name}: never answered"
    assert r.agent.state_message()["power"] == "on"
    rc, en, _ = cli(capsys, state_dir(r), "selftest", "en")
    assert rc == 0
    assert "  • Codec Cisco: off confirmed, on confirmed (over RS-232)." in en
    assert "  • Ampli: switched off, switched on — confirmed by its relay only (no RS-232 " \
           "link)." in en
    assert "Result: all 3 devices are fine." in en
    assert_english_only(en)


def test_selftest_is_refused_inside_a_window_saying_why(
        room: tuple[RunningAgent, Watcher], capsys: pytest.CaptureFixture[str]) -> None:
    r, w = room
    sched = schedule(5)
    w.publish("schedule", sched, retain=True)
    w.event("lock_engaged", window_id="t1")
    end = datetime.fromisoformat(sched["windows"][0]["end"])   # type: ignore[index]
    until = end.astimezone(ZONE).strftime("%H:%M")
    rc, vi, _ = cli(capsys, state_dir(r), "selftest", "vi", end)
    assert rc == 1
    assert f"Không tự kiểm tra được: phòng đang khoá vì đang kiểm tra kết nối «Kiểm tra kết " \
           f"nối» đến {until}." in vi
    assert_vietnamese_only(vi)
    rc, en, _ = cli(capsys, state_dir(r), "selftest", "en", end)
    assert rc == 1 and f"Self-test refused: the room is locked for a connection test " \
                      f"«Kiểm tra kết nối» until {until}." in en
    refused = w.event("selftest_refused", reason="locked", window_id="t1")
    assert refused["data"]["kind"] == "test"
    assert not any(e["kind"] == "selftest_started" for e in w.events())
    assert selftest_steps(w) == []


def test_selftest_reports_a_device_that_does_not_answer(
        broker: LocalBroker, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = parse_config(site(broker, camera_grace=1.5, camera_ready=2))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as r:
        w.availability("online")
        w.event("device_health", device="camera", status="ok", timeout=15)
        r.agent.emulated.emulators["camera"].silent = True   # the RS-232 cable cut
        rc, vi, _ = cli(capsys, state_dir(r), "selftest")
        assert rc == 1
        assert "  • Codec Cisco: tắt đã xác nhận, bật đã xác nhận (qua cổng RS-232)." in vi
        assert "  • Camera: LỖI — không xác nhận được khi tắt (không trả lời qua RS-232); " \
               "không trả lời qua RS-232 sau khi bật lại." in vi
        assert "Kết quả: 1/3 thiết bị không đạt: Camera. Hãy gọi hỗ trợ." in vi
        assert PHONE in vi
        assert_vietnamese_only(vi)
        finished = w.event("selftest_finished")["data"]
        assert finished["ok"] is False and finished["failed"] == ["camera"]
        assert ("camera", False, "timeout") in selftest_steps(w)
        assert ("camera", True, "timeout") in selftest_steps(w)
        dev = w.event("selftest_device", device="camera")["data"]
        assert dev == {"device": "camera", "ok": False, "off": "no_answer", "on": "no_answer",
                       "relay": True}


# --------------------------------------------------------------------------- errors


def test_errors_in_the_chosen_language(short_tmp: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "SITE_FILE", short_tmp / "no-site.yaml")
    rc, _, err = cli(capsys, short_tmp / "nobody", "status")
    assert rc == 3 and "Không liên lạc được với trợ lý điểm cầu" in err
    assert_vietnamese_only(err.replace("sudo systemctl status diemcau-agent", ""))
    rc, _, err = cli(capsys, short_tmp / "nobody", "status", "en")
    assert rc == 3 and "Cannot reach the room agent" in err
    # The agent is down: who to call comes from the site file, in its language.
    (short_tmp / "site.yaml").write_text(site(LocalBroker(short_tmp / "b"), language="en"))
    monkeypatch.setattr(cli_module, "SITE_FILE", short_tmp / "site.yaml")
    rc, _, err = cli(capsys, short_tmp / "nobody", "request-off")
    assert rc == 3 and "Cannot reach the room agent" in err and PHONE in err
    assert_english_only(err)
    # A real room (not simulated) has no simulated button: said in words, not raw.
    from tests.agent.harness import offline_config

    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    import threading

    stop = threading.Event()
    loop = threading.Thread(target=serve, args=(agent, False, stop), daemon=True)
    loop.start()
    try:
        assert agent.started.wait(10)
        rc, _, err = cli(capsys, short_tmp / "st", "press")
        assert rc == 1 and "Lệnh này chỉ dùng được trong phòng mô phỏng" in err
        assert "press/hold" not in err
        rc, _, err = cli(capsys, short_tmp / "st", "press", "en")
        assert rc == 1 and "This works only in a simulated room" in err
        rc, out, _ = cli(capsys, short_tmp / "st", "on", "en")
        assert rc == 0 and "OK" not in out
    finally:
        stop.set()
        agent.queue.put(Stop())
        loop.join(15)
    assert not loop.is_alive()


# --------------------------------------------------------------------------- time words


@pytest.mark.parametrize(("ts", "now", "vi", "en"), [
    ("2026-12-01T07:00:00Z", "2026-12-01T01:00:00Z", "hôm nay 14:00", "today 14:00"),
    ("2026-12-02T01:30:00Z", "2026-12-01T10:00:00Z", "ngày mai 08:30", "tomorrow 08:30"),
    # 18:30 UTC on the 1st is already the 2nd in Hà Nội: tomorrow, not today.
    ("2026-12-01T18:30:00Z", "2026-12-01T10:00:00Z", "ngày mai 01:30", "tomorrow 01:30"),
    ("2026-12-04T01:00:00Z", "2026-12-01T01:00:00Z", "thứ Sáu 04/12 08:00", "Fri 4 Dec 08:00"),
    ("2026-12-03T01:00:00Z", "2026-12-01T01:00:00Z", "thứ Năm 03/12 08:00", "Thu 3 Dec 08:00"),
    ("2026-11-30T09:00:00Z", "2026-12-01T01:00:00Z", "hôm qua 16:00", "yesterday 16:00"),
    ("2027-01-03T01:00:00Z", "2026-12-28T01:00:00Z", "Chủ nhật 03/01/2027 08:00",
     "Sun 3 Jan 2027 08:00"),
])
def test_times_are_the_site_zone_in_words(ts: str, now: str, vi: str, en: str) -> None:
    n = datetime.fromisoformat(now)
    assert text.when(ts, n, "Asia/Ho_Chi_Minh", "vi") == vi
    assert text.when(ts, n, "Asia/Ho_Chi_Minh", "en") == en


def test_every_sentence_has_both_languages() -> None:
    for key, pair in text.WORDS.items():
        assert len(pair) == 2 and all(pair), key
        vi, en = pair
        fields = [{f.lower() for f in re.findall(r"{(\w+)", w)} for w in (vi, en)]
        assert fields[0] == fields[1] or key.startswith("date"), key   # the same facts


# --------------------------------------------------------------------------- LED card


class Card(HTMLParser):
    """The card's pages (by language) and, in each, the swatches and their patterns."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[tuple[str, list[str], list[str]]] = []   # lang, swatches, text
        self.external: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "page" in (a.get("class") or ""):
            self.pages.append((a.get("lang") or "", [], []))
        if "swatch" in (a.get("class") or "").split():
            self.pages[-1][1].append(a.get("data-pattern") or "")
        if tag in ("link", "img", "script") or a.get("src") or (a.get("href") or "").startswith(
                "http"):
            self.external.append(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        elif self.pages:
            self.pages[-1][2].append(data)


def test_led_card_has_one_swatch_per_pattern_in_each_language(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(site(LocalBroker(tmp_path / "b")))
    capsys.readouterr()
    assert main(["led-card", "--config", str(cfg_path)]) == 0
    html = capsys.readouterr().out
    card = Card()
    card.feed(html)
    names = list(patterns())
    assert [lang for lang, _, _ in card.pages] == ["vi", "en"]
    for lang, swatches, words in card.pages:
        assert swatches == names, lang   # one per pattern, in priority order
        body = " ".join(words)
        assert PHONE in body and "Tổ kỹ thuật" in body
        role, other = (("Hỗ trợ kỹ thuật", "Technical support") if lang == "vi" else
                       ("Technical support", "Hỗ trợ kỹ thuật"))
        assert role in body and other not in body, lang
        centre = CENTRE_VI if lang == "vi" else CENTRE_EN
        assert centre in body
        for p in patterns((CENTRE_VI, CENTRE_EN)).values():
            assert (p.vi if lang == "vi" else p.en) in body
    assert_english_only(" ".join(card.pages[1][2]))
    assert "page-break-after: always" in card.style and "@page" in card.style
    assert "size: A5" in card.style
    assert card.external == [] and "http" not in html and "url(" not in html   # no assets
    # Steady and blinking are drawn differently: a blinking one has its rhythm strip.
    assert html.count('class="swatch steady"') == 2 * sum(p.steady for p in patterns().values())
    assert html.count('class="strip"') == 2 * sum(not p.steady for p in patterns().values())


def test_led_card_words_are_the_operator_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The card's sentences live in the one table of the operator's words: a changed entry
    there is what the card prints, in its language only."""
    from agent import ledcard

    assert not hasattr(ledcard, "WORDS")
    card_keys = [k for k in text.WORDS if k.startswith("card.")]
    assert {"card.title", "card.intro", "card.button", "card.no_support"} <= set(card_keys)
    for key in card_keys:
        monkeypatch.setitem(text.WORDS, key, (f"VI<{key}>", f"EN<{key}>"))
    html = ledcard.render()
    vi, en = html.split('<section class="page" lang="en">')
    for key in ("card.title", "card.intro", "card.light", "card.meaning", "card.button",
                "card.support", "card.no_support"):
        assert f"VI&lt;{key}&gt;" in vi and f"EN&lt;{key}&gt;" in en, key
        assert f"EN&lt;{key}&gt;" not in vi.split("<body>")[1], key
