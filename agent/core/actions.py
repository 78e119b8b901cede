"""What the core asks the shell to do: the actions a step returns, in the order to do them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agent.contract.events import EVENT_TYPES
from agent.contract.events import data as events_data


@dataclass(frozen=True)
class SetRelay:
    """Switch a device's power, as step of sequence ``sequence`` started for ``reason``."""

    device: str
    on: bool
    sequence: int
    reason: str = ""


@dataclass(frozen=True)
class Emit:
    """Publish ``event`` (one of :data:`agent.contract.events.CORE_EVENTS`) to the district;
    the agent adds sequence number, id and time.

    ``window_id`` names the window locking the room when the event was made (for an event
    about one window, that window); ``clock_trusted`` whether the room trusted its clock then.
    """

    event: Any
    window_id: str | None = None
    clock_trusted: bool = True

    def __post_init__(self) -> None:
        if type(self.event) not in EVENT_TYPES.values():
            raise TypeError(f"{type(self.event).__name__} is not an event kind of the contract")

    @property
    def kind(self) -> str:
        """The event's kind on the wire."""
        return str(self.event.KIND)

    @property
    def data(self) -> dict[str, Any]:
        """The event's ``data``, JSON-ready (fields without a value left out)."""
        return events_data(self.event)


@dataclass(frozen=True)
class Reply:
    """Answer a district command: ``accepted``, ``refused`` (with reason) or ``invalid``."""

    command_id: str
    status: Literal["accepted", "refused", "invalid"]
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AwaitReady:
    """Ask the device's driver to wake it if in standby and report
    :class:`~agent.core.events.DeviceReady` with this ``step`` once it answers.

    ``step`` numbers the power step (unique, never reused, across restarts too) so that a
    late answer to a step a newer request replaced confirms nothing. It is not part of
    equality: the request is the same whatever its number.
    """

    device: str
    step: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SendStandby:
    """Send the device its standby/shutdown command and report
    :class:`~agent.core.events.DeviceStandby` with this ``step`` (as for
    :class:`AwaitReady`)."""

    device: str
    step: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PublishState:
    """Publish the state snapshot now (the district asked)."""


Action = SetRelay | Emit | Reply | AwaitReady | SendStandby | PublishState
