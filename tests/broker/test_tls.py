"""Who gets in: the TLS listener wants a valid certificate AND a password; the plain listener
is reachable from loopback 127.0.0.1 only; nobody gets in anonymously."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from broker.local import BrokerProcess
from tests.broker.conftest import District
from tests.broker.helpers import Client, Tls


def test_room_connects_with_certificate_and_password(district: District,
                                                     district_broker: BrokerProcess) -> None:
    c = district.room("room-a")
    assert c.try_connect()
    c.close()


def test_staff_may_use_tls_from_another_machine(district: District,
                                                district_broker: BrokerProcess) -> None:
    c = district.room("viewer")
    assert c.try_connect()
    c.close()


@pytest.mark.parametrize("case", ["expired", "revoked", "rogue"])
def test_bad_certificate_refused_even_with_the_right_password(
        district: District, district_broker: BrokerProcess, case: str) -> None:
    """Expired, revoked (in the CRL) and other-CA certificates, all for CN room-a, presented
    with room-a's valid password."""
    a = district.accounts["room-a"]
    c = Client(district.tls_port, a.username, a.password, district.extra[case])
    assert not c.try_connect()


def test_client_that_does_not_trust_our_ca_refuses_the_broker(
        district: District, district_broker: BrokerProcess) -> None:
    a = district.accounts["room-a"]
    c = Client(district.tls_port, a.username, a.password, district.extra["wrong-ca"])
    assert not c.try_connect()
    assert "CERTIFICATE_VERIFY_FAILED" in str(c.disconnect_reason)


def test_certificate_without_password_refused(district: District,
                                              district_broker: BrokerProcess) -> None:
    """Anonymous (no user name) with a valid certificate, and a wrong password."""
    a = district.accounts["room-a"]
    assert not Client(district.tls_port, tls=a.tls).try_connect()
    assert not Client(district.tls_port, a.username, "not-the-password", a.tls).try_connect()


def test_password_without_certificate_refused(district: District,
                                              district_broker: BrokerProcess) -> None:
    a = district.accounts["room-a"]
    assert not Client(district.tls_port, a.username, a.password, Tls(a.tls.ca)).try_connect()


def test_plain_mqtt_on_the_tls_port_refused(district: District,
                                            district_broker: BrokerProcess) -> None:
    a = district.accounts["room-a"]
    assert not Client(district.tls_port, a.username, a.password).try_connect(timeout=2)


def test_anonymous_refused_on_loopback(district: District,
                                       district_broker: BrokerProcess) -> None:
    c = Client(district.local_port)
    assert not c.try_connect()
    assert c.connack is not None and c.connack.is_failure  # CONNACK 135 Not authorized
    ok = district.local("viewer")
    assert ok.try_connect()
    ok.close()


def test_certificate_is_not_bound_to_the_user_name(district: District,
                                                   district_broker: BrokerProcess) -> None:
    """Documented limitation (docs/broker.md): Mosquitto 2.0 either takes the user name from
    the certificate (and then ignores the password) or checks a password (and then does not
    compare the user name to the CN). We require both factors, so room-b's password with
    room-a's certificate gets in as room-b: the password is the identity, the certificate
    proves a district-issued, unrevoked device."""
    a, b = district.accounts["room-a"], district.accounts["room-b"]
    c = Client(district.tls_port, b.username, b.password, a.tls)
    assert c.try_connect()
    c.close()


def _other_addresses() -> list[str]:
    """This machine's addresses that are not 127.0.0.1 (127.0.0.2 is loopback but not it)."""
    found = {"127.0.0.2"}
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                             text=True, check=False).stdout
        found |= set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))
    except FileNotFoundError:
        pass
    found.discard("127.0.0.1")
    return sorted(found)


def test_plain_listener_answers_only_on_127_0_0_1(district: District,
                                                  district_broker: BrokerProcess) -> None:
    with socket.create_connection(("127.0.0.1", district.local_port), timeout=2):
        pass
    others = _other_addresses()
    assert "127.0.0.2" in others
    for addr in others:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((addr, district.local_port), timeout=2).close()
        assert not district.local("viewer", host=addr).try_connect()


def test_rendered_config_has_no_plain_listener_off_loopback(district: District) -> None:
    """Every listener either speaks TLS with client certificates or binds 127.0.0.1."""
    text = district.site.conf.read_text()
    blocks = re.split(r"^(?=listener )", text, flags=re.M)[1:]
    assert len(blocks) == 2
    for block in blocks:
        first = block.splitlines()[0].split()
        tls = "require_certificate true" in block and "certfile " in block
        assert tls or (len(first) == 3 and first[2] == "127.0.0.1"), first
        assert "allow_anonymous false" in block
        assert "password_file " in block and "acl_file " in block
    assert "websockets" not in re.sub(r"#.*", "", text)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    first_listener = next(i for i, ln in enumerate(lines) if ln.startswith("listener "))
    assert lines.index("per_listener_settings true") < first_listener
