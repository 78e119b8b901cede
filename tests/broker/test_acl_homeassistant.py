"""The Home Assistant grants, cell by cell, on the real district broker, then a real room agent
with Home Assistant on, through the same ACL.

Roles: ``room`` (room-a over TLS), ``ha`` (a ``homeassistant`` account granted ``power``) and
``ha_all`` (granted ``power`` and ``operator_check``), both on the loopback listener. Each cell
is checked by doing it, with the sentinel method of ``test_acl_matrix.py``: after the cell's
message is acknowledged, a sentinel goes to a topic the observer may read; once it is in, the
cell's message would have been in before it.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import HomeAssistant, parse_config
from agent.hardware.pins import MockFactory, mock_factory
from agent.runtime import Agent, Stop
from agent.store import StateDir
from broker.acl import HA_PREFIX_RE
from broker.local import BrokerProcess
from broker.provision import Site
from tests.broker.conftest import District, make_district, start
from tests.broker.helpers import Client, token

P = "diemcau/v2"
TOPICS: dict[str, str] = {
    "self/discovery": "homeassistant/device/diemcau_room-a/config",
    "other/discovery": "homeassistant/device/diemcau_room-b/config",
    "ha/status": "homeassistant/status",
    "self/ha_power": f"{P}/rooms/room-a/ha/power/codec/set",
    "other/ha_power": f"{P}/rooms/room-b/ha/power/codec/set",
    "self/ha_check": f"{P}/rooms/room-a/ha/operator_check/set",
    **{f"self/{k}": f"{P}/rooms/room-a/{k}" for k in
       ("availability", "info", "state", "host", "events", "replies", "commands", "schedule")},
}
ROLES = ("room", "ha", "ha_all")
HA_READS = {"self/discovery", "other/discovery", "ha/status", "self/availability", "self/info",
            "self/state", "self/host"}

# The contract, written out by hand (not derived from broker/acl.py).
MAY_PUBLISH: dict[str, set[str]] = {
    "room": {"self/discovery", "self/availability", "self/info", "self/state", "self/host",
             "self/events", "self/replies"},
    "ha": {"ha/status", "self/ha_power", "other/ha_power"},
    "ha_all": {"ha/status", "self/ha_power", "other/ha_power", "self/ha_check"},
}
MAY_READ: dict[str, set[str]] = {
    "room": {"ha/status", "self/ha_power", "self/ha_check", "self/commands", "self/schedule"},
    "ha": HA_READS,
    "ha_all": HA_READS,
}


@dataclass
class Clients:
    by_role: dict[str, Client]
    room_a: Client
    room_b: Client
    console: Client
    spy_ha: Client       # reads homeassistant/# (an ha account)
    spy_rooms: Client    # reads diemcau/v2/# (the console)

    def spy(self, cls: str) -> Client:
        return self.spy_ha if TOPICS[cls].startswith("homeassistant/") else self.spy_rooms

    def spy_sentinel(self, spy: Client) -> bytes:
        s = token()
        if spy is self.spy_ha:
            assert self.room_b.publish(f"{P}/rooms/room-b/state", s).value == 0
        else:
            assert self.console.publish(f"{P}/district/sentinel", s).value == 0
        return s

    def writer_of(self, cls: str) -> Client:
        """A client allowed to publish to ``cls``."""
        if cls == "self/discovery" or cls.split("/")[1] in (
                "availability", "info", "state", "host", "events", "replies"):
            return self.room_a
        if cls == "other/discovery":
            return self.room_b
        if cls in ("self/commands", "self/schedule"):
            return self.console
        return self.by_role["ha_all"]

    def read_sentinel(self, role: str) -> bytes:
        s = token()
        if role == "room":
            assert self.console.publish(f"{P}/rooms/room-a/commands", s).value == 0
        else:
            assert self.room_b.publish(f"{P}/rooms/room-b/state", s).value == 0
        return s


@pytest.fixture(scope="module")
def clients(district: District, district_broker: BrokerProcess) -> Iterator[Clients]:
    room_a = district.room("room-a").connect()
    room_b = district.room("room-b").connect()
    console = district.local("console").connect()
    by_role = {"room": room_a, "ha": district.local("ha").connect(),
               "ha_all": district.local("ha-all").connect()}
    spy_ha = district.local("ha").connect()
    spy_rooms = district.local("console").connect()
    spy_ha.subscribe("homeassistant/#")
    spy_ha.subscribe(f"{P}/rooms/room-b/state")
    spy_rooms.subscribe(f"{P}/#")
    by_role["room"].subscribe(f"{P}/rooms/room-a/commands")
    for role in ("ha", "ha_all"):
        by_role[role].subscribe(f"{P}/rooms/room-b/state")
    yield Clients(by_role, room_a, room_b, console, spy_ha, spy_rooms)
    for c in (room_a, room_b, console, *by_role.values(), spy_ha, spy_rooms):
        if c is not room_a:
            c.close()
    room_a.close()


@pytest.mark.parametrize("cls", list(TOPICS))
@pytest.mark.parametrize("role", ROLES)
def test_publish(clients: Clients, role: str, cls: str) -> None:
    allowed = cls in MAY_PUBLISH[role]
    msg = token()
    rc = clients.by_role[role].publish(TOPICS[cls], msg)
    spy = clients.spy(cls)
    assert spy.wait_message(clients.spy_sentinel(spy)) is not None, "sentinel never arrived"
    got = spy.received(msg, TOPICS[cls]) is not None
    assert got == allowed, f"{role} publish to {cls}: {'delivered' if got else 'dropped'}"
    assert rc.is_failure != allowed, f"PUBACK {rc}"


@pytest.mark.parametrize("cls", list(TOPICS))
@pytest.mark.parametrize("role", ROLES)
def test_subscribe(clients: Clients, role: str, cls: str) -> None:
    allowed = cls in MAY_READ[role]
    me = clients.by_role[role]
    me.subscribe(TOPICS[cls])
    msg = token()
    assert clients.writer_of(cls).publish(TOPICS[cls], msg).value == 0
    assert me.wait_message(clients.read_sentinel(role)) is not None, "sentinel never arrived"
    got = me.received(msg, TOPICS[cls]) is not None
    assert got == allowed, f"{role} reading {cls}: {'received' if got else 'not received'}"


def test_rendered_acl_names_the_grants(district: District) -> None:
    acl = district.site.acl.read_text()
    assert "pattern write homeassistant/device/diemcau_%u/config" in acl
    ha = acl.split("user staff.ha\n", 1)[1].split("\n\n", 1)[0]
    assert f"topic write {P}/rooms/+/ha/power/+/set" in ha
    assert "operator_check" not in ha and "commands" not in ha and "schedule" not in ha


def test_homeassistant_flags_are_checked(district: District,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert district.cli("--no-reload", "add-staff", "x", "--role", "viewer",
                        "--commands", "power") == 1
    assert "--commands is for the homeassistant role" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        district.cli("--no-reload", "add-staff", "x", "--role", "homeassistant",
                     "--commands", "power,schedule")
    assert "unknown schedule" in capsys.readouterr().err
    assert "x" not in district.site.load().staff


# ------------------------------------------------------------------------ a real room agent


def _room_yaml(district: District, site: str = "room-ha", ha: str = "") -> str:
    """A room agent's config on the district's loopback listener, Home Assistant on (``ha``:
    more of its section, e.g. ``discovery_prefix: …``)."""
    creds = district.dir / "rooms" / site / "credentials.yaml"
    return f"""\
site: {{id: {site}, name: "Xã Thử HA"}}
broker: {{host: 127.0.0.1, port: {district.local_port}, keepalive_s: 5,
          credentials_file: {creds}}}
devices:
  codec: {{role: codec, relay: {{pin: 26}}, order: 1, on_delay_s: 0, off_grace_s: 0}}
  camera: {{role: camera, relay: {{pin: 20}}, order: 2, on_delay_s: 0}}
homeassistant: {{enabled: true{", " + ha if ha else ""}}}
"""


@contextmanager
def _running_agent(config: str, tmp: Path) -> Iterator[tuple[Agent, MockFactory]]:
    """A real room agent (mock pins) running on its own thread until the block ends."""
    factory = mock_factory()
    agent = Agent(parse_config(config), factory, StateDir(tmp / "state"))
    stop = threading.Event()
    agent.start()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    try:
        yield agent, factory
    finally:
        stop.set()
        agent.queue.put(Stop())
        loop.join(10)
        agent.close()


class Inbox:
    """Messages a client receives, by topic, as a queue to wait on."""

    def __init__(self, client: Client) -> None:
        self.q: queue.Queue[tuple[str, bytes]] = queue.Queue()
        client.c.on_message = lambda _c, _u, m: self.q.put((m.topic, bytes(m.payload)))

    def next(self, topic: str, timeout: float = 10.0) -> bytes:
        while True:
            t, p = self.q.get(timeout=timeout)
            if t == topic:
                return p


def test_real_room_through_the_acl(district: District, district_broker: BrokerProcess,
                                   tmp_path: Path) -> None:
    """The room's discovery message gets through, Home Assistant's birth brings it again, its
    switch-off switches the pin; a command Home Assistant may not send never reaches it."""
    hass = district.local("ha").connect()
    inbox = Inbox(hass)
    hass.subscribe("homeassistant/#")
    hass.subscribe(f"{P}/rooms/room-ha/state")
    try:
        with _running_agent(_room_yaml(district), tmp_path) as (agent, factory):
            topic = "homeassistant/device/diemcau_room-ha/config"
            msg = json.loads(inbox.next(topic))
            switch = msg["cmps"]["power_camera"]
            assert switch["command_topic"] == f"{P}/rooms/room-ha/ha/power/camera/set"
            assert hass.publish("homeassistant/status", b"online").value == 0
            assert json.loads(inbox.next(topic)) == msg
            assert hass.publish(switch["command_topic"], b"OFF").value == 0
            while json.loads(inbox.next(f"{P}/rooms/room-ha/state"))["devices"]["camera"][
                    "power"] != "off":
                pass
            assert factory.pin(20).state is False
            # Not granted: the broker refuses it; the room never sees it.
            denied = hass.publish(f"{P}/rooms/room-ha/ha/operator_check/set", b"PRESS")
            assert denied.is_failure
            denied = hass.publish(f"{P}/rooms/room-ha/schedule", b"{}")
            assert denied.is_failure
            # A switch-on after them, allowed: once it is in, they would have been in before it.
            assert hass.publish(switch["command_topic"], b"ON").value == 0
            while json.loads(inbox.next(f"{P}/rooms/room-ha/state"))["devices"]["camera"][
                    "power"] != "on":
                pass
            assert agent.state.check is None and agent.state.schedule_version == ""
    finally:
        hass.close()


def test_a_room_with_another_discovery_prefix_gets_through(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A district whose Home Assistant and rooms use the discovery prefix ``trungtam/ha``:
    until the ACL names it a room's discovery message is refused; once ``ha-prefix`` lists it
    (and the CLI reloaded the broker), a real room agent's discovery reaches Home Assistant
    and Home Assistant's birth message reaches the room, the default prefix still works and a
    prefix not listed is still refused."""
    d = make_district(tmp_path / "d", "hadist", ["room-hp"],
                      {"ha": ["--role", "homeassistant", "--commands", "power"]})
    broker = start(d)
    room = d.room("room-hp").connect()
    hass = d.local("ha").connect()
    try:
        custom = "trungtam/ha/device/diemcau_room-hp/config"
        assert room.publish(custom, token()).is_failure, "the default ACL names homeassistant"
        before = broker.reload_count()
        assert d.cli("ha-prefix", "homeassistant", "trungtam/ha") == 0
        assert "trungtam/ha" in capsys.readouterr().out
        broker.wait_reloaded(before)
        assert d.site.load().ha_prefixes == ["homeassistant", "trungtam/ha"]
        assert not room.publish("homeassistant/device/diemcau_room-hp/config",
                                token()).is_failure
        assert room.publish("khac/device/diemcau_room-hp/config", token()).is_failure
        assert room.publish("trungtam/ha/device/diemcau_room-a/config", token()).is_failure, \
            "another room's discovery topic"
        inbox = Inbox(hass)
        hass.subscribe("trungtam/ha/#")
        config = _room_yaml(d, "room-hp", "discovery_prefix: trungtam/ha")
        with _running_agent(config, tmp_path / "agent"):
            msg = json.loads(inbox.next(custom))
            assert msg["cmps"]["power_camera"]["command_topic"] == \
                f"{P}/rooms/room-hp/ha/power/camera/set"
            assert hass.publish("trungtam/ha/status", b"online").value == 0
            assert json.loads(inbox.next(custom)) == msg, "the room heard Home Assistant's birth"
    finally:
        hass.close()
        room.close()
        broker.stop()


@pytest.mark.parametrize("prefix", ["home/#", "home/+/x", "/ha", "ha/", "$ha", "ha//x",
                                    "diemcau/v2/rooms/xa-a", "province/x"])
def test_a_bad_discovery_prefix_is_refused_with_its_option(
        district: District, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        prefix: str) -> None:
    acl = district.site.acl.read_text()
    assert district.cli("--no-reload", "ha-prefix", "homeassistant", prefix) == 1
    err = capsys.readouterr().err
    assert "ha-prefix: " in err and "--ha-prefix" not in err and repr(prefix) in err
    assert district.site.load().ha_prefixes == ["homeassistant"]
    assert district.site.acl.read_text() == acl
    d = tmp_path / "new"
    assert district.cli("--dir", str(d), "init", "--name", "moi", "--host", "localhost",
                        "--ha-prefix", prefix) == 1
    assert "--ha-prefix" in capsys.readouterr().err
    new = Site(d)
    assert not new.exists() and not new.ca.exists(), "a refused init makes no CA, no settings"


def test_a_province_broker_takes_no_discovery_prefix(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from broker.cli import main

    d = tmp_path / "prov"
    assert main(["--dir", str(d), "init", "--province", "--name", "tinh", "--host",
                 "localhost", "--ha-prefix", "homeassistant"]) == 1
    assert "only a district broker" in capsys.readouterr().err
    assert not Site(d).exists() and not Site(d).ca.exists()


def test_the_broker_takes_the_rooms_discovery_prefix_rule() -> None:
    pattern = HomeAssistant.model_json_schema()["properties"]["discovery_prefix"]["pattern"]
    assert pattern == f"^{HA_PREFIX_RE.pattern}$"
