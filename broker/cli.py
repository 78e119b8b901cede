"""``diemcau-broker``: set up and provision a district (or province) Mosquitto broker.

Every command works on one directory (``--dir``, default ``/etc/diemcau-broker``); see
``docs/broker.md``. Secrets are never printed: they are written to files of mode 0600 inside a
hand-over bundle whose path is printed.

Examples::

    diemcau-broker init --name vanquan --host mqtt.vanquan.local --ip 10.0.0.5
    diemcau-broker add-room vq-tan-doan
    diemcau-broker revoke-room vq-tan-doan
    diemcau-broker add-staff tuan --role console
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from broker import provision as p
from broker.acl import HA_COMMANDS, HA_PREFIX, ROLES
from broker.pki import CERT_DAYS, PkiError


def _print_bundle(b: p.Bundle, target: str, installer_hint: str) -> None:
    print(f"Hand-over bundle for {target}: {b.directory}")
    for f in b.files:
        print(f"  {f.relative_to(b.directory)}" + ("   (secret, mode 0600)"
                                                   if f.stat().st_mode & 0o077 == 0 else ""))
    print(installer_hint)
    secret = "a private key and a password" if any(
        f.name == "credentials.yaml" for f in b.files) else "a private key"
    print(f"Delete the bundle once it is installed; it holds {secret}.")


def _reload(args: argparse.Namespace, s: p.Settings) -> None:
    if args.no_reload:
        print("Not reloading (--no-reload): send SIGHUP to Mosquitto to apply the change.")
    else:
        print(p.reload_broker(s, args.pid_file))


def cmd_init(args: argparse.Namespace, site: p.Site) -> int:
    kind: p.Kind = "province" if args.province else "district"
    extra = {k: v for k, v in {"tls_port": args.tls_port, "tls_bind": args.tls_bind,
                                 "local_port": args.local_port, "user": args.user,
                                 "pid_file": args.pid_file, "data_dir": args.data_dir,
                                 "room_etc": args.room_etc,
                                 "max_queued_messages": args.max_queued_messages,
                                 "ha_prefixes": args.ha_prefix}.items() if v is not None}
    with site.locked():
        s = p.init_site(site, kind, args.name, args.host, args.ip, **extra)
    print(f"Created {kind} broker {s.name} in {site.dir}")
    print(f"  CA certificate:  {site.ca.cert_file}  (private key {site.ca.key_file}, mode 0600: "
          "back it up offline)")
    print(f"  server certificate for {', '.join(s.hosts + s.ips)}: {site.tls_dir}/server.crt")
    print(f"  Debian:      ln -s {site.fragment} /etc/mosquitto/conf.d/diemcau.conf "
          "&& systemctl restart mosquitto")
    print(f"  standalone:  mosquitto -c {site.conf}")
    return 0


def cmd_add_room(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        b = p.add_room(site, args.site_id, days=args.days)
        s = site.load()
    print(f"Room {args.site_id} provisioned.")
    print("Paste this into the room's site config (firmware_config/sites/<room>.yaml):\n")
    print(b.broker_section)
    _print_bundle(b, f"room {args.site_id}",
                  f"Install on the room's Pi, e.g.: scp -r {b.directory}/. "
                  f"root@<pi>:{s.room_etc}/  (then chmod 600 the key and credentials)")
    _reload(args, s)
    return 0


def cmd_rotate_room(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        b = p.rotate_room(site, args.site_id, cert_only=args.cert_only, days=args.days)
        s = site.load()
    if args.cert_only:
        print(f"Room {args.site_id}: new certificate; password and old certificate still valid.")
    else:
        print(f"Room {args.site_id}: new certificate and password; the old ones are revoked, so "
              "the room is offline until the new bundle is installed.")
    _print_bundle(b, f"room {args.site_id}", f"Install on the room's Pi under {s.room_etc}/.")
    _reload(args, s)
    return 0


def cmd_revoke_room(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        p.revoke_room(site, args.site_id)
        s = site.load()
    print(f"Room {args.site_id} revoked: password removed, certificate(s) in {site.tls_dir}"
          "/crl.pem.")
    _reload(args, s)
    return 0


def _ha_commands(text: str) -> list[str]:
    """``power,operator_check`` → the list (argparse type: an unknown name is a usage error)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in HA_COMMANDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from "
                                         f"{', '.join(HA_COMMANDS)}")
    return names


def cmd_add_staff(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        b = p.add_staff(site, args.name, args.role, args.allow_commands, days=args.days,
                        commands=args.commands)
        s = site.load()
    print(f"Staff account staff.{args.name} ({args.role}) created.")
    _print_bundle(b, f"staff.{args.name}",
                  f"On this machine connect to 127.0.0.1:{s.local_port} with credentials.yaml; "
                  f"from elsewhere to {s.hosts[0]}:{s.tls_port} with TLS and the certificate.")
    _reload(args, s)
    return 0


def cmd_remove_staff(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        p.remove_staff(site, args.name)
        s = site.load()
    print(f"Staff account staff.{args.name} removed.")
    _reload(args, s)
    return 0


def cmd_add_district(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        b = p.add_district(site, args.district, args.allow_commands, days=args.days)
        s = site.load()
    print(f"District {args.district} may bridge in as district.{args.district}"
          + (" and may receive commands." if args.allow_commands else " (no commands)."))
    _print_bundle(b, f"district {args.district}",
                  "Copy it to the district broker and run there: diemcau-broker bridge "
                  "--bundle <dir>")
    _reload(args, s)
    return 0


def cmd_bridge(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        if args.off:
            p.remove_bridge(site)
            print("Bridge removed.")
        else:
            if args.bundle is None:
                print("error: give --bundle DIR (from the province) or --off", file=sys.stderr)
                return 2
            b = p.set_bridge(site, args.bundle, args.allow_commands, args.host, args.port)
            print(f"Bridge to {b.host}:{b.port} as {b.username}; commands from the province "
                  + ("accepted." if b.allow_commands else "refused."))
    print("Restart Mosquitto to apply (bridges are not re-read on reload): "
          "systemctl restart mosquitto")
    return 0


def cmd_ha_prefix(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        s = p.set_ha_prefixes(site, args.prefix)
    print(f"Home Assistant discovery prefixes in the ACL: {', '.join(s.ha_prefixes)}")
    _reload(args, s)
    return 0


def cmd_render(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        for path in p.render(site):
            print(f"wrote {path}")
    if args.reload:
        _reload(args, site.load())
    return 0


def cmd_renew_server(args: argparse.Namespace, site: p.Site) -> int:
    with site.locked():
        crt = p.renew_server(site, args.days)
    print(f"New server certificate {crt} (valid {args.days} days).")
    print("  Mosquitto reads it at start: systemctl restart mosquitto  (rooms reconnect by "
          "themselves; their certificates and the CA are unchanged)")
    return 0


def cmd_list(args: argparse.Namespace, site: p.Site) -> int:
    s = site.load()
    print(f"{s.kind} {s.name}: {', '.join(s.hosts)} port {s.tls_port} (TLS), "
          f"127.0.0.1:{s.local_port} (local)")
    for k, r in sorted(s.rooms.items()):
        print(f"  room   {k:<24} {'REVOKED' if r.revoked else 'active':<8} until {r.not_after}")
    for k, st in sorted(s.staff.items()):
        extra = " +commands" if st.allow_commands else ""
        if st.commands:
            extra = f" +{','.join(st.commands)}"
        print(f"  staff  staff.{k:<18} {st.role}{extra}")
    for k, d in sorted(s.districts.items()):
        print(f"  district {k:<22} {'+commands' if d.allow_commands else ''}")
    if s.bridge:
        print(f"  bridge {s.bridge.host}:{s.bridge.port} as {s.bridge.username}"
              + (" +commands" if s.bridge.allow_commands else ""))
    for line in p.certificate_status(site, s):
        print(f"  WARNING {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``diemcau-broker`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS,
                        help=f"broker directory (default {p.DEFAULT_DIR})")
    common.add_argument("--pid-file", default=argparse.SUPPRESS,
                        help="Mosquitto pid file to SIGHUP (default: from the settings)")
    common.add_argument("--no-reload", action="store_true", default=argparse.SUPPRESS,
                        help="do not signal the running broker")
    ap = argparse.ArgumentParser(prog="diemcau-broker", parents=[common],
                                 description="Set up and provision a diemcau district broker "
                                             "(Mosquitto 2).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_, description=help_)

    a = add("init", "create the CA, the server certificate and the configuration")
    a.add_argument("--name", required=True, help="district (or province) name, e.g. vanquan")
    a.add_argument("--host", action="append", required=True,
                   help="DNS name rooms use for the broker (repeat for more)")
    a.add_argument("--ip", action="append", default=[], help="IP address for the certificate")
    a.add_argument("--province", action="store_true", help="set up a province broker")
    a.add_argument("--tls-port", type=int)
    a.add_argument("--tls-bind", help="address for the TLS listener (default: all)")
    a.add_argument("--local-port", type=int, help="loopback plain listener port (default 1883)")
    a.add_argument("--user", help="user Mosquitto runs as (default mosquitto)")
    a.add_argument("--data-dir", help="persistence directory for the standalone config")
    a.add_argument("--room-etc", help="config directory on the rooms' Pis (default /etc/diemcau)")
    a.add_argument("--max-queued-messages", type=int, metavar="N",
                   help="messages Mosquitto queues per client while it is away or behind "
                        "(default 5000); past it they are dropped silently: size it as "
                        "messages per room in a window storm x rooms x the longest console "
                        "outage accepted (docs/benchmarks.md)")
    a.add_argument("--ha-prefix", action="append",
                   help=f"(district) a Home Assistant discovery prefix the ACL grants (repeat "
                        f"for more; default {HA_PREFIX}): the rooms' "
                        "homeassistant.discovery_prefix")
    a.set_defaults(func=cmd_init)

    a = add("add-room", "provision a room: credentials, certificate, bundle")
    a.add_argument("site_id")
    a.add_argument("--days", type=int, default=CERT_DAYS, help="certificate lifetime")
    a.set_defaults(func=cmd_add_room)

    a = add("rotate-room", "give a room a new certificate (and password)")
    a.add_argument("site_id")
    a.add_argument("--cert-only", action="store_true",
                   help="renew the certificate only; keep the password and the old certificate")
    a.add_argument("--days", type=int, default=CERT_DAYS)
    a.set_defaults(func=cmd_rotate_room)

    a = add("revoke-room", "lock a room out (password removed, certificate revoked)")
    a.add_argument("site_id")
    a.set_defaults(func=cmd_revoke_room)

    a = add("add-staff", "create a staff account (user staff.<name>)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=list(ROLES))
    a.add_argument("--allow-commands", action="store_true",
                   help="province role: may command rooms")
    a.add_argument("--commands", type=_ha_commands, default=[],
                   help="homeassistant role: what Home Assistant may send, comma-separated "
                        f"({', '.join(HA_COMMANDS)}); none: it only shows the rooms")
    a.add_argument("--days", type=int, default=CERT_DAYS)
    a.set_defaults(func=cmd_add_staff)

    a = add("remove-staff", "remove a staff account")
    a.add_argument("name")
    a.set_defaults(func=cmd_remove_staff)

    a = add("add-district", "(province) let a district bridge in")
    a.add_argument("district")
    a.add_argument("--allow-commands", action="store_true",
                   help="the province console may command this district's rooms")
    a.add_argument("--days", type=int, default=CERT_DAYS)
    a.set_defaults(func=cmd_add_district)

    a = add("bridge", "(district) bridge to the province with a bundle from add-district")
    a.add_argument("--bundle", type=Path, help="directory made by the province's add-district")
    a.add_argument("--allow-commands", action="store_true",
                   help="accept commands from the province for this district's rooms")
    a.add_argument("--host", help="province broker host (default: from the bundle)")
    a.add_argument("--port", type=int, help="province broker port (default: from the bundle)")
    a.add_argument("--off", action="store_true", help="remove the bridge")
    a.set_defaults(func=cmd_bridge)

    a = add("ha-prefix", "(district) the Home Assistant discovery prefixes the ACL grants")
    a.add_argument("prefix", nargs="+",
                   help=f"each prefix in use (Home Assistant's default: {HA_PREFIX}); the "
                        "list replaces the one before")
    a.set_defaults(func=cmd_ha_prefix)

    a = add("render", "write mosquitto.conf, conf.d/diemcau.conf and the ACL again")
    a.add_argument("--reload", action="store_true", help="SIGHUP the broker afterwards")
    a.set_defaults(func=cmd_render)

    a = add("renew-server", "a new certificate for the broker itself (same names)")
    a.add_argument("--days", type=int, default=CERT_DAYS, help="certificate lifetime")
    a.set_defaults(func=cmd_renew_server)

    a = add("list", "show rooms, staff, bridge and expiring certificates")
    a.set_defaults(func=cmd_list)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``diemcau-broker``; returns the exit status (0 ok, 1 refused, 2 usage)."""
    args = build_parser().parse_args(argv)
    args.dir = getattr(args, "dir", p.DEFAULT_DIR)
    args.pid_file = getattr(args, "pid_file", None)
    args.no_reload = getattr(args, "no_reload", False)
    site = p.Site(args.dir)
    try:
        return int(args.func(args, site))
    except (p.ProvisionError, PkiError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"error: {e.strerror}: {e.filename} (run as root?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
