"""Link bytes per room per day at the IP layer, both ways, plain and TLS (contract 2 item 10).

Three peers, each on its own fresh Mosquitto (the project's local config from
``broker/local.py``, plus one measured plain listener and one measured TLS listener set up like
the district broker's: certificates from the project's CA code, client certificate required;
the district side — commands, schedule, relay sets — uses the unmeasured listener):

* **ours**: ``python -m agent run --simulate`` with a real room's site config
  (``firmware_config/sites/vq-tan-doan.yaml`` by default: its broker section pointed here, its
  serial devices emulated, their passwords the emulators'), whatever link the agent in the tree
  has (topics under ``broker.topic_prefix``, sizes seen by a ``#`` subscriber);
* **mqtt-io 2.7** with its defaults, on the pins and config of ``bench/footprint.py``, doing the
  room-side part of the same day (relays, LED colours, button) for a district that does the rest
  (mqtt-io has no schedule, lock or events);
* **naive**: a publisher that sends our full state JSON every 10 s (retained, QoS 1) plus the
  events and replies ours sent, replayed from ours's plain run.

**Counting.** Preferred: ``tcpdump`` on loopback with a port filter (installed with apt-get
when missing and root); each frame's IPv4 total length is summed (the link header is not), by
direction. Fallback (``--counter proxy``, or no tcpdump): a counting TCP proxy (asyncio,
127.0.0.1) between the peer and the broker; the IP layer is then a model: payload + 52 bytes
(IPv4 20 + TCP 20 + timestamps 12) per chunk read, one pure ACK (52) back per chunk, SYN and
SYN-ACK 60 each, FIN and its ACK 52 each. Either way, a segment over a 1500-byte MTU is counted
as split into 1448-byte segments (52 bytes of header each): loopback's MTU is 64 KiB, a 4G
link's is not. The output says which was used.

**The day.** A day is 86,400 s; it cannot run in real time. The simulated room's wall clock is
movable (``agent/simclock.py``, ``clock:+N`` on the control socket), so the scripted day runs
in about a minute and a half: the night before, the room is switched off and the agent stopped;
it starts at 05:55 room time; at 06:00 the district publishes the day's schedule (a 30-minute
test at 07:30, a two-hour session at 14:00); for each window the clock is moved to
``start - lead`` (power up, lock), to the start, a check-in press, an operator check
acknowledged by a press, a switch-off refused (button held), completion by the district, and a
power off (the district's ``power`` command unless the room has begun to power off by itself).
MQTT keepalive and heartbeats run on real time, so::

    day = connect (once) + scripted day (measured) + periodic x (86,400 s - real span)

``periodic`` is measured in an idle window after the day (room off; at least ``--real-s``
seconds) as exchanges: every burst of packets is either a keepalive (nothing published) or the
publish of a topic (seen by the ``#`` subscriber). Each kind's cost (IP bytes up and down) is
measured; its period is the median gap between its bursts; a keepalive seen fewer than twice is
counted at the configured keepalive, its cost taken from a probe connection with a 2 s
keepalive on the same listener if none was seen. A periodic payload that is bigger while the
room is locked (our v1 state heartbeat, the naive state) is counted at its locked size for the
locked hours. Every input is printed beside the totals, and a warning when a configured period
is longer than the idle window (what it sends would not be in the figure).

Usage::

    .venv/bin/python bench/link_bytes.py [--real-s 120] [--tls | --no-tls]
        [--peers ours,mqtt-io,naive] [--counter auto|capture|proxy] [--site SITE.yaml]

Without ``--tls``/``--no-tls`` both transports are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.clock import iso_ms  # noqa: E402
from agent.config import SiteConfig, parse_config  # noqa: E402
from agent.control import request  # noqa: E402
from agent.core.led import BY_NAME  # noqa: E402
from agent.link.topics import RoomTopics  # noqa: E402
from agent.store import StateDir  # noqa: E402
from bench.footprint import ensure_peer, mqttio_config  # noqa: E402
from broker.local import find_mosquitto, free_port, render_local_config  # noqa: E402
from broker.pki import CertAuthority  # noqa: E402

DAY_S = 86_400.0
HDR = 52            # IPv4 20 + TCP 20 + TCP timestamps option 12
SYN = 60            # SYN and SYN-ACK carry MSS, SACK-permitted, timestamps, window scale
MTU_MSS = 1448      # payload of one segment on a 1500-byte MTU link with timestamps
NAIVE_STATE_S = 10.0
NAIVE_KEEPALIVE_S = 60
MQTTIO_PREFIX = "mqio"
DEFAULT_SITE = ROOT / "firmware_config" / "sites" / "vq-tan-doan.yaml"
BURST_GAP_S = 0.7   # packets closer than this belong to one exchange
QUIET_S = 0.7       # no message from the peer for this long: it has settled
STATUS_POLL_S = 0.6


# --------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class Packet:
    """One IP packet (captured) or one modelled packet (proxy) on a measured link."""

    t: float
    up: bool          # client -> broker
    size: int         # IP-layer bytes
    conn: int         # the client's TCP port: one connection


def mtu_split(size: int) -> int:
    """``size`` (IP bytes of one loopback segment) as it would be on a 1500-byte MTU link."""
    payload = size - HDR
    if payload <= MTU_MSS:
        return size
    return payload + HDR * math.ceil(payload / MTU_MSS)


def ensure_tcpdump() -> str | None:
    """The tcpdump binary, installing Debian's package when missing and root; None if none."""
    found = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/usr/bin")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-qq", "tcpdump"],
                ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tcpdump"]):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=300)
        found = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/usr/bin")
        if found:
            return found
    return None


def read_pcap(path: Path, port: int) -> list[Packet]:
    """IPv4/TCP packets of a pcap file; ``up`` when the destination port is ``port``."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    offset = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype)
    if offset is None:
        raise RuntimeError(f"pcap link type {linktype} not understood")
    out: list[Packet] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) < incl or len(frame) < offset + 24:
            break
        ip = frame[offset:]
        if ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        t = sec + frac / (1e9 if nano else 1e6)
        up = dport == port
        out.append(Packet(t, up, total, sport if up else dport))
    return out


class Capture:
    """``tcpdump -i lo`` on one port, written to a pcap file and read at the end."""

    def __init__(self, binary: str, work: Path) -> None:
        self.binary, self.work = binary, work
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.file = work / "link.pcap"
        self.dropped = ""

    def start(self, port: int) -> int:
        """Start capturing traffic to and from ``port``; the peer connects to ``port``."""
        self.port = port
        err = self.work / "tcpdump.err"
        self.proc = subprocess.Popen(
            [self.binary, "-i", "lo", "-n", "-U", "-s", "128", "-w", str(self.file),
             f"tcp port {port}"], stdout=subprocess.DEVNULL, stderr=err.open("wb"))
        deadline = time.monotonic() + 10
        while b"listening on" not in err.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {err.read_text(errors='replace')}")
            time.sleep(0.02)
        return port

    def packets(self) -> list[Packet]:
        return [Packet(p.t, p.up, mtu_split(p.size), p.conn)
                for p in read_pcap(self.file, self.port)]

    def stop(self) -> list[Packet]:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = (self.work / "tcpdump.err").read_text(errors="replace")
        self.dropped = next((ln.split()[0] for ln in text.splitlines()
                             if "dropped by kernel" in ln), "")
        return self.packets()


class Proxy:
    """A counting TCP proxy on 127.0.0.1 in front of one broker port (the IP-layer model)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.lock = threading.Lock()
        self._packets: list[Packet] = []
        self.dropped = ""

    def _add(self, up: bool, size: int, conn: int) -> None:
        with self.lock:
            self._packets.append(Packet(time.time(), up, size, conn))

    def start(self, port: int) -> int:
        """Listen on a free port, forwarding to ``port``; returns the port to connect to."""
        self.thread.start()

        async def serve() -> asyncio.AbstractServer:
            return await asyncio.start_server(lambda r, w: self._client(r, w, port),
                                              "127.0.0.1", 0)

        self.server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      port: int) -> None:
        conn = int(writer.get_extra_info("peername")[1])   # the client's port, as in a capture
        self._add(True, SYN, conn)
        self._add(False, SYN, conn)
        self._add(True, HDR, conn)
        try:
            b_reader, b_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        for w in (writer, b_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    size = mtu_split(len(chunk) + HDR)
                    self._add(up, size, conn)
                    # One pure ACK back per chunk (per two segments of a split one).
                    segments = (size - len(chunk)) // HDR
                    self._add(not up, HDR * max(1, segments // 2), conn)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                self._add(up, HDR, conn)        # FIN
                self._add(not up, HDR, conn)    # its ACK
                with contextlib.suppress(OSError, RuntimeError):
                    dst.close()

        await asyncio.gather(pump(reader, b_writer, True), pump(b_reader, writer, False))

    def packets(self) -> list[Packet]:
        with self.lock:
            return list(self._packets)

    def stop(self) -> list[Packet]:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        return self.packets()


# --------------------------------------------------------------------------- broker, TLS


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    server_cert: Path
    server_key: Path
    crl: Path


def make_pki(work: Path, client_cn: str) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and one client certificate, made
    with the project's own CA code (EC P-256, as a district's)."""
    ca = CertAuthority(work / "ca")
    ca.create("diemcau bench CA")
    server = ca.issue("localhost", work / "tls", "server", dns=("localhost",),
                      ips=("127.0.0.1",))
    client = ca.issue(client_cn, work / "tls", "client")
    return TlsFiles(ca.cert_file, client.cert_file, client.key_file, server.cert_file,
                    server.key_file, ca.crl_file)


class BenchBroker:
    """One Mosquitto: the project's local config (observer listener) plus a measured plain
    listener and a measured TLS listener (district-style: client certificate required)."""

    def __init__(self, work: Path, tls: TlsFiles) -> None:
        self.work = work
        self.obs_port, self.plain_port, self.tls_port = free_port(), free_port(), free_port()
        text = render_local_config(self.obs_port, work, persistence=False)
        text += f"""
# bench: the measured listeners (only the peer under test connects to them)
listener {self.plain_port} 127.0.0.1
listener {self.tls_port} 127.0.0.1
cafile {tls.ca}
certfile {tls.server_cert}
keyfile {tls.server_key}
crlfile {tls.crl}
require_certificate true
use_identity_as_username false
"""
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        for port in (self.obs_port, self.plain_port, self.tls_port):
            while True:
                if self.proc.poll() is not None:
                    log = (self.work / "mosquitto.log")
                    raise RuntimeError("mosquitto exited: " + (log.read_text()[-2000:]
                                                               if log.exists() else ""))
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mosquitto did not listen on {port}") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- observer


@dataclass(frozen=True)
class Seen:
    t: float
    topic: str
    size: int
    payload: bytes
    retained: bool


class Observer:
    """The district side, on the unmeasured listener: records every message the peer
    publishes (``#``, no-local) and publishes commands, schedules and output sets."""

    def __init__(self, port: int) -> None:
        self.cv = threading.Condition()
        self.seen: list[Seen] = []
        self.sent: list[Seen] = []
        self._acks: set[int] = set()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-district",
                             protocol=mqtt.MQTTv5)
        self.c.on_message = self._msg
        self.c.on_publish = self._pub
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe("#", options=SubscribeOptions(qos=1, noLocal=True))
        if not done.wait(10):
            raise RuntimeError("observer could not subscribe")

    def _msg(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.cv:
            self.seen.append(Seen(time.time(), m.topic, len(m.payload), bytes(m.payload),
                                  bool(m.retain)))
            self.cv.notify_all()

    def _pub(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        with self.cv:
            self._acks.add(mid)
            self.cv.notify_all()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        with self.cv:
            self.sent.append(Seen(time.time(), topic, len(payload), payload, retain))
            if not self.cv.wait_for(lambda: info.mid in self._acks, 10):
                raise RuntimeError(f"no PUBACK for {topic}")

    def mark(self) -> int:
        with self.cv:
            return len(self.seen)

    def wait(self, ok: Callable[[Seen], bool], since: int = 0, timeout: float = 30) -> Seen:
        """The first message from the peer after ``since`` for which ``ok`` holds."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for s in self.seen[since:]:
                    if ok(s):
                        return s
                since = len(self.seen)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the peer did not publish what was expected")
                self.cv.wait(left)

    def quiet(self, quiet_s: float = QUIET_S, limit_s: float = 15) -> None:
        """Wait until the peer has published nothing for ``quiet_s`` from now on (at most
        ``limit_s``): what a step just caused has arrived."""
        start = time.time()
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            with self.cv:
                last = max(start, self.seen[-1].t if self.seen else 0.0)
            idle = time.time() - last
            if idle >= quiet_s:
                return
            time.sleep(quiet_s - idle + 0.01)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# --------------------------------------------------------------------------- the day


@dataclass(frozen=True)
class DayWindow:
    id: str
    kind: str
    title: str
    start: float
    end: float


def the_day(zone: str) -> tuple[float, list[DayWindow]]:
    """Tomorrow in the room's time zone: the day's start (06:00) and its two windows."""
    tz = ZoneInfo(zone)
    day = (datetime.now(tz) + timedelta(days=1)).date()

    def at(h: int, m: int) -> float:
        return datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()

    return at(6, 0), [
        DayWindow("t-sang", "test", "Kiểm tra kết nối buổi sáng", at(7, 30), at(8, 0)),
        DayWindow("h-chieu", "session", "Họp trực tuyến UBND huyện", at(14, 0), at(16, 0)),
    ]


@dataclass
class Run:
    """One peer on one transport: what happened and when (real seconds, ``time.time()``)."""

    peer: str
    tls: bool
    counter: Capture | Proxy
    broker: BenchBroker
    observer: Observer
    work: Path
    t_launch: float = 0.0
    t_settled: float = 0.0
    t_day_end: float = 0.0
    t_idle_end: float = 0.0
    probe_conns: set[int] = field(default_factory=set)
    probe_span: tuple[float, float] = (0.0, 0.0)
    locked_real: list[tuple[float, float]] = field(default_factory=list)
    locked_sim_s: float = 0.0
    sim_span: str = ""
    keepalive_s: float = 0.0
    config_periods: dict[str, float] = field(default_factory=dict)
    base: str = ""
    locked_payload: dict[str, float] = field(default_factory=dict)
    packets: list[Packet] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    @property
    def label(self) -> str:
        return f"{self.peer} ({'TLS' if self.tls else 'plain'})"


def command(cid: str, name: str, sim_now: float, **args: Any) -> bytes:
    """A district command as the console sends it."""
    return json.dumps({"id": cid, "name": name, "args": args, "sender": "console:bench",
                       "ts": iso_ms(sim_now)}, ensure_ascii=False,
                      separators=(",", ":")).encode()


class Ours:
    """The room agent as a process on mock pins, its wall clock moved through the day."""

    def __init__(self, run: Run, site: Path, port: int, tls: TlsFiles | None) -> None:
        self.run = run
        raw = yaml.safe_load(site.read_text())
        broker = {k: v for k, v in (raw.get("broker") or {}).items()
                  if k not in ("tls", "credentials_file", "host", "port")}
        broker.update(host="127.0.0.1", port=port)
        if tls is not None:
            broker["tls"] = {"ca_file": str(tls.ca), "cert_file": str(tls.cert),
                             "key_file": str(tls.key)}
        raw["broker"] = broker
        for dev in (raw.get("devices") or {}).values():
            if isinstance(dev.get("settings"), dict) and "password" in dev["settings"]:
                dev["settings"]["password"] = ""   # the emulated device's login
        text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
        self.cfg: SiteConfig = parse_config(text)
        self.cfg_path = run.work / "site.yaml"
        self.cfg_path.write_text(text)
        self.topics = RoomTopics(self.cfg.broker.topic_prefix, self.cfg.site.id)
        self.state = run.work / "st"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0.0
        self.n = 0
        run.base = self.topics.base
        run.keepalive_s = float(getattr(self.cfg.broker, "keepalive_s", 60))
        run.config_periods = config_periods(self.cfg)

    # the simulated wall clock --------------------------------------------------
    def sim_now(self) -> float:
        return time.time() + self.offset

    def jump_to(self, t: float) -> None:
        """Move the room's clock forward to ``t`` (never back: that is another test)."""
        if t < self.sim_now():
            raise RuntimeError("the scripted day would move the room's clock back")
        reply = self.ask(f"clock:{t - self.sim_now():+.3f}")
        self.offset = float(reply["offset_s"])

    def ask(self, op: str) -> dict[str, Any]:
        reply = request(StateDir(self.state).socket_path, op, timeout=30)
        if not reply.get("ok"):
            raise RuntimeError(f"agent refused {op}: {reply}")
        return reply

    def status(self) -> dict[str, Any]:
        return dict(self.ask("status")["state"])

    def until(self, ok: Callable[[dict[str, Any]], bool], what: str, timeout: float = 240,
              ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if ok(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"the room never got {what}: {json.dumps(st)[:400]}")
            # Slower than the agent's idle tick (0.5 s): its loop looks at deadlines only
            # when its queue has been empty that long, and every status request is a message.
            time.sleep(STATUS_POLL_S)

    def send(self, name: str, **args: Any) -> None:
        self.n += 1
        cid = f"c-{self.n}"
        mark = self.run.observer.mark()
        self.run.observer.publish(self.topics.commands, command(cid, name, self.sim_now(),
                                                                **args))
        self.run.observer.wait(lambda s: cid.encode() in s.payload, mark)

    # lifecycle -----------------------------------------------------------------
    def prepare(self, day_start: float) -> None:
        """The night before: the agent started and the room switched off (released relays
        on normally-closed contacts power the devices), then the agent stopped. The measured
        run starts from there, with the broker holding the room's session, as every day."""
        self.state.mkdir(parents=True)
        self._start(day_start - 600)
        self.ask("off")
        self.until(lambda st: st.get("power") == "off" and not st.get("sequence")
                   and settled(st), "switched off for the night")
        self.run.observer.quiet()
        self.stop()

    def _start(self, sim_t: float) -> None:
        self.offset = sim_t - time.time()
        (self.state / "sim-clock.json").write_text(json.dumps({"offset": self.offset,
                                                               "synced": True}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(self.cfg_path),
             "--simulate", "--broker", f"mqtt://127.0.0.1:{self.port}",
             "--state-dir", str(self.state)], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=(self.run.work / "agent.log").open("wb"))
        deadline = time.monotonic() + 30
        while True:
            try:
                self.status()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the agent did not start: " + (
                        self.run.work / "agent.log").read_text()[-2000:]) from None
                time.sleep(0.05)

    def launch(self, day_start: float) -> None:
        mark = self.run.observer.mark()
        self._start(day_start - 300)   # the room wakes up at 05:55
        self.run.observer.wait(lambda s: True, mark)

    def day(self, day_start: float, windows: list[DayWindow]) -> None:
        obs = self.run.observer
        lead = self.cfg.timing.lead_min * 60
        self.jump_to(day_start)
        sched = {"version": f"{iso_ms(day_start)[:10]}#1", "site": self.cfg.site.id,
                 "ts": iso_ms(self.sim_now()),
                 "windows": [{"id": w.id, "kind": w.kind, "title": w.title,
                              "start": iso_ms(w.start), "end": iso_ms(w.end)} for w in windows]}
        version = sched["version"]
        obs.publish(self.topics.schedule, json.dumps(sched, ensure_ascii=False,
                                                     separators=(",", ":")).encode(),
                    retain=True)
        self.until(lambda st: version in json.dumps(st), "the schedule", 30)
        obs.quiet()
        hold_s = self.cfg.button.hold_s if self.cfg.button else 3.0
        for w in windows:
            self.jump_to(w.start - lead + 1)
            self.until(locked, f"locked by {w.id}", 30)
            t_lock, sim_lock = time.time(), self.sim_now()
            self.until(lambda st: st.get("power") == "on" and not st.get("sequence")
                       and settled(st), "powered on")
            obs.quiet()
            self.jump_to(w.start + 60)                 # the window begins
            obs.quiet()
            self.ask("press")                          # a check-in
            obs.quiet()
            length = w.end - w.start
            self.jump_to(w.start + 0.25 * length)
            self.send("operator_check", timeout_s=300)
            obs.quiet()
            self.ask("press")                          # acknowledged
            self.until(lambda st: not (st.get("operator") or {}).get("check"), "the check answered",
                       30)
            obs.quiet()
            self.jump_to(w.start + 0.5 * length)
            mark = obs.mark()
            self.ask("hold")                           # a switch-off, refused
            obs.wait(lambda s: True, mark, 10 + hold_s)
            obs.quiet()
            self.jump_to(self.sim_now() + 60)          # the refusal LED ends
            obs.quiet()
            self.jump_to(w.end - 120)
            self.send("complete_window", window_id=w.id)
            self.until(lambda st: not locked(st), "unlocked", 30)
            self.run.locked_real.append((t_lock, time.time()))
            self.run.locked_sim_s += self.sim_now() - sim_lock
            obs.quiet()
            self.jump_to(self.sim_now() + 30 * 60)     # a room that powers off by itself would
            obs.quiet()                                # have begun by now
            if self.status().get("power") not in ("off", "powering_off"):
                self.send("power", on=False)
            self.until(lambda st: st.get("power") == "off" and not st.get("sequence")
                       and settled(st), "powered off")
            obs.quiet()
        tz = ZoneInfo(self.cfg.site.timezone)
        self.run.sim_span = (f"room clock {datetime.fromtimestamp(day_start - 300, tz):%H:%M}"
                             f"-{datetime.fromtimestamp(self.sim_now(), tz):%H:%M}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def locked(st: dict[str, Any]) -> bool:
    return bool((st.get("lock") or {}).get("locked"))


def settled(st: dict[str, Any]) -> bool:
    """Every device with a driver reports the power its relay gives it."""
    return all(d.get("reported_power") in (None, d.get("power"))
               for d in (st.get("devices") or {}).values())


def config_periods(cfg: SiteConfig) -> dict[str, float]:
    """Real-time periods the agent's config declares (keepalive, heartbeat, host interval)."""
    out = {"broker.keepalive_s": float(getattr(cfg.broker, "keepalive_s", 0) or 0)}
    for name, value in cfg.timing.model_dump().items():
        if isinstance(value, int | float) and ("heartbeat" in name or "interval" in name):
            out[f"timing.{name}"] = float(value)
    return {k: v for k, v in out.items() if v}


MQTTIO_WRAPPER = r"""
import sys, threading, time
def control():
    from gpiozero import Device
    for line in sys.stdin:
        pin, secs = line.split()
        p = Device.pin_factory.pin(int(pin))
        p.drive_low(); time.sleep(float(secs)); p.drive_high()   # gpiozero Button: pull-up
        print("LINKBYTES-OK", flush=True)
threading.Thread(target=control, daemon=True).start()
sys.argv = ["mqtt_io", sys.argv[1]]
from mqtt_io.__main__ import main
main()
"""

MQTTIO_PINS = {"codec": 26, "camera": 20, "amplifier": 21}
MQTTIO_LED = ("led_r", "led_g", "led_b")
MQTTIO_BUTTON = 16


class MqttIo:
    """mqtt-io 2.7 with its defaults on mock pins (``bench/footprint.py``'s config), its
    button pressed through its own mock pin factory; the district drives relays and LED."""

    def __init__(self, run: Run, port: int, tls: TlsFiles | None, hold_s: float) -> None:
        self.run = run
        cfg = yaml.safe_load(mqttio_config(port))
        if tls is not None:
            cfg["mqtt"]["tls"] = {"enabled": True, "ca_certs": str(tls.ca),
                                  "certfile": str(tls.cert), "keyfile": str(tls.key)}
        self.cfg_path = run.work / "mqttio.yml"
        self.cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.proc: subprocess.Popen[str] | None = None
        self.hold_s = hold_s
        self.led = {c: False for c in MQTTIO_LED}
        run.base = MQTTIO_PREFIX
        run.keepalive_s = float(cfg["mqtt"].get("keepalive", 10))
        run.config_periods = {"mqtt.keepalive (mqtt-io default)": run.keepalive_s}

    def launch(self, day_start: float) -> None:
        python = ensure_peer()
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
        self.proc = subprocess.Popen([str(python), "-c", MQTTIO_WRAPPER, str(self.cfg_path)],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=(self.run.work / "mqttio.log").open("wb"),
                                     text=True)
        self.run.observer.wait(lambda s: s.topic == f"{MQTTIO_PREFIX}/status"
                               and s.payload == b"running", 0, 60)

    def press(self, secs: float) -> None:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        mark = self.run.observer.mark()
        self.proc.stdin.write(f"{MQTTIO_BUTTON} {secs}\n")
        self.proc.stdin.flush()
        while "LINKBYTES-OK" not in self.proc.stdout.readline():
            pass
        self.run.observer.wait(lambda s: "/input/" in s.topic and s.payload == b"OFF", mark, 10)

    def set(self, name: str, on: bool) -> None:
        mark = self.run.observer.mark()
        payload = b"ON" if on else b"OFF"
        self.run.observer.publish(f"{MQTTIO_PREFIX}/output/{name}/set", payload)
        self.run.observer.wait(lambda s: s.topic == f"{MQTTIO_PREFIX}/output/{name}"
                               and s.payload == payload, mark, 10)

    def show(self, pattern: str) -> None:
        """The district shows an LED pattern's colour (mqtt-io cannot blink by itself)."""
        for channel, level in zip(MQTTIO_LED, BY_NAME[pattern].colour, strict=True):
            if self.led[channel] != bool(level):
                self.set(channel, bool(level))
                self.led[channel] = bool(level)

    def day(self, day_start: float, windows: list[DayWindow]) -> None:
        obs = self.run.observer
        self.show("idle")
        for _ in windows:
            self.show("powering")
            for name in MQTTIO_PINS:
                self.set(name, True)
            self.show("window_active")
            self.press(0.3)                            # check-in
            self.show("check_requested")               # operator check
            self.press(0.3)
            self.show("window_active")
            self.press(self.hold_s + 0.3)              # a switch-off: the district refuses it
            self.show("refused")
            self.show("window_active")
            self.show("powering")
            for name in reversed(MQTTIO_PINS):
                self.set(name, False)
            self.show("idle")
            obs.quiet()
        self.run.sim_span = "no room clock (the district drives every step)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Recording:
    """What ours sent and received in its plain run, for the naive publisher to replay."""

    base: str
    state_topic: str
    commands_topic: str
    schedule_topic: str
    steps: list[tuple[bool, str, bytes, bool]]   # (down, topic, payload, retained) in order
    idle_state: bytes
    locked_state_size: float
    locked_sim_s: float
    sim_span: str


def record(run: Run, ours: Ours) -> Recording:
    """Ours's scripted-day traffic, from the observer, in time order."""
    t0, t1 = run.t_settled, run.t_day_end
    msgs = [(s.t, False, s) for s in run.observer.seen if t0 <= s.t < t1]
    msgs += [(s.t, True, s) for s in run.observer.sent if t0 <= s.t < t1]
    msgs.sort(key=lambda m: m[0])
    state_topic = ours.topics.state
    states = [s for s in run.observer.seen if s.topic == state_topic]
    in_lock = [s.size for s in states if any(a <= s.t < b for a, b in run.locked_real)]
    return Recording(
        base=ours.topics.base, state_topic=state_topic, commands_topic=ours.topics.commands,
        schedule_topic=ours.topics.schedule,
        steps=[(down, s.topic, s.payload, s.retained) for _, down, s in msgs],
        idle_state=states[-1].payload if states else b"{}",
        locked_state_size=statistics.mean(in_lock) if in_lock else 0.0,
        locked_sim_s=run.locked_sim_s, sim_span=run.sim_span)


class Naive:
    """Our full state JSON every 10 s (retained, QoS 1) plus ours's events and replies."""

    def __init__(self, run: Run, port: int, tls: TlsFiles | None, rec: Recording) -> None:
        self.run, self.port, self.tls, self.rec = run, port, tls, rec
        self.state = rec.idle_state
        self.stop_ev = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="naive-room",
                             protocol=mqtt.MQTTv5)
        if tls is not None:
            self.c.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
        self.c.on_connect = lambda c, *a: c.subscribe(
            [(rec.commands_topic, 1), (rec.schedule_topic, 1)])
        self.got = threading.Semaphore(0)
        self.c.on_message = lambda *a: self.got.release()
        self.timer = threading.Thread(target=self._tick, daemon=True)
        run.base = rec.base
        run.keepalive_s = NAIVE_KEEPALIVE_S
        run.config_periods = {"state every": NAIVE_STATE_S, "keepalive": NAIVE_KEEPALIVE_S}
        run.locked_payload = {rec.state_topic: rec.locked_state_size}
        run.locked_sim_s = rec.locked_sim_s

    def _tick(self) -> None:
        while not self.stop_ev.wait(NAIVE_STATE_S):
            self.c.publish(self.rec.state_topic, self.state, qos=1, retain=True)

    def launch(self, day_start: float) -> None:
        self.c.connect("127.0.0.1", self.port, keepalive=NAIVE_KEEPALIVE_S)
        self.c.loop_start()
        deadline = time.monotonic() + 10
        while not self.c.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("the naive publisher could not connect")
            time.sleep(0.02)
        self.c.publish(self.rec.state_topic, self.state, qos=1, retain=True)
        self.timer.start()

    def day(self, day_start: float, windows: list[DayWindow]) -> None:
        obs = self.run.observer
        for down, topic, payload, retained in self.rec.steps:
            if down:
                obs.publish(topic, payload, retain=retained)
                self.got.acquire(timeout=10)
            elif topic == self.rec.state_topic:
                self.state = payload              # sent by the 10 s timer, not on change
            elif not retained:                    # events and replies, as ours sent them
                self.c.publish(topic, payload, qos=1).wait_for_publish(10)
        self.state = self.rec.idle_state
        obs.quiet()
        self.run.sim_span = self.rec.sim_span + " (replayed)"

    def stop(self) -> None:
        self.stop_ev.set()
        self.c.disconnect()
        self.c.loop_stop()


# --------------------------------------------------------------------------- probe


def probe(run: Run, port: int, tls: TlsFiles | None) -> None:
    """A client with a 2 s keepalive on the measured listener: the cost of one keepalive
    exchange on this transport, for a peer whose own were not seen in the idle window."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=mqtt.MQTTv5)
    if tls is not None:
        c.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
    c.connect("127.0.0.1", port, keepalive=2)
    sock = c.socket()
    if sock is not None:
        run.probe_conns.add(int(sock.getsockname()[1]))
    c.loop_start()
    time.sleep(0.5)
    t0 = time.time()
    time.sleep(4.2)  # two keepalive exchanges, in real time: what is being measured
    run.probe_span = (t0, time.time())
    time.sleep(BURST_GAP_S + 0.3)  # the disconnect is not one of them
    c.disconnect()
    c.loop_stop()


# --------------------------------------------------------------------------- analysis


@dataclass
class Kind:
    """One kind of exchange seen in the idle window."""

    name: str
    times: list[float] = field(default_factory=list)
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)
    payload: list[int] = field(default_factory=list)
    period: float = 0.0
    period_src: str = ""
    per_day: float = 0.0
    cost_src: str = "measured"

    def cost(self) -> tuple[float, float]:
        return statistics.mean(self.up), statistics.mean(self.down)


@dataclass
class Result:
    run: Run
    method: str
    connect: tuple[int, int] = (0, 0)
    scripted: tuple[int, int] = (0, 0)
    span_s: float = 0.0
    connect_s: float = 0.0
    idle_s: float = 0.0
    kinds: list[Kind] = field(default_factory=list)
    periodic: tuple[float, float] = (0.0, 0.0)
    locked_extra: tuple[float, float] = (0.0, 0.0)
    up: float = 0.0
    down: float = 0.0
    msgs_up: dict[str, list[int]] = field(default_factory=dict)
    msgs_down: dict[str, list[int]] = field(default_factory=dict)
    connect_up: dict[str, list[int]] = field(default_factory=dict)
    connect_down: dict[str, list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.up + self.down


def bursts(packets: list[Packet]) -> list[list[Packet]]:
    out: list[list[Packet]] = []
    for p in sorted(packets, key=lambda p: p.t):
        if out and p.t - out[-1][-1].t <= BURST_GAP_S:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def sums(packets: list[Packet]) -> tuple[int, int]:
    return (sum(p.size for p in packets if p.up), sum(p.size for p in packets if not p.up))


def short(topic: str, base: str) -> str:
    return topic.removeprefix(base + "/") if base else topic


def classify(run: Run, packets: list[Packet], t0: float, t1: float) -> dict[str, Kind]:
    """The exchanges between ``t0`` and ``t1``: keepalive or a publish of some topic."""
    kinds: dict[str, Kind] = {}
    seen = [s for s in run.observer.seen if t0 <= s.t < t1]
    for b in bursts([p for p in packets if t0 <= p.t < t1]):
        start, end = b[0].t, b[-1].t
        mine = [s for s in seen if start - 0.2 <= s.t <= end + 0.5]
        name = "+".join(sorted({short(s.topic, run.base) for s in mine})) or "keepalive"
        k = kinds.setdefault(name, Kind(name))
        up, down = sums(b)
        k.times.append(start)
        k.up.append(up)
        k.down.append(down)
        k.payload.append(sum(s.size for s in mine))
    return kinds


def analyse(run: Run, method: str) -> Result:
    """The day's bytes for one run (see the module docstring for the method)."""
    probe_pk = [p for p in run.packets if p.conn in run.probe_conns]
    pk = [p for p in run.packets if p.conn not in run.probe_conns]
    r = Result(run, method)
    r.connect = sums([p for p in pk if run.t_launch <= p.t < run.t_settled])
    r.scripted = sums([p for p in pk if run.t_settled <= p.t < run.t_day_end])
    r.connect_s = run.t_settled - run.t_launch
    r.span_s = run.t_day_end - run.t_launch
    r.idle_s = run.t_idle_end - run.t_day_end
    for msgs, up, down in ((run.observer.seen, r.connect_up, r.msgs_up),
                           (run.observer.sent, r.connect_down, r.msgs_down)):
        for s in msgs:
            if run.t_launch <= s.t < run.t_day_end:
                into = up if s.t < run.t_settled else down
                into.setdefault(short(s.topic, run.base), []).append(s.size)

    kinds = classify(run, pk, run.t_day_end, run.t_idle_end)
    ping = kinds.get("keepalive")
    if ping is None:
        ping = Kind("keepalive", cost_src="probe connection (2 s keepalive)")
        for b in bursts(probe_pk):
            if run.probe_span[0] <= b[0].t <= run.probe_span[1]:
                up, down = sums(b)
                ping.up.append(up)
                ping.down.append(down)
        if not ping.up:
            ping.up, ping.down = [2 * HDR + 2], [HDR + 2]
            ping.cost_src = "model (no exchange measured)"
        kinds["keepalive"] = ping
    publishes = [k for k in kinds.values() if k.name != "keepalive"]
    for k in kinds.values():
        if len(k.times) >= 2:
            k.period = statistics.median(b - a for a, b in zip(k.times, k.times[1:],
                                                               strict=False))
            k.period_src = "median gap seen"
        elif k.name == "keepalive" and r.idle_s >= 2.5 * run.keepalive_s:
            k.period = r.idle_s / len(k.times) if k.times else math.inf
            k.period_src = f"{len(k.times)} in the idle window"
        elif k.name == "keepalive":
            # paho 2.2 pings every keepalive even while it publishes (eclipse-paho/
            # paho.mqtt.python#813): behind a periodic publish at least as frequent, the pings
            # ride in those bursts, and are counted there.
            k.period = run.keepalive_s
            k.period_src = "configured keepalive (not seen twice)"
            faster = [p.period for p in publishes if len(p.times) >= 2]
            if faster and min(faster) <= run.keepalive_s * 1.05:
                k.period = math.inf
                k.period_src = ("not on their own: a periodic publish is at least as frequent, "
                                "any ping rides in its bursts")
        else:
            k.period = max(r.idle_s, 1.0)
            k.period_src = "seen once: counted as once per idle window (upper bound)"
            r.warnings.append(f"{k.name}: seen once in {r.idle_s:.0f} s idle; its period is not "
                              "known (counted as once per idle window)")
        k.per_day = DAY_S / k.period if k.period and math.isfinite(k.period) else 0.0
    r.kinds = sorted(kinds.values(), key=lambda k: k.name)
    rest = max(0.0, DAY_S - r.span_s) / DAY_S
    locked_share = min(run.locked_sim_s, DAY_S) / DAY_S
    up = down = 0.0
    for k in r.kinds:
        cu, cd = k.cost()
        up += k.per_day * cu * rest
        down += k.per_day * cd * rest
    r.periodic = (up, down)
    # A periodic message that is bigger while the room is locked costs more in those hours.
    extra = 0.0
    payload_sizes = dict(run.locked_payload)
    for k in r.kinds:
        topic = k.name
        idle_size = statistics.mean(k.payload) if k.payload else 0.0
        big = payload_sizes.get(f"{run.base}/{topic}") or payload_sizes.get(topic)
        if big is None:
            sizes = [s.size for s in run.observer.seen if short(s.topic, run.base) == topic
                     and any(a <= s.t < b for a, b in run.locked_real)]
            big = statistics.mean(sizes) if sizes else idle_size
        extra += k.per_day * locked_share * max(0.0, big - idle_size) * rest
    r.locked_extra = (extra, 0.0)
    r.up = r.connect[0] + r.scripted[0] + up + extra
    r.down = r.connect[1] + r.scripted[1] + down
    for name, period in run.config_periods.items():
        if period > r.idle_s and "keepalive" not in name:
            r.warnings.append(f"{name} = {period:.0f} s is longer than the idle window "
                              f"({r.idle_s:.0f} s): what it sends is not in the figure; run with "
                              f"--real-s {int(period * 2) + 10} to see it twice")
    return r


# --------------------------------------------------------------------------- report


def kb(n: float) -> str:
    return f"{n / 1000:,.1f}"


def msg_line(msgs: dict[str, list[int]]) -> str:
    return ", ".join(f"{t} {len(v)} x {statistics.mean(v):,.0f} B"
                     for t, v in sorted(msgs.items())) or "none"


def report(results: list[Result], out: Callable[[str], None] = print) -> None:
    """The table, the goal line and every input beside it."""
    methods = sorted({r.method for r in results})
    out("")
    out("link bytes per room per day, IP layer "
        f"({' and '.join(methods)}; KB = 1000 bytes)")
    if "capture" in methods:
        out("  capture: tcpdump on loopback, sum of IPv4 total lengths (no link header)")
    if "proxy" in methods:
        out(f"  proxy model: payload + {HDR} B per chunk read (IPv4 20 + TCP 20 + timestamps 12),"
            f" one {HDR} B ACK back per chunk, SYN/SYN-ACK {SYN} B, FIN/ACK {HDR} B")
    out(f"  segments over a 1500 B MTU counted as {MTU_MSS} B segments ({HDR} B header each)")
    out("  day = connect (once) + scripted day + periodic exchanges x (86,400 s - real span),"
        " periodic exchanges measured in the idle window")
    out("")
    ours = {r.run.tls: r for r in results if r.run.peer == "ours"}
    out(f"{'peer':<24}{'bytes up':>14}{'bytes down':>14}{'total/day (KB)':>16}"
        f"{'ratio to ours':>15}")
    for tls in (False, True):
        for r in [x for x in results if x.run.tls == tls]:
            base = ours.get(tls)
            ratio = f"{r.total / base.total:.2f}" if base and base.total else "-"
            out(f"{r.run.label:<24}{r.up:>14,.0f}{r.down:>14,.0f}{kb(r.total):>16}{ratio:>15}")
    for tls, goal in ((False, 300_000), (True, 400_000)):
        r = ours.get(tls)
        if r is not None:
            verdict = "met" if r.total <= goal else "NOT met"
            out(f"goal: ours <= {goal // 1000} KB/day {'TLS' if tls else 'plain'}: "
                f"{kb(r.total)} KB -> {verdict}")
    out("")
    out("inputs")
    for r in results:
        run = r.run
        dropped = run.counter.dropped
        lost = f", {dropped} packets dropped by the kernel" if dropped not in ("", "0") else ""
        out(f"{run.label} [{r.method}{lost}]")
        out("  config periods: " + ", ".join(f"{k} {v:g} s" for k, v in run.config_periods.items()))
        out(f"  connect (once a day; again at every reconnect): up {r.connect[0]:,} B, "
            f"down {r.connect[1]:,} B in {r.connect_s:.1f} s")
        out(f"    messages up:   {msg_line(r.connect_up)}")
        if r.connect_down:
            out(f"    messages down: {msg_line(r.connect_down)}")
        out(f"  scripted day: up {r.scripted[0]:,} B, down {r.scripted[1]:,} B; real span "
            f"{r.span_s:.1f} s ({run.sim_span}); locked {run.locked_sim_s / 3600:.2f} h of the day")
        out(f"    messages up:   {msg_line(r.msgs_up)}")
        out(f"    messages down: {msg_line(r.msgs_down)}")
        out(f"  idle window {r.idle_s:.0f} s, periodic exchanges:")
        for k in r.kinds:
            cu, cd = k.cost()
            when = (f"every {k.period:.1f} s" if math.isfinite(k.period)
                    else "none of its own")
            pay = f", payload {statistics.mean(k.payload):,.0f} B" if any(k.payload) else ""
            out(f"    {k.name}: seen {len(k.times)}, {when} ({k.period_src}); "
                f"{cu:,.0f} B up + {cd:,.0f} B down each ({k.cost_src}){pay}; "
                f"{k.per_day:,.0f}/day = {kb(k.per_day * (cu + cd))} KB")
        if r.locked_extra[0]:
            out(f"    bigger payload while locked ({run.locked_sim_s / 3600:.2f} h): "
                f"+{kb(r.locked_extra[0])} KB up")
        out(f"  per day: connect {kb(sum(r.connect))} + scripted {kb(sum(r.scripted))} + "
            f"periodic {kb(sum(r.periodic) + r.locked_extra[0])} = {kb(r.total)} KB")
        for w in r.warnings:
            out(f"  WARNING: {w}")


# --------------------------------------------------------------------------- driver


@dataclass
class Options:
    real_s: float = 120.0
    transports: tuple[bool, ...] = (False, True)
    peers: tuple[str, ...] = ("ours", "mqtt-io", "naive")
    counter: str = "auto"
    site: Path = DEFAULT_SITE


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dc-lb-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Bench:
    """What every run of one invocation shares."""

    opts: Options
    root: Path
    tls_files: TlsFiles
    tcpdump: str | None
    day_start: float
    windows: list[DayWindow]
    hold_s: float
    out: Callable[[str], None]
    started: list[Run] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_run(b: Bench, peer: str, tls: bool, recording: Recording | None
              ) -> tuple[Run, int, Recording | None]:
    """One (peer, transport) from its own fresh broker to the end of its scripted day; its
    idle window starts then and runs while the next runs go on."""
    work = b.root / f"{peer}-{'tls' if tls else 'plain'}"
    work.mkdir()
    broker = BenchBroker(work, b.tls_files)
    broker.start()
    counter: Capture | Proxy = Capture(b.tcpdump, work) if b.tcpdump else Proxy()
    try:
        port = counter.start(broker.tls_port if tls else broker.plain_port)
        observer = Observer(broker.obs_port)
    except Exception:
        broker.stop()
        raise
    run = Run(peer.removesuffix("-recording"), tls, counter, broker, observer, work)
    with b.lock:
        b.started.append(run)
    files = b.tls_files if tls else None
    driver: Any
    if peer.startswith("ours"):
        driver = Ours(run, b.opts.site, port, files)
    elif peer == "mqtt-io":
        driver = MqttIo(run, port, files, b.hold_s)
    else:
        assert recording is not None
        driver = Naive(run, port, files, recording)
    run.stop = driver.stop
    if hasattr(driver, "prepare"):
        b.out(f"{run.label}: preparing (the room off for the night)")
        driver.prepare(b.day_start)
    b.out(f"{run.label}: connecting")
    run.t_launch = time.time()
    driver.launch(b.day_start)
    observer.quiet()
    run.t_settled = time.time()
    b.out(f"{run.label}: scripted day")
    driver.day(b.day_start, b.windows)
    observer.quiet()
    run.t_day_end = time.time()
    rec = record(run, driver) if peer.startswith("ours") and not tls else None
    if peer != "ours-recording":
        b.out(f"{run.label}: idle for at least {b.opts.real_s:.0f} s, while the next runs go on")
    return run, port, rec


def run_bench(opts: Options, out: Callable[[str], None] = print) -> list[Result]:
    """Run every (peer, transport) asked for. The two transports of a peer run side by side
    (each on its own broker and counter); every idle window overlaps the later runs."""
    tcpdump = None if opts.counter == "proxy" else ensure_tcpdump()
    if opts.counter == "capture" and tcpdump is None:
        raise SystemExit("tcpdump is not available (install it: apt-get install tcpdump)")
    method = "capture" if tcpdump else "proxy"
    if opts.counter == "auto" and not tcpdump:
        out("tcpdump not available: counting with the proxy model")
    site_cfg = parse_config(opts.site.read_text())
    day_start, windows = the_day(site_cfg.site.timezone)
    groups = [[(p, tls) for tls in opts.transports] for p in ("ours", "mqtt-io", "naive")
              if p in opts.peers]
    if "naive" in opts.peers and ("ours", False) not in [x for g in groups for x in g]:
        groups.insert(0, [("ours-recording", False)])
    runs: list[tuple[Run, int]] = []
    recording: Recording | None = None
    with workdir() as root, ThreadPoolExecutor(max_workers=2) as pool:
        b = Bench(opts, root, make_pki(root, site_cfg.site.id), tcpdump, day_start, windows,
                  site_cfg.button.hold_s if site_cfg.button else 3.0, out)
        try:
            for group in groups:
                futures = [pool.submit(start_run, b, peer, tls, recording)
                           for peer, tls in group]
                for (peer, _), f in zip(group, futures, strict=True):
                    run, port, rec = f.result()
                    recording = rec or recording
                    if peer == "ours-recording":
                        finish(run, port, None, opts.real_s, idle=False)
                    else:
                        runs.append((run, port))
            with ThreadPoolExecutor(max_workers=max(1, len(runs))) as ends:
                for f in [ends.submit(finish, run, port, b.tls_files if run.tls else None,
                                      opts.real_s) for run, port in runs]:
                    f.result()
        finally:
            for run in b.started:
                if run.broker.proc is None or run.broker.proc.poll() is not None:
                    continue   # finished
                with contextlib.suppress(Exception):
                    run.stop()
                with contextlib.suppress(Exception):
                    run.counter.stop()
                with contextlib.suppress(Exception):
                    run.observer.close()
                run.broker.stop()
        return [analyse(run, method) for run, _ in runs]


def per_day(opts: Options, out: Callable[[str], None] = print
            ) -> tuple[dict[tuple[str, bool], float], list[Result]]:
    """Link bytes per room per day (IP layer, both ways) of every (peer, TLS?) ``opts`` asks
    for, keyed ``("ours" | "mqtt-io" | "naive", tls)``, with the results they come from (for
    :func:`report`). ``bench/room.py`` puts them in its table."""
    results = run_bench(opts, out)
    return {(r.run.peer, r.run.tls): r.total for r in results}, results


def finish(run: Run, port: int, files: TlsFiles | None, real_s: float, idle: bool = True
           ) -> None:
    """End a run's idle window, measure a keepalive exchange, stop the peer and the count."""
    if idle:
        left = run.t_day_end + real_s - time.time()
        if left > 0:
            time.sleep(left)  # the idle window runs in real time: that is what is measured
    run.t_idle_end = time.time()
    if idle and "keepalive" not in classify(run, run.counter.packets(), run.t_day_end,
                                            run.t_idle_end):
        probe(run, port, files)   # no keepalive exchange of its own was seen: measure one
    run.stop()
    time.sleep(0.3)
    run.packets = run.counter.stop()
    run.observer.close()
    run.broker.stop()
    run.stop = lambda: None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real-s", type=float, default=120.0,
                    help="real seconds of the idle window per peer (default 120)")
    ap.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                    help="--tls: TLS only; --no-tls: plain only; neither: both")
    ap.add_argument("--peers", default="ours,mqtt-io,naive",
                    help="comma-separated: ours, mqtt-io, naive")
    ap.add_argument("--counter", choices=("auto", "capture", "proxy"), default="auto",
                    help="auto: tcpdump capture when available, else the proxy model")
    ap.add_argument("--site", type=Path, default=DEFAULT_SITE,
                    help="the room's site config (its broker section is replaced)")
    args = ap.parse_args(argv)
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    unknown = set(peers) - {"ours", "mqtt-io", "naive"}
    if unknown:
        ap.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    transports = (False, True) if args.tls is None else (bool(args.tls),)
    results = run_bench(Options(args.real_s, transports, peers, args.counter, args.site))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
