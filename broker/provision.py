"""Provisioning of a district (or province) broker, kept in one directory.

Everything ``diemcau-broker`` does is a function here, operating on a :class:`Site` directory
(default ``/etc/diemcau-broker``)::

    diemcau-broker.yaml   settings, rooms, staff, bridge (no secrets)
    ca/                   the CA (ca.key mode 0600; only this tool reads it)
    tls/                  ca.crt, crl.pem, server.crt, server.key  (read by Mosquitto)
    passwd                Mosquitto password file (PBKDF2-SHA512 hashes, via mosquitto_passwd)
    acl                   Mosquitto ACL file
    mosquitto.conf        standalone configuration (mosquitto -c ...)
    conf.d/diemcau.conf   the same without pid/persistence/log lines, for Debian's conf.d
    rooms/<site>/         hand-over bundle for a room (mode 0700): tls/, credentials.yaml,
                          broker.yaml — the same layout as /etc/diemcau on the room's Pi
    staff/<name>/         hand-over bundle for a staff member
    districts/<name>/     (province) hand-over bundle for a district's bridge
    bridge/               (district) the province bundle this district's bridge uses
    data/                 persistence and log of the standalone configuration

Example::

    site = Site(Path("/etc/diemcau-broker"))
    init_site(site, name="vanquan", hosts=["mqtt.vanquan.local"])
    bundle = add_room(site, "vq-tan-doan")
    revoke_room(site, "vq-tan-doan")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from broker.acl import (
    HA_COMMANDS,
    HA_PREFIX,
    PREFIX,
    ROLES,
    DistrictGrant,
    StaffGrant,
    check_ha_prefixes,
    district_acl,
    province_acl,
)
from broker.pki import CERT_DAYS, CertAuthority, PkiError, cert_field

DEFAULT_DIR = Path("/etc/diemcau-broker")
STATE_FILE = "diemcau-broker.yaml"
TEMPLATES = Path(__file__).parent / "mosquitto"
# Same rule as agent.config.SITE_ID (a site id becomes an MQTT topic level and user name).
SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")   # whole string: use fullmatch
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
ROOM_ETC = "/etc/diemcau"
Kind = Literal["district", "province"]


class ProvisionError(RuntimeError):
    """A provisioning request that cannot be carried out; nothing was changed."""


@dataclass
class Room:
    """A provisioned room: its current certificate, and whether it is revoked."""

    serial: str
    not_after: str
    revoked: bool = False
    old_serials: list[str] = field(default_factory=list)


@dataclass
class Staff:
    """A staff member's broker account (user name ``staff.<name>``)."""

    role: str
    serial: str
    not_after: str
    allow_commands: bool = False
    commands: list[str] = field(default_factory=list)
    """Role ``homeassistant``: the Home Assistant commands it may send."""


@dataclass
class District:
    """(Province side) a district allowed to bridge in, as user ``district.<name>``."""

    serial: str
    not_after: str
    allow_commands: bool = False


@dataclass
class Bridge:
    """(District side) the bridge to the province broker."""

    host: str
    port: int
    username: str
    allow_commands: bool = False


@dataclass
class Settings:
    """Everything ``diemcau-broker.yaml`` holds. No secrets."""

    kind: Kind
    name: str
    hosts: list[str]
    ips: list[str] = field(default_factory=list)
    tls_port: int = 8883
    tls_bind: str = ""
    local_port: int = 1883
    user: str = "mosquitto"
    pid_file: str = "/run/mosquitto/mosquitto.pid"
    data_dir: str = ""
    room_etc: str = ROOM_ETC
    max_packet_size: int = 262144
    max_queued_messages: int = 5000
    max_keepalive: int = 300
    session_expiry: str = "14d"
    autosave_interval: int = 300
    ha_prefixes: list[str] = field(default_factory=lambda: [HA_PREFIX])
    """(District) the Home Assistant discovery prefixes the ACL grants: each room's
    ``homeassistant.discovery_prefix`` and each Home Assistant's must be one of them."""
    rooms: dict[str, Room] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    districts: dict[str, District] = field(default_factory=dict)
    bridge: Bridge | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        """Rebuild settings read from YAML."""
        raw = dict(raw)
        raw["rooms"] = {k: Room(**v) for k, v in (raw.get("rooms") or {}).items()}
        raw["staff"] = {k: Staff(**v) for k, v in (raw.get("staff") or {}).items()}
        raw["districts"] = {k: District(**v) for k, v in (raw.get("districts") or {}).items()}
        raw["bridge"] = Bridge(**raw["bridge"]) if raw.get("bridge") else None
        return cls(**raw)


@dataclass(frozen=True)
class Bundle:
    """Files handed to an installer: a directory laid out like the target's ``/etc/diemcau``."""

    directory: Path
    files: list[Path]
    broker_section: str


class Site:
    """A district or province broker directory."""

    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.dir = Path(directory).absolute()
        self.ca = CertAuthority(self.dir / "ca")

    @property
    def state_file(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"

    @property
    def passwd(self) -> Path:
        return self.dir / "passwd"

    @property
    def acl(self) -> Path:
        return self.dir / "acl"

    @property
    def conf(self) -> Path:
        return self.dir / "mosquitto.conf"

    @property
    def fragment(self) -> Path:
        return self.dir / "conf.d" / "diemcau.conf"

    def exists(self) -> bool:
        """True once ``init`` has run here."""
        return self.state_file.exists()

    def load(self) -> Settings:
        """Read the settings; a clear error if ``init`` never ran here."""
        if not self.exists():
            raise ProvisionError(f"{self.dir} is not a diemcau broker directory: run "
                                 f"`diemcau-broker --dir {self.dir} init ...` first")
        return Settings.from_dict(yaml.safe_load(self.state_file.read_text()))

    def save(self, s: Settings) -> None:
        """Write the settings atomically."""
        raw = asdict(s)
        _write(self.state_file, "# diemcau-broker settings (no secrets). Change them with "
               "diemcau-broker.\n" + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True),
               0o644)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock so two commands never interleave their changes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# ---- small file helpers ----------------------------------------------------------------------

def _broker_gid(s: Settings) -> int | None:
    """Group id Mosquitto runs as, if we are root and it is not root (else None: leave it)."""
    if os.geteuid() != 0 or s.user == "root":
        return None
    try:
        return pwd.getpwnam(s.user).pw_gid
    except KeyError:
        try:
            return grp.getgrnam(s.user).gr_gid
        except KeyError:
            return None


def _write(path: Path, text: str, mode: int, gid: int | None = None) -> None:
    """Write ``text`` atomically with ``mode`` (created with it: never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if gid is not None:
            os.chown(tmp, 0, gid)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _share(path: Path, s: Settings, mode: int) -> None:
    """Give a file Mosquitto must read to root:<broker group> with ``mode``."""
    path.chmod(mode)
    gid = _broker_gid(s)
    if gid is not None:
        os.chown(path, 0, gid)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def new_password() -> str:
    """A random password for a machine account (~192 bits)."""
    return secrets.token_urlsafe(24)


# ---- Mosquitto password file (through mosquitto_passwd) -------------------------------------

def mosquitto_passwd_binary() -> str:
    """Path of ``mosquitto_passwd`` (package mosquitto)."""
    found = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if not found:
        raise ProvisionError("mosquitto_passwd is not installed (apt-get install mosquitto)")
    return found


def hash_password(site: Site, username: str, password: str) -> str:
    """The password-file line for ``username``, hashed by ``mosquitto_passwd -U``.

    The clear password goes through a 0600 file in the site directory, never a command line
    (which any local user could read in ``ps``).
    """
    tmp = site.dir / f".pw-{secrets.token_hex(4)}"
    _write(tmp, f"{username}:{password}\n", 0o600)
    try:
        proc = subprocess.run([mosquitto_passwd_binary(), "-U", str(tmp)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise ProvisionError(f"mosquitto_passwd failed: {proc.stderr.strip()}")
        line = tmp.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    if not line.startswith(f"{username}:$"):
        raise ProvisionError("mosquitto_passwd did not hash the password")
    return line


def _passwd_lines(site: Site) -> dict[str, str]:
    if not site.passwd.exists():
        return {}
    out = {}
    for line in site.passwd.read_text().splitlines():
        if ":" in line and not line.startswith("#"):
            out[line.split(":", 1)[0]] = line
    return out


def _write_passwd(site: Site, s: Settings, lines: dict[str, str]) -> None:
    gid = _broker_gid(s)
    _write(site.passwd, "".join(f"{v}\n" for _, v in sorted(lines.items())),
           0o640 if gid is not None else 0o600, gid)


def set_password(site: Site, s: Settings, username: str, password: str) -> None:
    """Add or replace ``username`` in the password file."""
    lines = _passwd_lines(site)
    lines[username] = hash_password(site, username, password)
    _write_passwd(site, s, lines)


def remove_password(site: Site, s: Settings, username: str) -> bool:
    """Remove ``username`` from the password file; False if it was not there."""
    lines = _passwd_lines(site)
    if lines.pop(username, None) is None:
        return False
    _write_passwd(site, s, lines)
    return True


# ---- rendering ---------------------------------------------------------------------------------

def _body(site: Site, s: Settings) -> str:
    tls_comment = ("Rooms and remote staff" if s.kind == "district"
                   else "District bridges and remote staff")
    text = (TEMPLATES / "district.conf.tmpl").read_text().format(
        kind=s.kind, name=s.name, dir=site.dir, tls_dir=site.tls_dir, tls_port=s.tls_port,
        tls_bind=f" {s.tls_bind}" if s.tls_bind else "", local_port=s.local_port,
        tls_comment=tls_comment, max_packet_size=s.max_packet_size,
        max_queued_messages=s.max_queued_messages, max_keepalive=s.max_keepalive,
        session_expiry=s.session_expiry, autosave_interval=s.autosave_interval)
    if s.kind == "district" and s.bridge is not None:
        text += _bridge_section(site, s, s.bridge)
    return text


def _bridge_section(site: Site, s: Settings, b: Bridge) -> str:
    bridge_dir = site.dir / "bridge"
    creds = yaml.safe_load((bridge_dir / "credentials.yaml").read_text())
    local = f"{PREFIX}/"
    remote = f"province/{s.name}/{PREFIX}/"
    topics = [f"topic rooms/+/{kind} out 1 {local} {remote}"
              for kind in ("availability", "info", "state", "host", "events")]
    if b.allow_commands:
        topics += [f"topic rooms/+/commands in 1 {local} {remote}",
                   f"topic rooms/+/replies out 1 {local} {remote}"]
    else:
        topics.append("# Commands from the province are not accepted "
                      "(diemcau-broker bridge --allow-commands).")
    return (TEMPLATES / "bridge.conf.tmpl").read_text().format(
        district=s.name, host=b.host, port=b.port, username=b.username,
        password=creds["password"], bridge_dir=bridge_dir, topics="\n".join(topics))


def render(site: Site, s: Settings | None = None) -> list[Path]:
    """Write the ACL, the standalone ``mosquitto.conf`` and the Debian ``conf.d`` fragment."""
    s = s or site.load()
    gid = _broker_gid(s)
    staff = [StaffGrant(f"staff.{n}", st.role, st.allow_commands, tuple(st.commands))
             for n, st in s.staff.items()]
    if s.kind == "district":
        acl = district_acl(s.name, staff,
                           _ha_prefixes(s.ha_prefixes, f"ha_prefixes in {site.state_file}"))
    else:
        acl = province_acl(s.name, [DistrictGrant(n, f"district.{n}", d.allow_commands)
                                    for n, d in s.districts.items()], staff)
    _write(site.acl, acl, 0o640 if gid is not None else 0o644, gid)
    body = _body(site, s)
    data_dir = Path(s.data_dir or site.dir / "data")
    header = (TEMPLATES / "standalone.conf.tmpl").read_text().format(
        kind=s.kind, name=s.name, dir=site.dir, pid_file=s.pid_file, data_dir=data_dir,
        user=s.user)
    # The bridge password is in the configuration: readable by root and the broker only.
    _write(site.conf, header + body, 0o640, gid)
    _write(site.fragment, body, 0o640, gid)
    if not data_dir.exists():
        data_dir.mkdir(parents=True)
        if os.geteuid() == 0 and s.user != "root":
            with contextlib.suppress(KeyError):
                u = pwd.getpwnam(s.user)
                os.chown(data_dir, u.pw_uid, u.pw_gid)
    if gid is not None:
        for d in (site.dir, site.fragment.parent):
            os.chown(d, 0, gid)
            d.chmod(0o750)
    return [site.acl, site.conf, site.fragment]


def publish_ca_files(site: Site, s: Settings) -> None:
    """Copy the CA certificate and CRL where Mosquitto (not root) may read them."""
    site.tls_dir.mkdir(parents=True, exist_ok=True)
    for src in (site.ca.cert_file, site.ca.crl_file):
        dst = site.tls_dir / src.name
        shutil.copyfile(src, dst)
        dst.chmod(0o644)


# ---- reload ------------------------------------------------------------------------------------

def reload_broker(s: Settings, pid_file: str | None = None) -> str:
    """Send SIGHUP to the running Mosquitto (password file, ACL and CRL are re-read, clients
    whose password is gone are disconnected). Returns a sentence saying what happened."""
    path = Path(pid_file or s.pid_file)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return (f"no broker pid in {path}: reload Mosquitto yourself "
                "(systemctl reload mosquitto)")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return f"broker pid {pid} from {path} is not running: nothing reloaded"
    except PermissionError:
        return f"not allowed to signal broker pid {pid}: run as root or reload Mosquitto yourself"
    return f"broker (pid {pid}) reloaded"


# ---- operations --------------------------------------------------------------------------------

def _ha_prefixes(prefixes: Iterable[str], what: str) -> list[str]:
    """``prefixes`` checked (:func:`~broker.acl.check_ha_prefixes`); a
    :class:`ProvisionError` naming ``what`` (the option or setting) if one is not a prefix."""
    try:
        return list(check_ha_prefixes(prefixes))
    except ValueError as e:
        raise ProvisionError(f"{what}: {e}") from None


def set_ha_prefixes(site: Site, prefixes: Iterable[str]) -> Settings:
    """(District) grant Home Assistant discovery under exactly ``prefixes`` (each one a room's
    or a Home Assistant's ``discovery_prefix``), then render the ACL."""
    s = site.load()
    _district_only(s, "ha-prefix")
    s.ha_prefixes = _ha_prefixes(prefixes, "ha-prefix")
    site.save(s)
    render(site, s)
    return s


def init_site(site: Site, kind: Kind, name: str, hosts: list[str], ips: list[str] | None = None,
              **settings: Any) -> Settings:
    """Create the CA, the broker's server certificate for ``hosts``/``ips`` and the configs
    (``settings``: fields of :class:`Settings`, e.g. ``ha_prefixes``)."""
    if not NAME.fullmatch(name):
        raise ProvisionError(f"name {name!r}: use 1-32 characters a-z, 0-9 and '-'")
    if settings.get("max_queued_messages", 1000) < 1000:
        raise ProvisionError("--max-queued-messages: at least 1000 (a console's backlog "
                             "through one window of a few rooms)")
    if "ha_prefixes" in settings:
        if kind != "district":
            raise ProvisionError("--ha-prefix: only a district broker carries rooms' Home "
                                 "Assistant discovery")
        settings["ha_prefixes"] = _ha_prefixes(settings["ha_prefixes"], "--ha-prefix")
    if not hosts:
        raise ProvisionError("give at least one --host: the name rooms use to reach the broker")
    if site.exists() or site.ca.exists():
        raise ProvisionError(f"{site.dir} already holds a broker; refusing to overwrite its CA")
    s = Settings(kind=kind, name=name, hosts=list(hosts), ips=list(ips or []), **settings)
    site.dir.mkdir(parents=True, exist_ok=True)
    site.ca.create(f"diemcau {kind} {name} CA")
    issued = site.ca.issue(hosts[0], site.tls_dir, "server", dns=tuple(hosts),
                           ips=tuple(s.ips), basename="server")
    _share(issued.key_file, s, 0o640 if _broker_gid(s) is not None else 0o600)
    publish_ca_files(site, s)
    _write_passwd(site, s, {})
    site.save(s)
    render(site, s)
    return s


def _bundle(site: Site, s: Settings, where: Path, username: str, password: str | None,
            days: int, ca_file: Path | None = None) -> tuple[Bundle, str, str]:
    """Issue a client certificate for ``username`` and write a hand-over bundle in ``where``."""
    _private_dir(where)
    tls = _private_dir(where / "tls")
    shutil.copyfile(ca_file or site.ca.cert_file, tls / "ca.crt")
    issued = site.ca.issue(username, tls, "client", days=days)
    files = [tls / "ca.crt", issued.cert_file, issued.key_file]
    if password is not None:
        creds = where / "credentials.yaml"
        _write(creds, yaml.safe_dump({"username": username, "password": password}), 0o600)
        files.append(creds)
    etc = s.room_etc
    section = yaml.safe_dump({"broker": {
        "host": s.hosts[0], "port": s.tls_port,
        "tls": {"ca_file": f"{etc}/tls/ca.crt", "cert_file": f"{etc}/tls/{username}.crt",
                "key_file": f"{etc}/tls/{username}.key"},
        "credentials_file": f"{etc}/credentials.yaml"}}, sort_keys=False)
    _write(where / "broker.yaml", section, 0o644)
    files.append(where / "broker.yaml")
    return Bundle(where, files, section), issued.serial, issued.not_after


def add_room(site: Site, site_id: str, days: int = CERT_DAYS) -> Bundle:
    """Provision a room: password, client certificate (CN = site id), hand-over bundle.

    The ACL needs no change (the room patterns cover every site id). A revoked site id may be
    provisioned again; an active one must be rotated instead.
    """
    s = site.load()
    _district_only(s, "add-room")
    if not SITE_ID.fullmatch(site_id):
        raise ProvisionError(f"site id {site_id!r}: 2-63 characters of a-z, 0-9 and '-', "
                             "starting with a letter or digit (the agent's site.id)")
    old = s.rooms.get(site_id)
    if old is not None and not old.revoked:
        raise ProvisionError(f"room {site_id} already exists: use rotate-room to give it new "
                             "credentials, or revoke-room first")
    password = new_password()
    bundle, serial, not_after = _bundle(site, s, site.dir / "rooms" / site_id, site_id,
                                        password, days)
    set_password(site, s, site_id, password)
    s.rooms[site_id] = Room(serial=serial, not_after=not_after,
                            old_serials=([*old.old_serials, old.serial] if old else []))
    site.save(s)
    render(site, s)
    return bundle


def rotate_room(site: Site, site_id: str, cert_only: bool = False,
                days: int = CERT_DAYS) -> Bundle:
    """New certificate (and, unless ``cert_only``, new password) for a room.

    Full rotation revokes the old certificate at once: the room is locked out until the new
    bundle is installed. ``cert_only`` renews the certificate before it expires, keeping the
    password and leaving the old certificate valid, so nothing is interrupted.
    """
    s = site.load()
    _district_only(s, "rotate-room")
    room = s.rooms.get(site_id)
    if room is None or room.revoked:
        raise ProvisionError(f"no active room {site_id}: use add-room")
    password = None if cert_only else new_password()
    bundle, serial, not_after = _bundle(site, s, site.dir / "rooms" / site_id, site_id,
                                        password, days)
    if password is not None:
        set_password(site, s, site_id, password)
        _revoke_all(site, [*room.old_serials, room.serial])
        publish_ca_files(site, s)
    s.rooms[site_id] = Room(serial=serial, not_after=not_after,
                            old_serials=[*room.old_serials, room.serial])
    site.save(s)
    render(site, s)
    return bundle


def _revoke_all(site: Site, serials: list[str]) -> None:
    """Revoke each of ``serials`` not already revoked (a room's current and older certs)."""
    revoked = site.ca.revoked_serials()
    for serial in serials:
        if serial.upper() not in revoked:
            site.ca.revoke(serial)


def revoke_room(site: Site, site_id: str) -> None:
    """Lock a room out: password removed, every certificate it had revoked (CRL rewritten)."""
    s = site.load()
    _district_only(s, "revoke-room")
    room = s.rooms.get(site_id)
    if room is None:
        raise ProvisionError(f"no room {site_id} in {site.dir}")
    remove_password(site, s, site_id)
    _revoke_all(site, [*room.old_serials, room.serial])
    publish_ca_files(site, s)
    room.revoked = True
    shutil.rmtree(site.dir / "rooms" / site_id, ignore_errors=True)
    site.save(s)
    render(site, s)


def add_staff(site: Site, name: str, role: str, allow_commands: bool = False,
              days: int = CERT_DAYS, commands: list[str] | None = None) -> Bundle:
    """Account ``staff.<name>`` with ``role``: password, client certificate, bundle.

    The certificate is needed only to connect over TLS from another machine; on the broker's
    own machine the loopback listener takes the password alone. ``commands``: for a
    ``homeassistant`` account, the Home Assistant commands it may send (``power``,
    ``operator_check``; none: Home Assistant only shows the rooms).
    """
    s = site.load()
    if not NAME.fullmatch(name):
        raise ProvisionError(f"staff name {name!r}: use 1-32 characters a-z, 0-9 and '-'")
    allowed = ROLES if s.kind == "district" else ("console", "viewer")
    if role not in allowed:
        raise ProvisionError(f"role {role!r}: choose one of {', '.join(allowed)}")
    if allow_commands and role != "province":
        raise ProvisionError("--allow-commands is for the province role (a console always "
                             "commands; a viewer never does)")
    commands = list(commands or [])
    if commands and role != "homeassistant":
        raise ProvisionError("--commands is for the homeassistant role")
    unknown = sorted(set(commands) - set(HA_COMMANDS))
    if unknown:
        raise ProvisionError(f"--commands: unknown {', '.join(unknown)}; choose from "
                             f"{', '.join(HA_COMMANDS)}")
    if name in s.staff:
        raise ProvisionError(f"staff {name} already exists: remove-staff first")
    username = f"staff.{name}"
    password = new_password()
    bundle, serial, not_after = _bundle(site, s, site.dir / "staff" / name, username, password,
                                        days)
    set_password(site, s, username, password)
    s.staff[name] = Staff(role=role, serial=serial, not_after=not_after,
                          allow_commands=allow_commands,
                          commands=[c for c in HA_COMMANDS if c in commands])
    site.save(s)
    render(site, s)
    return bundle


def remove_staff(site: Site, name: str) -> None:
    """Remove a staff account: password gone, certificate revoked, ACL entry gone."""
    s = site.load()
    st = s.staff.pop(name, None)
    if st is None:
        raise ProvisionError(f"no staff {name} in {site.dir}")
    remove_password(site, s, f"staff.{name}")
    if st.serial.upper() not in site.ca.revoked_serials():
        site.ca.revoke(st.serial)
    publish_ca_files(site, s)
    shutil.rmtree(site.dir / "staff" / name, ignore_errors=True)
    site.save(s)
    render(site, s)


def add_district(site: Site, district: str, allow_commands: bool = False,
                 days: int = CERT_DAYS) -> Bundle:
    """(Province) let ``district`` bridge in: user ``district.<name>``, certificate, bundle.

    Copy the bundle to the district and run ``diemcau-broker bridge --bundle DIR`` there.
    ``allow_commands`` lets the province console command that district's rooms (the district
    must agree too: ``bridge --allow-commands``).
    """
    s = site.load()
    if s.kind != "province":
        raise ProvisionError("add-district is a province command (init --province)")
    if not NAME.fullmatch(district):
        raise ProvisionError(f"district {district!r}: use 1-32 characters a-z, 0-9 and '-'")
    if district in s.districts:
        raise ProvisionError(f"district {district} already exists")
    username = f"district.{district}"
    password = new_password()
    bundle, serial, not_after = _bundle(site, s, site.dir / "districts" / district, username,
                                        password, days)
    (bundle.directory / "broker.yaml").unlink()
    _write(bundle.directory / "province.yaml", yaml.safe_dump({
        "province": s.name, "district": district, "host": s.hosts[0], "port": s.tls_port,
        "username": username, "allow_commands": allow_commands}, sort_keys=False), 0o644)
    set_password(site, s, username, password)
    s.districts[district] = District(serial=serial, not_after=not_after,
                                     allow_commands=allow_commands)
    site.save(s)
    render(site, s)
    files = [f for f in bundle.files if f.name != "broker.yaml"]
    return Bundle(bundle.directory, [*files, bundle.directory / "province.yaml"], "")


def set_bridge(site: Site, bundle_dir: Path, allow_commands: bool = False,
               host: str | None = None, port: int | None = None) -> Bridge:
    """(District) configure the bridge from a province hand-over bundle (see ``add_district``).

    Files are copied into ``bridge/`` (readable by root and the broker). ``host``/``port``
    override what the province wrote. A restart of Mosquitto is needed: bridges are not
    re-read on SIGHUP.
    """
    s = site.load()
    _district_only(s, "bridge")
    info = yaml.safe_load((bundle_dir / "province.yaml").read_text())
    if info.get("district") != s.name:
        raise ProvisionError(f"this bundle is for district {info.get('district')!r}, "
                             f"not {s.name!r}")
    username, bhost = str(info.get("username", "")), str(host or info.get("host", ""))
    # These go into file names and mosquitto.conf: nothing but a plain name may pass.
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", username):
        raise ProvisionError(f"bundle username {username!r} is not a plain account name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", bhost):
        raise ProvisionError(f"bridge host {bhost!r} is not a host name or address")
    files = ("tls/ca.crt", f"tls/{username}.crt", f"tls/{username}.key", "credentials.yaml")
    missing = [rel for rel in files if not (bundle_dir / rel).is_file()]
    if missing:
        raise ProvisionError(f"bundle {bundle_dir} lacks {', '.join(missing)}")
    gid = _broker_gid(s)
    dest = site.dir / "bridge"
    # Build the new bridge directory beside the old one, then swap: a failure half-way
    # leaves the working bridge (and mosquitto.conf) as they were.
    new = site.dir / "bridge.new"
    if new.exists():
        shutil.rmtree(new)
    (new / "tls").mkdir(parents=True)
    for rel in files:
        shutil.copyfile(bundle_dir / rel, new / rel)
        _share(new / rel, s, 0o640 if gid is not None else 0o600)
    for d in (new, new / "tls"):
        _share(d, s, 0o750 if gid is not None else 0o700)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(new, dest)
    b = Bridge(host=bhost, port=port or int(info["port"]), username=username,
               allow_commands=allow_commands)
    s.bridge = b
    site.save(s)
    render(site, s)
    return b


def remove_bridge(site: Site) -> None:
    """(District) stop bridging to the province (restart Mosquitto afterwards)."""
    s = site.load()
    s.bridge = None
    shutil.rmtree(site.dir / "bridge", ignore_errors=True)
    site.save(s)
    render(site, s)


def _district_only(s: Settings, what: str) -> None:
    if s.kind != "district":
        raise ProvisionError(f"{what} is a district command; this is province {s.name}")


def renew_server(site: Site, days: int = CERT_DAYS) -> Path:
    """A new server certificate for the same names, put in place atomically (key and
    certificate replaced only once both exist). Mosquitto reads it when it starts."""
    s = site.load()
    issued = site.ca.issue(s.hosts[0], site.tls_dir, "server", dns=tuple(s.hosts),
                           ips=tuple(s.ips), days=days, basename="server.new")
    _share(issued.key_file, s, 0o640 if _broker_gid(s) is not None else 0o600)
    os.replace(issued.key_file, site.tls_dir / "server.key")
    os.replace(issued.cert_file, site.tls_dir / "server.crt")
    return site.tls_dir / "server.crt"


def certificate_status(site: Site, s: Settings, days: int = 60) -> list[str]:
    """Lines warning about certificates expiring within ``days``: the broker's own server
    certificate and CA (every room loses the broker when those expire), rooms, staff,
    districts."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    out = []
    entries: list[tuple[str, str]] = []
    for label, pem in (("SERVER (renew-server, then restart Mosquitto)",
                        site.tls_dir / "server.crt"),
                       ("CA (plan a new CA and re-provision rooms)", site.ca.cert_file)):
        if pem.exists():
            entries.append((label, cert_field(pem, "enddate")))
    entries += [(f"room {k}", r.not_after) for k, r in s.rooms.items() if not r.revoked]
    entries += [(f"staff {k}", v.not_after) for k, v in s.staff.items()]
    entries += [(f"district {k}", v.not_after) for k, v in s.districts.items()]
    for label, not_after in entries:
        try:
            when = dt.datetime.strptime(not_after, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if when < soon:
            out.append(f"{label}: certificate expires {not_after}")
    return out


__all__ = ["DEFAULT_DIR", "Bridge", "Bundle", "PkiError", "ProvisionError", "Room", "Settings",
           "Site", "Staff", "add_district", "add_room", "add_staff", "certificate_status",
           "init_site", "reload_broker", "remove_bridge", "remove_staff", "render",
           "renew_server",
           "revoke_room", "rotate_room", "set_bridge"]
