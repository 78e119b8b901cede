"""Topic names of the MQTT contract 2.0 (``docs/mqtt-api.md``). Change only on purpose."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "2.1"
"""The contract version a room speaks: the minor rises with each addition (docs/mqtt-api.md)."""
PREFIX = "diemcau/v2"


@dataclass(frozen=True)
class RoomTopics:
    """Every topic one room uses, under ``<prefix>/rooms/<site>``."""

    prefix: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/rooms/{self.site}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def info(self) -> str:
        return f"{self.base}/info"

    @property
    def host(self) -> str:
        return f"{self.base}/host"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def replies(self) -> str:
        return f"{self.base}/replies"

    @property
    def commands(self) -> str:
        return f"{self.base}/commands"

    @property
    def schedule(self) -> str:
        return f"{self.base}/schedule"


@dataclass(frozen=True)
class HaTopics:
    """The topics of one room's Home Assistant link: discovery and status under HA's prefix,
    the command topics under the room's own base (``RoomTopics.base``)."""

    prefix: str
    room: RoomTopics

    @property
    def discovery(self) -> str:
        """Where the room's discovery message is retained."""
        return f"{self.prefix}/device/diemcau_{self.room.site}/config"

    @property
    def status(self) -> str:
        """Home Assistant's birth and last-will topic."""
        return f"{self.prefix}/status"

    @property
    def base(self) -> str:
        return f"{self.room.base}/ha"

    @property
    def commands(self) -> str:
        """The subscription that takes every Home Assistant command for this room."""
        return f"{self.base}/#"

    def power(self, device: str) -> str:
        """Where Home Assistant switches ``device`` (``ON``/``OFF``)."""
        return f"{self.base}/power/{device}/set"

    @property
    def operator_check(self) -> str:
        """Where Home Assistant asks for an operator check (``PRESS``)."""
        return f"{self.base}/operator_check/set"


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract as the docs list it (``docs/mqtt-api.md``)."""

    topic: str
    direction: str
    qos: int
    retained: bool
    what: str


HA_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("<discovery_prefix>/device/diemcau_<site>/config", "room →", 1, True,
              "Home Assistant device discovery: the whole room as one device "
              "(`agent/link/homeassistant.py`); sent on every connect and after Home "
              "Assistant's birth message"),
    TopicSpec("<discovery_prefix>/status", "→ room", 0, False,
              "Home Assistant's birth (`online`) and last will (`offline`): `online` makes "
              "the room send its discovery again"),
    TopicSpec(f"{PREFIX}/rooms/<site>/ha/power/<device>/set", "→ room", 1, False,
              "`ON` / `OFF` from a Home Assistant switch: a `power` command for that device "
              "(refused during a lock like any other)"),
    TopicSpec(f"{PREFIX}/rooms/<site>/ha/operator_check/set", "→ room", 1, False,
              "`PRESS` from the Home Assistant button: an `operator_check` command"),
)
"""The Home Assistant topics (only for a room with ``homeassistant.enabled``); the default
``<discovery_prefix>`` is ``homeassistant``."""
