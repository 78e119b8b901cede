"""The site config: one YAML file per room, validated strictly.

Every problem in a file is reported at once, each as ``field.path: message (line N)``; secrets
(passwords, key material) never appear in any message, log line or repr.

Example::

    cfg = load_config(Path("firmware_config/sites/sim-room.yaml"))
    cfg.site.id  # 'sim-room'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
BcmPin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number (0-27)")]


class Strict(BaseModel):
    """Base for hand-written config: unknown keys are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Centre(Strict):
    """The organisation a room answers to, as operators call it: Vietnamese and English."""

    vi: str = Field("trung tâm", min_length=1,
                    description="e.g. 'Trung tâm CNTT tỉnh Lạng Sơn'")
    en: str = Field("the centre", min_length=1,
                    description="e.g. 'the Lang Son provincial IT centre'")


class Site(Strict):
    id: str = Field(description="Lower-case id used in MQTT topics and as the broker user name, "
                                "e.g. 'vq-tan-doan'")
    name: str = Field(min_length=1, description="The room's name as operators say it")
    district: str = ""
    timezone: str = Field("Asia/Ho_Chi_Minh", description="IANA zone the schedule is shown in")
    centre: Centre = Field(default_factory=Centre,
                           description="Who the room answers to: named in the LED texts")
    language: Literal["vi", "en"] = Field(
        "vi", description="Language of the operator's command line (diemcau-agent status …) "
                          "when --lang does not say: vi or en")

    @field_validator("id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        if not SITE_ID.match(v):
            raise ValueError("must be 2-63 characters of a-z, 0-9 and '-', starting with a letter "
                             "or digit (it becomes part of MQTT topics)")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v


class Tls(Strict):
    ca_file: Path = Field(description="District CA certificate (PEM)")
    cert_file: Path | None = Field(None, description="This room's client certificate (PEM)")
    key_file: Path | None = Field(None, description="This room's private key (PEM)")
    insecure_skip_verify: bool = Field(False, description="Never in production")

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class Credentials(BaseModel):
    """User name and password read from ``credentials_file`` (YAML with those two keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    username: str
    password: SecretStr


class Broker(Strict):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    tls: Tls | None = None
    credentials_file: Path | None = Field(
        None, description="YAML file with 'username' and 'password', readable only by the agent")
    keepalive_s: int = Field(240, ge=5, le=300,
                             description="MQTT keepalive: below the 4G carriers' NAT idle "
                                         "timeout (commonly 5 min or more), docs/link.md")
    topic_prefix: str = Field("diemcau/v2", pattern=r"^[A-Za-z0-9_/-]+[A-Za-z0-9_-]$")

    def missing_files(self) -> list[str]:
        """TLS and credential files named here that this machine does not have."""
        named = [("broker.credentials_file", self.credentials_file)]
        if self.tls is not None:
            named += [("broker.tls.ca_file", self.tls.ca_file),
                      ("broker.tls.cert_file", self.tls.cert_file),
                      ("broker.tls.key_file", self.tls.key_file)]
        return [f"{field}: {path} does not exist or is not readable" for field, path in named
                if path is not None and not os.access(path, os.R_OK)]

    def credentials(self) -> Credentials | None:
        """Read the credentials file; raises ``ConfigError`` naming the file, never its content."""
        if self.credentials_file is None:
            return None
        try:
            raw = yaml.safe_load(self.credentials_file.read_text())
            return Credentials.model_validate(raw)
        except OSError as e:
            raise ConfigError([f"broker.credentials_file: cannot read {self.credentials_file}: "
                               f"{e.strerror}"]) from None
        except (yaml.YAMLError, ValidationError):
            raise ConfigError([f"broker.credentials_file: {self.credentials_file} must hold "
                               "'username:' and 'password:' (YAML)"]) from None


class Relay(Strict):
    pin: BcmPin
    active_high: bool = Field(False, description="True if the coil is energised by a high pin; "
                                                 "Waveshare-style relay HATs are active low")
    contact: Literal["nc", "no"] = Field(
        "nc", description="Contact the device is wired to: 'nc' (fail-safe, powered when the "
                          "relay is released) or 'no' (powered only while the coil is energised)")

    @field_validator("contact", mode="before")
    @classmethod
    def _yaml_no(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `no` as false; here it can only mean the NO contact.
        return "no" if v is False else v


UDEV_SAFE = r"^[A-Za-z0-9][A-Za-z0-9 ._:+/-]{0,63}$"
"""What may stand inside a udev rule's quotes: no quote, backslash or glob character."""


class UsbAdapter(Strict):
    """Which USB-serial adapter a device's port is: the udev rule that names the port is made
    from it (``diemcau-agent udev-rules``). Written by ``diemcau-agent adapters --write``."""

    vendor_id: str = Field(pattern=r"^[0-9a-f]{4}$",
                           description="USB vendor id, 4 lower-case hex digits in quotes: "
                                       "\"0403\"")
    product_id: str = Field(pattern=r"^[0-9a-f]{4}$",
                            description="USB product id, 4 lower-case hex digits in quotes")
    serial_number: str | None = Field(None, pattern=UDEV_SAFE,
                                      description="The adapter's own USB serial number")
    interface: int | None = Field(None, ge=0, le=255,
                                  description="Port of a multi-port adapter: its USB interface "
                                              "number (udev ID_USB_INTERFACE_NUM)")
    usb_port: str | None = Field(None, pattern=r"^[0-9]+-[0-9]+(\.[0-9]+)*$",
                                 description="For an adapter without a serial number: the USB "
                                             "port it is plugged into, e.g. '1-1.2' (label "
                                             "the port, never move its cable)")

    @field_validator("vendor_id", "product_id", mode="before")
    @classmethod
    def _quoted_hex(cls, v: Any) -> Any:
        if isinstance(v, int):
            raise ValueError("write the id in quotes, e.g. \"0403\" (unquoted, YAML reads a "
                             "number and loses the leading zero)")
        return v

    @model_validator(mode="after")
    def _identified(self) -> UsbAdapter:
        if self.serial_number is None and self.usb_port is None:
            raise ValueError("serial_number or usb_port is needed to tell this adapter apart")
        return self


class SerialPort(Strict):
    url: str = Field(description="pyserial URL or device path, e.g. /dev/diemcau-codec")
    baudrate: int = Field(9600, ge=300, le=921600)
    adapter: UsbAdapter | None = Field(
        None, description="The USB-serial adapter behind this port (not needed on the Pi's own "
                          "UART, /dev/serial0 or /dev/ttyAMA0)")


class DeviceSimulation(Strict):
    """How ``--simulate`` emulates this device (ignored on a real room)."""

    boot_s: float = Field(3.0, ge=0, le=600, description="Emulated boot time after power on")


class Device(Strict):
    role: Literal["codec", "camera", "amplifier", "display", "other"]
    label: str = Field("", description="Name shown to operators; defaults to the device key")
    relay: Relay
    order: int = Field(ge=1, description="Power-on position: 1 first; power-off is the reverse")
    on_delay_s: float = Field(3.0, ge=0, le=600,
                              description="Wait after powering this device before the next")
    off_grace_s: float = Field(0.0, ge=0, le=600,
                               description="Time the device gets to shut down before its "
                                           "relay opens")
    ready_timeout_s: float = Field(90.0, gt=0, le=900,
                                   description="Longest wait for the device to answer after "
                                               "power on, when it has a driver")
    driver: str | None = Field(None, description="RS-232 driver name (none: relay only): "
                                                 "cisco_xapi, poly_group, yealink_vc, "
                                                 "sony_visca, extron_sis, generic_line")
    serial: SerialPort | None = None
    settings: dict[str, Any] = Field(default_factory=dict, repr=False,  # may hold passwords
                                     description="Driver-specific settings (docs/drivers.md)")
    poll_s: float = Field(10.0, ge=1, le=600, description="Health poll interval")
    silent_polls_for_fault: int = Field(3, ge=1, le=100,
                                        description="Unanswered polls, relay on, before the "
                                                    "device is a fault (no power or unplugged)")
    self_help: bool = Field(False, description="Outside a window, power-cycle the device once "
                                               "when it stops answering (never inside one)")
    simulation: DeviceSimulation = DeviceSimulation()

    @model_validator(mode="after")
    def _driver_settings(self) -> Device:
        if self.driver is None:
            if self.settings:
                raise ValueError("settings: only a device with a driver has settings")
            return self
        from agent.drivers import check_device_settings

        problems = check_device_settings(self.driver, self.settings)
        if self.serial is None:
            problems.append("serial: a device with a driver needs 'serial' (its port)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class SingleLed(Strict):
    kind: Literal["single"] = "single"
    pin: BcmPin
    active_high: bool = True


class RgbPins(Strict):
    red: BcmPin
    green: BcmPin
    blue: BcmPin


class RgbLed(Strict):
    kind: Literal["rgb"] = "rgb"
    pins: RgbPins
    active_high: bool = Field(True, description="False for a common-anode LED")


class ButtonCfg(Strict):
    pin: BcmPin
    pull_up: bool = Field(True, description="True: the button connects the pin to ground")
    hold_s: float = Field(3.0, ge=0.5, le=30, description="Hold this long to switch power")
    bounce_s: float = Field(0.05, ge=0, le=1)
    double_press_s: float = Field(0.6, ge=0.2, le=2,
                                  description="Two presses this close are a request for help")


class Timing(Strict):
    lead_min: float = Field(15, ge=0, le=240,
                            description="Power up and lock this long before a window starts")
    lock_hard_cap_min: float = Field(
        240, ge=0, le=24 * 60,
        description="Release the lock this long after a window's planned end if the district "
                    "never marks it complete")
    heartbeat_s: float = Field(60, ge=5, le=3600,
                               description="Check the clock and sample host health this often "
                                           "(the state is published only when it changes)")
    host_interval_s: float = Field(900, ge=60, le=86400,
                                   description="Publish host health at least this often (and at "
                                               "once when a threshold is crossed)")
    check_timeout_s: float = Field(120, ge=5, le=3600,
                                   description="Default wait for an operator check")
    refusal_show_s: float = Field(8, ge=1, le=120,
                                  description="How long the LED shows a refused shutdown")
    off_after_release_min: float | None = Field(
        10, ge=0, le=24 * 60,
        description="Switch the room off, in order, this long after a window's lock ends "
                    "unless someone uses it (null: never)")


class Contact(Strict):
    """Someone an operator can call: shown by ``status``, on the LED card and in ``info``."""

    name: str = Field(min_length=1)
    role: str = Field(min_length=1, description="What they do, in Vietnamese")
    role_en: str | None = Field(default=None, min_length=1,
                                description="The same in English (else ``role`` is shown)")
    phone: str = Field(pattern=r"^\+?[0-9 ().-]{6,20}$")


HA_COMMANDS = ("power", "operator_check")
"""What Home Assistant may ask a room to do (``homeassistant.commands``)."""


class HomeAssistant(Strict):
    """Home Assistant MQTT discovery: the room appears in a province's Home Assistant as one
    device (``docs/homeassistant.md``)."""

    enabled: bool = Field(False, description="Publish the discovery message and take commands "
                                             "from Home Assistant")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                                  description="Home Assistant's discovery prefix (its MQTT "
                                              "options; the broker's ACL must name the same)")
    commands: list[Literal["power", "operator_check"]] = Field(
        default_factory=lambda: list(HA_COMMANDS),
        description="What Home Assistant may do here: 'power' (a switch per device) and "
                    "'operator_check' (a button); [] shows the room read-only")
    language: Literal["vi", "en"] = Field("vi", description="Language of the names Home "
                                                            "Assistant shows that the config "
                                                            "does not give (one at a time)")

    @field_validator("commands")
    @classmethod
    def _once(cls, v: list[str]) -> list[str]:
        twice = sorted({c for c in v if v.count(c) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} named more than once")
        return v


class SiteConfig(Strict):
    """One room's whole configuration."""

    site: Site
    broker: Broker = Broker()
    devices: dict[str, Device] = Field(min_length=1)
    status_led: SingleLed | RgbLed | None = Field(None, discriminator="kind")
    button: ButtonCfg | None = None
    timing: Timing = Timing()
    support: list[Contact] = Field(default_factory=list)
    homeassistant: HomeAssistant = Field(default_factory=HomeAssistant,
                                         description="Home Assistant discovery (off unless "
                                                     "enabled)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        None, description="The agent's log level (overrides --log-level); a reload "
                          "(systemctl reload diemcau-agent) applies a new one")

    @field_validator("devices")
    @classmethod
    def _device_names(cls, v: dict[str, Device]) -> dict[str, Device]:
        for name in v:
            if not re.match(r"^[a-z][a-z0-9_]{0,31}$", name):
                raise ValueError(f"device name {name!r}: use a-z, 0-9 and '_' (e.g. 'codec')")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteConfig:
        problems = cross_check(self.model_dump(mode="json"))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def devices_in_order(self) -> list[str]:
        """Device names in power-on order."""
        return sorted(self.devices, key=lambda n: self.devices[n].order)

    def fingerprint(self) -> str:
        """Short hash of the effective config, published so the district can spot drift.
        Secrets are left out: the hash is public and must not let anyone test a password."""
        blob = json.dumps(_without_secrets(self.model_dump(mode="json")), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SECRET_KEYS = re.compile(r"pass|secret|token|key$", re.IGNORECASE)


def _without_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: "***" if SECRET_KEYS.search(str(k)) and not isinstance(v, dict | list)
                else _without_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_without_secrets(v) for v in data]
    return data


def cross_check(raw: Any) -> list[str]:
    """Problems between fields (one device order or pin used twice), on plain data.

    Works on a file that has other mistakes too, so that every problem is listed at once.
    """
    problems: list[str] = []
    if not isinstance(raw, dict):
        return problems
    devices = raw.get("devices") if isinstance(raw.get("devices"), dict) else {}
    orders: dict[Any, str] = {}
    used: dict[Any, str] = {}

    def claim(pin: Any, where: str) -> None:
        if not isinstance(pin, int):
            return
        if pin in used:
            problems.append(f"{where}: BCM {pin} is already used by {used[pin]}")
        else:
            used[pin] = where

    for name, d in devices.items():
        if not isinstance(d, dict):
            continue
        order = d.get("order")
        if isinstance(order, int):
            if order in orders:
                problems.append(f"devices.{name}.order: {order} is also the order of "
                                f"'{orders[order]}'; each device needs its own place")
            orders[order] = name
        relay = d.get("relay")
        if isinstance(relay, dict):
            claim(relay.get("pin"), f"devices.{name}.relay.pin")
    led = raw.get("status_led")
    if isinstance(led, dict):
        claim(led.get("pin"), "status_led.pin")
        if isinstance(led.get("pins"), dict):
            for colour in ("red", "green", "blue"):
                claim(led["pins"].get(colour), f"status_led.pins.{colour}")
    button = raw.get("button")
    if isinstance(button, dict):
        claim(button.get("pin"), "button.pin")
    return problems


class ConfigError(ValueError):
    """A site config with problems; ``problems`` lists each as ``field.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each YAML key path (list items by index) to its 1-based line, for error messages
    (the console's config uses it too)."""
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                index[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return index


def line_of(path: str, lines: dict[tuple[str, ...], int]) -> str:
    """`` (line N)`` for the deepest part of the dotted ``path`` that has a line, else ""."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in lines:
            return f" (line {lines[tuple(parts[:n])]})"
    return ""


def _describe(err: dict[str, Any], lines: dict[tuple[str, ...], int]) -> list[str]:
    """One pydantic error as ``field.path: message (line N)`` lines; never includes input."""
    # Tagged-union and validator names are pydantic's, not the operator's: leave them out.
    loc = [str(p) for p in err["loc"] if not (isinstance(p, str) and
                                                   (p in ("single", "rgb") or "[" in p))]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling and indentation)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    if not loc and err["type"] == "value_error":
        # Cross-field checks already name their fields, one problem a line.
        return [f"{m}{line_of(m.split(':', 1)[0], lines)}" for m in msg.split("\n")]
    path = ".".join(loc) or "(file)"
    out = []
    for line in msg.split("\n"):
        # A nested check (a driver's settings) names its own sub-field: join the paths.
        m = re.match(r"^([A-Za-z_][\w.]*): (.+)$", line)
        full = f"{path}.{m[1]}" if m and loc else path
        text = m[2] if m and loc else line
        out.append(f"{full}: {text}{line_of(full, lines)}")
    return out


def parse_config(text: str, source: str = "<config>") -> SiteConfig:
    """Validate config text; raise ``ConfigError`` listing every problem."""
    try:
        raw = yaml.safe_load(text)
        lines = line_index(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line
        raise ConfigError([f"(file): not valid YAML: {problem}{where}"]) from None
    except RecursionError:
        raise ConfigError(["(file): not valid YAML: nested too deeply"]) from None
    except ValueError as e:  # e.g. an integer over Python's 4300-digit limit
        raise ConfigError([f"(file): not valid YAML: {str(e).split(':')[0]}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"(file): {source} must be a YAML mapping with 'site' and 'devices'"])
    try:
        return SiteConfig.model_validate(raw)
    except ValidationError as e:
        problems = [p for err in e.errors(include_input=False) for p in _describe(dict(err), lines)]
        # Cross-field checks run only on valid fields in pydantic: add them here too.
        for p in cross_check(raw):
            line = f"{p}{line_of(p.split(':', 1)[0], lines)}"
            if line not in problems:
                problems.append(line)
        raise ConfigError(problems) from None


def load_config(path: Path) -> SiteConfig:
    """Read and validate a site config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"(file): cannot read {path}: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"(file): {path} is not UTF-8 text"]) from None
    return parse_config(text, str(path))


def json_schema() -> dict[str, Any]:
    """JSON Schema of the site config, for editors (``diemcau-agent schema``)."""
    schema = SiteConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "diemcau site config"
    return schema
