"""Home Assistant device discovery against a real Mosquitto, with the room agent on mock pins.

Home Assistant itself is played by a plain MQTT client doing what Home Assistant does: it
reads ``homeassistant/#``, announces itself on ``homeassistant/status`` and publishes plain
``ON``/``OFF``/``PRESS`` to the command topics a discovery message names. The discovery
payload is checked against a table of the keys Home Assistant documents (below), and every
``value_template`` is rendered, with Jinja2's sandbox as Home Assistant renders it, against the
``state`` and ``host`` messages the room really publishes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.config import ConfigError, parse_config
from agent.link import homeassistant as ha
from agent.link.topics import HaTopics, RoomTopics
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import (
    BASE,
    SITE,
    Watcher,
    running,
    schedule,
    site_yaml,
    start_agent,
    status_when_up,
)

DISCOVERY = f"device/diemcau_{SITE}/config"   # under the watcher's base "homeassistant"
HA_SET = "ha/{}/set"

# ---------------------------------------------------------------------------------------------
# What Home Assistant documents for a discovery message. Sources (Home Assistant documentation):
#   https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload  (dev, o, cmps,
#       the shared options, "p" and unique_id required per component, the abbreviations)
#   https://www.home-assistant.io/integrations/mqtt/#using-abbreviations-in-the-discovery-payload
#   https://www.home-assistant.io/integrations/switch.mqtt/         (command_topic required)
#   https://www.home-assistant.io/integrations/binary_sensor.mqtt/  (state_topic required)
#   https://www.home-assistant.io/integrations/sensor.mqtt/         (state_topic required)
#   https://www.home-assistant.io/integrations/button.mqtt/         (command_topic required)
#   https://www.home-assistant.io/integrations/binary_sensor/#device-class,
#   https://www.home-assistant.io/integrations/sensor/#device-class (device and state classes)
# Written out by hand: not derived from agent/link/homeassistant.py.
ABBREVIATIONS = {"p": "platform", "dev": "device", "o": "origin", "cmps": "components",
                 "sw": "sw_version", "url": "support_url", "ids": "identifiers",
                 "mf": "manufacturer", "mdl": "model", "avty": "availability",
                 "stat_t": "state_topic", "cmd_t": "command_topic", "uniq_id": "unique_id",
                 "val_tpl": "value_template", "dev_cla": "device_class",
                 "stat_cla": "state_class", "unit_of_meas": "unit_of_measurement",
                 "ent_cat": "entity_category", "ic": "icon", "pl_on": "payload_on",
                 "pl_off": "payload_off", "pl_prs": "payload_press", "opt": "optimistic",
                 "ret": "retain", "stat_on": "state_on", "stat_off": "state_off",
                 "sug_dsp_prc": "suggested_display_precision", "ops": "options",
                 "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
                 "t": "topic"}
TOP_LEVEL = {"device", "origin", "components", "availability", "availability_mode",
             "availability_topic", "state_topic", "command_topic", "qos", "encoding", "~"}
TOP_REQUIRED = {"device", "origin", "components"}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id",
               "sw_version", "hw_version", "serial_number", "suggested_area",
               "configuration_url", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ORIGIN_REQUIRED = {"name"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
ENTITY_COMMON = {"platform", "unique_id", "name", "icon", "entity_category", "qos",
                 "availability", "availability_mode", "enabled_by_default", "object_id",
                 "json_attributes_topic", "json_attributes_template", "encoding",
                 "entity_picture", "device_class"}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {   # platform: (required, other keys)
    "switch": ({"command_topic"}, {"state_topic", "value_template", "state_on", "state_off",
                                   "payload_on", "payload_off", "optimistic", "retain",
                                   "command_template"}),
    "binary_sensor": ({"state_topic"}, {"value_template", "payload_on", "payload_off",
                                        "expire_after", "force_update", "off_delay"}),
    "sensor": ({"state_topic"}, {"value_template", "unit_of_measurement", "state_class",
                                 "suggested_display_precision", "options", "expire_after",
                                 "force_update", "last_reset_value_template"}),
    "button": ({"command_topic"}, {"payload_press", "retain", "command_template"}),
}
DEVICE_CLASSES = {
    "switch": {"outlet", "switch"},
    "binary_sensor": {"problem", "power", "lock", "running", "connectivity", "plug"},
    "sensor": {"temperature", "duration", "enum", "data_size", "power"},
    "button": {"identify", "restart", "update"},
}
UNITS = {"temperature": {"°C", "°F", "K"}, "duration": {"d", "h", "min", "s", "ms"}}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
SHARED_INTO_COMPONENTS = {"state_topic", "command_topic", "qos", "encoding", "availability"}
# ---------------------------------------------------------------------------------------------


def _full(d: dict[str, Any]) -> dict[str, Any]:
    return {ABBREVIATIONS.get(k, k): v for k, v in d.items()}


def discovery_problems(msg: dict[str, Any]) -> list[str]:
    """What in ``msg`` Home Assistant's documentation does not allow (empty: all well)."""
    out: list[str] = []
    top = _full(msg)
    out += [f"top: unknown key {k}" for k in sorted(set(top) - TOP_LEVEL)]
    out += [f"top: missing {k}" for k in sorted(TOP_REQUIRED - set(top))]
    dev = _full(top.get("device", {}))
    out += [f"device: unknown key {k}" for k in sorted(set(dev) - DEVICE_KEYS)]
    if not dev.get("identifiers") and not dev.get("connections"):
        out.append("device: needs identifiers or connections")
    origin = _full(top.get("origin", {}))
    out += [f"origin: unknown key {k}" for k in sorted(set(origin) - ORIGIN_KEYS)]
    out += [f"origin: missing {k}" for k in sorted(ORIGIN_REQUIRED - set(origin))]
    for a in top.get("availability", []):
        out += [f"availability: unknown key {k}" for k in sorted(set(_full(a)) -
                                                                 AVAILABILITY_KEYS)]
        if "topic" not in _full(a):
            out.append("availability: missing topic")
    shared = {k: v for k, v in top.items() if k in SHARED_INTO_COMPONENTS}
    ids: set[str] = set()
    for key, raw in top.get("components", {}).items():
        c = {**shared, **_full(raw)}
        platform = c.get("platform")
        if platform not in PLATFORMS:
            out.append(f"{key}: platform {platform!r} not one this table knows")
            continue
        required, other = PLATFORMS[platform]
        out += [f"{key}: missing {k}" for k in sorted({"unique_id", *required} - set(c))]
        allowed = ENTITY_COMMON | required | other | SHARED_INTO_COMPONENTS
        out += [f"{key}: {platform} has no key {k}" for k in sorted(set(c) - allowed)]
        uid = c.get("unique_id")
        if uid in ids:
            out.append(f"{key}: unique_id {uid} used twice")
        ids.add(uid)
        dc = c.get("device_class")
        if dc is not None and dc not in DEVICE_CLASSES[platform]:
            out.append(f"{key}: {platform} device_class {dc!r}")
        if dc in UNITS and c.get("unit_of_measurement") not in UNITS[dc]:
            out.append(f"{key}: unit {c.get('unit_of_measurement')!r} for {dc}")
        if dc == "enum" and (not c.get("options") or "unit_of_measurement" in c):
            out.append(f"{key}: an enum sensor needs options and no unit")
        if "state_class" in c and c["state_class"] not in STATE_CLASSES:
            out.append(f"{key}: state_class {c['state_class']!r}")
        if "entity_category" in c and c["entity_category"] not in ENTITY_CATEGORIES:
            out.append(f"{key}: entity_category {c['entity_category']!r}")
        if platform == "switch" and c.get("optimistic") is not False:
            out.append(f"{key}: a switch must not be optimistic (a refusal must show)")
    return out


def component_config(msg: dict[str, Any], key: str) -> dict[str, Any]:
    """A component as Home Assistant sees it: the shared options under its own."""
    shared = {k: v for k, v in _full(msg).items() if k in SHARED_INTO_COMPONENTS}
    return {**shared, **_full(msg["cmps"][key])}


JINJA = ImmutableSandboxedEnvironment()


def render(component: dict[str, Any], payload: Any) -> str:
    """The component's value_template rendered on a payload, as Home Assistant does."""
    return JINJA.from_string(component["value_template"]).render(value_json=payload).strip()


def ha_yaml(broker: LocalBroker, section: str = "homeassistant: {enabled: true}\n",
            **kw: Any) -> str:
    return site_yaml(broker, **kw) + section


@contextmanager
def home_assistant(broker: LocalBroker) -> Iterator[Watcher]:
    """A client in Home Assistant's place: everything under ``homeassistant/``."""
    w = Watcher(broker, base="homeassistant")
    try:
        yield w
    finally:
        w.close()


@contextmanager
def room_watcher(broker: LocalBroker) -> Iterator[Watcher]:
    w = Watcher(broker)
    try:
        yield w
    finally:
        w.close()


# ------------------------------------------------------------------------------ the payload


def test_payload_keys_are_the_ones_home_assistant_documents() -> None:
    cfg = parse_config(ha_yaml(_Port()))   # type: ignore[arg-type]
    topics = HaTopics("homeassistant", RoomTopics("diemcau/v2", SITE))
    msg = ha.discovery_message(cfg, topics, "0.2.0")
    assert discovery_problems(msg) == []
    assert msg["dev"]["identifiers"] == [f"diemcau_{SITE}"] and msg["dev"]["name"] == "Xã Thử"
    assert msg["o"] == {"name": "diemcau", "sw": "0.2.0", "url": ha.ORIGIN_URL}
    assert msg["availability"] == [{"topic": f"{BASE}/availability",
                                    "payload_available": "online",
                                    "payload_not_available": "offline"}]
    platforms = {k: c["p"] for k, c in msg["cmps"].items()}
    assert {k for k, p in platforms.items() if p == "switch"} == {
        "power_codec", "power_camera", "power_amplifier"}
    assert platforms["lock"] == "binary_sensor" and platforms["operator_check"] == "button"
    assert {"cpu_temp", "mem_used", "disk_used", "load", "uptime", "host_alert"} <= set(
        platforms)
    camera = component_config(msg, "power_camera")
    assert camera["command_topic"] == f"{BASE}/ha/power/camera/set"
    assert camera["state_topic"] == f"{BASE}/state"
    assert component_config(msg, "cpu_temp")["state_topic"] == f"{BASE}/host"
    assert component_config(msg, "operator_check")["command_topic"] == (
        f"{BASE}/ha/operator_check/set")
    # The table catches what Home Assistant would refuse (the checker itself can fail).
    broken = json.loads(json.dumps(msg))
    del broken["cmps"]["power_camera"]["command_topic"]
    broken["cmps"]["lock"]["unique_id"] = broken["cmps"]["help"]["unique_id"]
    broken["cmps"]["cpu_temp"]["unit_of_measurement"] = "C"
    broken["cmps"]["power_codec"]["optimistic"] = True
    del broken["o"]["name"]
    assert discovery_problems(broken) == [
        "origin: missing name", "power_codec: a switch must not be optimistic (a refusal "
        "must show)", "power_camera: missing command_topic", "help: unique_id "
        f"diemcau_{SITE}_help used twice", "cpu_temp: unit 'C' for temperature"]


class _Port:
    port = 1883


def test_without_power_or_check_the_room_is_shown_read_only() -> None:
    cfg = parse_config(ha_yaml(_Port(), "homeassistant: {enabled: true, commands: [], "  # type: ignore[arg-type]
                                         "language: en}\n"))
    msg = ha.discovery_message(cfg, HaTopics("ha", RoomTopics("diemcau/v2", SITE)), "0.2.0")
    assert discovery_problems(msg) == []
    assert msg["cmps"]["power_camera"]["p"] == "binary_sensor"
    assert "operator_check" not in msg["cmps"]
    assert not any("command_topic" in c for c in msg["cmps"].values())
    assert msg["cmps"]["lock"]["name"] == "Locked (test/session)"


@pytest.mark.parametrize(("section", "problem"), [
    ("homeassistant: {enabled: true, commands: [power, schedule]}",
     "homeassistant.commands.1: Input should be 'power' or 'operator_check' (line 12)"),
    ("homeassistant: {enabled: true, commands: [power, power]}",
     "homeassistant.commands: power named more than once (line 12)"),
    ("homeassistant: {discovery_prefix: 'home/#'}",
     "homeassistant.discovery_prefix: String should match pattern "
     "'^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$' (line 12)"),
    ("homeassistant: {enable: true}",
     "homeassistant.enable: unknown field (check its spelling and indentation) (line 12)"),
])
def test_bad_section_is_refused_with_its_field(section: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ha_yaml(_Port(), section + "\n"))  # type: ignore[arg-type]
    assert e.value.problems == [problem]


def test_off_by_default() -> None:
    cfg = parse_config(site_yaml(_Port()))  # type: ignore[arg-type]
    assert cfg.homeassistant.enabled is False
    assert ha.ha_topics(cfg, RoomTopics("diemcau/v2", SITE)) is None


# ------------------------------------------------------------------------------ on the broker


def test_discovery_retained_on_connect_and_again_after_birth(broker: LocalBroker,
                                                            short_tmp: Path) -> None:
    cfg = parse_config(ha_yaml(broker))
    with room_watcher(broker) as w, running(cfg, short_tmp / "state"):
        w.availability("online")
        state = w.wait("state")
        host = w.wait("host")
        with home_assistant(broker) as first:
            first.wait(DISCOVERY)   # live or retained: it has been sent
        # Home Assistant connects later: the discovery message is waiting for it, retained.
        with home_assistant(broker) as hass:
            msg = hass.wait(DISCOVERY)
            assert [r for t, _, r in hass.messages if t == DISCOVERY] == [True]
            assert discovery_problems(msg) == []
            # Every template gives Home Assistant a value it understands, on the room's
            # real messages.
            for key, comp in msg["cmps"].items():
                if comp["p"] == "button":
                    continue   # no state
                payload = host if comp.get("state_topic") == f"{BASE}/host" else state
                value = render(component_config(msg, key), payload)
                if comp["p"] == "switch":
                    assert value == "on", key
                elif comp["p"] == "binary_sensor":
                    assert value in ("ON", "OFF", "None"), (key, value)
                elif comp["p"] == "sensor" and key == "room_power":
                    assert value == "on"
                elif comp["p"] == "sensor":
                    assert value == "None" or float(value) >= 0, (key, value)
            # Home Assistant restarts and says so: the room sends its discovery again.
            mark = len(hass.messages)
            hass.publish("status", b"online")
            again = hass.wait(DISCOVERY, since=mark)
            assert again == msg
            # Its last will ("offline") asks for nothing.
            mark = len(hass.messages)
            hass.publish("status", b"offline")
            hass.publish("status", b"online")
            hass.wait(DISCOVERY, since=mark)
            assert sum(1 for t, _, _ in hass.messages[mark:] if t == DISCOVERY) == 1


def test_discovery_sent_again_on_every_reconnect(tmp_path: Path, short_tmp: Path) -> None:
    """A broker restarted without its retained messages gets the discovery message back from
    the room as soon as the room reconnects."""
    broker = LocalBroker(tmp_path / "broker", persistence=False)
    broker.start()
    try:
        with running(parse_config(ha_yaml(broker)), short_tmp / "state"):
            with home_assistant(broker) as hass:
                hass.wait(DISCOVERY)
            broker.stop()
            broker.start()   # same port, nothing retained
            with home_assistant(broker) as hass:
                # Only the room can bring it back (back-off 1-3 s, longer on a loaded machine).
                msg = hass.wait(DISCOVERY, timeout=90)
                assert discovery_problems(msg) == []
            with home_assistant(broker) as late:
                assert late.wait(DISCOVERY) == msg
                assert [r for t, _, r in late.messages if t == DISCOVERY] == [True]
    finally:
        broker.stop()


def test_switch_off_outside_a_window_switches_the_pin(broker: LocalBroker,
                                                      short_tmp: Path) -> None:
    cfg = parse_config(ha_yaml(broker))
    with room_watcher(broker) as w, running(cfg, short_tmp / "state") as room, \
            home_assistant(broker) as hass:
        w.availability("online")
        msg = hass.wait(DISCOVERY)
        camera = component_config(msg, "power_camera")
        assert room.factory.pin(20).state is True      # active-low on NC: powered = high
        w.client.publish(camera["command_topic"], b"OFF", qos=1).wait_for_publish(5)
        state = w.wait("state", lambda s: s["devices"]["camera"]["power"] == "off")
        assert room.factory.pin(20).state is False
        assert render(camera, state) == camera["state_off"]
        assert state["devices"]["codec"]["power"] == "on"
        reply = w.wait("replies", lambda r: r["command_id"].startswith("ha-"))
        assert reply["status"] == "accepted"
        step = w.event("power_step", device="camera")
        assert step["data"]["reason"] == f"district:{reply['command_id']}"
        # ...and on again.
        mark = len(w.messages)
        w.client.publish(camera["command_topic"], b"ON", qos=1).wait_for_publish(5)
        state = w.wait("state", lambda s: s["devices"]["camera"]["power"] == "on", since=mark)
        assert room.factory.pin(20).state is True
        assert render(camera, state) == camera["state_on"]


def test_switch_off_inside_a_lock_is_refused_and_the_switch_stays_on(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(ha_yaml(broker))
    with room_watcher(broker) as w, running(cfg, short_tmp / "state") as room, \
            home_assistant(broker) as hass:
        w.availability("online")
        msg = hass.wait(DISCOVERY)
        w.publish("schedule", schedule(10), retain=True)   # lead 15 min: locked now
        w.event("lock_engaged", window_id="t1")
        locked = w.wait("state", lambda s: s["lock"]["locked"])
        assert render(component_config(msg, "lock"), locked) == "ON"
        camera = component_config(msg, "power_camera")
        w.client.publish(camera["command_topic"], b"OFF", qos=1).wait_for_publish(5)
        reply = w.wait("replies", lambda r: r["command_id"].startswith("ha-"))
        assert reply["status"] == "refused" and "locked by test t1" in reply["reason"]
        assert room.factory.pin(20).state is True
        # The retained state a reader gets now still shows the camera on.
        fresh = Watcher(broker)
        try:
            state = fresh.wait("state")
        finally:
            fresh.close()
        assert state["devices"]["camera"]["power"] == "on"
        assert render(camera, state) == camera["state_on"]
        assert not any(e["kind"] == "lock_overridden" for e in w.events())


def test_operator_check_button_asks_the_room(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(ha_yaml(broker))
    with room_watcher(broker) as w, running(cfg, short_tmp / "state"), \
            home_assistant(broker) as hass:
        w.availability("online")
        button = component_config(hass.wait(DISCOVERY), "operator_check")
        w.client.publish(button["command_topic"], button["payload_press"].encode(),
                         qos=1).wait_for_publish(5)
        asked = w.event("operator_check_requested", by="homeassistant")
        assert asked["data"]["timeout_s"] == cfg.timing.check_timeout_s
        w.wait("state", lambda s: s["led"] == "check_requested")


def test_bad_payloads_are_refused_with_an_event_and_change_nothing(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(ha_yaml(broker, "homeassistant: {enabled: true, commands: [power]}\n"))
    with room_watcher(broker) as w, running(cfg, short_tmp / "state") as room:
        w.availability("online")
        before = w.wait("state")
        cases = [
            ("ha/power/camera/set", b"MAYBE", "payload: expected ON or OFF"),
            ("ha/power/camera/set", b"\xff\xfeOFF", "payload: expected ON or OFF"),
            ("ha/power/projector/set", b"OFF", "device: this room has no device 'projector'"),
            ("ha/operator_check/set", b"PRESS", "operator_check: Home Assistant may not"),
            ("ha/power/camera/get", b"OFF", "topic: not a Home Assistant command topic"),
        ]
        for topic, payload, _ in cases:
            w.publish(topic, payload)
        refused = w.until(lambda evs: sum(e["kind"] == "ha_command_refused"
                                          for e in evs) == len(cases))
        got = [e["data"] for e in refused if e["kind"] == "ha_command_refused"]
        for (topic, payload, reason), data in zip(cases, got, strict=True):
            assert data["topic"] == f"{BASE}/{topic}"
            assert data["reason"].startswith(reason), data
            assert data["payload"] == payload.decode("utf-8", errors="replace")
        w.command("probe", "request_state")
        after = w.latest("state")
        assert after["devices"] == before["devices"] and after["power"] == "on"
        assert all(room.factory.pin(n).state is True for n in (26, 20, 21))
        assert not any(e["kind"] == "operator_check_requested" for e in w.events())


def test_a_retained_command_from_before_is_not_taken(broker: LocalBroker,
                                                    short_tmp: Path) -> None:
    """A switch-off someone left retained is old news: a room subscribing afresh refuses it."""
    with room_watcher(broker) as w:
        w.publish("ha/power/camera/set", b"OFF", retain=True)
        with running(parse_config(ha_yaml(broker)), short_tmp / "state") as room:
            refused = w.event("ha_command_refused")
            assert refused["data"]["reason"].startswith("retained: ")
            w.command("probe", "request_state")
            assert w.latest("state")["devices"]["camera"]["power"] == "on"
            assert room.factory.pin(20).state is True


def test_switched_off_later_the_device_leaves_home_assistant(broker: LocalBroker,
                                                             short_tmp: Path) -> None:
    """A device dropped from the config is retired (its platform alone, once); with the
    section switched off the retained discovery message is cleared, and nothing more is sent."""
    state_dir = short_tmp / "state"
    with home_assistant(broker) as hass:
        with running(parse_config(ha_yaml(broker)), state_dir):
            first = hass.wait(DISCOVERY)
        assert first["cmps"]["power_amplifier"]["p"] == "switch"
        fewer = ha_yaml(broker).replace(
            "  amplifier: {role: amplifier, relay: {pin: 21}, order: 3, on_delay_s: 0}\n", "")
        mark = len(hass.messages)
        with running(parse_config(fewer), state_dir):
            second = hass.wait(DISCOVERY, since=mark)
        assert second["cmps"]["power_amplifier"] == {"p": "switch"}
        assert discovery_problems({**second, "cmps": {
            k: c for k, c in second["cmps"].items() if len(c) > 1}}) == []
        mark = len(hass.messages)
        with running(parse_config(fewer), state_dir):
            third = hass.wait(DISCOVERY, since=mark)
        assert "power_amplifier" not in third["cmps"]
        mark = len(hass.messages)
        with room_watcher(broker) as w, running(parse_config(site_yaml(broker)), state_dir):
            assert hass.wait(DISCOVERY, since=mark, raw=True) == b""
            w.wait("state")
    with home_assistant(broker) as late:
        # Nothing is retained for the room any more: a subscriber now gets only what others
        # publish (a sentinel proves the retained messages have all come).
        late.publish("sentinel", b"x")
        late.wait("sentinel", raw=True)
        assert not any(t == DISCOVERY for t, _, _ in late.messages)


def test_a_room_without_the_section_publishes_nothing_for_home_assistant(
        broker: LocalBroker, short_tmp: Path) -> None:
    with home_assistant(broker) as hass, room_watcher(broker) as w, \
            running(parse_config(site_yaml(broker)), short_tmp / "state"):
        w.availability("online")
        w.wait("state")
        hass.publish("status", b"online")
        w.publish("ha/power/camera/set", b"OFF")
        w.command("probe", "request_state")   # after both, in order: they would be in by now
        assert not any(t == DISCOVERY for t, _, _ in hass.messages)
        assert w.latest("state")["devices"]["camera"]["power"] == "on"
        assert not any(e["kind"] == "ha_command_refused" for e in w.events())


class SwallowingRelay:
    """A TCP relay between a room and the broker (real sockets, the room's real MQTT bytes)
    that passes everything but the PUBLISH packets the room sends, which it drops and names:
    a link that dies after the room sent a message and before the broker had it."""

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self.server.getsockname()[1]}"
        self.dropped: list[tuple[str, bytes]] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                room, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection((self.broker.host, self.broker.port))
            threading.Thread(target=self._up, args=(room, up), daemon=True).start()
            threading.Thread(target=self._down, args=(up, room), daemon=True).start()

    def _up(self, room: socket.socket, up: socket.socket) -> None:
        """Room → broker, packet by packet (fixed header, remaining length, body)."""
        f = room.makefile("rb")
        with contextlib.suppress(OSError):
            while head := f.read(1):
                raw, length, shift = b"", 0, 0
                while True:
                    b = f.read(1)
                    if not b:
                        return
                    raw += b
                    length |= (b[0] & 0x7F) << shift
                    shift += 7
                    if not b[0] & 0x80:
                        break
                body = f.read(length)
                if head[0] >> 4 != 3:   # not a PUBLISH: on to the broker
                    up.sendall(head + raw + body)
                    continue
                n = int.from_bytes(body[:2], "big")
                at = 2 + n + (2 if (head[0] >> 1) & 3 else 0)   # topic, packet id
                props, shift = 0, 0
                while True:   # MQTT 5 properties: their length, then them
                    props |= (body[at] & 0x7F) << shift
                    shift += 7
                    at += 1
                    if not body[at - 1] & 0x80:
                        break
                with self._cv:
                    self.dropped.append((body[2:2 + n].decode(), body[at + props:]))
                    self._cv.notify_all()
        self._close(room, up)

    def _down(self, up: socket.socket, room: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := up.recv(65536):
                room.sendall(data)
        self._close(room, up)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def wait_dropped(self, topic: str, payload: bytes | None, timeout: float = 20) -> None:
        """Until the room has sent ``payload`` (None: anything) on ``topic``."""
        def seen() -> bool:
            return any(t == topic and payload in (None, p) for t, p in self.dropped)

        with self._cv:
            assert self._cv.wait_for(seen, timeout), \
                f"the room sent nothing on {topic}: {[t for t, _ in self.dropped]}"

    def close(self) -> None:
        self.server.close()


def test_a_removal_lost_before_its_puback_is_sent_again_on_the_next_connect(
        broker: LocalBroker, short_tmp: Path) -> None:
    """Home Assistant switched off in the config: the room's empty retained message that
    removes its device goes out, and the room dies before the broker has it. The discovery
    message is still retained; the room started again sends the removal again (it was only
    forgotten once the broker acknowledged it), and then nothing is retained for the room."""
    state_dir = short_tmp / "state"
    with home_assistant(broker) as hass, running(parse_config(ha_yaml(broker)), state_dir):
        hass.wait(DISCOVERY)
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))   # no homeassistant section any more
    relay = SwallowingRelay(broker)
    first = start_agent(cfg, relay, state_dir)   # type: ignore[arg-type]
    try:
        relay.wait_dropped(f"homeassistant/{DISCOVERY}", b"")
        status_when_up(state_dir, first)   # its loop is past the connect's bookkeeping
        first.send_signal(signal.SIGKILL)
        assert first.wait(20) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        relay.close()
    with home_assistant(broker) as late:
        assert late.wait(DISCOVERY)["cmps"], "the removal never reached the broker"
    link_file = StateDir(state_dir).link_file
    pending = json.loads(link_file.read_bytes()).get("ha_discovery") or {}
    assert pending.get("topic") == f"homeassistant/{DISCOVERY}", \
        "the removal was forgotten although the broker never acknowledged it"
    with home_assistant(broker) as hass:
        second = start_agent(cfg, broker, state_dir)
        try:
            assert hass.wait(DISCOVERY, lambda p: p == b"", raw=True, timeout=30) == b""
            # Acknowledged: forgotten on disk (the room's loop takes the PUBACK in).
            acked = threading.Event()
            for _ in range(200):
                if json.loads(link_file.read_bytes()).get("ha_discovery") is None:
                    acked.set()
                    break
                acked.wait(0.05)
            assert acked.is_set(), "the acknowledged removal was not forgotten"
        finally:
            second.terminate()
            second.wait(15)
    with home_assistant(broker) as late:
        late.publish("sentinel", b"x")   # after the retained ones, if any
        late.wait("sentinel", raw=True)
        assert not any(t == DISCOVERY for t, _, _ in late.messages)
    # Once acknowledged it is not sent again: a removal goes out before the state on connect,
    # on the same connection (the relay sees the room's publishes in order).
    relay = SwallowingRelay(broker)
    third = start_agent(cfg, relay, state_dir)   # type: ignore[arg-type]
    try:
        relay.wait_dropped(f"{BASE}/state", None)
        assert not [t for t, _ in relay.dropped if t.startswith("homeassistant/")]
    finally:
        third.terminate()
        third.wait(15)
        relay.close()
