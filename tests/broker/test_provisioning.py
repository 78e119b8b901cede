"""Provisioning through the real CLI against the running district broker: add a room, use it,
rotate it, revoke it. A revoked room is locked out by a reload (SIGHUP, sent by the CLI itself
through the pid file), while the broker and every other room stay up."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from broker import provision
from broker.local import BrokerProcess
from tests.broker.conftest import District, read_bundle
from tests.broker.helpers import Client, Tls, token

P = "diemcau/v1"


def _add_room(district: District, broker: BrokerProcess, site_id: str,
              capsys: pytest.CaptureFixture[str]) -> str:
    before = broker.reload_count()
    assert district.cli("add-room", site_id) == 0
    out = capsys.readouterr().out
    broker.wait_reloaded(before)
    return out


def test_add_room_hands_over_a_working_bundle(district: District,
                                              district_broker: BrokerProcess,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = _add_room(district, district_broker, "vq-new-room", capsys)
    bundle = district.dir / "rooms" / "vq-new-room"
    acct = read_bundle(bundle)
    assert acct.password not in out, "the password must never be printed"
    assert f"broker (pid {district_broker.pid}) reloaded" in out
    assert str(bundle) in out
    for secret in (bundle / "credentials.yaml", bundle / "tls" / "vq-new-room.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(district.site.ca.key_file.stat().st_mode) == 0o600
    # The broker: section is what the agent's own config model accepts.
    section = yaml.safe_load((bundle / "broker.yaml").read_text())["broker"]
    assert section["tls"]["cert_file"] == "/etc/diemcau/tls/vq-new-room.crt"
    assert section["credentials_file"] == "/etc/diemcau/credentials.yaml"
    assert yaml.safe_load(out.split("\n\n")[1]) == {"broker": section}
    from agent import config as agent_config

    cfg = agent_config.Broker.model_validate(section)
    assert cfg.port == district.tls_port and cfg.tls is not None
    creds = agent_config.Broker.model_validate(
        {**section, "credentials_file": str(bundle / "credentials.yaml")}).credentials()
    assert creds.username == "vq-new-room"
    # ... and it works: the new room publishes its state, the console sees it.
    console = district.local("console").connect()
    room = Client(district.tls_port, creds.username, creds.password.get_secret_value(),
                  acct.tls).connect()
    try:
        console.subscribe(f"{P}/rooms/+/state")
        msg = token()
        assert room.publish(f"{P}/rooms/vq-new-room/state", msg).value == 0
        assert console.wait_message(msg, f"{P}/rooms/vq-new-room/state")
    finally:
        room.close()
        console.close()


def test_add_room_refuses_bad_or_duplicate_ids(district: District,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    passwd = district.site.passwd.read_text()
    assert district.cli("--no-reload", "add-room", "Bad_Id") == 1
    assert district.cli("--no-reload", "add-room", "room-a") == 1
    assert district.cli("--no-reload", "add-staff", "x", "--role", "viewer",
                        "--allow-commands") == 1
    assert district.cli("--no-reload", "add-district", "x") == 1  # province only
    err = capsys.readouterr().err
    assert "site id 'Bad_Id'" in err and "already exists" in err
    assert district.site.passwd.read_text() == passwd, "a refused request changes nothing"
    rooms = sorted(p.name for p in (district.dir / "rooms").iterdir())
    for bad in ("../x", "a/b", "ab\n", "x+y", "a" * 64):
        assert district.cli("--no-reload", "add-room", bad) == 1, bad
    assert sorted(p.name for p in (district.dir / "rooms").iterdir()) == rooms
    assert district.site.passwd.read_text() == passwd
    with pytest.raises(SystemExit):
        district.cli("add-staff", "x", "--role", "admin")


def test_revoked_room_is_locked_out_while_others_stay(district: District,
                                                      district_broker: BrokerProcess,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    for site_id in ("rv-gone", "rv-stays"):
        _add_room(district, district_broker, site_id, capsys)
    gone, stays = (read_bundle(district.dir / "rooms" / s) for s in ("rv-gone", "rv-stays"))
    # revoke-room deletes the bundle; keep the files as a thief would.
    gone_tls = Tls(district.site.tls_dir / "ca.crt", *_keep(gone.tls, district.dir / "stolen"))
    serial = district.site.load().rooms["rv-gone"].serial
    pid = district_broker.pid
    spy = district.local("console").connect()
    spy.subscribe(f"{P}/rooms/+/events")
    c_gone = Client(district.tls_port, gone.username, gone.password, gone_tls).connect()
    c_stays = Client(district.tls_port, stays.username, stays.password, stays.tls).connect()
    c_a = district.room("room-a").connect()
    try:
        assert district.cli("revoke-room", "rv-gone") == 0
        assert f"broker (pid {pid}) reloaded" in capsys.readouterr().out
        # The reload drops the revoked room's live connection ...
        assert c_gone.disconnected.wait(5), "revoked room still connected after reload"
        # ... and nothing else: same broker process, the other rooms still publish.
        assert district_broker.proc is not None and district_broker.proc.poll() is None
        assert district_broker.pid == pid
        for c, site_id in ((c_stays, "rv-stays"), (c_a, "room-a")):
            msg = token()
            assert c.publish(f"{P}/rooms/{site_id}/events", msg).value == 0
            assert spy.wait_message(msg)
            assert not c.disconnected.is_set()
        # It cannot come back: not with its password, not with its certificate.
        assert not Client(district.tls_port, gone.username, gone.password,
                          gone_tls).try_connect()
        assert not Client(district.tls_port, stays.username, stays.password,
                          gone_tls).try_connect(), "revoked certificate still accepted"
    finally:
        for c in (c_gone, c_stays, c_a, spy):
            c.close()
    crl = subprocess.run(["openssl", "crl", "-in", str(district.site.tls_dir / "crl.pem"),
                          "-noout", "-text"], capture_output=True, text=True, check=True).stdout
    assert serial in crl.replace(":", "").upper()
    assert "rv-gone:" not in district.site.passwd.read_text()
    assert not (district.dir / "rooms" / "rv-gone").exists(), "revoke deletes the bundle"
    # A revoked site id may be provisioned again (a replaced Pi) with fresh credentials.
    _add_room(district, district_broker, "rv-gone", capsys)
    again = read_bundle(district.dir / "rooms" / "rv-gone")
    assert again.password != gone.password
    c = Client(district.tls_port, again.username, again.password, again.tls)
    assert c.try_connect()
    c.close()


def test_rotate_room(district: District, district_broker: BrokerProcess,
                     capsys: pytest.CaptureFixture[str]) -> None:
    _add_room(district, district_broker, "rot-room", capsys)
    bundle = district.dir / "rooms" / "rot-room"
    first = read_bundle(bundle)
    ca = district.site.tls_dir / "ca.crt"
    first_tls = Tls(ca, *_keep(first.tls, bundle.parent / "rot-room-1"))
    live = Client(district.tls_port, first.username, first.password, first_tls).connect()
    try:
        # Renewal before expiry: new certificate, same password, nothing interrupted.
        before = district_broker.reload_count()
        assert district.cli("rotate-room", "rot-room", "--cert-only") == 0
        district_broker.wait_reloaded(before)
        renewed = Tls(ca, *_keep(Tls(ca, bundle / "tls" / "rot-room.crt",
                                               bundle / "tls" / "rot-room.key"),
                                           bundle.parent / "rot-room-2"))
        c = Client(district.tls_port, first.username, first.password, renewed)
        assert c.try_connect()
        c.close()
        # Full rotation (suspected leak): old password and old certificates stop working.
        # (`live` may already be gone: the broker takes the client id from the user name, so
        # the renewed connection above replaced it; wait for the reload itself.)
        before = district_broker.reload_count()
        assert district.cli("rotate-room", "rot-room") == 0
        district_broker.wait_reloaded(before)
        assert live.disconnected.wait(5)
        new = read_bundle(bundle)
        assert new.password != first.password
        assert not Client(district.tls_port, new.username, new.password,
                          first_tls).try_connect()
        assert not Client(district.tls_port, new.username, new.password,
                          renewed).try_connect()
        c = Client(district.tls_port, new.username, new.password, new.tls)
        assert c.try_connect()
        c.close()
    finally:
        live.close()
    capsys.readouterr()


def _keep(tls: Tls, where: Path) -> tuple[Path, Path]:
    """Copy a certificate and key aside (rotation overwrites the bundle)."""
    where.mkdir(parents=True, exist_ok=True)
    assert tls.cert and tls.key
    cert, key = where / tls.cert.name, where / tls.key.name
    cert.write_bytes(tls.cert.read_bytes())
    key.write_bytes(tls.key.read_bytes())
    key.chmod(0o600)
    return cert, key


def test_remove_staff_disconnects_them(district: District, district_broker: BrokerProcess,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = district_broker.reload_count()
    assert district.cli("add-staff", "temp", "--role", "viewer") == 0
    district_broker.wait_reloaded(before)
    acct = read_bundle(district.dir / "staff" / "temp")
    c = Client(district.local_port, acct.username, acct.password).connect()
    assert district.cli("remove-staff", "temp") == 0
    assert c.disconnected.wait(5)
    c.close()
    assert "staff.temp" not in district.site.acl.read_text()
    capsys.readouterr()


def test_list_and_render(district: District, capsys: pytest.CaptureFixture[str]) -> None:
    assert district.cli("list") == 0
    out = capsys.readouterr().out
    assert "room   room-a" in out and "staff.provcmd" in out
    conf = district.site.conf.read_text()
    assert district.cli("render") == 0
    assert district.site.conf.read_text() == conf, "render is deterministic"
    fragment = district.site.fragment.read_text()
    assert "pid_file" not in fragment and "persistence_location" not in fragment
    assert fragment in conf
    assert provision.Site(district.dir / "nowhere").exists() is False
    assert district.cli("--dir", str(district.dir / "nowhere"), "list") == 1


def test_init_never_overwrites_a_ca(district: District,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = district.site.ca.key_file.read_bytes()
    assert district.cli("init", "--name", "again", "--host", "localhost") == 1
    assert "refusing to overwrite its CA" in capsys.readouterr().err
    assert district.site.ca.key_file.read_bytes() == key


def _pubkey(args: list[str]) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_renew_server_certificate_and_expiry_warning(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from broker.cli import main

    d = tmp_path / "b"
    assert main(["--dir", str(d), "init", "--name", "thu", "--host", "localhost",
                 "--user", "root"]) == 0
    crt, key = d / "tls" / "server.crt", d / "tls" / "server.key"
    old = crt.read_bytes()
    capsys.readouterr()
    assert main(["--dir", str(d), "list"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    # A server certificate close to its end is named by `list`; renew-server replaces it.
    assert main(["--dir", str(d), "renew-server", "--days", "20"]) == 0
    assert crt.read_bytes() != old
    assert _pubkey(["x509", "-noout", "-pubkey", "-in", str(crt)]) == _pubkey(
        ["pkey", "-pubout", "-in", str(key)])
    assert stat.S_IMODE(key.stat().st_mode) & 0o077 in (0, 0o040)
    assert not list((d / "tls").glob("server.new*"))
    capsys.readouterr()
    assert main(["--dir", str(d), "list"]) == 0
    assert "WARNING SERVER (renew-server" in capsys.readouterr().out


def test_init_takes_the_queue_limit_a_large_district_needs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from broker.cli import main

    d = tmp_path / "big"
    assert main(["--dir", str(d), "init", "--province", "--name", "tinh", "--host",
                 "localhost", "--max-queued-messages", "400000"]) == 0
    assert "max_queued_messages 400000\n" in provision.Site(d).conf.read_text()
    small = tmp_path / "small"
    assert main(["--dir", str(small), "init", "--name", "x", "--host", "localhost",
                 "--max-queued-messages", "10"]) == 1
    assert "--max-queued-messages: at least 1000" in capsys.readouterr().err
    assert not provision.Site(small).exists()
