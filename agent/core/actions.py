"""What the core asks the shell to do: the actions a step returns, in the order to do them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class SetRelay:
    """Switch a device's power, as step of sequence ``sequence`` started for ``reason``."""

    device: str
    on: bool
    sequence: int
    reason: str = ""


@dataclass(frozen=True)
class Emit:
    """Publish an event to the district (the agent adds sequence number, id and time)."""

    kind: str
    data: dict[str, Any]


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
    :class:`~agent.core.events.DeviceReady` once it answers."""

    device: str


@dataclass(frozen=True)
class SendStandby:
    """Send the device its standby/shutdown command and report
    :class:`~agent.core.events.DeviceStandby`."""

    device: str


@dataclass(frozen=True)
class PublishState:
    """Publish the state snapshot now (the district asked)."""


Action = SetRelay | Emit | Reply | AwaitReady | SendStandby | PublishState
