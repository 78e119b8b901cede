"""The whole district on one machine: ``deploy/demo.sh`` runs ``python -m district.demo``.

A loopback Mosquitto with the project's broker config, the console (``diemcau-district run``:
recorder, dispatcher and web dashboard) with a generated config, and one real simulated room
agent (``diemcau-agent run --simulate``) per commune of Văn Quan, Lạng Sơn. Then a scripted
test window, created through the console's service like ``diemcau-district window create``:

* about two minutes after start the window begins (rooms power up in its lead time and lock);
* an operator check goes to every room; most rooms' operators press the button;
* a few rooms have faults: one is never powered (its agent never starts: "never connected"),
  one is unstaffed (nobody presses), one's operator tries to switch off during the window
  (``diemcau-agent off`` is refused);
* a few minutes later the window is marked complete, and the report fills in.

Ctrl-C (or SIGTERM) stops the rooms, then the console, then the broker.

Example::

    python -m district.demo --rooms 4 --window-in-s 30 --run-dir /tmp/d
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import yaml

from broker.local import LocalBroker
from district.config import load_config
from district.model import Actor
from district.service import Console
from district.store import open_store
from district.timefmt import show

ROOT = Path(__file__).resolve().parent.parent
SITES_DIR = ROOT / "firmware_config" / "demo"
TEMPLATE = ROOT / "firmware_config" / "sites" / "sim-room.yaml"
ZONE = "Asia/Ho_Chi_Minh"
"""The console's time zone (the rooms' too: their site files leave it at its default); the
demo's progress lines are printed in it, whatever the machine's clock is set to."""
ORGANISATION = {"vi": "Trung tâm CNTT tỉnh Lạng Sơn", "en": "Lang Son provincial IT centre"}


@dataclass(frozen=True)
class Commune:
    """One room of the demo: its site id, the name people say and its fault (if any)."""

    id: str
    name: str
    fault: str | None = None
    """``never_powered``, ``unstaffed`` or ``switch_off`` (tries to switch off in the window)."""


COMMUNES = [
    Commune("vq-van-quan", "UBND thị trấn Văn Quan"),
    Commune("vq-an-son", "UBND xã An Sơn", "never_powered"),
    Commune("vq-binh-phuc", "UBND xã Bình Phúc", "unstaffed"),
    Commune("vq-diem-he", "UBND xã Điềm He", "switch_off"),
    Commune("vq-dong-giap", "UBND xã Đồng Giáp"),
    Commune("vq-hoa-binh", "UBND xã Hòa Bình"),
    Commune("vq-huu-le", "UBND xã Hữu Lễ"),
    Commune("vq-khanh-khe", "UBND xã Khánh Khê"),
    Commune("vq-lien-hoi", "UBND xã Liên Hội"),
    Commune("vq-luong-nang", "UBND xã Lương Năng"),
    Commune("vq-tan-doan", "UBND xã Tân Đoàn"),
    Commune("vq-trang-cac", "UBND xã Tràng Các"),
    Commune("vq-trang-phai", "UBND xã Tràng Phái"),
    Commune("vq-trang-son", "UBND xã Tràng Sơn"),
    Commune("vq-tri-le", "UBND xã Tri Lễ"),
    Commune("vq-tu-xuyen", "UBND xã Tú Xuyên"),
    Commune("vq-yen-phuc", "UBND xã Yên Phúc"),
]


def site_yaml(c: Commune) -> str:
    """The simulated room's site file for commune ``c`` (sim-room.yaml with its own site)."""
    raw = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    raw["site"] = {"id": c.id, "name": c.name, "district": "Văn Quan",
                   "centre": {"vi": ORGANISATION["vi"], "en": ORGANISATION["en"]}}
    head = (f"# {c.name}: a simulated room of the district demo (python -m district.demo).\n"
            "# Generated from firmware_config/sites/sim-room.yaml by "
            "`python -m district.demo --write-sites firmware_config/demo`.\n")
    return head + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def write_sites(directory: Path) -> None:
    """Write every commune's site file into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for c in COMMUNES:
        (directory / f"{c.id}.yaml").write_text(site_yaml(c), encoding="utf-8")


def console_yaml(broker_port: int, run_dir: Path, http_port: int, rooms: list[Commune],
                 zone: str = ZONE) -> str:
    """The console's config for the demo: database and web secret in ``run_dir``, times shown
    in ``zone``."""
    raw = {
        "organisation": {"name": ORGANISATION, "level": {"vi": "tỉnh", "en": "province"}},
        "timezone": zone,
        "broker": {"url": f"mqtt://127.0.0.1:{broker_port}", "client_id": "diemcau-console"},
        "database": {"path": str(run_dir / "console" / "console.db")},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "alerts": {"offline_grace_s": 30},
        "rooms": [{"id": c.id, "name": c.name, "group": "Văn Quan",
                   "contacts": [{"name": "Cán bộ văn hoá xã", "role": "trực điểm cầu",
                                 "phone": demo_phone(i)}]}
                  for i, c in enumerate(rooms)],
    }
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def demo_phone(i: int) -> str:
    """The demo room ``i``'s duty phone: ``0205 0000 1NN``, a made-up number in Lạng Sơn's
    area code (0000 is no exchange), so the tiles show whom to phone."""
    return f"0205 0000 {101 + i}"


def http_port_from(first: int) -> int:
    """``first`` or the next port after it that nothing listens on."""
    for port in range(first, first + 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port from {first} to {first + 99}")


def wait_until(what: str, pred: Callable[[], bool], timeout: float, stop: threading.Event,
               every: float = 0.25) -> bool:
    """Wait for ``pred()``; False when ``stop`` is set first; ``TimeoutError`` after timeout."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        if pred():
            return True
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        stop.wait(every)
    return False


class Demo:
    """The district demo's processes and its scripted window (see the module docstring)."""

    def __init__(self, run_dir: Path, rooms: int = len(COMMUNES), window_in_s: float = 120,
                 window_min: float = 30, check_after_s: float = 10, check_timeout_s: float = 120,
                 off_after_s: float = 20, complete_after_s: float = 300,
                 http_port: int = 8080, zone: str = ZONE,
                 clock: Callable[[], float] = time.time) -> None:
        if not 4 <= rooms <= len(COMMUNES):
            raise ValueError(f"--rooms: 4 to {len(COMMUNES)}")
        self.run_dir = run_dir.resolve()
        self.communes = COMMUNES[:rooms]
        self.window_in_s, self.window_min = window_in_s, window_min
        self.check_after_s, self.check_timeout_s = check_after_s, check_timeout_s
        self.off_after_s, self.complete_after_s = off_after_s, complete_after_s
        self.first_http_port = http_port
        self.zone = zone
        """The console's zone: the progress lines' times are in it."""
        self.clock = clock
        self.stop = threading.Event()
        self.bin = Path(sys.executable).parent
        self.broker: LocalBroker | None = None
        self.console_proc: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.console: Console | None = None
        self.window_id: str | None = None
        self.actor = Actor("demo.script", "operator")
        self._logs: list[object] = []

    # -- helpers --------------------------------------------------------------------------
    def state_dir(self, site: str) -> Path:
        return self.run_dir / "rooms" / site

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / "logs" / log_name, "ab")  # noqa: SIM115 - closed in shutdown
        self._logs.append(log)
        # Its own session: a Ctrl-C meant for the demo reaches the demo only, which stops the
        # rooms first (they say "offline"), then the console, then the broker.
        return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)

    def _say(self, vi: str) -> None:
        """A progress line, stamped with the time in the console's zone (not the machine's)."""
        print(f"[{show(self.clock(), ZoneInfo(self.zone), with_date=False)}] {vi}", flush=True)

    def running(self) -> list[Commune]:
        return [c for c in self.communes if c.fault != "never_powered"]

    # -- start ----------------------------------------------------------------------------
    def start(self) -> dict[str, object]:
        """Start broker, console and rooms; return the start-up figures once all are online."""
        t0 = time.monotonic()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        sites = self.run_dir / "sites"
        sites.mkdir()
        for c in self.communes:
            (sites / f"{c.id}.yaml").write_text(site_yaml(c), encoding="utf-8")
        self.broker = LocalBroker(self.run_dir / "broker")
        self.broker.start()
        self.http_port = http_port_from(self.first_http_port)
        conf = self.run_dir / "console.yaml"
        conf.write_text(console_yaml(self.broker.port, self.run_dir, self.http_port,
                                     self.communes, self.zone), encoding="utf-8")
        (self.run_dir / "console").mkdir()
        cfg = load_config(conf)
        self.console = Console(cfg, open_store(cfg.database.path))
        self.password = secrets.token_urlsafe(9)
        self.console.add_user("demo", "operator", self.password)
        self.console_proc = self._spawn([str(self.bin / "diemcau-district"), "run",
                                         "--config", str(conf)], "console.log")
        for c in self.running():
            self.agents[c.id] = self._spawn(
                [str(self.bin / "diemcau-agent"), "run", "--simulate",
                 "--config", str(sites / f"{c.id}.yaml"), "--broker", self.broker.url,
                 "--state-dir", str(self.state_dir(c.id))], f"{c.id}.log")
        wait_until("dashboard", self._web_up, 30, self.stop)
        want = {c.id for c in self.running()}
        wait_until("rooms online", lambda: want <= self._online(), 60, self.stop)
        seconds = time.monotonic() - t0
        rss = self.rss_bytes()
        self.write_state()
        return {"seconds_to_online": round(seconds, 1), "rss_mb": round(rss / 2**20),
                "processes": len(self.pids())}

    def _web_up(self) -> bool:
        if self.console_proc is not None and self.console_proc.poll() is not None:
            raise RuntimeError(f"diemcau-district run exited ({self.console_proc.returncode}); "
                               f"see {self.run_dir / 'logs' / 'console.log'}")
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                return True
        except OSError:
            return False

    def _online(self) -> set[str]:
        assert self.console is not None
        return {r.site for r in self.console.rooms() if r.availability == "online"}

    def pids(self) -> list[int]:
        """The demo's own process and every process it started (broker, console, rooms)."""
        me = psutil.Process()
        return [me.pid, *(p.pid for p in me.children(recursive=True))]

    def rss_bytes(self) -> int:
        """Summed resident memory of :meth:`pids`."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return total

    def write_state(self) -> None:
        """``run_dir/demo.json``: what a test (or a curious person) needs to follow along."""
        (self.run_dir / "demo.json").write_text(json.dumps({
            "config": str(self.run_dir / "console.yaml"), "url": self.url,
            "window_id": self.window_id, "pids": self.pids(),
            "rooms": {c.id: c.fault for c in self.communes}}, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    # -- the scripted window --------------------------------------------------------------
    def create_window(self) -> str:
        assert self.console is not None
        start = time.time() + self.window_in_s
        w = self.console.create_window(self.actor, kind="test",
                                       title="Kiểm tra kết nối định kỳ (demo)", start=start,
                                       end=start + self.window_min * 60, rooms="all")
        self.window_id = w.id
        self.window_start = start
        self.write_state()
        return w.id

    def _at(self, offset_s: float) -> bool:
        """Wait until ``offset_s`` after the window's start; False if stopping."""
        left = self.window_start + offset_s - time.time()
        return not self.stop.wait(max(0.0, left))

    def script(self) -> None:
        """The window's story, run in a thread: check, presses, refused off, complete."""
        try:
            self._script()
        except Exception as e:  # the demo keeps running for the person looking at it
            self._say(f"kịch bản dừng / script stopped: {e}")

    def _script(self) -> None:
        assert self.console is not None and self.window_id is not None
        console, wid = self.console, self.window_id
        if not self._at(0):
            return
        self._say("Khung giờ kiểm tra bắt đầu / the test window has started")
        if not self._at(self.check_after_s):
            return
        running = [c.id for c in self.running()]
        cmds = console.operator_check(self.actor, running, window_id=wid,
                                      timeout_s=self.check_timeout_s)
        self._say(f"Đã gửi kiểm tra có người trực tới {len(cmds)} điểm cầu / operator check sent")
        by_site = {c.site: c.id for c in cmds}
        staffed = [c for c in self.running() if c.fault != "unstaffed"]
        pressed: set[str] = set()
        off_done = False

        def step() -> bool:
            nonlocal off_done
            for c in staffed:
                row = console.command(by_site[c.id])
                if c.id not in pressed and row is not None and row.status == "accepted":
                    self._local("press", c.id)
                    pressed.add(c.id)
            if not off_done and time.time() >= self.window_start + self.off_after_s:
                off = next(c for c in self.communes if c.fault == "switch_off")
                text = self._local("off", off.id)
                self._say(f"{off.name}: thử tắt trong khung giờ / tries to switch off → {text}")
                off_done = True
            return off_done and len(pressed) == len(staffed)

        if not wait_until("check-ins", step, self.check_timeout_s + 60, self.stop, every=0.5):
            return
        self._say(f"{len(pressed)} điểm cầu đã xác nhận có người / rooms checked in")
        if not self._at(self.complete_after_s):
            return
        console.complete_window(self.actor, wid)
        self._say("Đã đánh dấu kết thúc khung giờ; các phòng được tắt / window marked complete")

    def _local(self, op: str, site: str) -> str:
        """``diemcau-agent OP --state-dir`` against a room, as its operator would."""
        r = subprocess.run([str(self.bin / "diemcau-agent"), op, "--state-dir",
                            str(self.state_dir(site))], capture_output=True, text=True,
                           timeout=30, cwd=ROOT)
        lines = (r.stdout.strip() or r.stderr.strip()).splitlines()
        return " / ".join(line.strip() for line in lines) or f"exit {r.returncode}"

    # -- stop -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Rooms first (they publish "offline"), then the console, then the broker."""
        self.stop.set()
        procs = list(self.agents.values())
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            _reap(p)
        if self.console_proc is not None:
            if self.console_proc.poll() is None:
                self.console_proc.send_signal(signal.SIGTERM)
            _reap(self.console_proc)
        if self.console is not None:
            self.console.store.close()
        if self.broker is not None:
            self.broker.stop()
        for f in self._logs:
            f.close()  # type: ignore[attr-defined]


def _reap(p: subprocess.Popen[bytes], timeout: float = 15) -> None:
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def banner(demo: Demo, figures: dict[str, object]) -> str:
    """What the person who started the demo reads first."""
    faults = {c.fault: c for c in demo.communes if c.fault}
    return f"""
diemcau — trung tâm và các điểm cầu trên một máy / the centre and its rooms on one machine
  {len(demo.communes)} điểm cầu mô phỏng, console {ORGANISATION['vi']}

  Mở / open:        {demo.url}
  Đăng nhập / login: demo  /  {demo.password}

  Sự cố dàn dựng / staged faults:
    {faults['never_powered'].name}: chưa bao giờ bật (never powered: "never connected")
    {faults['unstaffed'].name}: không ai bấm nút khi kiểm tra (unstaffed)
    {faults['switch_off'].name}: thử tắt trong khung giờ, bị từ chối (switch-off refused)
  Khung giờ kiểm tra {demo.window_id} bắt đầu sau {demo.window_in_s:.0f} s; kết thúc (complete)
  {demo.complete_after_s:.0f} s sau khi bắt đầu.

  Khởi động / start-up: {figures['seconds_to_online']} s đến khi mọi phòng trực tuyến
    (all rooms online); bộ nhớ / memory (RSS, {figures['processes']} tiến trình / processes):
    {figures['rss_mb']} MB
  Thư mục / run directory: {demo.run_dir}   (logs/, console.yaml, rooms/<site>/)
  Báo cáo / report: .venv/bin/diemcau-district --config {demo.run_dir}/console.yaml \\
      report {demo.window_id} --format csv
  Ctrl-C dừng tất cả / stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C; 0 after a clean stop, 1 if it could not start."""
    ap = argparse.ArgumentParser(prog="python -m district.demo", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=len(COMMUNES),
                    help=f"how many communes (4 to {len(COMMUNES)}, default all)")
    ap.add_argument("--window-in-s", type=float, default=120,
                    help="the test window starts this long after the rooms are online")
    ap.add_argument("--window-min", type=float, default=30, help="the window's length")
    ap.add_argument("--check-after-s", type=float, default=10,
                    help="operator check this long after the window starts")
    ap.add_argument("--check-timeout-s", type=float, default=120)
    ap.add_argument("--off-after-s", type=float, default=20,
                    help="the refusing room's switch-off attempt, after the window starts")
    ap.add_argument("--complete-after-s", type=float, default=300,
                    help="mark the window complete this long after it starts")
    ap.add_argument("--http-port", type=int, default=8080,
                    help="the dashboard's port, or the next free one (default 8080)")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "run" / "district-demo",
                    help="state of this run (emptied at start)")
    ap.add_argument("--write-sites", type=Path, metavar="DIR",
                    help="only write the communes' site files into DIR")
    args = ap.parse_args(argv)
    if args.write_sites:
        write_sites(args.write_sites)
        return 0
    demo = Demo(args.run_dir, rooms=args.rooms, window_in_s=args.window_in_s,
                window_min=args.window_min, check_after_s=args.check_after_s,
                check_timeout_s=args.check_timeout_s, off_after_s=args.off_after_s,
                complete_after_s=args.complete_after_s, http_port=args.http_port)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: demo.stop.set())
    os.environ.setdefault("PATH", "/usr/sbin:/usr/bin:/bin")
    try:
        print("Đang khởi động / starting …", flush=True)
        figures = demo.start()
        if demo.stop.is_set():
            return 0
        demo.create_window()
        print(banner(demo, figures), flush=True)
        threading.Thread(target=demo.script, name="demo-script", daemon=True).start()
        demo.stop.wait()
        print("Đang dừng / stopping …", flush=True)
        return 0
    except (TimeoutError, RuntimeError, OSError) as e:
        print(f"lỗi / error: {e}", file=sys.stderr)
        return 1
    finally:
        demo.shutdown()
        print("Đã dừng / stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
