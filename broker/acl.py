"""Mosquitto ACL files for a district broker and a province broker.

The topic contract 2.0 (``docs/mqtt-api.md``) under ``diemcau/v2``:

* a room (user name = site id) writes ``rooms/<site>/{availability,info,state,host,events,
  replies}`` and reads ``rooms/<site>/{commands,schedule}`` — through ``pattern`` lines with
  ``%u``, so adding a room adds no ACL line and a room can never reach another room's topics;
* staff users are called ``staff.<name>``: a ``.`` never appears in a site id, so the room
  patterns only ever give a staff user the topics of a room that cannot exist;
* ``console`` reads everything and commands/schedules any room and owns ``district/#``;
  ``viewer`` only reads; ``province`` reads rooms' availability/info/state/host/events and,
  only when configured (``allow_commands``), writes commands and reads replies;
  ``homeassistant`` (a province's Home Assistant, ``docs/homeassistant.md``) reads rooms'
  availability/info/state/host and their discovery messages, writes its own birth message and
  only the Home Assistant command topics it is granted (``power``, ``operator_check``): never
  ``commands`` or ``schedule``;
* Home Assistant discovery, under each discovery prefix the broker's settings name
  (``ha_prefixes``, default :data:`HA_PREFIX`): a room writes only its own discovery topic
  ``<prefix>/device/diemcau_<site>/config`` and reads ``<prefix>/status`` and its own
  ``rooms/<site>/ha/#``; a ``homeassistant`` account reads ``<prefix>/device/+/config`` and
  writes ``<prefix>/status``. A staff user matches the room patterns only with a ``.`` in the
  object id, which Home Assistant does not accept as a discovery topic;

While rooms are upgraded one by one, the same grants stand under the 1.0 prefix
``diemcau/v1`` (:data:`LEGACY_PREFIX`, whose rooms have no ``info``/``host``): a room still on
agent 0.1 keeps working and the consoles still see it. Drop the legacy lines once every room
speaks 2.0.

Mosquitto 2.0 grants a SUBSCRIBE even when nothing it matches may be read: the read ACL is
applied to each message instead, so a denied subscription simply never delivers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "diemcau/v2"
LEGACY_PREFIX = "diemcau/v1"
ROOM_WRITES = ("availability", "info", "state", "host", "events", "replies")
ROOM_READS = ("commands", "schedule")
PROVINCE_READS = ("availability", "info", "state", "host", "events")
LEGACY_KINDS = ("availability", "state", "events", "replies", "commands", "schedule")
"""The 1.0 topics (no ``info``, no ``host``)."""
HA_PREFIX = "homeassistant"
"""Home Assistant's default discovery prefix. The ACL grants the prefixes it is given (the
broker's ``ha_prefixes``); a room's ``homeassistant.discovery_prefix`` must be one of them for
its discovery message to get through."""
RESERVED_TOP = ("diemcau", "province")
"""Top topic levels a discovery prefix may not begin with: the contract's (``diemcau/v1``,
``diemcau/v2``, the console's ``…/district/#`` included) and the province bridge's
(``province/<district>/…``): a room's grants under its discovery prefix must never reach
them."""
HA_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
"""A discovery prefix (whole string: use fullmatch): the rule of ``homeassistant.
discovery_prefix`` in ``agent/config.py``, so no ``+``, ``#``, ``$`` or empty level."""
HA_COMMANDS = ("power", "operator_check")
"""What a ``homeassistant`` account may be granted (the room's ``homeassistant.commands``)."""
HA_READS = ("availability", "info", "state", "host")
ROLES = ("console", "viewer", "province", "homeassistant")


def _kinds(prefix: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    return kinds if prefix == PREFIX else tuple(k for k in kinds if k in LEGACY_KINDS)


@dataclass(frozen=True)
class StaffGrant:
    """One staff user as the ACL needs it."""

    username: str
    role: str
    allow_commands: bool = False
    commands: tuple[str, ...] = ()
    """For ``homeassistant``: the Home Assistant commands it may send (:data:`HA_COMMANDS`)."""


@dataclass(frozen=True)
class DistrictGrant:
    """One district bridge as the province ACL needs it."""

    district: str
    username: str
    allow_commands: bool = False


def check_ha_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """``prefixes`` (one string: that prefix) in their order without repeats; ValueError
    naming the first that is not a discovery prefix (:data:`HA_PREFIX_RE`), or if there is
    none."""
    given = [prefixes] if isinstance(prefixes, str) else list(prefixes)
    for prefix in given:
        if not isinstance(prefix, str) or not HA_PREFIX_RE.fullmatch(prefix):
            raise ValueError(
                f"{prefix!r} is not a Home Assistant discovery prefix (topic levels of A-Z, "
                "a-z, 0-9, '_' and '-' separated by '/', as a room's "
                "homeassistant.discovery_prefix)")
        if prefix.split("/")[0] in RESERVED_TOP:
            raise ValueError(f"{prefix!r} is inside {prefix.split('/')[0]}/, which the "
                             "contract and the bridge use: choose a prefix outside "
                             f"{', '.join(t + '/' for t in RESERVED_TOP)}")
    out = tuple(dict.fromkeys(given))
    if not out:
        raise ValueError(f"at least one prefix is needed (Home Assistant's default: "
                         f"{HA_PREFIX})")
    return out


def ha_topics(commands: Iterable[str],
              prefixes: Iterable[str] = (HA_PREFIX,)) -> list[tuple[str, str]]:
    """``(access, topic)`` pairs of a Home Assistant account granted ``commands``, reading
    and announcing itself under each discovery prefix of ``prefixes``."""
    commands = tuple(commands)
    unknown = sorted(set(commands) - set(HA_COMMANDS))
    if unknown:
        raise ValueError(f"unknown Home Assistant command {', '.join(unknown)}; choose from "
                         f"{', '.join(HA_COMMANDS)}")
    rooms = f"{PREFIX}/rooms"
    pairs = [("read", f"{rooms}/+/{kind}") for kind in HA_READS]
    for ha in check_ha_prefixes(prefixes):
        pairs += [("read", f"{ha}/device/+/config"), ("readwrite", f"{ha}/status")]
    if "power" in commands:
        pairs.append(("write", f"{rooms}/+/ha/power/+/set"))
    if "operator_check" in commands:
        pairs.append(("write", f"{rooms}/+/ha/operator_check/set"))
    return pairs


def staff_topics(role: str, allow_commands: bool, commands: Iterable[str] = (),
                 ha_prefixes: Iterable[str] = (HA_PREFIX,)) -> list[tuple[str, str]]:
    """``(access, topic)`` pairs a staff role gets on a district broker (``commands``: what a
    ``homeassistant`` account may send; ``ha_prefixes``: the discovery prefixes it uses)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "homeassistant":
        return ha_topics(commands, ha_prefixes)
    pairs: list[tuple[str, str]] = []
    for prefix in (PREFIX, LEGACY_PREFIX):
        rooms = f"{prefix}/rooms"
        if role == "console":
            pairs += [("read", f"{rooms}/#"),
                      ("write", f"{rooms}/+/commands"),
                      ("write", f"{rooms}/+/schedule"),
                      ("readwrite", f"{prefix}/district/#")]
        elif role == "viewer":
            pairs += [("read", f"{rooms}/#"), ("read", f"{prefix}/district/#")]
        else:
            pairs += [("read", f"{rooms}/+/{kind}")
                      for kind in _kinds(prefix, PROVINCE_READS)]
            if allow_commands:
                pairs += [("write", f"{rooms}/+/commands"), ("read", f"{rooms}/+/replies")]
    if role == "console":
        pairs += [("read", "province/+/bridge/state"), ("read", "$SYS/#")]
    return pairs


def district_acl(district: str, staff: Iterable[StaffGrant],
                 ha_prefixes: Iterable[str] = (HA_PREFIX,)) -> str:
    """The district broker's ACL file text; Home Assistant discovery under each prefix of
    ``ha_prefixes`` (ValueError if one is not a discovery prefix)."""
    ha_prefixes = check_ha_prefixes(ha_prefixes)
    out = [f"# diemcau district broker {district}: ACL written by `diemcau-broker render`.",
           "# Do not edit: the next render overwrites it. Anonymous clients are refused by the",
           "# listeners (allow_anonymous false), so no anonymous topic lines are needed.",
           "",
           "# Rooms: %u is the room's user name, which is its site id (and certificate CN).",
           *[f"pattern write {PREFIX}/rooms/%u/{kind}" for kind in ROOM_WRITES],
           *[f"pattern read {PREFIX}/rooms/%u/{kind}" for kind in ROOM_READS],
           f"# Rooms not yet on contract 2.0 ({LEGACY_PREFIX}).",
           *[f"pattern write {LEGACY_PREFIX}/rooms/%u/{kind}"
             for kind in _kinds(LEGACY_PREFIX, ROOM_WRITES)],
           *[f"pattern read {LEGACY_PREFIX}/rooms/%u/{kind}" for kind in ROOM_READS],
           "# Home Assistant discovery (docs/homeassistant.md): its own discovery message, Home",
           "# Assistant's birth message and its own Home Assistant command topics.",
           *[line for ha in ha_prefixes for line in (
               f"pattern write {ha}/device/diemcau_%u/config", f"pattern read {ha}/status")],
           f"pattern read {PREFIX}/rooms/%u/ha/#"]
    for s in sorted(staff, key=lambda g: g.username):
        note = ""
        if s.role == "province" and s.allow_commands:
            note = " (may command rooms)"
        elif s.role == "homeassistant":
            note = f" (may send: {', '.join(s.commands) or 'nothing'})"
        out += ["", f"# {s.role}{note}", f"user {s.username}"]
        out += [f"topic {access} {topic}" for access, topic in
                staff_topics(s.role, s.allow_commands, s.commands, ha_prefixes)]
    return "\n".join(out) + "\n"


def province_acl(province: str, districts: Iterable[DistrictGrant],
                 staff: Iterable[StaffGrant]) -> str:
    """The province broker's ACL file text.

    Each district bridge writes only under ``province/<district>/``; the province console reads
    all of ``province/#`` and may publish commands only to districts that allow them.
    """
    districts = sorted(districts, key=lambda d: d.district)
    out = [f"# diemcau province broker {province}: ACL written by `diemcau-broker render`.",
           "# Do not edit: the next render overwrites it."]
    for d in districts:
        out += ["", f"# bridge from district {d.district}", f"user {d.username}"]
        for prefix in (PREFIX, LEGACY_PREFIX):
            base = f"province/{d.district}/{prefix}/rooms"
            out += [f"topic write {base}/+/{kind}" for kind in _kinds(prefix, PROVINCE_READS)]
            if d.allow_commands:
                out += [f"topic read {base}/+/commands", f"topic write {base}/+/replies"]
        out.append(f"topic write province/{d.district}/bridge/state")
    for s in sorted(staff, key=lambda g: g.username):
        out += ["", f"# {s.role}", f"user {s.username}", "topic read province/#"]
        if s.role == "console":
            out += [f"topic write province/{d.district}/{prefix}/rooms/+/commands"
                    for d in districts if d.allow_commands
                    for prefix in (PREFIX, LEGACY_PREFIX)]
    return "\n".join(out) + "\n"
