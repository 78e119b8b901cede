"""Scale bench: N simulated rooms, one Mosquitto, one console on PostgreSQL.

Everything is real and on loopback: Mosquitto with the project's local config and the limits
a district of this size needs (:data:`DISTRICT_LIMITS`), PostgreSQL from Debian's package
(``fsync`` on, ``track_commit_timestamp`` on: the time each event was stored is its
transaction's commit time), the console as ``python -m district run`` (its recorder and
dispatcher; with ``--recorders 2`` a second recorder process, each recording its own part of
the rooms (``broker.parts``), or with ``--shared`` sharing events and replies through
``$share/diemcau-recorders/…``), and the rooms from ``bench/roomsim.py`` in one or
two processes. Phases:

1. **connect**: every room connects (its first session), says ``online``, publishes ``info``,
   ``host``, ``state`` and ``agent_started``;
2. **window storm**: one window for every room, all starting in the same second: every room
   applies its schedule, locks and powers up at ``start - lead`` at once, ``window_ready`` at
   the start, check-ins and refused switch-offs, an operator check to every room (most
   answered), the completion (commands and schedules), the switch-off after the window;
3. **reconnect storm**: the broker restarts (SIGTERM, persistence kept); every room
   reconnects with its back-off and sends ``link_restored`` and its new state.

Figures: events and states stored per second, recorder lag from the room's send (the publish
that the broker acknowledged) to the commit that stored it (p50/p99), events lost (acknowledged
by the broker, never stored: must be 0), duplicates stored (must be 0), the time to drain, and
memory and CPU of each process. The table prints the goal beside ours.

Example::

    .venv/bin/python -m bench.scale --rooms 1000
    .venv/bin/python -m bench.scale --rooms 10000 --recorders 2 --sims 2

``python -m bench.scale recorder --config FILE`` runs one recorder process (the console's
``run`` without its signal handling) printing ``stored N`` as it stores events: the
shared-subscription test uses it to see which process stored what.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.localpg import LocalPostgres
from bench.roomsim import site_names
from broker.local import end_process, find_mosquitto, free_port, render_local_config

ROOT = Path(__file__).resolve().parents[1]

DISTRICT_LIMITS = {
    # The console may be behind (a storm) or away (a restart): what rooms publish meanwhile
    # waits in its session. 1000 (the local config) would drop most of a 10,000-room window.
    "max_queued_messages": "2000000",
    "max_queued_bytes": "0",
    # The figures in docs/benchmarks.md were taken with 1000; 20 (the district template's) and
    # 5000 measured the same within the runs' spread (its "Broker limits" table).
    "max_inflight_messages": "1000",
    "max_connections": "-1",
}
"""Limits raised over ``broker/mosquitto/local.conf.tmpl`` for a district of thousands of rooms
(the last value of an option wins in Mosquitto's config)."""

SHARE_GROUP = "diemcau-recorders"
GOAL_LAG_P99_S = 2.0
GOAL_FIRST_LOAD_S = 2.0
GOAL_LIVE_S = 2.0
GOAL_DISPATCH_S = 30.0
"""Every room has a new window's schedule within this: what a technician who made the window
waits for on the page (ours; the brief gives no figure: the rooms need it before their lead)."""
BENCH_USER = ("bench", "bench-password-1")
CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (never a downloaded browser), as in ``tests/district/web``."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------- the parts


class BenchBroker:
    """Mosquitto with the project's local config plus :data:`DISTRICT_LIMITS`."""

    def __init__(self, data_dir: Path, limits: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.limits = DISTRICT_LIMITS if limits is None else limits
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def config(self) -> str:
        text = render_local_config(self.port, self.data_dir, True)
        return text + "# district limits (bench/scale.py)\n" + "".join(
            f"{k} {v}\n" for k, v in self.limits.items())

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: see {self.data_dir}/mosquitto.log")
            with contextlib.suppress(OSError), socket.create_connection(
                    (self.host, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not listen")

    def stop(self) -> None:
        end_process(self.proc, timeout=60)
        self.proc = None


def console_yaml(broker_port: int, db_url: str, sites: list[str], client_id: str,
                 share_group: str | None, primary: bool, data_dir: Path | None = None,
                 http_port: int | None = None, part: tuple[int, int] | None = None,
                 broker: dict[str, str] | None = None) -> str:
    """A console config for the bench (roster: every simulated room); its dashboard on a
    free loopback port, its files (the dashboard's secret) in ``data_dir``; ``part``:
    ``(part, parts)`` of a recorder that records its own part of the rooms; ``broker``: more
    ``broker`` settings (e.g. ``topic_prefix``, ``credentials_file``)."""
    share = f", share_group: {share_group}" if share_group else ""
    if part is not None:
        share += f", part: {part[0]}, parts: {part[1]}"
    share += "".join(f", {k}: '{v}'" for k, v in (broker or {}).items())
    data = Path(data_dir or tempfile.gettempdir())
    lines = ["organisation:", '  name: {vi: "Trung tâm Thử tải", en: "Load test centre"}',
             '  level: {vi: "tỉnh", en: "province"}',
             f"broker: {{url: 'mqtt://127.0.0.1:{broker_port}', client_id: {client_id}, "
             f"keepalive_s: 60{share}, primary: {'true' if primary else 'false'}}}",
             f"database: {{url: '{db_url}', path: '{data / (client_id + '.db')}'}}",
             f"http: {{listen: '127.0.0.1:{http_port or free_port()}'}}", "rooms:"]
    lines += [f"  - {{id: {s}, name: 'Xã {s}'}}" for s in sites]
    return "\n".join(lines) + "\n"


class SimProcess:
    """One ``bench/roomsim.py`` process and its JSON-lines control channel."""

    def __init__(self, broker_port: int, prefix: str, first: int, count: int,
                 args: list[str], log: Path, nice: int = 0) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [*(["nice", "-n", str(nice)] if nice else []), sys.executable, "-m",
             "bench.roomsim", "--port", str(broker_port), "--prefix",
             prefix, "--first", str(first), "--count", str(count), *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, bufsize=1)
        self._lock = threading.Lock()
        ready = self._read(30)
        if not ready.get("ready"):
            raise RuntimeError(f"roomsim did not start: {ready}")

    def _read(self, timeout: float) -> dict[str, Any]:
        out: list[str] = []
        assert self.proc.stdout is not None
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                             daemon=True)
        t.start()
        t.join(timeout)
        if not out or not out[0]:
            raise RuntimeError("roomsim did not answer")
        return dict(json.loads(out[0]))

    def ctl(self, op: str, timeout: float = 60, **args: Any) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self.proc.stdin.flush()
            return self._read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.ctl("stop", timeout=20)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Procs:
    """CPU and memory of the processes the bench watches (psutil)."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.watched: dict[str, list[Any]] = {}
        self.peak_rss: dict[str, float] = {}
        self.cpu0: dict[str, float] = {}
        self.cpu_done: dict[str, float] = {}

    def watch(self, name: str, pid: int, children: bool = False) -> None:
        p = self.psutil.Process(pid)
        procs = [p, *p.children(recursive=True)] if children else [p]
        self.watched.setdefault(name, []).extend(procs)

    def sample(self) -> None:
        for name, procs in self.watched.items():
            rss = cpu = 0.0
            for p in procs:
                with contextlib.suppress(self.psutil.Error):
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu += t.user + t.system
            self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss)
            self.cpu_done[name] = max(self.cpu_done.get(name, 0.0), cpu)

    def forget(self, name: str) -> None:
        """A process that ends (a broker restarted): keep its figures, watch the new one."""
        self.sample()
        self.cpu0[name] = self.cpu0.get(name, 0.0) + self.cpu_done.get(name, 0.0)
        self.cpu_done[name] = 0.0
        self.watched[name] = []

    def cpu(self, name: str) -> float:
        return self.cpu0.get(name, 0.0) + self.cpu_done.get(name, 0.0)


@contextlib.contextmanager
def sampling(procs: Procs, every_s: float = 0.5) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            procs.sample()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        procs.sample()


# --------------------------------------------------------------------------- figures


@dataclass
class Phase:
    name: str
    started: float
    ended: float = 0.0
    drained: float | None = None
    note: str = ""


@dataclass
class Figures:
    rooms: int
    recorders: int
    sims: int
    setup: str = ""
    """How the recorders share the rooms and the simulators' priority (the header says)."""
    seconds: float = 0.0
    phases: list[Phase] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    made: int = 0
    acked: int = 0
    pending: int = 0
    stored: int = 0
    lost: int = 0
    unstored: int = 0  # acknowledged, not stored when the run's time bound came
    duplicates: int = 0
    states: int = 0
    processes: list[tuple[str, float, float, float]] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    window_made_s: float | None = None
    """From the request to the window (and every room's schedule) stored."""
    dispatch_s: float | None = None
    """From the request to the last room receiving its schedule (the simulators count)."""
    dispatched: int = 0
    first_load_s: list[float] = field(default_factory=list)
    """Chromium: navigation to the room grid rendered, first (cold) then again."""
    live_delay_s: list[float] = field(default_factory=list)
    """Chromium: a room's event sent to its tile showing it (SSE)."""
    page_tiles: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.unstored == 0

    def table(self) -> str:
        out = [f"scale bench: {self.rooms} rooms, {self.sims} room process(es), one Mosquitto, "
               f"console with {self.recorders} recorder process(es) on PostgreSQL "
               f"({self.seconds:.0f} s)"]
        if self.setup:
            out.append(f"  ({self.setup})")
        out.append(f"  {'':<34}{'connect':>12}{'window':>12}{'reconnect':>12}"
                   f"{'goal @10k':>12}")
        keys = [p.name for p in self.phases]

        def row(label: str, what: str, fmt: str, goal: str = "") -> None:
            vals = []
            for k in ("connect", "window", "reconnect"):
                v = self.rows.get(k, {}).get(what) if k in keys else None
                vals.append("-" if v is None else format(v, fmt))
            out.append(f"  {label:<34}" + "".join(f"{v:>12}" for v in vals) + f"{goal:>12}")

        row("phase length (s)", "seconds", ".1f")
        row("events stored", "events", "d")
        row("events stored per s", "events_per_s", ".0f")
        row("states stored", "states", "d")
        row("states stored per s", "states_per_s", ".0f")
        row("peak events stored in 1 s", "peak_events", "d")
        row("peak states stored in 1 s", "peak_states", "d")
        row("recorder lag p50 (s)", "p50", ".3f")
        row("recorder lag p99 (s)", "p99", ".3f", f"<= {GOAL_LAG_P99_S:g}")
        row("recorder lag max (s)", "max", ".3f")
        row("drained after (s)", "drain", ".1f")
        row("rooms online (console)", "online", "d")
        out.append(f"  {'events made / acked by broker':<34}{self.made:>12}{self.acked:>12}")
        out.append(f"  {'events stored':<34}{self.stored:>12}")
        out.append(f"  {'events lost (must be 0)':<34}{self.lost:>12}{'':>24}{'0':>12}")
        out.append(f"  {'duplicates stored (must be 0)':<34}{self.duplicates:>12}"
                   f"{'':>24}{'0':>12}")
        out.append(f"  {'still in room outboxes':<34}{self.pending:>12}")
        if self.unstored:
            out.append(f"  {'not stored within the time bound':<34}{self.unstored:>12}"
                       "   (queued for the console, not drained)")
        out.append(f"  {'process':<34}{'peak MiB':>12}{'CPU s':>12}{'CPU %':>12}")
        for name, rss, cpu, pct in self.processes:
            out.append(f"  {name:<34}{rss:>12.0f}{cpu:>12.1f}{pct:>12.0f}")
        out.append("  broker limits raised: " + ", ".join(f"{k} {v}"
                                                        for k, v in self.limits.items()))
        for p in self.phases:
            if p.note:
                out.append(f"  {p.name}: {p.note}")
        return "\n".join(out)

    def goals(self) -> list[tuple[str, str, str, str]]:
        """``(metric, goal, ours, ratio)`` rows. The ratio is ours ÷ goal for a bound ours
        must stay under (≤ 1.00 meets it), "ok"/"FAIL" for a count that must be 0, and "-"
        where there is no goal (a rate, memory, CPU: ours is reported beside the others)."""
        rows: list[tuple[str, str, str, str]] = []

        def bound(metric: str, goal: float, ours: float | None, unit: str = "s") -> None:
            if ours is None:
                rows.append((metric, f"<= {goal:g} {unit}", "-", "-"))
            else:
                rows.append((metric, f"<= {goal:g} {unit}", f"{ours:.3f} {unit}",
                             f"{ours / goal:.2f}"))

        def info(metric: str, ours: str) -> None:
            rows.append((metric, "-", ours, "-"))

        bound("dispatch: every room has its schedule", GOAL_DISPATCH_S, self.dispatch_s)
        if self.dispatch_s is None and self.dispatched:
            rows[-1] = (rows[-1][0], rows[-1][1], f"{self.dispatched}/{self.rooms} rooms", "FAIL")
        info("window made (stored, schedules queued)",
             "-" if self.window_made_s is None else f"{self.window_made_s:.3f} s")
        for name in ("connect", "window", "reconnect"):
            r = self.rows.get(name)
            if not r:
                continue
            p50, p99 = r.get("p50"), r.get("p99")
            info(f"lag p50, {name} storm", "-" if p50 is None else f"{p50:.3f} s")
            bound(f"lag p99, {name} storm", GOAL_LAG_P99_S, p99)
            info(f"events/s, {name} (peak in 1 s)",
                 f"{r['events_per_s']:.0f} ({r['peak_events']})")
            info(f"states/s, {name} (peak in 1 s)",
                 f"{r['states_per_s']:.0f} ({r['peak_states']})")
        rows.append(("events lost", "0", str(self.lost), "ok" if self.lost == 0 else "FAIL"))
        rows.append(("duplicates stored", "0", str(self.duplicates),
                     "ok" if self.duplicates == 0 else "FAIL"))
        loads = self.first_load_s
        bound("dashboard first load (cold)", GOAL_FIRST_LOAD_S, loads[0] if loads else None)
        if len(loads) > 1:
            bound("dashboard first load (again, median)", GOAL_FIRST_LOAD_S,
                  statistics.median(loads[1:]))
        live = self.live_delay_s
        bound("live update delay (median)", GOAL_LIVE_S, statistics.median(live) if live
              else None)
        bound("live update delay (max)", GOAL_LIVE_S, max(live) if live else None)
        for name, rss, cpu, pct in self.processes:
            info(f"{name}: peak RSS, CPU", f"{rss:.0f} MiB, {cpu:.1f} s ({pct:.0f} %)")
        return rows

    def goal_table(self) -> str:
        """:meth:`goals` as a table."""
        rows = self.goals()
        w = max(len(r[0]) for r in rows) + 2
        out = [f"goals at {self.rooms} rooms (ratio: ours / goal, <= 1.00 meets it)",
               f"  {'metric':<{w}}{'goal':>12}{'ours':>28}{'ratio':>8}"]
        out += [f"  {m:<{w}}{g:>12}{o:>28}{r:>8}" for m, g, o, r in rows]
        return "\n".join(out)


def wait_until(what: str, pred: Callable[[], bool], seconds: float,
               say: Callable[[str], None], every_s: float = 0.25) -> bool:
    """Poll ``pred`` every ``every_s`` until it holds (True) or ``seconds`` have passed (False,
    and ``say`` that the bench gave up waiting for ``what``)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every_s)
    say(f"  (gave up waiting for {what})")
    return False


def peak(times: list[float]) -> int:
    """The most of ``times`` in one second."""
    buckets: dict[int, int] = {}
    for t in times:
        buckets[int(t)] = buckets.get(int(t), 0) + 1
    return max(buckets.values(), default=0)


Ledger = dict[tuple[str, int], list[Any]]
"""Events rooms made: ``(site, seq)`` → ``[kind, made, sent, acked, late]`` (wall times; sent:
the last publish, acked: the broker's acknowledgement, None if not yet)."""


def read_ledger(sim: SimProcess, path: Path) -> Ledger:
    """Every event ``sim``'s rooms made so far (the simulator writes them to ``path``)."""
    sim.ctl("ledger", timeout=120, path=str(path))
    ledger: Ledger = {}
    with path.open() as fh:
        for line in fh:
            site, seq, kind, _wid, made, sent, acked, late = json.loads(line)
            ledger[(site, seq)] = [kind, made, sent, acked, late]
    return ledger


@dataclass
class Matched:
    """A ledger beside the events a console stored."""

    made: int
    acked: int
    """Acknowledged by the broker the rooms publish to."""
    stored: int
    """Of the ledger's events, stored (rows made after the ledger was taken are left out)."""
    missing: int
    """Acknowledged by the broker, not stored."""
    duplicates: int
    """Rows stored beyond one per ``(site, seq)``."""
    commit_at: dict[tuple[str, int], float]
    """Each stored event's commit time (PostgreSQL ``track_commit_timestamp``)."""
    lag: dict[tuple[str, int], float]
    """Of the ledger's stored events: commit time − the room's send."""


def match_ledger(ledger: Ledger, db: Any) -> Matched:
    """``ledger`` beside the ``events`` table of ``db`` (a psycopg connection to a database
    on a server with ``track_commit_timestamp`` on)."""
    rows = db.execute("SELECT site, seq, EXTRACT(EPOCH FROM pg_xact_commit_timestamp(xmin)) "
                      "FROM events").fetchall()
    stored = {(s, q): float(t) for s, q, t in rows}
    return Matched(
        made=len(ledger), acked=sum(1 for v in ledger.values() if v[3] is not None),
        stored=sum(1 for key in ledger if key in stored),
        missing=sum(1 for key, v in ledger.items() if v[3] is not None and key not in stored),
        duplicates=len(rows) - len(stored), commit_at=stored,
        lag={key: stored[key] - v[2] for key, v in ledger.items()
             if key in stored and v[2] is not None})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


# --------------------------------------------------------------------------- the run


class Bench:
    """One bench run (see the module docstring)."""

    def __init__(self, rooms: int, workdir: Path, recorders: int = 1, sims: int | None = None,
                 lead_s: float = 15.0, max_s: float = 300.0, fsync: bool = True,
                 quick: bool = False, say: Callable[[str], None] = print,
                 dashboard: bool = True, profile: Path | None = None,
                 shared: bool = False, sims_nice: int = 0) -> None:
        self.n = rooms
        self.sims_nice = sims_nice
        """The simulators' niceness: in a district the rooms are on their own Pis, not on the
        console's cores; a positive value gives the console's processes the cores first."""
        self.shared = shared
        """Several recorders through a shared subscription, not each its own part."""
        self.dashboard = dashboard
        self.profile = profile
        self.http_port = free_port()
        self.workdir = Path(workdir)
        self.recorders = recorders
        self.n_sims = sims or (1 if rooms <= 2000 else 2)
        self.lead_s = lead_s
        self.deadline = time.monotonic() + max_s
        self.fsync = fsync
        # Window timeline (s): start after lead + margin; the check at start + check_at (its
        # timeout check_timeout); the completion at start + complete_at.
        self.margin, self.check_at, self.check_timeout, self.complete_at = (
            (3.0, 1.0, 5.0, 8.0) if quick else (8.0, 4.0, 20.0, 28.0))
        self.say = say
        self.sites = site_names("sim", 1, rooms)
        self.procs = Procs()
        self.figures = Figures(rooms, recorders, self.n_sims, limits=dict(DISTRICT_LIMITS))
        self.figures.setup = "; ".join(
            ([("recorders through one shared subscription" if shared else
               "each recorder its own part of the rooms (broker.parts)")]
             if recorders > 1 else []) +
            ([f"room simulators under nice -n {sims_nice}"] if sims_nice else []))
        self.consoles: list[subprocess.Popen[bytes]] = []
        self.sims: list[SimProcess] = []
        self._logs: list[IO[bytes]] = []

    def left(self, cap: float) -> float:
        return max(1.0, min(cap, self.deadline - time.monotonic()))

    # -- set-up --------------------------------------------------------------------------
    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="dc-pgb-")), fsync=self.fsync,
                                settings={"track_commit_timestamp": "on",
                                          "shared_buffers": "'256MB'",
                                          "max_wal_size": "'2GB'"})
        self.pg.start()
        self.db_url = self.pg.new_database("bench")
        self.broker = BenchBroker(self.workdir / "broker")
        self.broker.start()
        self.procs.watch("mosquitto", self.broker.proc.pid)  # type: ignore[union-attr]
        import psycopg

        from district.config import parse_config
        from district.service import Console
        from district.store.postgres import PostgresStore

        self.db = psycopg.connect(self.db_url, autocommit=True)
        for i in range(self.recorders):
            primary = i == 0
            cid = "diemcau-console" if primary else f"diemcau-recorder-{i + 1}"
            cfg = self.workdir / f"console-{i + 1}.yaml"
            several = self.recorders > 1
            cfg.write_text(console_yaml(
                self.broker.port, self.db_url, self.sites, cid,
                SHARE_GROUP if several and self.shared else None, primary, self.workdir,
                self.http_port if primary else None,
                (i + 1, self.recorders) if several and not self.shared else None))
            if primary:
                self.cfg = parse_config(cfg.read_text())
                self.store = PostgresStore(self.db_url)  # makes the schema
                self.console = Console(self.cfg, self.store)
            log = (self.workdir / f"console-{i + 1}.log").open("wb")
            self._logs.append(log)
            run = (["-m", "district", "run", "--config", str(cfg)]
                   if self.profile is None or not primary else
                   ["-m", "bench.scale", "console", "--config", str(cfg), "--profile-dir",
                    str(self.profile)])
            p = subprocess.Popen([sys.executable, *run], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=log)
            self.consoles.append(p)
            self.procs.watch("console (recorder, dispatcher)" if primary
                             else f"recorder {i + 1} ({'shared' if self.shared else 'part'})",
                             p.pid)
        # The console's session and subscriptions exist before any room publishes (as in a
        # district, where the console runs long before a room is installed).
        self.wait("the console's subscriptions", lambda: int(self.q(
            "SELECT COUNT(*) FROM console_link WHERE up = 1")[0][0]) >= self.recorders, 60)
        time.sleep(0.5)
        with contextlib.suppress(Exception):
            pg_pid = int((self.pg.data / "postmaster.pid").read_text().split()[0])
            self.procs.watch("postgresql (all backends)", pg_pid, children=True)
        per = -(-self.n // self.n_sims)
        self.t_sims = time.time()
        sim_args = ["--lead-s", str(self.lead_s), "--check-timeout-s", str(self.check_timeout),
                    "--off-after-release-s", "5", "--answer", "0.8", "--checkin", "0.5",
                    "--refuse", "0.1", "--seed", "7", "--hard-cap-s", "3600"]
        for k in range(self.n_sims):
            first = 1 + k * per
            count = min(per, self.n - k * per)
            s = SimProcess(self.broker.port, "sim", first, count, sim_args,
                           self.workdir / f"roomsim-{k + 1}.log", nice=self.sims_nice)
            self.sims.append(s)
            self.procs.watch(f"room simulator {k + 1} ({count} rooms)", s.proc.pid)

    # -- queries -------------------------------------------------------------------------
    def q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute(sql, args).fetchall())

    def online(self) -> int:
        return int(self.q("SELECT COUNT(*) FROM live WHERE availability = 'online'")[0][0])

    def sim_status(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for s in self.sims:
            st = s.ctl("status")
            for k in ("connected", "made", "acked", "pending", "states"):
                total[k] = total.get(k, 0) + int(st[k])
        return total

    def stored(self) -> int:
        return int(self.q("SELECT COUNT(*) FROM events")[0][0])

    def wait(self, what: str, pred: Callable[[], bool], cap: float) -> bool:
        return wait_until(what, pred, self.left(cap), self.say)

    def drained(self) -> bool:
        """Every event the rooms made is acknowledged by the broker and stored."""
        st = self.sim_status()
        return st["pending"] == 0 and self.stored() >= st["made"]

    # -- phases --------------------------------------------------------------------------
    def phase(self, name: str) -> Phase:
        p = Phase(name, time.time())
        self.figures.phases.append(p)
        self.say(f"phase {name} …")
        return p

    def end_phase(self, p: Phase, cap: float = 90.0) -> None:
        p.ended = time.time()
        if self.wait(f"{p.name} to drain", self.drained, cap):
            p.drained = time.time()
        self.procs.sample()

    def run_connect(self) -> None:
        p = self.phase("connect")
        p.started = self.t_sims
        self.wait("every room connected", lambda: self.sim_status()["connected"] >= self.n, 120)
        self.wait("the console to see every room online", lambda: self.online() >= self.n, 120)
        self.end_phase(p)

    def run_window(self) -> None:
        from district.model import Actor

        p = self.phase("window")
        actor = Actor("bench")
        t_req = time.time()
        start = float(int(t_req + self.lead_s + self.margin + self.make_s()))
        w = self.console.create_window(actor, kind="test", title="Thử tải", start=start,
                                       end=start + 900, rooms="all")
        self.figures.window_made_s = time.time() - t_req
        p.note = (f"window {w.id}: every room locks at {self.lead_s:g} s before the start, "
                  "in the same second")

        def received() -> tuple[int, float | None]:
            got = [s.ctl("schedules", since=t_req) for s in self.sims]
            lasts = [g["last"] for g in got if g["last"] is not None]
            return sum(int(g["rooms"]) for g in got), max(lasts, default=None)
        if self.wait("every room to receive its schedule", lambda: received()[0] >= self.n,
                     90):
            last = received()[1]
            self.figures.dispatch_s = None if last is None else last - t_req
        self.figures.dispatched = received()[0]
        p.note += (f"; window made {self.figures.window_made_s:.1f} s after the request; "
                   f"{self.figures.dispatched} of {self.n} rooms received their schedule"
                   + ("" if self.figures.dispatch_s is None else
                      f", the last {self.figures.dispatch_s:.1f} s after the request"))
        digests = list({v.digest for v in self.store.latest_schedules().values()})
        t0 = t_req

        def applied() -> int:
            return int(self.q("SELECT COUNT(*) FROM live WHERE state::json->'schedule'->>"
                              "'digest' = ANY(%s)", (digests,))[0][0])
        all_applied = self.wait("every room to apply its schedule",
                                lambda: applied() >= self.n, 90)
        p.note += (f"; every room applied its schedule {time.time() - t0:.1f} s after the "
                   "request (its state says so in the console)" if all_applied else
                   f"; {applied()} of {self.n} rooms had applied their schedule 90 s after")
        self.wait("the start", lambda: time.time() >= start + self.check_at, self.lead_s + 30)
        self.console.operator_check(actor, "all", window_id=w.id, timeout_s=self.check_timeout)
        self.wait("the check to be answered or time out",
                  lambda: time.time() >= start + self.complete_at, 40)
        self.console.complete_window(actor, w.id)
        t1 = time.time()

        def released() -> int:
            return int(self.q("SELECT COUNT(DISTINCT site) FROM events "
                              "WHERE kind = 'lock_released'")[0][0])
        if self.wait("every room to release its lock", lambda: released() >= self.n, 90):
            p.note += f"; every room released {time.time() - t1:.1f} s after the completion"
        else:
            p.note += f"; {released()} of {self.n} rooms released 90 s after the completion"
        self.wait("every room to switch off after the window", lambda: int(self.q(
            "SELECT COUNT(*) FROM live WHERE state::json->>'power' = 'off'")[0][0])
                  >= self.n, 60)
        self.end_phase(p)

    def run_reconnect(self) -> None:
        p = self.phase("reconnect")
        before = int(self.q("SELECT COUNT(*) FROM events WHERE kind = 'link_restored'")[0][0])
        self.procs.forget("mosquitto")
        self.broker.stop()
        time.sleep(2.0)
        self.broker.start()
        self.procs.watch("mosquitto", self.broker.proc.pid)  # type: ignore[union-attr]
        p.started = time.time()
        self.wait("every room back", lambda: int(self.q(
            "SELECT COUNT(*) FROM events WHERE kind = 'link_restored'")[0][0]) - before
                  >= self.n, 150)
        p.note = "broker stopped (SIGTERM, persistence kept) 2 s, started again"
        self.end_phase(p)

    def make_s(self) -> float:
        """Time allowed to make a window for every room before its lead starts (the console
        writes each room's schedule: about a second per 2,000 rooms here)."""
        return 2.0 + self.n / 1000.0

    def run_dashboard(self) -> None:
        """The real Chromium (Debian's, through Playwright) on the console's dashboard with
        every room recorded: time from navigation to the room grid rendered (a cold first
        load, then three more), and from a room's event sent to its tile showing it (SSE)."""
        from playwright.sync_api import sync_playwright

        from district.service import ServiceError

        p = self.phase("dashboard")
        with contextlib.suppress(ServiceError):
            self.console.add_user(BENCH_USER[0], "operator", BENCH_USER[1])
        base = f"http://127.0.0.1:{self.http_port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900},
                                        locale="vi-VN")
                page.set_default_timeout(120_000)
                page.goto(f"{base}/login")
                page.fill("#user", BENCH_USER[0])
                page.fill("#password", BENCH_USER[1])
                with page.expect_navigation():
                    page.click("button[type=submit]")
                for _ in range(4):
                    t0 = time.monotonic()
                    page.goto(f"{base}/", wait_until="commit")
                    page.wait_for_selector("#grid .tile")
                    self.figures.first_load_s.append(time.monotonic() - t0)
                self.figures.page_tiles = page.locator("#grid .tile").count()
                page.wait_for_selector("body[data-live=on]")
                ids = page.eval_on_selector_all(
                    "#grid .tile:not([data-problems~=help])", "els => els.map(e => e.id)")
                sites = [i.removeprefix("room-") for i in ids][:5]
                per = -(-self.n // self.n_sims)  # the simulators' rooms, in order
                for site in sites:
                    sim = self.sims[min((int(site.rsplit("-", 1)[1]) - 1) // per,
                                        len(self.sims) - 1)]
                    t0 = time.time()
                    sim.ctl("help", sites=[site])
                    page.wait_for_selector(f"#room-{site}[data-problems~=help]")
                    self.figures.live_delay_s.append(time.time() - t0)
            finally:
                browser.close()
        p.note = (f"Chromium: {self.figures.page_tiles} tiles on the first page; first load "
                  + ", ".join(f"{x:.2f}" for x in self.figures.first_load_s)
                  + " s; live delay " + ", ".join(f"{x:.2f}" for x in self.figures.live_delay_s)
                  + " s (a help request from a room on the page)")
        self.end_phase(p, cap=30)

    # -- figures -------------------------------------------------------------------------
    def compute(self) -> None:
        f = self.figures
        ledger: Ledger = {}
        for k, s in enumerate(self.sims):
            ledger.update(read_ledger(s, self.workdir / f"ledger-{k + 1}.jsonl"))
        m = match_ledger(ledger, self.db)
        stored = m.commit_at
        f.stored, f.duplicates = m.stored, m.duplicates  # (rows made after the ledger was
        f.made, f.acked = m.made, m.acked                # taken are left out)
        f.pending = f.made - f.acked
        if all(p.drained is not None for p in f.phases):
            f.lost = m.missing
        else:  # still queued for the console when the bound came: not provably lost
            f.unstored, f.lost = m.missing, 0
        lag = m.lag
        snaps = self.q("SELECT received_at FROM snapshots WHERE kind = 'state'")
        for i, p in enumerate(f.phases):
            end = f.phases[i + 1].started if i + 1 < len(f.phases) else time.time()
            keys = [k for k, v in ledger.items() if p.started <= v[1] < end]
            lags = sorted(lag[k] for k in keys if k in lag)
            busy = max(p.ended - p.started, 1e-3)
            states = [t for (t,) in snaps if p.started <= t < end]
            commits = [stored[k] for k in keys if k in stored]
            f.rows[p.name] = {
                "seconds": busy, "events": len(keys), "events_per_s": len(keys) / busy,
                "states": len(states), "states_per_s": len(states) / busy,
                "peak_events": peak(commits), "peak_states": peak(states),
                "p50": percentile(lags, 0.5) if lags else None,
                "p99": percentile(lags, 0.99) if lags else None,
                "max": lags[-1] if lags else None,
                "drain": None if p.drained is None else p.drained - p.ended,
                "online": self.online() if p.name != "window" else None}
        wall = max(f.seconds, 1e-3)
        for name in self.procs.watched:
            f.processes.append((name, self.procs.peak_rss.get(name, 0) / 2**20,
                                self.procs.cpu(name), 100 * self.procs.cpu(name) / wall))

    def close(self) -> None:
        for s in self.sims:
            s.close()
        for p in self.consoles:
            end_process(p, timeout=30)
        for log in self._logs:
            log.close()
        with contextlib.suppress(Exception):
            self.store.close()
        with contextlib.suppress(Exception):
            self.db.close()
        with contextlib.suppress(Exception):
            self.broker.stop()
        with contextlib.suppress(Exception):
            self.pg.stop()
            shutil.rmtree(self.pg.root, ignore_errors=True)

    def run(self, phases: tuple[str, ...] | None = None) -> Figures:
        t0 = time.monotonic()
        try:
            self.setup()
            if phases is None:
                phases = ("connect", "window", "reconnect",
                          *(("dashboard",) if self.dashboard else ()))
            with sampling(self.procs):
                for name in phases:
                    getattr(self, f"run_{name}")()
            self.figures.seconds = time.monotonic() - t0
            self.compute()
        finally:
            self.close()
        return self.figures


# --------------------------------------------------------------------------- one recorder


def run_recorder(config: Path) -> int:
    """One recorder process (as ``diemcau-district run``), printing ``stored N`` after each
    event it stored; SIGTERM stops it cleanly."""
    from district.config import load_config
    from district.model import Change
    from district.recorder import Recorder
    from district.service import Console
    from district.store import open_store

    cfg = load_config(config)
    console = Console(cfg, open_store(cfg.database))
    count = 0
    lock = threading.Lock()

    def on_change(ch: Change) -> None:
        nonlocal count
        if ch.what == "event":
            with lock:
                count += 1
                sys.stdout.write(f"stored {count}\n")
                sys.stdout.flush()

    console.subscribe(on_change)
    rec = Recorder(cfg, console)
    rec.listens = False   # count what this process stored, not what the others announce
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rec.start()
    if not rec.connected.wait(30):
        return 1
    sys.stdout.write("connected\n")
    sys.stdout.flush()
    stop.wait()
    rec.stop()
    console.store.close()
    return 0


def run_console_profiled(config: Path, out_dir: Path) -> int:
    """``diemcau-district run`` with each of its threads under cProfile (the recorder's
    writer, the dispatcher, paho's network thread, the web server's): each thread's figures
    go to ``out_dir/<thread name>.prof`` when it ends (the console's stop ends them)."""
    import cProfile

    from district.cli import main as district_main

    out_dir.mkdir(parents=True, exist_ok=True)
    plain = threading.Thread.run

    def profiled(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        prof.enable()
        try:
            plain(self)
        finally:
            prof.disable()
            prof.dump_stats(str(out_dir / f"{self.name}.prof"))

    threading.Thread.run = profiled  # type: ignore[method-assign]
    return district_main(["run", "--config", str(config)])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["console"]:
        p = argparse.ArgumentParser(prog="bench.scale console")
        p.add_argument("--config", type=Path, required=True)
        p.add_argument("--profile-dir", type=Path, required=True)
        a = p.parse_args(argv[1:])
        return run_console_profiled(a.config, a.profile_dir)
    if argv[:1] == ["recorder"]:
        p = argparse.ArgumentParser(prog="bench.scale recorder")
        p.add_argument("--config", type=Path, required=True)
        return run_recorder(p.parse_args(argv[1:]).config)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--recorders", type=int, default=1,
                   help="recorder processes (2 or more: each records its own part of the "
                        "rooms, broker.parts)")
    p.add_argument("--sims-nice", type=int, default=0, metavar="N",
                   help="run the room simulators under nice -n N (the rooms are not on the "
                        "console's cores in a district; 0: same priority)")
    p.add_argument("--shared", action="store_true",
                   help="several recorders through one shared subscription instead "
                        "(broker.share_group; Mosquitto 2.0.11 forgets it in a restart)")
    p.add_argument("--sims", type=int, default=None, help="room simulator processes")
    p.add_argument("--lead-s", type=float, default=15.0, help="the rooms' lead time")
    p.add_argument("--max-s", type=float, default=300.0, help="bound on the whole run")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--no-dashboard", action="store_true",
                   help="leave out the Chromium phase (first load, live delay)")
    p.add_argument("--profile", type=Path, default=None,
                   help="run the console with each thread under cProfile, one file per "
                        "thread in this directory")
    args = p.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dc-scale-"))
    bench = Bench(args.rooms, workdir, recorders=args.recorders, sims=args.sims,
                  shared=args.shared, sims_nice=args.sims_nice,
                  lead_s=args.lead_s, max_s=args.max_s,
                  say=lambda m: print(m, file=sys.stderr, flush=True),
                  dashboard=not args.no_dashboard,
                  profile=None if args.profile is None else args.profile.resolve())
    figures = bench.run()
    print(figures.table())
    print(figures.goal_table())
    print(f"(logs and ledgers in {workdir})")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
