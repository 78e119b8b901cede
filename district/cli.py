"""``diemcau-district``: the district console from the command line (see ``docs/console.md``).

Every command reads the console config (``--config``, default
``/etc/diemcau-district/console.yaml`` or ``$DIEMCAU_DISTRICT_CONFIG``) and works on its
database; ``run`` is the long-running service (recorder, dispatcher; the dashboard joins it).
What the other commands queue (a window's schedules, commands) goes out through ``run``.

Examples::

    diemcau-district check-config --config console.yaml
    diemcau-district rooms import --config console.yaml --broker-dir /etc/diemcau-broker
    diemcau-district window create --kind test --title "Kiểm tra kết nối" \\
        --start 2026-11-29T09:00 --end 2026-11-29T10:30 --rooms all
    diemcau-district check --window test-20261129-0900-1a2b --timeout-s 300
    diemcau-district window complete test-20261129-0900-1a2b
    diemcau-district report test-20261129-0900-1a2b --format csv > bao-cao.csv
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from district.config import ConfigError, ConsoleConfig, json_schema, load_config
from district.model import Actor
from district.service import Console, P, ServiceError
from district.store import StoreError, open_store
from district.store.postgres import redacted
from district.timefmt import parse_time, show

DEFAULT_CONFIG = Path("/etc/diemcau-district/console.yaml")
log = logging.getLogger("district")


class _Out:
    """Operator-facing text in one language, Vietnamese first."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, vi: str, en: str, file: Any = None) -> None:
        print(vi if self.lang == "vi" else en, file=file or sys.stdout)

    def err(self, vi: str, en: str) -> None:
        self(f"lỗi: {vi}", f"error: {en}", file=sys.stderr)


def _config(args: argparse.Namespace) -> ConsoleConfig:
    return load_config(args.config)


def _console(args: argparse.Namespace, cfg: ConsoleConfig | None = None,
             clock: Callable[[], float] = time.time) -> Console:
    cfg = cfg or _config(args)
    return Console(cfg, open_store(cfg.database), clock=clock)


def _actor() -> Actor:
    return Actor(f"cli.{getpass.getuser()}", "operator")


def _warn_not_running(out: _Out, console: Console) -> None:
    from district.recorder import recorder_alive

    if not recorder_alive(console):
        out("(diemcau-district run không chạy: lệnh đã xếp hàng, sẽ được gửi khi dịch vụ chạy)",
            "(diemcau-district run is not running: queued, sent when the service runs)",
            file=sys.stderr)


# ------------------------------------------------------------------------------ commands
def cmd_check_config(args: argparse.Namespace, out: _Out) -> int:
    cfg = _config(args)
    missing = cfg.broker.missing_files()
    for m in missing:
        out(f"cảnh báo: {m}", f"warning: {m}", file=sys.stderr)
    out(f"Cấu hình hợp lệ: {cfg.organisation.name.get('vi')}, {len(cfg.rooms)} điểm cầu, "
        f"múi giờ {cfg.timezone}.",
        f"Config is valid: {cfg.organisation.name.get('en')}, {len(cfg.rooms)} rooms, "
        f"time zone {cfg.timezone}.")
    return 0


def cmd_schema(args: argparse.Namespace, out: _Out) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_run(args: argparse.Namespace, out: _Out) -> int:
    from district.recorder import Recorder

    cfg = _config(args)
    for m in cfg.broker.missing_files():
        out.err(m, m)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    console = _console(args, cfg)
    rec = Recorder(cfg, console)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from district.web.server import start_dashboard

    rec.starting()   # its first heartbeat, before a page can show the last run's stop
    web = start_dashboard(cfg, console)  # exits 2 when http.listen cannot be used
    console.republish()
    rec.start()
    log.info("console running: %d rooms, broker %s, database %s", len(cfg.rooms),
             redacted(cfg.broker.url),
             redacted(cfg.database.url) if cfg.database.url else cfg.database.path)
    stop.wait()
    web.stop()
    rec.stop()
    console.store.close()
    return 0


def cmd_rooms_import(args: argparse.Namespace, out: _Out) -> int:
    from broker.provision import ProvisionError
    from district.roster import broker_rooms, plan_import, write_atomic

    cfg = _config(args)
    text = Path(args.config).read_text(encoding="utf-8")
    try:
        rooms = broker_rooms(args.broker_dir)
    except ProvisionError as e:
        out.err(str(e), str(e))
        return 1
    plan = plan_import(text, cfg, rooms)
    for s in plan.added:
        out(f"  thêm   {s}", f"  add    {s}")
    for s in plan.revoked_in_roster:
        out(f"  cảnh báo: {s} đã bị thu hồi trên broker (vẫn giữ trong danh sách)",
            f"  warning: {s} is revoked on the broker (kept in the roster)")
    if not plan.added:
        out(f"Không có điểm cầu mới ({len(plan.already)} đã có).",
            f"No new rooms ({len(plan.already)} already in the roster).")
        return 0
    if args.dry_run:
        out("(--dry-run: không ghi tệp)", "(--dry-run: file not written)")
        return 0
    write_atomic(Path(args.config), plan.new_text)
    out(f"Đã thêm {len(plan.added)} điểm cầu vào {args.config}; hãy sửa tên (name) và cụm "
        "(group) của chúng.",
        f"Added {len(plan.added)} rooms to {args.config}; edit their name and group.")
    return 0


def cmd_rooms_list(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    zone = console.cfg.zone
    avail_vi = {"online": "trực tuyến", "offline": "mất kết nối",
                "never_connected": "chưa từng kết nối"}
    for r in console.rooms():
        label = avail_vi[r.availability] if out.lang == "vi" else r.availability
        extra = []
        if r.open_alerts:
            extra.append(f"{r.open_alerts} " + ("cảnh báo" if out.lang == "vi" else "alerts"))
        if r.missing_events:
            extra.append(f"{r.missing_events} " + ("sự kiện thiếu" if out.lang == "vi"
                                                    else "events missing"))
        print(f"{r.site:<24} {r.name:<32} {r.group or '':<16} {label:<18} "
              f"{show(r.last_seen_at, zone):<20} {r.schedule:<10} {', '.join(extra)}")
    return 0


def _rooms_arg(value: str) -> str:
    return value


def cmd_window_create(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    zone = console.cfg.zone
    problems = []
    start = end = 0.0
    try:
        start = parse_time(args.start, zone)
    except ValueError as e:
        problems.append(f"start: {e}")
    try:
        end = parse_time(args.end, zone)
    except ValueError as e:
        problems.append(f"end: {e}")
    if problems:
        for p in problems:
            out.err(p, p)
        return 1
    w = console.create_window(_actor(), kind=args.kind, title=args.title, start=start, end=end,
                              rooms=args.rooms)
    print(w.id)
    out(f"{len(w.sites)} điểm cầu, {show(w.start, zone)} – {show(w.end, zone)}",
        f"{len(w.sites)} rooms, {show(w.start, zone)} – {show(w.end, zone)}", file=sys.stderr)
    _warn_not_running(out, console)
    return 0


def cmd_window_start(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    w = console.start_window_now(_actor(), kind=args.kind, title=args.title,
                                 duration_min=args.duration_min, rooms=args.rooms)
    print(w.id)
    _warn_not_running(out, console)
    return 0


def cmd_window_complete(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    w = console.complete_window(_actor(), args.window_id)
    out(f"Đã đánh dấu kết thúc {w.id} lúc {show(w.completed_at, console.cfg.zone)}.",
        f"Marked {w.id} complete at {show(w.completed_at, console.cfg.zone)}.")
    _warn_not_running(out, console)
    return 0


def cmd_window_list(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    zone = console.cfg.zone
    now = console.clock()
    since = None if args.all else now - 7 * 86400
    status_vi = {"scheduled": "sắp tới", "active": "đang diễn ra", "ended": "hết giờ, chưa "
                 "kết thúc", "completed": "đã kết thúc"}
    for w in console.windows(since=since):
        st = w.status(now)
        print(f"{w.id:<32} {w.kind:<8} {show(w.start, zone)} – {show(w.end, zone, False)} "
              f"{len(w.sites):>4} {status_vi[st] if out.lang == 'vi' else st:<22} {w.title}")
    return 0


def cmd_check(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    w = console.window(args.window)
    cmds = console.operator_check(_actor(), list(w.sites), window_id=w.id,
                                  timeout_s=args.timeout_s)
    _warn_not_running(out, console)
    wait = args.wait_s if args.wait_s is not None else (
        (args.timeout_s or console.cfg.schedule.default_check_timeout_s) + 2)
    if args.no_wait:
        wait = 0
    deadline = time.monotonic() + wait
    ids = {c.id: c.site for c in cmds}
    outcome: dict[str, str] = {}
    while True:
        for cid, site in ids.items():
            if site in outcome:
                continue
            acks = console.store.events(site, kinds=["operator_check_acknowledged",
                                                     "operator_check_unanswered"])
            hit = next((e for e in acks if e.data.get("check_id") == cid), None)
            c = console.command(cid)
            if hit is not None and hit.kind == "operator_check_acknowledged":
                outcome[site] = f"ok {hit.data.get('latency_s')} s"
            elif hit is not None:
                outcome[site] = f"unanswered ({hit.data.get('reason')})"
            elif c is not None and c.reply is not None and c.reply.status != "accepted":
                outcome[site] = f"{c.reply.status}: {c.reply.reason}"
        if len(outcome) == len(ids) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    words = {"ok": ("có người", "present"), "unanswered": ("không phản hồi", "no response")}
    for cid, site in ids.items():
        res = outcome.get(site)
        if res is None:
            c = console.command(cid)
            st = c.status if c else "queued"
            res = {"queued": ("chưa gửi", "not sent yet"), "sent": ("chưa có trả lời",
                                                                   "no answer yet")}.get(
                st, (st, st))[0 if out.lang == "vi" else 1]
        else:
            key = res.split(" ")[0]
            if key in words:
                res = res.replace(key, words[key][0 if out.lang == "vi" else 1], 1)
        print(f"{site:<24} {console.name_of(site):<32} {res}")
    return 0


def cmd_report(args: argparse.Namespace, out: _Out) -> int:
    from district.report import to_csv, to_html

    console = _console(args)
    rep = console.report(args.window_id, lang=args.lang)
    if args.format == "json":
        text = json.dumps(rep, ensure_ascii=False, indent=2) + "\n"
    elif args.format == "csv":
        text = to_csv(rep, args.lang)
    else:
        text = to_html(rep, args.lang)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_unscheduled(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    zone = console.cfg.zone
    try:
        since, until = parse_time(args.since, zone), parse_time(args.until, zone)
    except ValueError as e:
        out.err(str(e), str(e))
        return 1
    rep = console.unscheduled(since, until, lang=args.lang)
    if args.format == "json":
        print(json.dumps(rep, ensure_ascii=False, indent=2))
        return 0
    for u in rep["uses"]:
        print(f"{u['site']:<24} {u['device']:<10} {u['what']:<8} {u['from']} → {u['to']} "
              f"{u['duration_s'] / 60:8.1f} min{' …' if u['ongoing'] else ''}")
    if not rep["uses"]:
        out("Không có sử dụng ngoài giờ.", "No unscheduled use.")
    return 0


def _read_password(out: _Out) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Mật khẩu: " if out.lang == "vi" else "Password: ")
        again = getpass.getpass("Nhập lại: " if out.lang == "vi" else "Again: ")
        if first != again:
            raise ServiceError(P("password: the two entries differ",
                                 "password: hai lần nhập không giống nhau"))
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user(args: argparse.Namespace, out: _Out) -> int:
    console = _console(args)
    if args.action == "list":
        for u in console.users():
            print(f"{u.name:<24} {u.role}")
        return 0
    if not args.name:
        out.err("thiếu tên người dùng", "a user name is needed")
        return 2
    if args.action == "remove":
        console.remove_user(args.name)
        out(f"Đã xoá {args.name}.", f"Removed {args.name}.")
        return 0
    if args.action == "add" and args.role is None:
        out.err("user add cần --role operator|viewer", "user add needs --role operator|viewer")
        return 2
    password = _read_password(out)
    if args.action == "add":
        console.add_user(args.name, args.role, password)
        out(f"Đã tạo {args.name} ({args.role}).", f"Created {args.name} ({args.role}).")
    else:
        console.set_password(args.name, password, role=args.role)
        out(f"Đã đổi mật khẩu của {args.name}.", f"Changed the password of {args.name}.")
    return 0


# ------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The ``diemcau-district`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=f"console config (default {DEFAULT_CONFIG} or "
                             "$DIEMCAU_DISTRICT_CONFIG)")
    common.add_argument("--lang", choices=["vi", "en"], default=argparse.SUPPRESS,
                        help="language of messages (default vi)")
    ap = argparse.ArgumentParser(prog="diemcau-district", parents=[common],
                                 description="The diemcau district console.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: Any, name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add(sub, "run", "record every room and send what staff queued (the service)", cmd_run)
    add(sub, "check-config", "validate the config, listing every problem", cmd_check_config)
    add(sub, "schema", "print the config's JSON Schema", cmd_schema)

    rooms = sub.add_parser("rooms", help="the roster").add_subparsers(
        dest="rooms_command", required=True, metavar="ACTION")
    p = add(rooms, "import", "add the broker's rooms to the roster", cmd_rooms_import)
    p.add_argument("--broker-dir", type=Path, default=Path("/etc/diemcau-broker"),
                   help="diemcau-broker directory (default /etc/diemcau-broker)")
    p.add_argument("--dry-run", action="store_true", help="show, do not write")
    add(rooms, "list", "the roster with each room's link and alerts", cmd_rooms_list)

    win = sub.add_parser("window", help="test and session windows").add_subparsers(
        dest="window_command", required=True, metavar="ACTION")
    p = add(win, "create", "schedule a window (prints its id)", cmd_window_create)
    p.add_argument("--kind", choices=["test", "session"], required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--start", required=True, help="ISO time; without an offset, in the "
                                                  "configured zone")
    p.add_argument("--end", required=True)
    p.add_argument("--rooms", default="all", type=_rooms_arg,
                   help="all (default), ID,ID,… or group:NAME")
    p = add(win, "start", "start a window now (prints its id)", cmd_window_start)
    p.add_argument("--kind", choices=["test", "session"], required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--duration-min", type=float, default=60)
    p.add_argument("--rooms", default="all")
    p = add(win, "complete", "mark a window complete (rooms may switch off)",
            cmd_window_complete)
    p.add_argument("window_id")
    p = add(win, "list", "windows of the last 7 days and ahead", cmd_window_list)
    p.add_argument("--all", action="store_true", help="every window")

    p = add(sub, "check", "ask a window's rooms whether anyone is there", cmd_check)
    p.add_argument("--window", required=True)
    p.add_argument("--timeout-s", type=float, default=None,
                   help="how long the room waits for the button")
    p.add_argument("--wait-s", type=float, default=None,
                   help="how long to wait for answers (default: the timeout and 2 s)")
    p.add_argument("--no-wait", action="store_true", help="send and return")

    p = add(sub, "report", "a window's compliance report", cmd_report)
    p.add_argument("window_id")
    p.add_argument("--format", choices=["json", "csv", "html"], default="json")
    p.add_argument("--output", help="write to this file instead of standard output")

    p = add(sub, "unscheduled", "use outside every window", cmd_unscheduled)
    p.add_argument("--from", dest="since", required=True)
    p.add_argument("--to", dest="until", required=True)
    p.add_argument("--format", choices=["json", "text"], default="text")

    p = add(sub, "user", "console users (password from a prompt or standard input)", cmd_user)
    p.add_argument("action", choices=["add", "remove", "passwd", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["operator", "viewer"])
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``diemcau-district``; 0 ok, 1 refused (nothing changed), 2 bad usage or config."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None) or Path(
        os.environ.get("DIEMCAU_DISTRICT_CONFIG", str(DEFAULT_CONFIG)))
    args.lang = getattr(args, "lang", "vi")
    out = _Out(args.lang)
    try:
        return int(args.func(args, out))
    except ConfigError as e:
        out(f"Cấu hình {args.config} có lỗi:", f"The config {args.config} has problems:",
            file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    except ServiceError as e:
        for p in e.text(args.lang):
            out.err(p, p)
        return 1
    except StoreError as e:
        out.err(str(e), str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
