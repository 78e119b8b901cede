"""District -> province bridge, with real brokers on both sides, all made by the CLI.

Three districts bridge into one province:

* ``vanquan`` — commands from the province allowed on both sides;
* ``camlo`` — the province would send commands, the district does not accept them;
* ``locbinh`` — the district would accept commands, the province does not allow them.

``camlo`` runs the way Debian does it: Debian's own main config (pid, persistence, log) with
our fragment in ``conf.d``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.local import BrokerProcess, free_port
from broker.provision import Site
from tests.broker.conftest import District, make_district, read_bundle, start
from tests.broker.helpers import Client, token

P = "diemcau/v2"
NO_MATCHING_SUBSCRIBERS = 16
NOT_AUTHORIZED = 135


@dataclass
class World:
    province: District
    districts: dict[str, District]
    rooms: dict[str, Client]
    console: Client  # the province console, subscribed to all but commands


def _debian_style(d: District) -> BrokerProcess:
    """Run ``d`` as Debian would: its stock mosquitto.conf including conf.d/diemcau.conf."""
    main = d.dir / "debian-mosquitto.conf"
    data = d.dir / "debian-data"
    data.mkdir()
    main.write_text(f"pid_file {d.dir / 'mosquitto.pid'}\n"
                    f"persistence true\npersistence_location {data}/\n"
                    f"log_dest file {data}/mosquitto.log\nlog_type all\n"
                    f"user {getpass.getuser()}\n"
                    f"include_dir {d.site.fragment.parent}\n")
    return BrokerProcess(main, [d.tls_port, d.local_port], data / "mosquitto.log").start()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bridge")
    prov = District(root / "langson", Site(root / "langson"), free_port(), free_port())
    prov.init("langson", province=True)
    for args in (["vanquan", "--allow-commands"], ["camlo", "--allow-commands"],
                 ["locbinh"]):
        assert prov.cli("--no-reload", "add-district", *args) == 0
    for who, role in (("pconsole", "console"), ("pviewer", "viewer")):
        assert prov.cli("--no-reload", "add-staff", who, "--role", role) == 0
        prov.accounts[who] = read_bundle(prov.dir / "staff" / who)
    procs = [start(prov)]
    districts: dict[str, District] = {}
    rooms: dict[str, Client] = {}
    try:
        for name, allow in (("vanquan", True), ("camlo", False), ("locbinh", True)):
            d = make_district(root / name, name, [f"{name}-room"], {})
            assert d.cli("--no-reload", "bridge", "--bundle",
                         str(prov.dir / "districts" / name), "--host", "127.0.0.1",
                         *(["--allow-commands"] if allow else [])) == 0
            procs.append(_debian_style(d) if name == "camlo" else start(d))
            districts[name] = d
            rooms[name] = d.room(f"{name}-room").connect()
            rooms[name].subscribe(f"{P}/rooms/{name}-room/commands")
        console = prov.local("pconsole").connect()
        # Everything but commands: a command publish must find only bridges as subscribers.
        for kind in ("availability", "state", "events", "replies"):
            console.subscribe(f"province/+/{P}/rooms/+/{kind}")
        yield World(prov, districts, rooms, console)
        console.close()
        for c in rooms.values():
            c.close()
    finally:
        for p in reversed(procs):
            p.stop()


def _bridge_up(w: World, name: str) -> None:
    """Publish the room's retained state and wait for it at the province. The bridge
    subscribes to its incoming topics as soon as it connects, before forwarding anything, so
    once this arrives the bridge's command subscription (if any) is in place."""
    state = token()
    assert w.rooms[name].publish(f"{P}/rooms/{name}-room/state", state, retain=True).value == 0
    assert w.console.wait_message(
        state, f"province/{name}/{P}/rooms/{name}-room/state", timeout=15), \
        f"{name}: state never reached the province"


@pytest.mark.parametrize("name", ["vanquan", "camlo", "locbinh"])
def test_room_state_and_events_reach_the_province(world: World, name: str) -> None:
    _bridge_up(world, name)
    for kind in ("events", "availability"):
        msg = token()
        assert world.rooms[name].publish(f"{P}/rooms/{name}-room/{kind}", msg).value == 0
        assert world.console.wait_message(msg, f"province/{name}/{P}/rooms/{name}-room/{kind}")


def test_province_keeps_retained_state(world: World) -> None:
    """A province dashboard that connects later still gets each room's last state."""
    _bridge_up(world, "vanquan")
    last = world.console.messages[-1].payload
    viewer = world.province.local("pviewer").connect()
    try:
        viewer.subscribe(f"province/vanquan/{P}/rooms/+/state")
        got = viewer.wait_message(last)
        assert got is not None and got.retain
    finally:
        viewer.close()


def test_command_from_province_delivered_when_both_sides_allow(world: World) -> None:
    _bridge_up(world, "vanquan")
    cmd = token()
    rc = world.console.publish(f"province/vanquan/{P}/rooms/vanquan-room/commands", cmd)
    assert rc.value == 0, rc
    assert world.rooms["vanquan"].wait_message(cmd, f"{P}/rooms/vanquan-room/commands")
    reply = token()
    assert world.rooms["vanquan"].publish(f"{P}/rooms/vanquan-room/replies", reply).value == 0
    assert world.console.wait_message(reply, f"province/vanquan/{P}/rooms/vanquan-room/replies")


def test_command_not_delivered_when_district_refuses(world: World) -> None:
    """The province broker itself reports that nobody (no bridge) takes the command: the
    publisher is a console connection that subscribes to nothing (MQTT v5 PUBACK 16)."""
    _bridge_up(world, "camlo")
    sender = world.province.local("pconsole").connect()
    try:
        for name, expect in (("camlo", NO_MATCHING_SUBSCRIBERS), ("vanquan", 0)):
            rc = sender.publish(f"province/{name}/{P}/rooms/{name}-room/commands", token())
            assert rc.value == expect, (name, rc)
    finally:
        sender.close()
    conf = world.districts["camlo"].site.fragment.read_text()
    assert " in " not in conf.split("connection ")[1]


def test_command_not_delivered_when_province_refuses(world: World) -> None:
    _bridge_up(world, "locbinh")
    rc = world.console.publish(f"province/locbinh/{P}/rooms/locbinh-room/commands", token())
    assert rc.value == NOT_AUTHORIZED, rc


def test_district_cannot_write_outside_its_prefix(world: World) -> None:
    """The province ACL gives each district bridge only province/<district>/...: a district's
    bridge credentials cannot pose as another district or command rooms."""
    bundle = world.province.dir / "districts" / "camlo"
    acct = read_bundle(bundle)
    c = Client(world.province.tls_port, acct.username, acct.password, acct.tls).connect()
    try:
        ok, bad = token(), token()
        assert c.publish(f"province/vanquan/{P}/rooms/vanquan-room/state", bad).is_failure
        assert c.publish(f"province/camlo/{P}/rooms/camlo-room/commands", bad).is_failure
        assert c.publish(f"province/camlo/{P}/rooms/camlo-room/state", ok).value == 0
        assert world.console.wait_message(ok)
        assert world.console.received(bad) is None
    finally:
        c.close()


def test_bridge_config(world: World) -> None:
    conf = world.districts["vanquan"].site.conf.read_text()
    for line in ("bridge_protocol_version mqttv50", "cleansession false",
                 "bridge_insecure false", "topic rooms/+/commands in 1 diemcau/v2/ "
                 f"province/vanquan/{P}/"):
        assert line in conf
    assert Path(world.districts["vanquan"].site.conf).stat().st_mode & 0o007 == 0
