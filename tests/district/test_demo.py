"""The district demo, compressed: real Mosquitto, real console process, real simulated agents.

``python -m district.demo --rooms 4`` runs four communes: one normal, one never powered, one
unstaffed, one whose operator tries to switch off during the window. The console must hold
every running room online, and the window's report must name the never-started room and the
refusing one; Ctrl-C must leave nothing running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from broker.local import free_port
from district.config import load_config
from district.demo import COMMUNES
from district.service import Console
from district.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def wait_for(pred: Callable[[], Any], what: str, timeout: float,
             proc: subprocess.Popen[str]) -> Any:
    """Re-check ``pred`` (against another process's database) until it holds or time is up."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert proc.poll() is None, f"the demo exited ({proc.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        tick.wait(0.3)


def test_demo_runs_the_district_and_stops_cleanly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "district.demo", "--rooms", "4", "--window-in-s", "25",
         "--check-after-s", "3", "--check-timeout-s", "15", "--off-after-s", "8",
         "--complete-after-s", "600", "--http-port", str(free_port()), "--run-dir", str(run)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids: list[int] = []
    try:
        def started() -> dict[str, Any] | None:
            f = run / "demo.json"
            if not f.exists():
                return None
            state = json.loads(f.read_text())
            return state if state.get("window_id") else None

        state = wait_for(started, "the demo to start", 60, proc)
        pids = [p for p in state["pids"] if p != proc.pid]
        faults = {c.id: c.fault for c in COMMUNES[:4]}
        assert state["rooms"] == faults
        # broker, console and the three rooms that are powered (one never is)
        assert len(pids) == 5
        never = next(s for s, f in faults.items() if f == "never_powered")
        refuser = next(s for s, f in faults.items() if f == "switch_off")
        cfg = load_config(Path(state["config"]))
        assert cfg.organisation.name.vi == "Trung tâm CNTT tỉnh Lạng Sơn"
        console = Console(cfg, open_store(cfg.database.path))
        try:
            avail = {r.site: r.availability for r in console.rooms()}
            assert avail[never] == "never_connected"
            assert all(a == "online" for s, a in avail.items() if s != never), avail
            wid = state["window_id"]
            assert set(console.window(wid).sites) == set(faults)

            def reported() -> dict[str, Any] | None:
                summary = console.report(wid)["summary"]
                off = {r["site"]: r["cause"] for r in summary["switched_off_early"]}
                return summary if off.get(refuser) == "refused_attempt" else None

            summary = wait_for(reported, "the refused switch-off in the report", 120, proc)
            assert {r["site"]: r["cause"] for r in summary["not_switched_on"]} == {
                never: "never_connected"}
            # the running rooms stayed online throughout
            assert all(r.availability == "online" for r in console.rooms() if r.site != never)
        finally:
            console.store.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Đã dừng / stopped." in out
    left = [p for p in pids if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"still running after Ctrl-C: {left}"


def test_progress_lines_are_in_the_sites_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The machine's clock is UTC, the site's zone Asia/Ho_Chi_Minh (UTC+7): a progress line
    printed at 09:30:05 UTC says 16:30:05, the hour of the operator text beside it, and the
    console the demo configures shows its times in that same zone."""
    from district.demo import Demo, console_yaml

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        at = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC).timestamp()
        demo = Demo(tmp_path / "run", rooms=4, zone="Asia/Ho_Chi_Minh", clock=lambda: at)
        demo._say("Khung giờ kiểm tra bắt đầu / the test window has started")
        assert capsys.readouterr().out == (
            "[16:30:05] Khung giờ kiểm tra bắt đầu / the test window has started\n")
        conf = tmp_path / "console.yaml"
        conf.write_text(console_yaml(1883, tmp_path, 8081, COMMUNES[:4], demo.zone))
        assert load_config(conf).timezone == "Asia/Ho_Chi_Minh"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_every_demo_room_has_a_phone_for_the_technician(tmp_path: Path) -> None:
    """The demo's tiles show whom to phone: each room's roster has a contact with a number,
    valid for the console's config, one number per room."""
    from district.config import parse_config
    from district.demo import COMMUNES, console_yaml

    cfg = parse_config(console_yaml(1883, tmp_path, 8081, COMMUNES))
    phones = [r.contacts[0].phone for r in cfg.rooms]
    assert len(phones) == len(COMMUNES) == len(set(phones)) and all(phones)
