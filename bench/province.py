"""Province bench: rooms on two district brokers bridged to a province broker, and the lag of
the province's consoles beside a district console's.

Everything runs on loopback and is made the way ``docs/broker.md`` says ("Cầu nối lên tỉnh"):
a province broker (``diemcau-broker init --province``, ``add-district`` for each district,
``add-staff tinh --role console``) and two district brokers (``init``, ``add-staff console
--role console``, ``bridge --bundle …``), each bridging its rooms' topics to the province over
MQTT v5 and TLS with its client certificate and password; the province sees them under
``province/<district>/diemcau/v2/rooms/+/…``. Three Mosquitto processes, PostgreSQL from
Debian's package (``track_commit_timestamp`` on: an event's stored time is its transaction's
commit time) and three consoles (``python -m district run``, each its own database on the same
server, its own ``client_id`` and dashboard port):

* district A's console on A's broker (its local listener, A's ``console`` account): the
  **direct** figure;
* one province console per district on the province broker (its local listener, the
  province's ``tinh`` account, ``broker.topic_prefix: province/<district>/diemcau/v2``): the
  figure **via the bridge**.

The bridges, their TLS and certificates, the ACLs and the consoles' accounts are the real
ones. Only the simulated rooms' way in is the bench's: ``bench/roomsim.py`` speaks plain MQTT
anonymously, so each district broker runs a copy of its rendered configuration with one more
loopback listener (``allow_anonymous true``, no ACL; ``per_listener_settings true`` is set, so
it concerns that listener only) and the limits of a district of thousands of rooms
(``bench.scale.DISTRICT_LIMITS``). The province broker runs its rendered configuration with the
same limits (the figures then measure the bridge, not a smaller queue), or as provisioned with
``--province-as-provisioned``.

Run:

1. the three brokers; the bench waits for the province to see each district's
   ``province/<district>/bridge/state`` = ``1``;
2. the consoles, then ``--rooms-per-district`` simulated rooms on each district (sites
   ``vq-…`` and ``cl-…``); the bench waits until every console has every room of its district
   online and has stored every event so far;
3. a burst: every room makes ``--events`` events at once; the bench waits (at most
   ``--max-s`` for the whole run) until each console has stored every event its district's
   broker acknowledged.

Figures per console: rooms online and how long after the rooms started, the burst's events
acknowledged by the district broker and stored, events lost (acknowledged, never stored: must
be 0), duplicates stored (must be 0), lag from the room's send to the commit that stored it
(p50/p99/max), the time until every event was stored, and the ratio province/direct for
district A; peak memory and CPU of every process. A broker that drops what it queued for a
console (its ``max_queued_messages`` reached: Mosquitto logs "Outgoing messages are being
dropped") is named under the table; once such a console has stored nothing new for
:data:`STALL_S`, what it misses counts as lost and the bench stops waiting for it.

Example::

    .venv/bin/python -m bench.province --rooms-per-district 500 --events 10
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import shutil
import signal
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
from bench.roomsim import PREFIX, site_names
from bench.scale import (
    DISTRICT_LIMITS,
    ROOT,
    Procs,
    SimProcess,
    console_yaml,
    match_ledger,
    percentile,
    read_ledger,
    sampling,
    wait_until,
)
from broker.local import BrokerProcess, LoopbackSite, end_process, free_port

PROVINCE = "langson"
DISTRICTS = (("vanquan", "vq"), ("camlo", "cl"))
"""The two districts and their rooms' site prefixes; the first has the direct console."""
PROVINCE_STAFF = "tinh"
DISTRICT_STAFF = "console"


def bench_listener(port: int, limits: dict[str, str]) -> str:
    """What the bench appends to a broker's rendered configuration: a loopback listener for the
    room simulators (anonymous, no ACL) when ``port`` is given, and ``limits``."""
    out = ""
    if port:
        out += ("\n# ---- bench/province.py: the room simulators' way in (loopback, anonymous, "
                f"no ACL)\nlistener {port} 127.0.0.1\nprotocol mqtt\nallow_anonymous true\n")
    if limits:
        out += ("\n# ---- limits of a district of thousands of rooms (bench.scale."
                "DISTRICT_LIMITS; the last value of an option wins)\n"
                + "".join(f"{k} {v}\n" for k, v in limits.items()))
    return out


# --------------------------------------------------------------------------- figures


@dataclass
class Column:
    """One console's figures."""

    name: str
    broker: str
    rooms: int
    online: int = 0
    online_s: float | None = None
    """From the first simulator's start to the console receiving the last room's
    ``online``."""
    acked: int = 0
    """The burst's events acknowledged by the district broker."""
    stored: int = 0
    """Of those, stored by this console."""
    lost: int = 0
    """Of every event of the run acknowledged by the district broker, not stored."""
    unstored: int = 0
    """Like ``lost``, when the run's time bound came before this console drained."""
    duplicates: int = 0
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    drained_s: float | None = None
    """From the burst to the commit of its last acknowledged event stored here (None: not
    every one was stored within the run's bound)."""


@dataclass
class Figures:
    """A run's figures; :meth:`table` prints them."""

    rooms_per_district: int
    events: int
    province_limits: str
    started: str = ""
    load: tuple[float, float] = (0.0, 0.0)
    """One-minute load average at the start and at the end."""
    commit: str = ""
    seconds: float = 0.0
    columns: list[Column] = field(default_factory=list)
    processes: list[tuple[str, float, float]] = field(default_factory=list)
    """``(name, peak RSS MiB, CPU s)``."""
    notes: list[str] = field(default_factory=list)
    """What the brokers logged about dropping messages."""

    @property
    def ok(self) -> bool:
        """Every console stored every acknowledged event, once."""
        return bool(self.columns) and all(
            c.lost == 0 and c.unstored == 0 and c.duplicates == 0 and c.acked > 0
            and c.stored == c.acked for c in self.columns)

    def table(self) -> str:
        """The figures as a table: the direct console, the province's, and the ratio."""
        d, (a, b) = self.columns[0], self.columns[1:3]
        n, e = self.rooms_per_district, self.events
        out = [f"province bench: {len(DISTRICTS)} districts x {n} rooms bridged to province "
               f"{PROVINCE}; every room a burst of {e} event{'' if e == 1 else 's'} "
               f"({self.seconds:.0f} s)",
               f"  {self.started}, load {self.load[0]:.2f} -> {self.load[1]:.2f}"
               + (f", commit {self.commit}" if self.commit else "")
               + f"; province broker limits: {self.province_limits}"]
        w, cw = 36, 18
        heads = [d.name, a.name, b.name, f"ratio {a.name.split()[0]}"]
        out.append(f"  {'console':<{w}}" + "".join(f"{h:>{cw}}" for h in heads))
        out.append(f"  {'broker it reads':<{w}}" + "".join(
            f"{h:>{cw}}" for h in (d.broker, a.broker, b.broker, "prov./direct")))

        def fmt(v: float | int | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        def ratio(x: float | None, y: float | None) -> str:
            return "-" if x is None or y is None or y <= 0 else f"{x / y:.2f}"

        def row(label: str, what: str, spec: str, with_ratio: bool = False) -> None:
            vals = [fmt(getattr(c, what), spec) for c in (d, a, b)]
            vals.append(ratio(getattr(a, what), getattr(d, what)) if with_ratio else "")
            out.append(f"  {label:<{w}}" + "".join(f"{v:>{cw}}" for v in vals))

        row("rooms online", "online", "d")
        row("every room online after (s)", "online_s", ".2f", True)
        row("burst events acked by district", "acked", "d")
        row("burst events stored", "stored", "d")
        row("events lost (must be 0)", "lost", "d")
        row("duplicates stored (must be 0)", "duplicates", "d")
        row("lag p50, room send -> stored (s)", "p50", ".3f", True)
        row("lag p99 (s)", "p99", ".3f", True)
        row("lag max (s)", "max", ".3f", True)
        row("all stored after the burst (s)", "drained_s", ".2f", True)
        if any(c.unstored for c in self.columns):
            row("not stored within the time bound", "unstored", "d")
        out.append(f"  {'process':<{w}}{'peak MiB':>{cw}}{'CPU s':>{cw}}")
        for name, rss, cpu in self.processes:
            out.append(f"  {name:<{w}}{rss:>{cw}.0f}{cpu:>{cw}.1f}")
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def quiet(what: str) -> Iterator[None]:
    """``diemcau-broker``'s reports kept off the bench's output; a failure inside raises
    RuntimeError with them."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    except Exception as e:
        raise RuntimeError(f"{what}: {e}\n{out.getvalue()}") from e


def _cli(site: LoopbackSite, *args: str) -> None:
    """``diemcau-broker --no-reload ARGS`` on ``site``; RuntimeError if it fails."""
    with quiet(f"diemcau-broker {' '.join(args)}"):
        rc = site.cli("--no-reload", *args)
        if rc != 0:
            raise RuntimeError(f"exit status {rc}")


def wait_bridges(port: int, credentials: Path, districts: list[str], timeout: float) -> None:
    """Wait until the province broker on ``port`` (the local listener, a console account's
    ``credentials`` file) has ``province/<district>/bridge/state`` = ``1`` for every one of
    ``districts`` (the bridges' notifications, retained); RuntimeError naming the missing."""
    import paho.mqtt.client as mqtt
    import yaml
    from paho.mqtt.enums import CallbackAPIVersion

    creds = yaml.safe_load(credentials.read_text())
    state: dict[str, bytes] = {}
    cond = threading.Condition()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bridges-{os.getpid()}",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(creds["username"], creds["password"])

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe("province/+/bridge/state", qos=1)

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with cond:
            state[msg.topic.split("/")[1]] = bytes(msg.payload)
            cond.notify_all()

    c.on_connect, c.on_message = on_connect, on_message
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        with cond:
            if not cond.wait_for(lambda: all(state.get(d) == b"1" for d in districts),
                                 timeout):
                raise RuntimeError("bridges not up at the province: " + ", ".join(
                    f"{d}={state.get(d)!r}" for d in districts if state.get(d) != b"1"))
    finally:
        c.disconnect()
        c.loop_stop()


@dataclass
class Console:
    """One console process and its database."""

    name: str
    client_id: str
    broker: str
    broker_log: Path
    sim: int
    """Index of the simulator (district) whose rooms it records."""
    url: str
    db: Any = None
    proc: subprocess.Popen[bytes] | None = None

    def count(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0])

    def dropped(self) -> bool:
        """Its broker logged dropping messages queued for it (``max_queued_messages``)."""
        return f"{DROPPED} {self.client_id}." in _read(self.broker_log)


DROPPED = "Outgoing messages are being dropped for client"
"""Mosquitto's notice when a client's queue is full: what it queues next for it is lost."""
STALL_S = 15.0
"""A console whose broker dropped messages for it and that stored nothing new for this long
has all it will get: what is missing is lost."""


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class ProvinceBench:
    """One run (see the module docstring)."""

    def __init__(self, rooms_per_district: int, events: int, workdir: Path,
                 max_s: float = 300.0, fsync: bool = True, province_limits: bool = True,
                 say: Callable[[str], None] = print) -> None:
        self.n = rooms_per_district
        self.events = events
        self.workdir = Path(workdir)
        self.max_s = max_s
        self.deadline = time.monotonic() + max_s
        self.fsync = fsync
        self.province_limits = province_limits
        self.say = say
        self.procs = Procs()
        self.figures = Figures(rooms_per_district, events,
                               "raised as the districts'" if province_limits
                               else "as provisioned")
        self.brokers: list[BrokerProcess] = []
        self.consoles: list[Console] = []
        self.sims: list[SimProcess] = []
        self.pg: LocalPostgres | None = None
        self._logs: list[IO[bytes]] = []

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def wait(self, what: str, pred: Callable[[], bool], cap: float) -> bool:
        """Poll ``pred`` until true (True), or until ``cap`` s or the run's bound (False)."""
        return wait_until(what, pred, min(cap, self.left()), self.say, every_s=0.1)

    # -- set-up --------------------------------------------------------------------------
    def setup_brokers(self) -> None:
        self.say("brokers: province and districts made by diemcau-broker …")
        with quiet(f"diemcau-broker init --province {PROVINCE}"):
            prov = LoopbackSite.make(self.workdir / PROVINCE, PROVINCE, province=True)
        for name, _prefix in DISTRICTS:
            _cli(prov, "add-district", name)
        _cli(prov, "add-staff", PROVINCE_STAFF, "--role", "console")
        self.province = prov
        self.districts: list[tuple[LoopbackSite, int]] = []
        limits = DISTRICT_LIMITS if self.province_limits else {}
        conf = prov.dir / "bench-mosquitto.conf"
        conf.write_text(prov.site.conf.read_text() + bench_listener(0, limits))
        b = prov.process(conf)
        self.brokers.append(b)   # stopped at the end even if it is still starting
        b.start()
        self.procs.watch(f"mosquitto {PROVINCE} (province)", self.brokers[-1].pid)
        for name, _prefix in DISTRICTS:
            with quiet(f"diemcau-broker init {name}"):
                d = LoopbackSite.make(self.workdir / name, name)
            _cli(d, "add-staff", DISTRICT_STAFF, "--role", "console")
            _cli(d, "bridge", "--bundle", str(prov.dir / "districts" / name),
                 "--host", "127.0.0.1")
            sim_port = free_port()
            conf = d.dir / "bench-mosquitto.conf"
            # A copy of the rendered configuration (which holds the bridge's password).
            conf.touch(0o600)
            conf.write_text(d.site.conf.read_text() + bench_listener(sim_port,
                                                                     DISTRICT_LIMITS))
            b = d.process(conf, (sim_port,))
            self.brokers.append(b)
            b.start()
            self.procs.watch(f"mosquitto {name} (district)", self.brokers[-1].pid)
            self.districts.append((d, sim_port))
        wait_bridges(prov.local_port, self.staff_credentials(prov, PROVINCE_STAFF),
                     [n for n, _ in DISTRICTS], min(60.0, self.left()))
        self.say("  both bridges up (province/<district>/bridge/state = 1)")

    @staticmethod
    def staff_credentials(site: LoopbackSite, who: str) -> Path:
        """The ``credentials.yaml`` of a staff account's hand-over bundle."""
        return site.dir / "staff" / who / "credentials.yaml"

    def setup_consoles(self) -> None:
        import psycopg

        from district.store.postgres import PostgresStore

        self.pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="dc-pgp-")), fsync=self.fsync,
                                settings={"track_commit_timestamp": "on",
                                          "shared_buffers": "'256MB'"})
        self.pg.start()
        first = self.districts[0][0]
        prov = self.province
        wanted = [(f"{DISTRICTS[0][0]} direct", DISTRICTS[0][0], 0, first.local_port,
                   "diemcau-console", DISTRICT_STAFF, first, PREFIX)]
        for k, (name, _prefix) in enumerate(DISTRICTS):
            wanted.append((f"{name} via {PROVINCE_STAFF}", PROVINCE, k, prov.local_port,
                           f"diemcau-{PROVINCE_STAFF}-{name}", PROVINCE_STAFF, prov,
                           f"province/{name}/{PREFIX}"))
        for label, broker, k, port, cid, who, site, topic_prefix in wanted:
            c = Console(label, cid, broker, site.dir / "data" / "mosquitto.log", k,
                        self.pg.new_database("prov"))
            PostgresStore(c.url).close()  # the schema, before anything queries it
            c.db = psycopg.connect(c.url, autocommit=True)
            data = self.workdir / cid
            data.mkdir(parents=True, exist_ok=True)
            cfg = data / "console.yaml"
            cfg.write_text(console_yaml(
                port, c.url, site_names(DISTRICTS[k][1], 1, self.n), cid, None, True, data,
                free_port(), broker={"topic_prefix": topic_prefix, "credentials_file":
                                     str(self.staff_credentials(site, who))}))
            log = (data / "console.log").open("wb")
            self._logs.append(log)
            c.proc = subprocess.Popen([sys.executable, "-m", "district", "run", "--config",
                                       str(cfg)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=log)
            self.procs.watch(f"console {label}", c.proc.pid)
            self.consoles.append(c)
        # Each console's session and subscriptions exist before any room publishes.
        if not self.wait("the consoles' subscriptions", lambda: all(
                c.count("SELECT COUNT(*) FROM console_link WHERE up = 1") >= 1
                for c in self.consoles), 60):
            raise RuntimeError(f"a console did not connect: see {self.workdir}/*/console.log")
        with contextlib.suppress(Exception):
            pg_pid = int((self.pg.data / "postmaster.pid").read_text().split()[0])
            self.procs.watch("postgresql (all backends)", pg_pid, children=True)

    def start_rooms(self) -> None:
        self.say(f"rooms: {self.n} on each district …")
        self.t_sims = time.time()
        for (_d, sim_port), (name, prefix) in zip(self.districts, DISTRICTS, strict=True):
            s = SimProcess(sim_port, prefix, 1, self.n, ["--seed", "7"],
                           self.workdir / f"roomsim-{name}.log")
            self.sims.append(s)
            self.procs.watch(f"room simulator {name} ({self.n} rooms)", s.proc.pid)

    # -- the run -------------------------------------------------------------------------
    def online(self, c: Console) -> int:
        return c.count("SELECT COUNT(*) FROM live WHERE availability = 'online'")

    def drained(self, c: Console, st: dict[str, Any]) -> bool:
        """Every event the console's rooms made is acknowledged and stored there."""
        return int(st["pending"]) == 0 and c.count("SELECT COUNT(*) FROM events") >= int(
            st["made"])

    def until_each(self, what: str, done: Callable[[Console, list[dict[str, Any]]], bool],
                   t0: float, cap: float) -> dict[str, float]:
        """Wait until ``done`` holds for every console; when it first held for each (s after
        ``t0``)."""
        at: dict[str, float] = {}

        def check() -> bool:
            st = [s.ctl("status") for s in self.sims]
            for c in self.consoles:
                if c.name not in at and done(c, st):
                    at[c.name] = time.time() - t0
            return len(at) == len(self.consoles)
        self.wait(what, check, cap)
        return at

    def run_connect(self) -> None:
        online = self.until_each("every room online at every console",
                                 lambda c, _st: self.online(c) >= self.n, self.t_sims, 120)
        for col, c in zip(self.figures.columns, self.consoles, strict=True):
            col.online = self.online(c)
            if c.name in online:  # the last room's "online" as the console received it
                last = c.db.execute("SELECT MAX(availability_at) FROM live "
                                    "WHERE availability = 'online'").fetchone()[0]
                col.online_s = float(last) - self.t_sims
        self.until_each("the connect events stored", lambda c, st: self.drained(c, st[c.sim]),
                        self.t_sims, 120)

    def run_burst(self) -> None:
        self.say(f"burst: {self.events} events from every room …")
        self.t_burst = time.time()
        for s in self.sims:
            s.ctl("burst", events=self.events)
        progress: dict[str, tuple[int, float]] = {}

        def stalled(c: Console) -> bool:
            """Its broker dropped messages for it and it stored nothing new for a while."""
            n, now = c.count("SELECT COUNT(*) FROM events"), time.monotonic()
            if progress.get(c.name, (-1, 0.0))[0] != n:
                progress[c.name] = (n, now)
            return now - progress[c.name][1] > STALL_S and c.dropped()

        ended = self.until_each(
            "every acknowledged event stored",
            lambda c, st: self.drained(c, st[c.sim]) or stalled(c), self.t_burst, self.left())
        self.drained_at = {c.name: ended[c.name] for c in self.consoles
                           if c.name in ended and not c.dropped()}

    def compute(self) -> None:
        ledgers = [read_ledger(s, self.workdir / f"ledger-{name}.jsonl")
                   for s, (name, _) in zip(self.sims, DISTRICTS, strict=True)]
        for col, c in zip(self.figures.columns, self.consoles, strict=True):
            ledger = ledgers[c.sim]
            m = match_ledger(ledger, c.db)
            burst = [k for k, v in ledger.items() if v[1] >= self.t_burst and v[3] is not None]
            lags = sorted(m.lag[k] for k in burst if k in m.lag)
            col.acked = len(burst)
            col.stored = sum(1 for k in burst if k in m.commit_at)
            col.duplicates = m.duplicates
            if c.name in self.drained_at:
                col.lost = m.missing
                col.drained_s = max((m.commit_at[k] for k in burst if k in m.commit_at),
                                    default=self.t_burst) - self.t_burst
            elif c.dropped():  # the broker said so
                col.lost = m.missing
            else:  # still queued for the console when the bound came: not provably lost
                col.unstored = m.missing
            if lags:
                col.p50, col.p99, col.max = (percentile(lags, 0.5), percentile(lags, 0.99),
                                             lags[-1])
        for b in self.brokers:
            for line in _read(b.log).splitlines():
                if DROPPED in line:
                    self.figures.notes.append(f"{b.log.parent.parent.name}: {line}")
        for name in self.procs.watched:
            self.figures.processes.append((name, self.procs.peak_rss.get(name, 0) / 2**20,
                                           self.procs.cpu(name)))

    def close(self) -> None:
        """Stop everything the run started (also after an error or Ctrl-C)."""
        for s in self.sims:
            with contextlib.suppress(Exception):
                s.close()
        for c in self.consoles:
            end_process(c.proc, timeout=30)
            if c.db is not None:
                with contextlib.suppress(Exception):
                    c.db.close()
        for log in self._logs:
            log.close()
        for b in reversed(self.brokers):
            with contextlib.suppress(Exception):
                b.stop()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()
            shutil.rmtree(self.pg.root, ignore_errors=True)

    def run(self) -> Figures:
        """Set up, connect, burst, compute and tear down; the figures."""
        f = self.figures
        f.started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        f.load = (os.getloadavg()[0], 0.0)
        with contextlib.suppress(Exception):
            f.commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                      capture_output=True, text=True, timeout=10
                                      ).stdout.strip()
        t0 = time.monotonic()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.setup_brokers()
            self.setup_consoles()
            f.columns = [Column(c.name, c.broker, self.n) for c in self.consoles]
            with sampling(self.procs):
                self.start_rooms()
                self.run_connect()
                self.run_burst()
            f.seconds = time.monotonic() - t0
            self.compute()
        finally:
            self.close()
        f.load = (f.load[0], os.getloadavg()[0])
        return f


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options."""
    p = argparse.ArgumentParser(prog="bench.province",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rooms-per-district", type=int, default=500)
    p.add_argument("--events", type=int, default=10, help="events every room makes at once")
    p.add_argument("--max-s", type=float, default=300.0, help="bound on the whole run")
    p.add_argument("--province-as-provisioned", action="store_true",
                   help="run the province broker with its rendered limits (max_queued_messages "
                        "and max_inflight_messages as diemcau-broker writes them), not the "
                        "districts' raised ones")
    p.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync")
    p.add_argument("--workdir", type=Path, default=None,
                   help="brokers, configs, logs and ledgers (default: a new temporary one)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, say: Callable[[str], None] | None = None) -> Figures:
    """One run with these options."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dc-province-"))
    return ProvinceBench(args.rooms_per_district, args.events, workdir, max_s=args.max_s,
                         fsync=not args.no_fsync,
                         province_limits=not args.province_as_provisioned,
                         say=say or (lambda m: print(m, file=sys.stderr, flush=True))).run()


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its table; exit status 1 unless every console stored every
    acknowledged event exactly once."""
    args = parse_args(argv)
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="dc-province-"))
    # SIGTERM ends the run like Ctrl-C: everything started is stopped on the way out.
    before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        figures = run(args)
    finally:
        signal.signal(signal.SIGTERM, before)
    print(figures.table())
    print(f"(configs, logs and ledgers in {args.workdir})")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
