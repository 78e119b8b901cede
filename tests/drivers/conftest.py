"""Shared helpers: a fake clock, and each driver paired with its emulator on a real pty.

``DEVICES`` is the contract table: every driver appears once with the emulator options and
driver settings that make them talk, so the fault tests run against all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.drivers import DeviceIdentity, Driver, build_driver
from agent.emulators import Emulator, make_emulator

FAST = 0.15  # reply timeout in tests: silence costs this much real time per command


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


GENERIC_SETTINGS: dict[str, Any] = {
    "reply_timeout_s": FAST,
    "send_terminator": "\r\n",
    "on": {"send": "POWER ON", "expect": "^OK$"},
    "standby": {"send": "POWER STANDBY", "expect": "^OK$"},
    "query_power": {"send": "POWER?", "on_regex": "=ON$", "standby_regex": "=STANDBY$"},
    "ping": {"send": "PING", "expect": "^PONG$"},
    "error_regex": "^ERROR",
    "identity": {"send": "ID?", "model_regex": r"MODEL=(\S+)", "serial_regex": r"SERIAL=(\S+)"},
}


@dataclass
class Case:
    """How to pair one driver with its emulator."""

    emulator: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    baudrate: int = 9600
    line_protocol: bool = True      # False: binary (noise is skipped, not fatal)
    # what the emulator's defaults tell, and the commands that ask it
    identity: DeviceIdentity = field(default_factory=DeviceIdentity)
    identity_queries: tuple[bytes, ...] = ()
    swap: dict[str, Any] = field(default_factory=dict)  # emulator attributes of another unit
    swapped: DeviceIdentity = field(default_factory=DeviceIdentity)  # …and what that unit tells
    garble: tuple[int, int] = (0, 0)                # identity reply lines to garble


DEVICES: dict[str, Case] = {
    "cisco_xapi": Case({"password": "s3cret"},
                       {"password": "s3cret", "login_probe_s": 0.1, "reply_timeout_s": FAST},
                       115200,
                       identity=DeviceIdentity("Cisco Codec Pro", "FOC2231N1AB"),
                       identity_queries=(b"xStatus SystemUnit ProductId",
                                         b"xStatus SystemUnit Hardware Module SerialNumber"),
                       swap={"product_id": "Cisco Room Kit", "serial_number": "FOC2402X0YZ"},
                       swapped=DeviceIdentity("Cisco Room Kit", "FOC2402X0YZ")),
    "poly_group": Case({}, {"command_gap_s": 0, "reply_timeout_s": FAST},
                       identity=DeviceIdentity("Group500", "82161234567890AB"),
                       identity_queries=(b"whoami",),
                       swap={"model": "Group700", "serial_number": "82169876543210CD"},
                       swapped=DeviceIdentity("Group700", "82169876543210CD"),
                       garble=(3, 3)),
    "yealink_vc": Case({}, {"reply_timeout_s": FAST}, 115200),    # see test_identity.py
    "sony_visca": Case({}, {"reply_timeout_s": FAST, "completion_timeout_s": FAST},
                       line_protocol=False, identity=DeviceIdentity("Sony 0519", None),
                       identity_queries=(bytes.fromhex("81090002ff"),),
                       swap={"model_id": 0x0617}, swapped=DeviceIdentity("Sony 0617", None)),
    "extron_sis": Case({}, {"reply_timeout_s": FAST},
                       identity=DeviceIdentity("60-1234-01", None), identity_queries=(b"N",),
                       swap={"part_number": "60-1418-01"},
                       swapped=DeviceIdentity("60-1418-01", None)),
    "generic_line": Case({}, GENERIC_SETTINGS, identity=DeviceIdentity("EMU-1", "SN-0001"),
                         identity_queries=(b"ID?",), swap={"serial_number": "SN-0002"},
                         swapped=DeviceIdentity("EMU-1", "SN-0002")),
}
QUERYING = sorted(n for n, c in DEVICES.items() if c.identity_queries)
"""Drivers that ask the device who it is (Yealink only listens for its version line)."""


class Pair:
    """A started emulator and a driver pointed at its stable link."""

    def __init__(self, name: str, clock: FakeClock, emu_opts: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        case = DEVICES[name]
        self.name = name
        self.clock = clock
        self.emu: Emulator = make_emulator(name, clock=clock,
                                           **{**case.emulator, **(emu_opts or {})})
        self.emu.start()
        self.driver: Driver = build_driver(name, url=self.emu.url, baudrate=case.baudrate,
                                           settings={**case.settings, **(settings or {})},
                                           device=name, clock=clock, sleep=clock.sleep)

    def close(self) -> None:
        self.driver.close()
        self.emu.stop()
        assert self.emu.errors == [], "the emulator itself failed"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pair_factory(clock: FakeClock) -> Iterator[Any]:
    """``pair_factory(name, emu_opts=None, settings=None) -> Pair``; all closed afterwards."""
    made: list[Pair] = []

    def make(name: str, emu_opts: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> Pair:
        p = Pair(name, clock, emu_opts, settings)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture(params=sorted(DEVICES))
def pair(request: pytest.FixtureRequest, pair_factory: Any) -> Pair:
    """Each driver with its emulator, in turn."""
    return pair_factory(request.param)
