"""Topic names of the MQTT contract (``docs/mqtt-api.md``). Change only on purpose."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "1.0"


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
