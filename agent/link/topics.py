"""Topic names of the MQTT contract 2.0 (``docs/mqtt-api.md``). Change only on purpose."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "2.0"
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
