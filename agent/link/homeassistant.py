"""Home Assistant MQTT device discovery: every room one device in a province's Home Assistant.

A room with ``homeassistant.enabled`` publishes ONE retained QoS-1 message on
``<discovery_prefix>/device/diemcau_<site>/config`` (Home Assistant's *device-based
discovery*): the device (``dev``), who made the message (``o``), the room's availability topic
and its components (``cmps``). Every component reads what the room already publishes under
contract 2.0 (``state``, ``host``); nothing is published twice for Home Assistant's sake.

* a **switch** per relay device (``power`` allowed), its state read from ``state`` with a
  ``value_template``: never optimistic, so a refused switch-off leaves the switch on;
  without ``power`` the same device is a read-only **binary sensor**;
* **binary sensors**: each driven device's health (``problem``), the lock (on = locked), the
  room's help request, a host alert;
* **sensors**: the room's power (``enum``) and the Pi's health from ``host``;
* a **button** (``operator_check`` allowed): the centre asks "is someone there?".

Home Assistant sends plain payloads to the room's own command topics
``diemcau/v2/rooms/<site>/ha/power/<device>/set`` (``ON``/``OFF``) and
``diemcau/v2/rooms/<site>/ha/operator_check/set`` (``PRESS``). :func:`command_from` turns
one into the same :class:`~agent.core.events.Command` a district ``power`` or
``operator_check`` command makes (a generated id, sender ``homeassistant``), so a lock refuses
Home Assistant exactly as it refuses the centre. Anything else raises :class:`Refused`, and
the agent records a ``ha_command_refused`` event; nothing changes.

The discovery message is sent on every connect and again whenever Home Assistant announces
itself (``<discovery_prefix>/status`` ``online``). Names shown in Home Assistant come from the
site config (the room's name, each device's label) and from :data:`TEXTS` in the configured
language.
"""

from __future__ import annotations

import uuid
from typing import Any

from agent.config import SiteConfig
from agent.core.events import Command
from agent.link.topics import HaTopics, RoomTopics

ORIGIN_NAME = "diemcau"
ORIGIN_URL = "https://diemcau.vn"
MANUFACTURER = "diemcau"
MODEL = "diemcau room agent"
SENDER = "homeassistant"
"""The ``sender`` of a command that came from Home Assistant (events name it as ``by``)."""
BIRTH = b"online"
"""Home Assistant's birth payload on ``<prefix>/status`` (its default)."""
PAYLOAD_ON, PAYLOAD_OFF, PAYLOAD_PRESS = "ON", "OFF", "PRESS"
MAX_QUOTED = 64
"""At most this many characters of a refused payload are quoted in the event."""

TEXTS: dict[str, dict[str, str]] = {
    "vi": {"health": "{label}: lỗi", "lock": "Khoá (đang kiểm tra/họp)",
           "help": "Cần hỗ trợ", "room_power": "Nguồn phòng",
           "operator_check": "Hỏi có người trực", "cpu_temp": "Nhiệt độ CPU",
           "mem": "Bộ nhớ đã dùng", "disk": "Thẻ nhớ đã dùng", "load": "Tải CPU (1 phút)",
           "uptime": "Thời gian chạy", "host_alert": "Cảnh báo máy"},
    "en": {"health": "{label}: fault", "lock": "Locked (test/session)",
           "help": "Help requested", "room_power": "Room power",
           "operator_check": "Ask: is someone there?", "cpu_temp": "CPU temperature",
           "mem": "Memory used", "disk": "Disk used", "load": "CPU load (1 min)",
           "uptime": "Uptime", "host_alert": "Host alert"},
}
"""Component names that do not come from the config, in each language (one at a time)."""
ROOM_POWER = ["on", "off", "partial", "powering_on", "powering_off"]
"""The values of the state's ``power`` (``agent.contract.messages.Power``)."""


def ha_topics(cfg: SiteConfig, room: RoomTopics) -> HaTopics | None:
    """The room's Home Assistant topics, or None when the config does not enable it."""
    ha = cfg.homeassistant
    return HaTopics(ha.discovery_prefix, room) if ha.enabled else None


def _state_value(path: str) -> str:
    return "{{ value_json" + path + " }}"


def discovery_message(cfg: SiteConfig, topics: HaTopics, agent_version: str,
                      retired: dict[str, str] | None = None) -> dict[str, Any]:
    """The discovery payload of the room (Home Assistant's device-based discovery).

    ``retired``: components published before and gone from the config since (key →
    platform); each is sent with only its platform, which is how Home Assistant is told to
    remove it."""
    site = cfg.site.id
    room = topics.room
    allowed = set(cfg.homeassistant.commands)
    text = TEXTS[cfg.homeassistant.language]
    cmps: dict[str, dict[str, Any]] = {}

    def add(key: str, platform: str, **fields: Any) -> None:
        cmps[key] = {"p": platform, "unique_id": f"diemcau_{site}_{key}", **fields}

    for name in cfg.devices_in_order():
        dev = cfg.devices[name]
        label = dev.label or name
        power = _state_value(f"['devices']['{name}']['power']")
        if "power" in allowed:
            add(f"power_{name}", "switch", name=label, device_class="outlet",
                value_template=power, state_on="on", state_off="off",
                command_topic=topics.power(name), payload_on=PAYLOAD_ON,
                payload_off=PAYLOAD_OFF, optimistic=False, retain=False)
        else:
            add(f"power_{name}", "binary_sensor", name=label, device_class="power",
                value_template=power, payload_on="on",
                payload_off="off")
        if dev.driver is not None:
            add(f"health_{name}", "binary_sensor", name=text["health"].format(label=label),
                device_class="problem", entity_category="diagnostic",
                value_template=(
                    "{% set h = value_json['devices']['" + name + "']['health'] %}"
                    "{{ 'ON' if h in ('fault', 'degraded') else "
                    "('OFF' if h == 'ok' else 'None') }}"))
    # Not device_class "lock": for Home Assistant that one is on when UNlocked.
    add("lock", "binary_sensor", name=text["lock"], icon="mdi:lock",
        value_template="{{ 'ON' if value_json['lock']['locked'] else 'OFF' }}")
    add("help", "binary_sensor", name=text["help"], device_class="problem",
        value_template="{{ 'OFF' if value_json['operator']['help_requested'] is none "
                       "else 'ON' }}")
    add("room_power", "sensor", name=text["room_power"], device_class="enum",
        options=ROOM_POWER, value_template=_state_value("['power']"))
    host = {"state_topic": room.host, "entity_category": "diagnostic"}
    add("cpu_temp", "sensor", name=text["cpu_temp"], device_class="temperature",
        state_class="measurement", unit_of_measurement="°C", suggested_display_precision=1,
        value_template=_state_value("['cpu_temp_c']"), **host)
    add("mem_used", "sensor", name=text["mem"], state_class="measurement",
        unit_of_measurement="%", icon="mdi:memory",
        value_template=_state_value("['mem_used_pct']"), **host)
    add("disk_used", "sensor", name=text["disk"], state_class="measurement",
        unit_of_measurement="%", icon="mdi:sd",
        value_template=_state_value("['disk_used_pct']"), **host)
    add("load", "sensor", name=text["load"], state_class="measurement", icon="mdi:gauge",
        suggested_display_precision=2,
        value_template="{{ value_json['load'][0] if value_json['load'] else None }}", **host)
    add("uptime", "sensor", name=text["uptime"], device_class="duration",
        state_class="measurement", unit_of_measurement="s",
        value_template=_state_value("['uptime_s']"), **host)
    add("host_alert", "binary_sensor", name=text["host_alert"], device_class="problem",
        value_template="{{ 'ON' if value_json['alerts'] else 'OFF' }}", **host)
    if "operator_check" in allowed:
        add("operator_check", "button", name=text["operator_check"], icon="mdi:account-question",
            command_topic=topics.operator_check, payload_press=PAYLOAD_PRESS, retain=False)
    for key, platform in (retired or {}).items():
        if key not in cmps:
            cmps[key] = {"p": platform}
    return {
        "dev": {"identifiers": [f"diemcau_{site}"], "name": cfg.site.name,
                "manufacturer": MANUFACTURER, "model": MODEL, "sw_version": agent_version},
        "o": {"name": ORIGIN_NAME, "sw": agent_version, "url": ORIGIN_URL},
        "availability": [{"topic": room.availability, "payload_available": "online",
                          "payload_not_available": "offline"}],
        "state_topic": room.state,   # shared: every component not reading ``host`` reads it
        "qos": 1,
        "cmps": cmps,
    }


def components(message: dict[str, Any]) -> dict[str, str]:
    """Key → platform of the components a discovery message defines (not the retired ones),
    remembered so that a later message can retire what the config dropped."""
    return {k: c["p"] for k, c in message["cmps"].items() if len(c) > 1}


class Refused(ValueError):
    """A Home Assistant command the room does not take; the message says why."""


def quoted(payload: bytes) -> str:
    """A refused payload as the ``ha_command_refused`` event quotes it: bounded, and
    undecodable bytes replaced (the event must always be sendable)."""
    text = payload[:MAX_QUOTED * 4].decode("utf-8", errors="replace")
    return text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "…"


def command_from(topic: str, payload: bytes, cfg: SiteConfig, topics: HaTopics,
                 new_id: str | None = None, retained: bool = False) -> Command:
    """The core command a Home Assistant message on ``topic`` asks for, or :class:`Refused`.

    ``power/<device>/set`` with ``ON``/``OFF`` is a district ``power`` command for that one
    device; ``operator_check/set`` with ``PRESS`` an ``operator_check`` with the room's
    default timeout. Each gets a new id (``ha-…``): a QoS-1 redelivery is a second command,
    harmless since switching a device to where it is does nothing. A ``retained`` message
    (kept by the broker from some time ago, sent on a new subscription) is refused: a switch
    is pressed now or not at all."""
    if retained:
        raise Refused("retained: a command kept by the broker from before is not taken "
                      "(Home Assistant sends its commands unretained)")
    allowed = cfg.homeassistant.commands
    rest = topic.removeprefix(topics.base + "/") if topic.startswith(topics.base + "/") else None
    parts = rest.split("/") if rest is not None else []
    cid = new_id or f"ha-{uuid.uuid4().hex[:16]}"
    text = payload.decode("utf-8", errors="replace").strip()
    if len(parts) == 3 and parts[0] == "power" and parts[2] == "set":
        device = parts[1]
        if "power" not in allowed:
            raise Refused("power: Home Assistant may not switch this room "
                          "(homeassistant.commands)")
        if device not in cfg.devices:
            raise Refused(f"device: this room has no device '{device}'; it has "
                          f"{', '.join(cfg.devices_in_order())}")
        if text not in (PAYLOAD_ON, PAYLOAD_OFF):
            raise Refused(f"payload: expected {PAYLOAD_ON} or {PAYLOAD_OFF}")
        return Command(id=cid, name="power", args={"on": text == PAYLOAD_ON, "device": device},
                       sender=SENDER)
    if parts == ["operator_check", "set"]:
        if "operator_check" not in allowed:
            raise Refused("operator_check: Home Assistant may not ask for an operator check "
                          "here (homeassistant.commands)")
        if text != PAYLOAD_PRESS:
            raise Refused(f"payload: expected {PAYLOAD_PRESS}")
        return Command(id=cid, name="operator_check", args={}, sender=SENDER)
    raise Refused("topic: not a Home Assistant command topic of this room "
                  "(ha/power/<device>/set or ha/operator_check/set)")
