"""The console's config: one YAML file with the organisation, the broker, the database, the
HTTP listener and the roster of rooms, validated strictly.

Every problem in a file is reported at once, each as ``field.path: message (line N)``; secrets
(the broker password) never appear in any message, log line or repr.

Example::

    cfg = load_config(Path("/etc/diemcau-district/console.yaml"))
    cfg.room("vq-tan-doan").name   # 'UBND xã Tân Đoàn'
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

from agent.config import line_index, line_of

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
"""Same rule as the room agent's and the broker's site ids (a topic level and a user name)."""

Lang = Literal["vi", "en"]


class Strict(BaseModel):
    """Base for hand-written config: unknown keys are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A name shown to people, Vietnamese first; English falls back to Vietnamese."""

    vi: str = Field(min_length=1, description="Vietnamese (shown by default)")
    en: str = Field("", description="English (the Vietnamese is shown when empty)")

    def get(self, lang: Lang = "vi") -> str:
        """The text in ``lang``."""
        return self.en if lang == "en" and self.en else self.vi


class Organisation(Strict):
    name: Text = Field(description="Who runs the console, e.g. 'Trung tâm CNTT tỉnh Lạng Sơn'")
    level: Text = Field(description="The level shown to people, e.g. {vi: tỉnh, en: province}")


class Tls(Strict):
    ca_file: Path = Field(description="The broker's CA certificate (PEM)")
    cert_file: Path | None = Field(None, description="The console's client certificate (PEM)")
    key_file: Path | None = Field(None, description="The console's private key (PEM)")

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class Credentials(BaseModel):
    """User name and password read from ``credentials_file`` (the staff bundle's
    ``credentials.yaml`` made by ``diemcau-broker add-staff NAME --role console``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    username: str
    password: SecretStr


def part_of(site: str, parts: int) -> int:
    """The part (1..parts) that records room ``site``: from its id alone (CRC-32), so a room
    stays in its part whatever is added to or removed from the roster."""
    return zlib.crc32(site.encode()) % parts + 1


class BrokerCfg(Strict):
    url: str = Field("mqtt://127.0.0.1:1883",
                     description="mqtt://HOST:PORT (plain, loopback) or mqtts://HOST:PORT (TLS)")
    credentials_file: Path | None = Field(
        None, description="YAML with 'username' and 'password' (the console's staff account)")
    tls: Tls | None = None
    client_id: str = Field("diemcau-console", min_length=1, max_length=64,
                           pattern=r"^[A-Za-z0-9._-]+$",
                           description="Fixed client id of the recorder's persistent session")
    session_expiry_s: int = Field(604800, ge=60, le=30 * 86400,
                                  description="How long the broker keeps the recorder's session "
                                              "(and queues messages) while it is away")
    keepalive_s: int = Field(60, ge=5, le=300)
    topic_prefix: str = Field("diemcau/v2", pattern=r"^[A-Za-z0-9_/-]+[A-Za-z0-9_-]$")
    share_group: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
        description="Receive events and replies through the MQTT v5 shared subscription "
                    "$share/<group>/…, so several recorder processes (each its own client_id, "
                    "one database: PostgreSQL) share them; see docs/benchmarks.md")
    primary: bool = Field(
        True, description="This process also records availability, state, info and host (a "
                          "normal subscription: retained messages, each room in order) and "
                          "publishes schedules and commands: exactly one process per console")
    parts: int = Field(
        1, ge=1, le=64,
        description="Recorder processes sharing the roster's rooms: each subscribes normally "
                    "to every topic of its own rooms (a room's part comes from its id), with "
                    "its own client_id and persistent session, into one database "
                    "(PostgreSQL); part 1 is the primary. See docs/benchmarks.md")
    part: int = Field(1, ge=1, le=64, description="Which of the parts this process is")

    @model_validator(mode="after")
    def _parts(self) -> BrokerCfg:
        if self.part > self.parts:
            raise ValueError(f"part {self.part} of {self.parts}: part is 1..parts")
        if self.parts > 1 and self.share_group is not None:
            raise ValueError("parts and share_group are two ways to share the recording: "
                             "use one")
        if self.parts > 1 and self.primary != (self.part == 1):
            raise ValueError(f"part {self.part} of {self.parts}: primary must be "
                             f"{'true' if self.part == 1 else 'false'} (part 1 publishes "
                             "schedules and commands)")
        return self

    def my_rooms(self, sites: list[str]) -> list[str]:
        """The rooms among ``sites`` that this process records (all of them with one part)."""
        if self.parts == 1:
            return list(sites)
        return [s for s in sites if part_of(s, self.parts) == self.part]

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("expected mqtt://HOST:PORT or mqtts://HOST:PORT")
        try:
            u.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            raise ValueError(f"bad port: {e}") from None
        return v

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        u = urlparse(self.url)
        return u.port or (8883 if u.scheme == "mqtts" else 1883)

    def missing_files(self) -> list[str]:
        """Credential and TLS files named here that this machine cannot read."""
        named = [("broker.credentials_file", self.credentials_file)]
        if self.tls is not None:
            named += [("broker.tls.ca_file", self.tls.ca_file),
                      ("broker.tls.cert_file", self.tls.cert_file),
                      ("broker.tls.key_file", self.tls.key_file)]
        return [f"{f}: {p} does not exist or is not readable" for f, p in named
                if p is not None and not os.access(p, os.R_OK)]

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


class Database(Strict):
    path: Path = Field(Path("/var/lib/diemcau-district/console.db"),
                       description="SQLite database file (WAL mode); not used with 'url'")
    url: str | None = Field(
        None, description="postgresql://USER@HOST:PORT/DB (PostgreSQL instead of the SQLite "
                          "file; the password, if any, in a libpq passfile, never here)")

    @field_validator("url")
    @classmethod
    def _pg_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlparse(v)
        if u.scheme not in ("postgresql", "postgres") or not u.path.strip("/"):
            raise ValueError("expected postgresql://USER@HOST:PORT/DATABASE")
        if u.password is not None:
            raise ValueError("no password in the URL (it would show in logs): put it in a "
                             "passfile and add ?passfile=/etc/diemcau-district/pgpass")
        try:
            u.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            raise ValueError(f"bad port: {e}") from None
        return v


class Http(Strict):
    listen: str = Field("127.0.0.1:8080", pattern=r"^[^\s:]+:[0-9]{1,5}$",
                        description="HOST:PORT the web dashboard listens on")


class Alerts(Strict):
    schedule_check_before_min: float = Field(
        30, ge=0, le=24 * 60,
        description="Alert when a room has not applied its schedule this long before a window")
    offline_grace_s: float = Field(
        60, ge=0, le=3600, description="A room offline this long during a window is an alert")


class ScheduleCfg(Strict):
    keep_h: float = Field(24, ge=1, le=24 * 30,
                          description="Windows stay in a room's schedule until this long after "
                                      "their end (or completion)")
    default_check_timeout_s: float = Field(300, ge=5, le=3600,
                                           description="Operator check timeout sent to rooms")


class Contact(Strict):
    name: str = Field(min_length=1)
    role: str = ""
    phone: str = Field("", pattern=r"^(\+?[0-9 ().-]{6,20})?$")


class Room(Strict):
    id: str = Field(description="The room's site id (as in diemcau-broker and its site config)")
    name: str = Field(min_length=1, description="The room's name as people say it")
    group: str | None = Field(None, min_length=1,
                              description="A cluster or former district, to schedule together")
    contacts: list[Contact] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _site_id(cls, v: str) -> str:
        if not SITE_ID.match(v):
            raise ValueError("must be 2-63 characters of a-z, 0-9 and '-', starting with a letter "
                             "or digit (it is part of MQTT topics)")
        return v


class ConsoleConfig(Strict):
    """The console's whole configuration."""

    organisation: Organisation
    timezone: str = Field("Asia/Ho_Chi_Minh", description="IANA zone times are shown in")
    broker: BrokerCfg = BrokerCfg()
    database: Database = Database()
    http: Http = Http()
    alerts: Alerts = Alerts()
    schedule: ScheduleCfg = ScheduleCfg()
    rooms: list[Room] = Field(default_factory=list)

    @field_validator("rooms", mode="before")
    @classmethod
    def _empty_rooms(cls, v: Any) -> Any:
        return [] if v is None else v  # "rooms:" with nothing under it yet

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @model_validator(mode="after")
    def _several_need_postgres(self) -> ConsoleConfig:
        several = self.broker.parts > 1 or self.broker.share_group is not None
        if several and self.database.url is None:
            raise ValueError("broker.parts / broker.share_group: several recorder processes "
                             "write to one PostgreSQL database (database.url)")
        return self

    @model_validator(mode="after")
    def _cross(self) -> ConsoleConfig:
        problems = cross_check(self.model_dump(mode="json"))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def room(self, site: str) -> Room:
        """The roster entry for ``site``; ``KeyError`` if it is not in the roster."""
        for r in self.rooms:
            if r.id == site:
                return r
        raise KeyError(site)

    def room_ids(self) -> list[str]:
        """Site ids in roster order."""
        return [r.id for r in self.rooms]

    def groups(self) -> dict[str, list[str]]:
        """Group name → site ids, in roster order."""
        out: dict[str, list[str]] = {}
        for r in self.rooms:
            if r.group:
                out.setdefault(r.group, []).append(r.id)
        return out


def cross_check(raw: Any) -> list[str]:
    """Problems between fields (a room id listed twice), on plain data, so that they are found
    even when other fields are wrong too."""
    problems: list[str] = []
    rooms = raw.get("rooms") if isinstance(raw, dict) else None
    if not isinstance(rooms, list):
        return problems
    seen: dict[str, int] = {}
    for i, r in enumerate(rooms):
        if isinstance(r, dict) and isinstance(r.get("id"), str):
            if r["id"] in seen:
                problems.append(f"rooms.{i}.id: '{r['id']}' is already room {seen[r['id']]}")
            else:
                seen[r["id"]] = i
    return problems


class ConfigError(ValueError):
    """A console config with problems; ``problems`` lists each as ``field.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _describe(err: dict[str, Any], lines: dict[tuple[str, ...], int]) -> list[str]:
    """One pydantic error as ``field.path: message (line N)`` lines; never includes input."""
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling and indentation)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    if not loc and err["type"] == "value_error":
        return [f"{m}{line_of(m.split(':', 1)[0], lines)}" for m in msg.split("\n")]
    path = ".".join(loc) or "(file)"
    return [f"{path}: {line}{line_of(path, lines)}" for line in msg.split("\n")]


def parse_config(text: str, source: str = "<config>") -> ConsoleConfig:
    """Validate config text; raise ``ConfigError`` listing every problem."""
    try:
        raw = yaml.safe_load(text)
        lines = line_index(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError([f"(file): not valid YAML: {problem}{where}"]) from None
    except (RecursionError, ValueError):
        raise ConfigError(["(file): not valid YAML"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"(file): {source} must be a YAML mapping with 'organisation' "
                           "and 'rooms'"])
    try:
        return ConsoleConfig.model_validate(raw)
    except ValidationError as e:
        problems = [p for err in e.errors(include_input=False) for p in _describe(dict(err), lines)]
        for p in cross_check(raw):
            line = f"{p}{line_of(p.split(':', 1)[0], lines)}"
            if line not in problems:
                problems.append(line)
        raise ConfigError(problems) from None


def load_config(path: Path) -> ConsoleConfig:
    """Read and validate a console config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"(file): cannot read {path}: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"(file): {path} is not UTF-8 text"]) from None
    return parse_config(text, str(path))


SCHEMA_FILE = Path(__file__).parent / "console.schema.json"


def json_schema() -> dict[str, Any]:
    """JSON Schema of the console config, for editors (``diemcau-district schema``); shipped as
    ``district/console.schema.json``."""
    schema = ConsoleConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "diemcau district console config"
    return schema
