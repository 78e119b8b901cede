"""The service layer through a real Mosquitto: alerts (raised once, taken by someone), help
answered, operator checks from the CLI, permissions, results, users, unscheduled use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.local import LocalBroker
from district.cli import main
from district.model import Actor
from district.service import PermissionDenied, ServiceError
from district.store.sqlite import SqliteStore
from tests.district.helpers import ACTOR, T0, FakeClock, config_yaml, rig

S = T0 + 3600.0


def test_event_alerts_once_and_taken(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-h"]) as c:
        r = c.online("xa-h", T0)
        c.send("xa-h", "help_requested", {"source": "button"}, at=T0 + 10)
        c.send("xa-h", "device_health", {"device": "codec", "status": "degraded",
                                         "reason": "slow"}, at=T0 + 11)
        c.send("xa-h", "device_health", {"device": "codec", "status": "fault",
                                         "reason": "no answer"}, at=T0 + 12)
        c.send("xa-h", "device_identity_changed", {"device": "codec", "serial": "FOC999",
                                                   "was_serial": "FOC123"}, at=T0 + 13)
        r.replay(1, T0 + 20)
        c.send("xa-h", "check_in", {}, at=T0 + 21)
        kinds = sorted(a.kind for a in c.console.alerts())
        assert kinds == ["device_fault", "help", "identity_changed"]
        fault = next(a for a in c.console.alerts() if a.kind == "device_fault")
        assert fault.detail["reason"] == "no answer" and fault.open

        c.clock.set(T0 + 30)
        cmd = c.console.answer_help(ACTOR, "xa-h", note="Đã gọi điện cho xã")
        assert cmd.args == {"note": "Đã gọi điện cho xã"}
        got = r.wait_commands(1)[0]
        assert got["name"] == "answer_help" and got["args"] == {"note": "Đã gọi điện cho xã"}
        help_ = c.console.alerts(open_only=False)
        taken = next(a for a in help_ if a.kind == "help")
        assert (taken.taken_by, taken.taken_at) == ("hung", T0 + 30)
        c.clock.set(T0 + 40)
        t = c.console.take_alert(ACTOR, fault.id, "Thay cáp")
        assert (t.taken_by, t.taken_at, t.note) == ("hung", T0 + 40, "Thay cáp")
        again = c.console.take_alert(Actor("lan"), fault.id)
        assert (again.taken_by, again.taken_at) == ("hung", T0 + 40), "taken once"
        assert [a.kind for a in c.console.alerts()] == ["identity_changed"]
        with pytest.raises(ServiceError, match="no alert 999"):
            c.console.take_alert(ACTOR, 999)


def test_timed_alerts_schedule_not_applied_and_offline_in_window(
        broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-ok", "xa-stale", "xa-off", "xa-never"]) as c:
        c.online("xa-ok", T0)
        c.online("xa-off", T0)
        c.online("xa-stale", T0, auto_apply_schedule=False)
        c.clock.set(T0 + 1)
        w = c.console.create_window(ACTOR, kind="test", title="Thử", start=S, end=S + 3600,
                                    rooms="all")
        c.rooms["xa-stale"].wait_schedules(1)
        c.wait(lambda: all(c.console.schedule_status(s) == "applied"
                           for s in ("xa-ok", "xa-off")), "applied")
        c.wait(lambda: all(c.console.schedule_status(s) == "published"
                           for s in ("xa-stale", "xa-never")), "published, not applied")
        c.clock.set(T0 + 2)
        assert c.console.tick() == [], "too early to worry"
        c.clock.set(S - 1700)
        raised = c.console.tick()
        assert sorted((a.site, a.kind) for a in raised) == [
            ("xa-never", "schedule_not_applied"), ("xa-stale", "schedule_not_applied")]
        assert c.console.tick() == [], "raised once"

        c.clock.set(S - 100)
        c.rooms["xa-off"].drop()
        c.wait_availability("xa-off", "offline")
        c.clock.set(S + 30)
        assert [a for a in c.console.tick() if a.kind == "offline_in_window"] == []
        c.clock.set(S + 200)
        off = sorted(a.site for a in c.console.tick() if a.kind == "offline_in_window")
        assert off == ["xa-never", "xa-off"]
        assert all(a.window_id == w.id for a in c.console.alerts())
        assert c.console.tick() == []
        # Back and lost again: a new alert for the new loss.
        c.online("xa-off", S + 300)
        c.clock.set(S + 400)
        c.rooms["xa-off"].drop()
        c.wait_availability("xa-off", "offline")
        c.clock.set(S + 500)
        assert [a.site for a in c.console.tick()] == ["xa-off"]
        c.clock.set(S + 3700)
        c.console.complete_window(ACTOR, w.id)
        c.clock.set(S + 3800)
        assert c.console.tick() == [], "a completed window raises nothing"


def test_check_from_the_cli_waits_for_acknowledgements(broker: LocalBroker,
                                                         tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-k", "xa-z"]) as c:
        c.online("xa-k", T0, auto_ack_checks=2.5)
        c.clock.set(T0 + 1)
        w = c.console.create_window(ACTOR, kind="test", title="Thử", start=S, end=S + 3600,
                                    rooms="all")
        cfg = tmp_path / "console.yaml"
        cfg.write_text(config_yaml(broker.port, c.db, ["xa-k", "xa-z"]))
        out = subprocess.run([sys.executable, "-m", "district", "check", "--config", str(cfg),
                              "--window", w.id, "--timeout-s", "60", "--wait-s", "4"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = dict(line.split(None, 1) for line in out.stdout.splitlines())
        assert "có người 2.5 s" in lines["xa-k"]
        assert "chưa có trả lời" in lines["xa-z"]
        cmds = c.console.commands(window_id=w.id)
        assert {x.site: x.status for x in cmds} == {"xa-k": "accepted", "xa-z": "sent"}


def test_viewers_look_but_do_not_act(tmp_path: Path) -> None:
    from district.config import parse_config
    from district.service import Console

    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", ["xa-a"]))
    console = Console(cfg, SqliteStore(tmp_path / "c.db"), clock=lambda: T0)
    viewer = Actor("xem", "viewer")
    for call in (lambda: console.create_window(viewer, kind="test", title="x", start=S,
                                               end=S + 60, rooms="all"),
                 lambda: console.power(viewer, "all", True),
                 lambda: console.operator_check(viewer, "all"),
                 lambda: console.answer_help(viewer, "xa-a")):
        with pytest.raises(PermissionDenied) as e:
            call()
        assert "chỉ được xem" in e.value.text("vi")[0]
    assert console.windows() == [] and console.commands() == []
    with pytest.raises(ServiceError, match="override needs a reason"):
        console.power(ACTOR, "all", False, override=True)
    assert console.commands() == []


def test_results_are_checked(tmp_path: Path) -> None:
    from district.config import parse_config
    from district.service import Console

    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", ["xa-a", "xa-b"]))
    console = Console(cfg, SqliteStore(tmp_path / "c.db"), clock=lambda: T0)
    w = console.create_window(ACTOR, kind="test", title="x", start=S, end=S + 60,
                              rooms=["xa-a"])
    with pytest.raises(ServiceError) as e:
        console.record_result(ACTOR, w.id, "xa-b", mic="loud",  # type: ignore[arg-type]
                              attendance=-1)
    assert [p.split(":")[0] for p in e.value.problems] == ["site", "mic", "attendance"]
    assert console.store.results(w.id) == {}
    console.record_result(ACTOR, w.id, "xa-a", mic="poor")
    r = console.record_result(ACTOR, w.id, "xa-a", speaker="good", attendance=7)
    assert (r.mic, r.speaker, r.attendance) == ("poor", "good", 7), "earlier fields kept"


def test_users_with_argon2_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "console.yaml"
    cfg.write_text(config_yaml(1883, tmp_path / "c.db", []))
    env = {**os.environ, "DIEMCAU_DISTRICT_CONFIG": str(cfg)}
    secret = "mật-khẩu-bí-mật-9"
    run = [sys.executable, "-m", "district", "user"]
    out = subprocess.run([*run, "add", "hung", "--role", "operator"], input=secret + "\n",
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr and "Đã tạo hung" in out.stdout
    again = subprocess.run([*run, "add", "hung", "--role", "viewer"], input=secret + "\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1 and "đã có" in again.stderr
    short = subprocess.run([*run, "add", "lan", "--role", "viewer"], input="abc\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert short.returncode == 1 and "ít nhất 8" in short.stderr
    store = SqliteStore(tmp_path / "c.db")
    from district.config import load_config
    from district.service import Console

    console = Console(load_config(cfg), store)
    user, hashed = store.user("hung")  # type: ignore[misc]
    assert hashed.startswith("$argon2id$") and secret not in hashed
    assert console.authenticate("hung", secret) == user
    assert console.authenticate("hung", "wrong password") is None
    assert console.authenticate("nobody", secret) is None
    assert secret not in store.path.read_bytes().decode("latin-1")
    console.set_password("hung", "another-password", role="viewer")
    assert console.authenticate("hung", secret) is None
    assert console.authenticate("hung", "another-password").role == "viewer"  # type: ignore
    assert main(["user", "list", "--config", str(cfg)]) == 0
    assert "hung" in capsys.readouterr().out
    assert main(["user", "remove", "hung", "--config", str(cfg)]) == 0
    assert console.users() == []
    assert main(["user", "remove", "hung", "--config", str(cfg)]) == 1


def test_unscheduled_use(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-u", "xa-w"]) as c:
        c.online("xa-u", T0)
        c.online("xa-w", T0)
        c.clock.set(T0 + 1)
        w = c.console.create_window(ACTOR, kind="session", title="Họp", start=T0 + 5400,
                                    end=T0 + 7200, rooms="all")
        c.send("xa-u", "unscheduled_use", {"device": "codec", "what": "in_call"}, at=T0 + 100)
        c.send("xa-u", "unscheduled_use_ended", {"device": "codec", "what": "in_call",
                                                 "duration_s": 600.0}, at=T0 + 700)
        c.send("xa-u", "power_sequence_finished", {"on": True, "reason": "local:button",
                                                   "elapsed_s": 30}, at=T0 + 1000)
        c.send("xa-u", "power_sequence_finished", {"on": False, "reason": "local:button",
                                                   "elapsed_s": 20}, at=T0 + 1600)
        c.send("xa-w", "power_sequence_finished", {"on": True, "reason": f"window:{w.id}",
                                                   "elapsed_s": 30}, at=T0 + 4500)
        c.send("xa-w", "unscheduled_use", {"device": "camera", "what": "awake"}, at=T0 + 6000)
        c.clock.set(T0 + 7300)
        c.console.complete_window(ACTOR, w.id)
        c.send("xa-u", "unscheduled_use", {"device": "codec", "what": "awake"}, at=T0 + 8000)
        c.clock.set(T0 + 9000)
        rep = c.console.unscheduled(T0, T0 + 10000)
        uses = [(u["site"], u["device"], u["what"], u["duration_s"], u["ongoing"])
                for u in rep["uses"]]
        assert uses == [("xa-u", "codec", "in_call", 600.0, False),
                        ("xa-u", "*", "powered", 600.0, False),
                        ("xa-u", "codec", "awake", 1000.0, True),
                        ("xa-w", "camera", "awake", 1700.0, True)]
        assert rep["rooms"][0] == {"site": "xa-u", "name": "Xã xa-u", "total_s": 2200.0}
        with pytest.raises(ServiceError, match="after from"):
            c.console.unscheduled(T0 + 10, T0)


def test_report_is_quick_for_a_province(tmp_path: Path) -> None:
    """The report is computed on demand: 300 rooms with a window's worth of events each."""
    from district.config import parse_config
    from district.model import EventRow
    from district.service import Console

    sites = [f"xa-{i:03d}" for i in range(300)]
    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", sites))
    store = SqliteStore(tmp_path / "c.db")
    clock = FakeClock()
    console = Console(cfg, store, clock=clock)
    w = console.create_window(ACTOR, kind="test", title="x", start=S, end=S + 3600,
                              rooms="all")
    clock.set(S + 3600)
    console.complete_window(ACTOR, w.id)
    with store.transaction():
        for site in sites:
            store.record_availability(site, "online", T0, False)
            for seq in range(1, 41):
                kind = "window_ready" if seq == 1 else "check_in"
                store.record_event(EventRow(site, seq, kind, S + seq, S + seq, w.id, True,
                                            False, None, {"on_by_start": True}), b"{}")
    t = time.monotonic()
    rep = console.report(w.id)
    assert time.monotonic() - t < 20
    assert rep["summary"]["ok"] == 300


def test_run_service_publishes_what_the_cli_queued(broker: LocalBroker, tmp_path: Path) -> None:
    import signal

    from tests.district.rooms import ScriptedRoom

    cfg = tmp_path / "console.yaml"
    from broker.local import free_port

    # Its own dashboard port: a console already on the default 8080 (the demo) must not stop it.
    cfg.write_text(config_yaml(broker.port, tmp_path / "c.db", ["xa-r"],
                               extra=f"http: {{listen: '127.0.0.1:{free_port()}'}}\n"))
    room = ScriptedRoom("xa-r", "127.0.0.1", broker.port, time.time)
    room.connect()
    proc = subprocess.Popen([sys.executable, "-m", "district", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        now = time.time()
        assert main(["window", "create", "--config", str(cfg), "--kind", "test", "--title",
                     "Thử", "--start", _iso(now + 3600), "--end", _iso(now + 7200)]) == 0
        got = room.wait_schedules(1, timeout=20)
        assert b'"kind":"test"' in got[0]
        store = SqliteStore(tmp_path / "c.db")
        deadline = time.monotonic() + 20
        while store.live("xa-r").state is None or \
                store.latest_schedule("xa-r").digest != (  # type: ignore[union-attr]
                    store.live("xa-r").state or {}).get("schedule", {}).get("digest"):
            assert time.monotonic() < deadline, "the run service did not record the state"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "console running" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        room.close()


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_timed_alerts_for_a_province_in_one_transaction(tmp_path: Path) -> None:
    """A window for 300 rooms that never connected: each tick raises (or finds raised) every
    room's alerts in one transaction, not one per room."""
    from district.config import parse_config
    from district.service import Console
    from tests.district.test_dispatch import _count_transactions

    sites = [f"xa-{i:03d}" for i in range(300)]
    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", sites))
    store = SqliteStore(tmp_path / "c.db")
    clock = FakeClock()
    console = Console(cfg, store, clock=clock)
    console.create_window(ACTOR, kind="test", title="x", start=S, end=S + 3600, rooms="all")
    count = _count_transactions(store)
    clock.set(S - 1700)
    assert len(console.tick()) == 300
    assert count[0] == 1
    assert console.tick() == []
    clock.set(S + 600)
    assert sorted(a.kind for a in console.tick()) == ["offline_in_window"] * 300
    assert console.tick() == []
    assert count[0] <= 4, f"{count[0]} transactions for 4 ticks"
