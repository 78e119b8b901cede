"""One provisioned district (made with the real ``diemcau-broker`` CLI) and its running
Mosquitto, shared by the whole broker test session: the CA and certificates are made once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from broker import provision
from broker.local import BrokerProcess, LoopbackSite, free_port
from broker.pki import CertAuthority
from tests.broker.helpers import Client, Tls


@dataclass
class Account:
    """A provisioned user: name, password and certificate files from its hand-over bundle."""

    username: str
    password: str
    tls: Tls


@dataclass
class District(LoopbackSite):
    """A district directory made by the CLI, with the accounts the tests use."""

    accounts: dict[str, Account] = field(default_factory=dict)
    extra: dict[str, Tls] = field(default_factory=dict)

    def room(self, name: str, **kw: object) -> Client:
        """A TLS client with ``name``'s certificate and password (not yet connected)."""
        a = self.accounts[name]
        return Client(self.tls_port, a.username, a.password, a.tls, **kw)  # type: ignore[arg-type]

    def local(self, name: str, **kw: object) -> Client:
        """A plain loopback client with ``name``'s password (not yet connected)."""
        a = self.accounts[name]
        return Client(self.local_port, a.username, a.password, **kw)  # type: ignore[arg-type]


def read_bundle(bundle: Path) -> Account:
    """The account in a hand-over bundle written by add-room/add-staff."""
    creds = yaml.safe_load((bundle / "credentials.yaml").read_text())
    user = creds["username"]
    return Account(user, creds["password"],
                   Tls(bundle / "tls" / "ca.crt", bundle / "tls" / f"{user}.crt",
                       bundle / "tls" / f"{user}.key"))


def make_district(root: Path, name: str, rooms: list[str], staff: dict[str, list[str]],
                  ) -> District:
    """``init`` a district on free loopback ports and provision ``rooms`` and ``staff``.

    ``staff`` maps a staff name to its add-staff arguments (e.g. ``["--role", "viewer"]``).
    Bundles are copied out, since revoke-room deletes a room's bundle.
    """
    d = District(root, provision.Site(root), free_port(), free_port())
    d.init(name)
    for room in rooms:
        assert d.cli("--no-reload", "add-room", room) == 0
        d.accounts[room] = read_bundle(root / "rooms" / room)
    for who, args in staff.items():
        assert d.cli("--no-reload", "add-staff", who, *args) == 0
        d.accounts[who] = read_bundle(root / "staff" / who)
    return d


def start(d: District) -> BrokerProcess:
    """Start Mosquitto with the district's rendered standalone configuration."""
    return d.process().start()


@pytest.fixture(scope="session")
def district(tmp_path_factory: pytest.TempPathFactory) -> District:
    """District 'testdist': rooms room-a and room-b (room-ha for a real agent with Home
    Assistant); every staff role (Home Assistant granted power only, and power and the
    operator check); plus certificates that must be refused (expired, revoked, from another
    CA) for room-a, whose password is valid."""
    root = tmp_path_factory.mktemp("district")
    d = make_district(root / "d", "testdist", ["room-a", "room-b", "room-ha"], {
        "console": ["--role", "console"],
        "viewer": ["--role", "viewer"],
        "prov": ["--role", "province"],
        "provcmd": ["--role", "province", "--allow-commands"],
        "ha": ["--role", "homeassistant", "--commands", "power"],
        "ha-all": ["--role", "homeassistant", "--commands", "power,operator_check"],
    })
    ca = d.site.ca
    extra = root / "extra"
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    expired = ca.issue("room-a", extra, "client", not_before=old,
                       not_after=old + dt.timedelta(days=1), basename="expired")
    revoked = ca.issue("room-a", extra, "client", basename="revoked")
    ca.revoke(revoked.serial)
    provision.publish_ca_files(d.site, d.site.load())
    rogue = CertAuthority(root / "rogue-ca")
    rogue.create("rogue CA")
    rogue_cert = rogue.issue("room-a", extra, "client", basename="rogue")
    ca_file = d.accounts["room-a"].tls.ca
    d.extra = {
        "expired": Tls(ca_file, expired.cert_file, expired.key_file),
        "revoked": Tls(ca_file, revoked.cert_file, revoked.key_file),
        "rogue": Tls(ca_file, rogue_cert.cert_file, rogue_cert.key_file),
        "wrong-ca": Tls(rogue.cert_file, d.accounts["room-a"].tls.cert,
                        d.accounts["room-a"].tls.key),
    }
    return d


@pytest.fixture(scope="session")
def district_broker(district: District) -> Iterator[BrokerProcess]:
    """The district's Mosquitto, running for the whole session."""
    b = start(district)
    try:
        yield b
    finally:
        b.stop()
