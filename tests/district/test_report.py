"""The compliance report on one scripted test window, through a real Mosquitto: one room per
cause of the letter, one per column, and a room whose link was down all window that comes back
after the completion with late evidence.

The window is played once for the module (the rooms act in turn on a clock the test moves);
each test then checks what the report says about one room.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.clock import iso_ms
from broker.local import LocalBroker
from district.report import build_report, to_csv, to_html
from district.timefmt import iso_local
from tests.district.helpers import ACTOR, T0, ConsoleRig

S = T0 + 3600.0
E = S + 3600.0
DEVICES_ON = {"codec": {"relay": True, "state": "confirmed", "health": "ok"},
              "camera": {"relay": True, "state": "confirmed", "health": "ok"},
              "amplifier": {"relay": True, "state": "on", "health": "ok"}}
DEVICES_OFF = {"codec": {"relay": False, "state": "off", "health": "ok"},
               "camera": {"relay": False, "state": "off", "health": "ok"},
               "amplifier": {"relay": False, "state": "off", "health": "ok"}}
ROOMS = ["r-never", "r-offline", "r-linkdown", "r-notpowered", "r-noresponse", "r-refused",
         "r-power", "r-stopping", "r-linklost", "r-override", "r-gap", "r-good", "r-both"]
ONLINE = [r for r in ROOMS if r not in ("r-never",)]


def _local(ts: float) -> str:
    return iso_local(ts, ZoneInfo("Asia/Ho_Chi_Minh")) or ""


class Played:
    """The played window: the rig, the window and the reports taken along the way."""

    def __init__(self, rig: ConsoleRig, window_id: str) -> None:
        self.rig = rig
        self.window_id = window_id
        self.at_completion: dict[str, Any] = {}
        self.after_late: dict[str, Any] = {}
        self.before_completion: dict[str, Any] = {}

    def row(self, site: str, which: str = "after_late") -> dict[str, Any]:
        rep = getattr(self, which)
        return next(r for r in rep["rooms"] if r["site"] == site)


def _ready(c: ConsoleRig, site: str, wid: str, on: bool = True) -> None:
    c.send(site, "power_sequence_finished", {"on": True, "reason": f"window:{wid}",
                                             "elapsed_s": 40.0}, at=S - 840, window_id=wid)
    c.send(site, "window_ready", {"start": iso_ms(S), "on_by_start": on,
                                  "devices": DEVICES_ON if on else DEVICES_OFF},
           at=S, window_id=wid)


def _offline_ready(c: ConsoleRig, site: str, wid: str) -> None:
    """The same, made while the room's link is down (it waits in its outbox)."""
    r = c.rooms[site]
    r.event("power_sequence_finished", {"on": True, "reason": f"window:{wid}",
                                        "elapsed_s": 40.0}, ts=S - 840, window_id=wid)
    r.event("window_ready", {"start": iso_ms(S), "on_by_start": True, "devices": DEVICES_ON},
            ts=S, window_id=wid)


def _check_id(c: ConsoleRig, site: str, wid: str) -> str:
    cmds = [x for x in c.console.commands(site=site, window_id=wid)
            if x.name == "operator_check"]
    return cmds[0].id


def _ack(c: ConsoleRig, site: str, wid: str, at: float, latency: float) -> None:
    c.send(site, "operator_check_acknowledged", {"check_id": _check_id(c, site, wid),
                                                 "latency_s": latency}, at=at, window_id=wid)


def _unanswered(c: ConsoleRig, site: str, wid: str, at: float) -> None:
    c.send(site, "operator_check_unanswered", {"check_id": _check_id(c, site, wid),
                                               "reason": "timeout", "waited_s": 300.0},
           at=at, window_id=wid)


def _drop(c: ConsoleRig, site: str, at: float) -> None:
    c.clock.set(at)
    c.rooms[site].drop()
    c.wait_availability(site, "offline")


def play(c: ConsoleRig) -> Played:
    for site in ONLINE:
        c.online(site, T0)
    c.clock.set(T0 + 1)
    w = c.console.create_window(ACTOR, kind="test", title="Kiểm tra kết nối tháng 11",
                                start=S, end=E, rooms="all")
    for site in ONLINE:
        c.rooms[site].wait_schedules(1)
    c.wait(lambda: all(c.console.schedule_status(s) == "applied" for s in ONLINE), "applied")
    wid = w.id
    played = Played(c, wid)

    _drop(c, "r-linkdown", S - 1500)
    _drop(c, "r-offline", S - 1200)
    _offline_ready(c, "r-linkdown", wid)
    for site in ONLINE:
        if site in ("r-offline", "r-linkdown"):
            continue
        _ready(c, site, wid, on=site != "r-notpowered")

    c.clock.set(S + 60)
    c.console.operator_check(ACTOR, w.sites, window_id=wid, timeout_s=300)
    for site in ONLINE:
        if site not in ("r-offline", "r-linkdown"):
            c.rooms[site].wait_commands(1)
    c.rooms["r-linkdown"].event("check_in", {"kind": "test"}, ts=S + 120, window_id=wid)
    c.send("r-notpowered", "check_in", {"kind": "test"}, at=S + 100, window_id=wid)
    for site in ("r-refused", "r-power", "r-stopping", "r-linklost", "r-override", "r-gap"):
        _ack(c, site, wid, S + 70, 10.0)
    _ack(c, "r-good", wid, S + 64.2, 4.2)
    _unanswered(c, "r-noresponse", wid, S + 360)
    _unanswered(c, "r-both", wid, S + 360)

    # r-gap: a short cut, told by both sides.
    _drop(c, "r-gap", S + 600)
    c.online("r-gap", S + 900)
    c.send("r-gap", "link_restored", {"down_since": iso_ms(S + 600), "down_s": 300.0,
                                      "reconnects": 1}, at=S + 900, window_id=wid)
    # Refusals.
    for site in ("r-refused", "r-both"):
        c.send(site, "shutdown_refused", {"source": "button", "kind": "test",
                                          "title": "Kiểm tra"}, at=S + 950, window_id=wid)
    # r-stopping: someone stopped the agent; it came back.
    c.send("r-stopping", "agent_stopping", {"reason": "signal", "system_shutdown": False},
           at=S + 1000, window_id=wid)
    c.clock.set(S + 1000)
    c.rooms["r-stopping"].stop_clean()
    c.wait_availability("r-stopping", "offline")
    c.online("r-stopping", S + 1100)
    c.send("r-stopping", "agent_started", {"agent_version": "0.2.0", "after_reboot": False,
                                           "previous_stop": "clean",
                                           "last_alive_at": iso_ms(S + 1000),
                                           "relays": {}, "locked_by": wid},
           at=S + 1100, window_id=wid)
    # r-override: the centre switched it off on purpose; then its Pi went away too.
    c.clock.set(S + 1200)
    cmd = c.console.power(ACTOR, ["r-override"], False, override=True,
                          reason="Phòng họp cần dùng việc khác", window_id=wid)[0]
    c.rooms["r-override"].wait_commands(2)
    c.send("r-override", "lock_overridden", {"kind": "test", "command_id": cmd.id,
                                             "by": "console:hung"}, at=S + 1201, window_id=wid)
    _drop(c, "r-override", S + 1300)
    # r-power: the plug was pulled; it rebooted.
    _drop(c, "r-power", S + 1500)
    c.online("r-power", S + 1800)
    c.send("r-power", "agent_started", {"agent_version": "0.2.0", "after_reboot": True,
                                        "previous_stop": "power_loss_or_reboot",
                                        "last_alive_at": iso_ms(S + 1490),
                                        "relays": {}, "locked_by": wid},
           at=S + 1800, window_id=wid)
    # r-linklost: gone before the end, not back.
    _drop(c, "r-linklost", S + 2400)

    c.clock.set(E - 60)
    played.before_completion = c.console.report(wid)
    c.rig_results = {
        "r-good": c.console.record_result(ACTOR, wid, "r-good", mic="good", speaker="good",
                                          attendance=12),
        "r-notpowered": c.console.record_result(ACTOR, wid, "r-notpowered", mic="none",
                                                speaker="none"),
    }
    c.clock.set(E)
    c.console.complete_window(ACTOR, wid)
    online_now = [s for s in ONLINE if c.rooms[s].connected]
    c.wait(lambda: all(x.status == "accepted" for x in c.console.commands(window_id=wid)
                       if x.name == "complete_window" and x.site in online_now), "completed")
    for s in online_now:
        c.wait(lambda s=s: any(e.kind == "lock_released" for e in c.store.events(s)),
               f"{s} released")
    played.at_completion = c.console.report(wid)

    # After the completion, r-linkdown's link comes back: its backlog goes out late.
    c.online("r-linkdown", E + 600)
    r = c.rooms["r-linkdown"]
    sent = r.flush(E + 600)
    c.send("r-linkdown", "link_restored", {"down_since": iso_ms(S - 1500),
                                           "down_s": E + 600 - (S - 1500), "reconnects": 1},
           at=E + 600)
    c.wait_seq("r-linkdown", sent[-1]["seq"])
    played.after_late = c.console.report(wid)
    return played


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    root = tmp_path_factory.mktemp("report")
    b = LocalBroker(root / "broker")
    b.start()
    c = ConsoleRig(b, root, ROOMS, groups={s: "Cụm A" for s in ROOMS[:6]})
    try:
        c.start()
        yield play(c)
    finally:
        c.close()
        b.stop()


def _summary_entry(rep: dict[str, Any], site: str) -> tuple[str, str] | None:
    for key in ("not_switched_on", "unstaffed", "switched_off_early"):
        for item in rep["summary"][key]:
            if item["site"] == site:
                return key, item["cause"]
    return None


@pytest.mark.parametrize(("site", "expected"), [
    ("r-never", ("not_switched_on", "never_connected")),
    ("r-offline", ("not_switched_on", "offline")),
    ("r-linkdown", ("not_switched_on", "link_down")),
    ("r-notpowered", ("not_switched_on", "not_powered")),
    ("r-noresponse", ("unstaffed", "no_response")),
    ("r-refused", ("switched_off_early", "refused_attempt")),
    ("r-power", ("switched_off_early", "power_lost")),
    ("r-stopping", ("switched_off_early", "power_lost")),
    ("r-linklost", ("switched_off_early", "link_lost")),
    ("r-override", None),
    ("r-gap", None),
    ("r-good", None),
    ("r-both", ("unstaffed", "no_response")),
])
def test_each_room_in_the_right_list(played: Played, site: str,
                                     expected: tuple[str, str] | None) -> None:
    assert _summary_entry(played.after_late, site) == expected


def test_a_room_is_in_at_most_one_list(played: Played) -> None:
    s = played.after_late["summary"]
    sites = [i["site"] for k in ("not_switched_on", "unstaffed", "switched_off_early")
             for i in s[k]]
    assert len(sites) == len(set(sites))
    assert s["rooms"] == len(ROOMS) and s["ok"] == 3 and s["final"] is True
    for k in ("not_switched_on", "unstaffed", "switched_off_early"):
        assert all(set(i) == {"site", "name", "cause"} for i in s[k])


def test_late_evidence_refines_but_never_connects(played: Played) -> None:
    before = played.row("r-linkdown", "at_completion")
    after = played.row("r-linkdown")
    assert (before["list"], before["cause"]) == ("not_switched_on", "offline")
    assert (after["list"], after["cause"]) == ("not_switched_on", "link_down")
    assert before["online"]["contact"] is False and after["online"]["contact"] is False
    assert after["online"]["throughout"] is False
    assert after["on_by_start"]["value"] is True and after["on_by_start"]["late"] is True
    assert "window_ready" in after["late_evidence"]
    assert "link_restored" not in after["late_evidence"], "made at the reconnect: live"
    gap = after["online"]["gaps"][0]
    assert gap["from"] == played.after_late["window"]["start"]
    assert gap["sources"] == ["console", "room_link"]
    assert played.after_late["summary"]["late_evidence"] is True
    # r-offline has no evidence to give: it stays "offline".
    assert played.row("r-offline")["cause"] == "offline"


def test_column_on_by_start(played: Played) -> None:
    good = played.row("r-good")["on_by_start"]
    assert good["value"] is True and good["source"] == "window_ready"
    assert good["confirmed"] == ["camera", "codec"]
    assert good["devices"] == {"codec": "confirmed", "camera": "confirmed", "amplifier": "on"}
    assert good["at"] == _local(S - 840)  # when the power-up finished
    assert good["ready_at"] == played.after_late["window"]["start"]
    assert played.row("r-notpowered")["on_by_start"]["value"] is False
    assert played.row("r-never")["on_by_start"]["value"] is None


def test_column_online_and_gaps(played: Played) -> None:
    assert played.row("r-good")["online"] == {"contact": True, "throughout": True, "gaps": []}
    gap = played.row("r-gap")["online"]
    assert gap["throughout"] is False and len(gap["gaps"]) == 1
    g = gap["gaps"][0]
    assert g["seconds"] == 300.0 and g["sources"] == ["console", "room_link"]
    lost = played.row("r-linklost")["online"]["gaps"]
    assert lost[-1]["to"] == played.after_late["window"]["completed_at"]


def test_column_operator(played: Played) -> None:
    op = played.row("r-good")["operator"]
    assert op["present"] is True and op["by"] == "check_acknowledged"
    assert op["latency_s"] == 4.2 and op["at"] is not None
    assert op["checks"][0]["reply"] == "accepted"
    assert op["checks"][0]["latency_s"] == 4.2
    np_ = played.row("r-notpowered")["operator"]
    assert np_["by"] == "check_in" and len(np_["check_ins"]) == 1
    miss = played.row("r-noresponse")["operator"]
    assert miss["present"] is False and miss["checks"][0]["unanswered"] == "timeout"


def test_columns_results_and_attendance(played: Played) -> None:
    r = played.row("r-good")
    assert r["mic_speaker"]["mic"] == "good" and r["mic_speaker"]["speaker"] == "good"
    assert r["mic_speaker"]["by"] == "hung"
    assert r["attendance"]["count"] == 12
    assert played.row("r-notpowered")["mic_speaker"]["mic"] == "none"
    assert played.row("r-refused")["attendance"]["count"] is None


def test_column_refused_attempts(played: Played) -> None:
    r = played.row("r-refused")["refused_attempts"]
    assert r["count"] == 1 and r["sources"] == ["button"]
    assert r["times"] == [_local(S + 950)]
    assert played.row("r-good")["refused_attempts"]["count"] == 0


def test_column_lost_before_release(played: Played) -> None:
    power = played.row("r-power")["lost_before_release"]
    assert [x["what"] for x in power if x["what"] == "power"] == ["power"]
    p = next(x for x in power if x["what"] == "power")
    assert p["detail"] == "power_loss_or_reboot" and p["at"] == _local(S + 1490)
    stop = played.row("r-stopping")["lost_before_release"]
    assert any(x["what"] == "agent_stopped" and x["detail"] == "signal" for x in stop)
    link = played.row("r-linklost")["lost_before_release"]
    assert [x["what"] for x in link] == ["link"]
    assert played.row("r-gap")["lost_before_release"] == []
    assert played.row("r-good")["lost_before_release"] == []


def test_column_released_at(played: Played) -> None:
    rel = played.row("r-good")["released"]
    assert rel["reason"] == "completed" and rel["via"] == "command"
    assert rel["at"] == played.after_late["window"]["completed_at"]
    assert played.row("r-linklost")["released"]["at"] is None


def test_override_is_recorded_and_flags_nothing(played: Played) -> None:
    r = played.row("r-override")
    assert r["list"] is None
    assert len(r["overrides"]) == 1 and r["overrides"][0]["by"] == "console:hung"
    assert r["lost_before_release"] == [], "what happens after an override is the centre's"
    cmd = next(x for x in played.rig.console.commands(site="r-override") if x.name == "power")
    assert cmd.args == {"on": False, "override": True}
    assert cmd.note == "Phòng họp cần dùng việc khác"


def test_report_before_completion_is_provisional(played: Played) -> None:
    rep = played.before_completion
    assert rep["summary"]["final"] is False and rep["window"]["completed_at"] is None
    assert "tạm thời" in rep["summary"]["text"]


def test_summary_text_is_plain_vietnamese_with_names_from_the_config(played: Played) -> None:
    text = played.after_late["summary"]["text"]
    assert text.startswith("Trung tâm Thử — Báo cáo kiểm tra kết nối «Kiểm tra kết nối tháng 11»")
    assert "1. Không bật: 4 điểm cầu" in text
    assert "Xã r-never (chưa từng kết nối)" in text
    assert "2. Bật nhưng không có người ở lại kiểm tra micrô, loa: 2 điểm cầu" in text
    assert "3. Tắt trước khi có thông báo kết thúc: 4 điểm cầu" in text
    en = build_report(played.rig.cfg, played.rig.store,
                      played.rig.console.window(played.window_id), played.rig.clock(), "en")
    assert en["summary"]["text"].startswith("Test Centre — Report test connection")


def test_exports_csv_with_bom_and_printable_html(played: Played) -> None:
    text = to_csv(played.after_late)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][0] == "Mã điểm cầu" and len(rows) == len(ROOMS) + 1
    good = next(r for r in rows if r[0] == "r-good")
    assert "tốt" in good and "12" in good
    html = to_html(played.after_late)
    assert "<table>" in html and "Xã r-linkdown" in html and "⧗" in html
    assert "Kiểm tra kết nối tháng 11" in html


def test_cli_report_formats(played: Played, tmp_path: Path) -> None:
    cfg_file = tmp_path / "console.yaml"
    from tests.district.helpers import config_yaml

    cfg_file.write_text(config_yaml(played.rig.broker.port, played.rig.db, ROOMS))
    base = [sys.executable, "-m", "district", "report", "--config", str(cfg_file),
            played.window_id]
    out = subprocess.run([*base, "--format", "json"], capture_output=True, timeout=60,
                         check=True)
    rep = json.loads(out.stdout)
    assert set(rep) == {"window", "summary", "rooms"}
    assert _summary_entry(rep, "r-linkdown") == ("not_switched_on", "link_down")
    out = subprocess.run([*base, "--format", "csv"], capture_output=True, timeout=60,
                         check=True)
    assert out.stdout.startswith("\ufeff".encode())
    out = subprocess.run([*base, "--format", "html"], capture_output=True, timeout=60,
                         check=True)
    assert out.stdout.startswith(b"<!DOCTYPE html>")


def test_before_the_start_only_rooms_never_heard_from_are_listed(played: Played) -> None:
    rig = played.rig
    w = rig.console.window(played.window_id)
    early = build_report(rig.cfg, rig.store, w, now=w.start - 60)
    assert not early["summary"]["started"]
    listed = [i for key in ("not_switched_on", "unstaffed", "switched_off_early")
              for i in early["summary"][key]]
    assert listed and all(i["cause"] == "never_connected" for i in listed)
    assert "chưa bắt đầu" in early["summary"]["text"]
