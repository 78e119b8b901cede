"""A driver made of settings: for devices without a known protocol (Huawei TE/BOX, ZTE,
other amplifiers and displays). Each action is a line to send and a regular expression that
the answer must match.

Site config::

    codec:
      driver: generic_line
      serial: {url: /dev/serial/by-id/usb-Prolific-if00-port0, baudrate: 9600}
      settings:
        send_terminator: "\\r"
        on: {send: "POWER ON", expect: "^OK"}
        standby: {send: "POWER STANDBY", expect: "^OK"}
        query_power: {send: "POWER?", on_regex: "ON", standby_regex: "STANDBY"}
        ping: {send: "PING", expect: "PONG"}
        error_regex: "^(ERROR|ERR)"
        identity: {send: "ID?", model_regex: "MODEL=(\\S+)", serial_regex: "SERIAL=(\\S+)"}

Lines that match neither the expected answer nor ``error_regex`` are ignored (echoes,
chatter). With no ``query_power`` the driver reports ``"unknown"`` power once the ping
answers; with no ``ping`` the power query is the liveness check. With no ``identity`` the
model and serial number are unknown (None).
"""

from __future__ import annotations

import codecs
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agent.drivers.base import (
    BadReply,
    DeviceIdentity,
    DeviceRefused,
    Driver,
    DriverSettings,
    PowerState,
    valid_regex,
)
from agent.drivers.framing.lines import Garbage, LineSplitter

Regex = Annotated[str, AfterValidator(valid_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineCommand(_Strict):
    """A line to send and a regex its answer must match."""

    send: str = Field(min_length=1)
    expect: Regex = Field(".", description="Regex (re.search) a reply line must match")


class PowerQuery(_Strict):
    """A line that asks for the power state and regexes that read the answer."""

    send: str = Field(min_length=1)
    on_regex: Regex
    standby_regex: Regex
    off_regex: Regex | None = None


class IdentityQuery(_Strict):
    """A line that asks the device who it is, and regexes that find the model and serial in
    the reply lines (the first group if the regex has one, else the whole match)."""

    send: str = Field(min_length=1)
    model_regex: Regex | None = None
    serial_regex: Regex | None = None

    @model_validator(mode="after")
    def _finds_something(self) -> IdentityQuery:
        if self.model_regex is None and self.serial_regex is None:
            raise ValueError("give model_regex or serial_regex (or leave identity out)")
        return self


def _unescape(v: str) -> str:
    """Let operators write ``\\r\\n`` in single-quoted YAML as well."""
    return codecs.decode(v, "unicode_escape") if "\\" in v else v


class GenericLineSettings(DriverSettings):
    """Settings for :class:`GenericLine`."""

    send_terminator: Annotated[str, AfterValidator(_unescape)] = Field(
        "\r", description="Appended to every command (e.g. '\\r', '\\r\\n', '')")
    encoding: str = Field("ascii", description="Text encoding of commands and replies")
    on: LineCommand | None = None
    standby: LineCommand | None = None
    query_power: PowerQuery | None = None
    ping: LineCommand | None = None
    error_regex: Regex | None = Field(None, description="A reply line matching this is a "
                                                        "refusal")
    identity: IdentityQuery | None = Field(None, description="How to ask the model and serial "
                                                             "(none: unknown)")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: object) -> object:
        # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean True.
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _needs_liveness(self) -> GenericLineSettings:
        if self.ping is None and self.query_power is None:
            raise ValueError("give 'ping' or 'query_power': the agent needs some way to know "
                             "the device is alive")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None
        return self


class GenericLine(Driver):
    """Settings-driven line driver; see the module docstring."""

    name = "generic_line"
    Settings = GenericLineSettings
    settings: GenericLineSettings

    def new_parser(self) -> LineSplitter:
        return LineSplitter()

    def send_line(self, text: str, *patterns: str) -> tuple[int, str]:
        """Send a line; return (index of the first pattern matched, the reply line)."""
        s = self.settings
        compiled = [re.compile(p) for p in patterns]
        error = re.compile(s.error_regex) if s.error_regex else None

        def handle(line: str) -> tuple[int, str] | None:
            for i, rx in enumerate(compiled):
                if rx.search(line):
                    return i, line
            if error is not None and error.search(line):
                raise DeviceRefused(f"{self.device}: {text!r} refused: {line!r}",
                                    code="error")
            return None

        data = (text + s.send_terminator).encode(s.encoding, "replace")
        return self._exchange(data, handle, what=repr(text))

    def read_identity(self) -> DeviceIdentity:
        """Send ``identity.send``; collect reply lines until every configured regex matched.
        An unreadable line meanwhile is a BadReply."""
        q = self.settings.identity
        if q is None:
            return DeviceIdentity()
        s = self.settings
        error = re.compile(s.error_regex) if s.error_regex else None
        wanted = {k: re.compile(rx) for k, rx in (("model", q.model_regex),
                                                  ("serial", q.serial_regex)) if rx}
        found: dict[str, str] = {}

        def handle(line: str | Garbage) -> DeviceIdentity | None:
            if isinstance(line, Garbage):
                raise BadReply(f"{self.device}: unreadable line in the answer to {q.send!r}")
            if error is not None and error.search(line):
                raise DeviceRefused(f"{self.device}: {q.send!r} refused: {line!r}",
                                    code="error")
            for key, rx in wanted.items():
                if key not in found and (m := rx.search(line)):
                    found[key] = (m[1] if rx.groups else m[0]).strip()
            if len(found) == len(wanted):
                return DeviceIdentity(found.get("model") or None, found.get("serial") or None)
            return None

        data = (q.send + s.send_terminator).encode(s.encoding, "replace")
        return self._exchange(data, handle, what=repr(q.send), see_garbage=True)

    def _run(self, cmd: LineCommand | None, action: str) -> None:
        if cmd is None:
            raise DeviceRefused(f"{self.device}: no '{action}' command in the settings",
                                code="unsupported")
        self.send_line(cmd.send, cmd.expect)

    def power_state(self) -> PowerState:
        """Ask ``query_power`` (or just ``ping``, then 'unknown')."""
        q = self.settings.query_power
        if q is None:
            self.ping()
            return "unknown"
        patterns = [q.on_regex, q.standby_regex] + ([q.off_regex] if q.off_regex else [])
        index, _ = self.send_line(q.send, *patterns)
        states: tuple[PowerState, ...] = ("on", "standby", "off")
        return states[index]

    def wake(self) -> None:
        """Send ``on``."""
        self._run(self.settings.on, "on")

    def standby(self) -> None:
        """Send ``standby``."""
        self._run(self.settings.standby, "standby")

    def ping(self) -> None:
        """Send ``ping`` (or the power query)."""
        if self.settings.ping is None:
            self.power_state()
        else:
            self._run(self.settings.ping, "ping")
