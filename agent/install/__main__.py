"""The installer's helper: ``python -m agent.install COMMAND`` (deploy/install-room.sh and
the Ansible role call it; people use ``diemcau-agent adapters|udev-rules|boot-config``).

    python -m agent.install preflight SITE          # every reason the site cannot be installed
    python -m agent.install udev-rules SITE         # the rules file, on stdout
    python -m agent.install boot-merge SITE CONFIG_TXT [--model M]   # the new config.txt
    python -m agent.install boot-remove CONFIG_TXT  # config.txt without the diemcau block
    python -m agent.install site-file SITE [--bundle DIR | --broker-yaml FILE]
                                                    # the site file to install, on stdout
    python -m agent.install restart --state-dir D [--if-pending] [--reason TEXT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import ConfigError, SiteConfig, load_config, parse_config
from agent.install import bootcfg, pending, udev, yamledit


def _site(path: str) -> SiteConfig:
    try:
        return load_config(Path(path))
    except ConfigError as e:
        for p in e.problems:
            print(f"{path}: {p}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    """Run one helper command; exit 0 on success, 2 on a refused site, 1 on other errors."""
    p = argparse.ArgumentParser(prog="python -m agent.install")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("preflight")
    s.add_argument("site")
    s = sub.add_parser("udev-rules")
    s.add_argument("site")
    s = sub.add_parser("boot-merge")
    s.add_argument("site")
    s.add_argument("config_txt")
    s.add_argument("--model", choices=bootcfg.MODELS, default="any")
    s = sub.add_parser("site-file")
    s.add_argument("site")
    s.add_argument("--bundle")
    s.add_argument("--broker-yaml")
    s = sub.add_parser("boot-remove")
    s.add_argument("config_txt")
    s = sub.add_parser("restart")
    s.add_argument("--state-dir", default="/var/lib/diemcau")
    s.add_argument("--unit", default=pending.UNIT)
    s.add_argument("--if-pending", action="store_true")
    s.add_argument("--reason", default="installed")
    args = p.parse_args(argv)

    if args.cmd == "preflight":
        problems = udev.problems(_site(args.site))
        for line in problems:
            print(f"{args.site}: {line}", file=sys.stderr)
        return 2 if problems else 0
    if args.cmd == "udev-rules":
        try:
            sys.stdout.write(udev.render_rules(_site(args.site)))
        except udev.UdevError as e:
            for line in e.problems:
                print(f"{args.site}: {line}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "boot-merge":
        cfg = _site(args.site)
        path = Path(args.config_txt)
        old = path.read_text() if path.exists() else ""
        new, notes = bootcfg.merge(old, bootcfg.render_fragment(cfg, args.model))
        for n in notes:
            print(f"WARNING: {path}: {n}", file=sys.stderr)
        sys.stdout.write(new)
        return 0
    if args.cmd == "site-file":
        return _site_file(args)
    if args.cmd == "boot-remove":
        path = Path(args.config_txt)
        sys.stdout.write(bootcfg.remove_block(path.read_text() if path.exists() else ""))
        return 0
    state = Path(args.state_dir)
    try:
        if args.if_pending:
            _, message = pending.run_pending(state, args.unit)
        else:
            _, message = pending.restart_or_defer(state, args.reason, args.unit)
    except (RuntimeError, OSError) as e:
        print(f"restart: {e}", file=sys.stderr)
        return 1
    print(message)
    return 0


def _site_file(args: argparse.Namespace) -> int:
    """The site file with its broker section from the room's bundle (or the installed
    ``broker.yaml``), refused if the bundle is another room's."""
    cfg = _site(args.site)
    text = Path(args.site).read_text(encoding="utf-8")
    broker = None
    if args.bundle:
        bundle = Path(args.bundle)
        certs = sorted(p.stem for p in (bundle / "tls").glob("*.crt") if p.name != "ca.crt")
        if certs and cfg.site.id not in certs:
            print(f"{args.bundle}: this bundle is for room {', '.join(certs)}, the site file is "
                  f"room {cfg.site.id}: refusing to mix them", file=sys.stderr)
            return 2
        if (bundle / "broker.yaml").is_file():
            broker = bundle / "broker.yaml"
    elif args.broker_yaml and Path(args.broker_yaml).is_file():
        broker = Path(args.broker_yaml)
    if broker is not None:
        try:
            text = yamledit.set_broker_section(text, broker.read_text(encoding="utf-8"))
            parse_config(text, args.site)
        except (yamledit.EditError, ConfigError) as e:
            print(f"{broker}: {e}", file=sys.stderr)
            return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
