"""``diemcau-agent``: run a room, check its config, ask a running agent for status.

Examples::

    diemcau-agent check-config /etc/diemcau/site.yaml
    diemcau-agent run --config firmware_config/sites/sim-room.yaml --simulate \\
        --broker mqtt://127.0.0.1:18830 --state-dir run/sim-room
    diemcau-agent status --state-dir run/sim-room
    diemcau-agent help --state-dir run/sim-room     # ask the centre for help
    diemcau-agent demo
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__, journal, systemd
from agent import operator_text as text
from agent.config import ConfigError, SiteConfig, json_schema, load_config
from agent.control import ControlServer, request
from agent.core.events import Tick
from agent.link.mqtt import parse_broker_url
from agent.runtime import Agent, LocalCall, Reload, Stop
from agent.store import StateDir

log = logging.getLogger("diemcau")

DEFAULT_STATE = Path(os.environ.get("STATE_DIRECTORY", "/var/lib/diemcau"))


def _load(path: str) -> SiteConfig | None:
    try:
        return load_config(Path(path))
    except ConfigError as e:
        print(f"{path}: {len(e.problems)} problem(s) / lỗi cấu hình:", file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args.path)
    if cfg is None:
        return 2
    devices = ", ".join(f"{n} (BCM {cfg.devices[n].relay.pin})" for n in cfg.devices_in_order())
    print(f"{args.path}: OK — site {cfg.site.id} ({cfg.site.name}); power-on order: {devices}; "
          f"config hash {cfg.fingerprint()}")
    missing = cfg.broker.missing_files()
    for m in missing:
        print(f"  warning: {m} (needed on the room's Pi)", file=sys.stderr)
    if cfg.broker.credentials_file is not None and not missing:
        try:
            cfg.broker.credentials()
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
    return _check_boot(cfg, args)


def _check_boot(cfg: SiteConfig, args: argparse.Namespace) -> int:
    """check-config's second half: would the boot config in place hold the relays released?"""
    from agent.install import bootcfg

    path = Path(args.boot_config) if args.boot_config else bootcfg.CONFIG_TXT
    if not path.exists():
        if args.boot_config:
            print(f"{path}: no such file", file=sys.stderr)
            return 2
        print(f"  note: no {path} on this machine: boot pins not checked (on the Pi they are)",
              file=sys.stderr)
        return 0
    model = args.model or bootcfg.detect_model()
    problems, warnings = bootcfg.check(cfg, path.read_text(errors="replace"), model,
                                       path.parent, str(path))
    for m in warnings:
        print(f"  warning: {m}", file=sys.stderr)
    if problems:
        print(f"{path}: KHÔNG AN TOÀN khi khởi động / NOT SAFE at boot:", file=sys.stderr)
        for m in problems:
            print(f"  {m}", file=sys.stderr)
        return 2
    return 0


BOOT_FRAGMENT = Path(__file__).resolve().parents[1] / "firmware_config" / "boot" / \
    "config.txt.fragment"


def boot_pin_warnings(cfg: SiteConfig, fragment: Path = BOOT_FRAGMENT) -> list[str]:
    """Where the relays in ``cfg`` are not held released at boot by the boot config
    ``fragment`` (a whole config.txt or a block; ``gpio=...=op,dh`` for active-low coils,
    ``op,dl`` for active-high): :func:`agent.install.bootcfg.check`'s problems."""
    from agent.install import bootcfg

    try:
        text = fragment.read_text()
    except OSError:
        return []
    return bootcfg.check(cfg, text, None, fragment.parent, fragment.name)[0]


def cmd_adapters(args: argparse.Namespace) -> int:
    from agent.install import adapters

    found = adapters.list_adapters()
    if not args.write:
        print(json.dumps([a.as_dict() for a in found], ensure_ascii=False, indent=2)
              if args.json else adapters.describe(found))
        return 0
    try:
        lines = adapters.write_identities(Path(args.write),
                                          adapters.parse_assignments(args.device or []), found)
    except (adapters.AdapterError, adapters.EditError, OSError) as e:
        print(f"{args.write}: {e} (nothing written)", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"{args.write}: fix the site file first (nothing written):", file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    for line in lines:
        print(f"{args.write}: {line}")
    print("Next: diemcau-agent udev-rules " + args.write + "  (the installer installs them)")
    return 0


def cmd_udev_rules(args: argparse.Namespace) -> int:
    from agent.install import udev

    cfg = _load(args.path)
    if cfg is None:
        return 2
    try:
        print(udev.render_rules(cfg), end="")
    except udev.UdevError as e:
        print(f"{args.path}: no udev rules until every serial device's adapter is known:",
              file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    return 0


def cmd_boot_config(args: argparse.Namespace) -> int:
    from agent.install import bootcfg

    cfg = _load(args.path)
    if cfg is None:
        return 2
    print(bootcfg.render_fragment(cfg, args.model or "any"), end="")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from agent import diagnose

    opts = diagnose.Options(config=Path(args.config), state_dir=Path(args.state_dir
                                                                     or DEFAULT_STATE))
    if args.boot_config:
        opts.boot_config = Path(args.boot_config)
    try:
        out = diagnose.collect(opts, Path(args.out) if args.out else None)
    except OSError as e:
        print(f"cannot write the archive: {e}", file=sys.stderr)
        return 1
    print(f"Gửi tệp này cho bộ phận hỗ trợ / send this file to support: {out}")
    for n in opts.notes:
        print(f"  note: {n}", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def build_agent(cfg: SiteConfig, simulate: bool, state_dir: Path, broker: str | None,
                connect: bool = True) -> Agent:
    """An :class:`Agent` with real pins (lgpio) or, with ``simulate``, mock pins."""
    clock_kw: dict[str, Any] = {}
    sim_clock = None
    if simulate:
        from agent.hardware.pins import RecordedMockFactory
        from agent.simclock import SimClock

        state_dir.mkdir(parents=True, exist_ok=True)
        sim_clock = SimClock(state_dir)
        clock_kw = {"clock": sim_clock.now, "clock_synced": sim_clock.synced}
        factory = RecordedMockFactory(state_dir, clock=sim_clock.now)
    else:
        from agent.hardware.pins import lgpio_factory
        factory = lgpio_factory()
    host = port = None
    if broker:
        host, port = parse_broker_url(broker)
    agent = Agent(cfg, factory, StateDir(state_dir), host, port, connect=connect,
                  emulate=simulate, **clock_kw)
    agent.sim_clock = sim_clock
    return agent


def serve(agent: Agent, simulate: bool, stop: threading.Event | None = None,
          config_path: Path | None = None) -> None:
    """Run ``agent`` with its control socket until SIGINT/SIGTERM (or ``stop``); SIGHUP
    re-reads ``config_path`` (:meth:`Agent.reload`) and the agent runs on either way."""

    def submit(op: str, respond: Callable[[dict[str, Any]], None]) -> None:
        if op in ("press", "hold"):
            respond(_simulated_button(agent, op) if simulate else
                    {"ok": False, "error": "press/hold only in a simulated room (--simulate)",
                     "code": "simulate_only"})
        elif ":" in op:
            respond(_simulated_serial(agent, op))
        else:
            agent.queue.put(LocalCall(op, respond))

    control: ControlServer | None = None
    try:
        control = ControlServer(agent.store.socket_path, submit,
                                answer_within={"selftest": agent.selftest_budget_s()})
        control.start()
    except OSError as e:
        # Without the socket the room still works; only `diemcau-agent status|on|off` do not.
        log.error("local control socket %s unavailable: %s", agent.store.socket_path, e)

    # A handler runs between two bytecodes of the loop, perhaps while it holds the queue's
    # lock: it only appends to a deque (atomic), which the loop reads every turn.
    signals: deque[Any] = deque()

    def on_stop(signum: int, frame: Any) -> None:
        signals.append(Stop())

    def on_reload(signum: int, frame: Any) -> None:
        if config_path is not None:
            signals.append(Reload(config_path))

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)
    agent.start()
    systemd.ready(f"room {agent.cfg.site.id} running")
    log.info("room %s running (%s); state in %s", agent.cfg.site.id,
             "simulated" if simulate else "hardware", agent.store.root)
    try:
        agent.run(stop, signals)
    finally:
        systemd.stopping()
        if control is not None:
            control.close()
        agent.close()
        log.info("room %s stopped", agent.cfg.site.id)


def _simulated_button(agent: Agent, op: str) -> dict[str, Any]:
    """Press (or hold past its hold time) the simulated room's button, as a finger would, and
    say what the room did with it (the events its decision made)."""
    cfg = agent.cfg.button
    if cfg is None:
        return {"ok": False, "error": "this room has no button", "code": "no_button"}
    pin = agent.board.factory.pin(cfg.pin)
    down, up = (pin.drive_low, pin.drive_high) if cfg.pull_up else (pin.drive_high,
                                                                     pin.drive_low)
    mark = agent.button_mark()
    down()
    if op == "hold":
        threading.Event().wait(cfg.hold_s + 0.3)  # the operator's finger, in real time
    up()
    did = agent.wait_button(mark, timeout=5)
    if did is None:
        return {"ok": False, "error": "the room did not take the button in 5 s",
                "code": "button_timeout"}
    # (Not the whole state message: this runs on the control thread. The room's state is
    # immutable, so the window locking it, for "until when", can be read here.)
    from agent.core.view import window_json

    st = agent.state
    return {"ok": True, "did": did, "state": {"window": window_json(st.window(st.locked_by))},
            **agent.operator_facts()}


def _simulated_serial(agent: Agent, op: str) -> dict[str, Any]:
    """A fault on a simulated serial device: ``unplug:codec`` (the USB adapter pulled),
    ``replug:codec``, ``silence:codec`` (cable cut: nothing answers), ``speak:codec``,
    ``garbage:codec`` (noise on the line); or on the simulated clock: ``clock:+600``,
    ``sync:0|1|auto``."""
    what, _, device = op.partition(":")
    clock = getattr(agent, "sim_clock", None)
    if what in ("clock", "sync"):
        if clock is None:
            return {"ok": False, "error": "only a simulated room's clock can be moved"}
        try:
            if what == "clock":
                clock.jump(float(device))
            else:
                clock.set_synced(None if device == "auto" else device == "1")
        except ValueError:
            return {"ok": False, "error": f"bad value '{device}'"}
        agent.queue.put(Tick())  # the loop sleeps until its next deadline: look again now
        return {"ok": True, "offset_s": clock.offset}
    emus = agent.emulated.emulators if agent.emulated is not None else {}
    emu = emus.get(device)
    if emu is None:
        return {"ok": False, "error": f"no simulated serial device '{device}' "
                                      f"(have: {', '.join(emus) or 'none'})"}
    if what == "unplug":
        emu.unplug()
    elif what == "replug":
        emu.replug()
    elif what in ("silence", "speak"):
        emu.silent = what == "silence"
    elif what == "garbage":
        emu.inject_garbage()
    else:
        return {"ok": False, "error": f"unknown device fault '{what}'"}
    return {"ok": True}


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    journal.use_config_level(cfg.log_level)
    state_dir = Path(args.state_dir) if args.state_dir else (
        Path("run") / cfg.site.id if args.simulate else DEFAULT_STATE)
    missing = cfg.broker.missing_files()
    if missing:
        # The room must still follow its cached schedule and keep its lock: run without a link.
        log.error("%s: running WITHOUT the centre's broker until these are fixed: %s",
                  args.config, "; ".join(missing))
    try:
        agent = build_agent(cfg, args.simulate, state_dir, args.broker, connect=not missing)
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"cannot drive the Pi's pins: {e} (pip install '.[pi]' for lgpio, or run with "
              "--simulate)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        # A pin in use by another program, a bad broker URL, an unreadable state directory.
        print(f"cannot start the room agent: {e}", file=sys.stderr)
        return 2
    serve(agent, args.simulate, config_path=Path(args.config))
    return 0


LOCAL_OPS = {"status": "status", "on": "on", "off": "off", "request-off": "off", "help": "help",
             "selftest": "selftest", "press": "press", "hold": "hold"}
"""The operator's commands and the control socket's request each sends (``request-off`` is
the operator's word for ``off``)."""


def _socket_for(args: argparse.Namespace) -> Path:
    return StateDir(Path(args.state_dir) if args.state_dir else DEFAULT_STATE).socket_path


SITE_FILE = Path("/etc/diemcau/site.yaml")
"""The room's site file on its Pi: read (if there) only when the agent cannot be reached."""


def _site_file(args: argparse.Namespace) -> SiteConfig | None:
    """The ``--config`` file, else the Pi's own site file if readable; None if neither."""
    path = Path(args.config) if getattr(args, "config", None) else SITE_FILE
    try:
        return load_config(path)
    except (ConfigError, OSError):
        return None


def cmd_local(args: argparse.Namespace, now: datetime | None = None) -> int:
    """Send an operator command to the running agent and print its answer in one language:
    ``--lang``, else the room's own (``site.language``, in the agent's reply; the site file's
    when the agent cannot be reached), else Vietnamese. ``now`` (default: the clock) is what
    times are said relative to."""
    path = _socket_for(args)
    op = LOCAL_OPS[args.cmd]
    lang: text.Lang | None = args.lang
    try:
        reply = request(path, op, timeout=SELFTEST_WAIT_S if op == "selftest" else 15.0)
    except (OSError, ValueError):
        # Who to call matters most now: from the site file, if this machine has it.
        cfg = _site_file(args)
        lang = lang or (cfg.site.language if cfg else text.DEFAULT_LANG)
        print(text.t("unreachable", lang, path=path), file=sys.stderr)
        if cfg is not None:
            room = text.Room(support=[c.model_dump() for c in cfg.support])
            print("\n".join(text.contacts(room, lang)), file=sys.stderr)
        return 3
    if lang is None:
        lang = reply.get("language") if reply.get("language") in text.LANGS \
            else text.DEFAULT_LANG
    assert lang is not None
    now = now or datetime.now(UTC)
    room = text.Room.from_reply(reply)
    state = reply.get("state")
    ok = bool(reply.get("ok"))
    if args.json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
    elif reply.get("refused"):
        refused = reply["refused"]
        print(text.selftest_refused(refused, state, room, lang, now)
              if refused.get("kind") == "selftest_refused" else
              text.outcome([refused], room, lang, now, state))
    elif ok and "selftest" in reply:
        print(text.selftest(reply["selftest"], room, lang, state))
        ok = bool(reply["selftest"].get("finished", {}).get("ok"))
    elif ok and "did" in reply:
        print(text.outcome(reply["did"], room, lang, now, state))
    elif ok and state is not None:
        print(text.status(state, room, lang, now))
    elif ok:
        print(text.t("done", lang))
    else:
        print(text.error(reply, lang), file=sys.stderr)
    return 0 if ok else 1


SELFTEST_WAIT_S = 3600.0
"""How long ``selftest`` waits for the agent (which answers when the test ends, or says it
ran out of its own time first)."""


def cmd_led_card(args: argparse.Namespace) -> int:
    from agent.ledcard import render

    cfg = None
    if args.config:
        cfg = _load(args.config)
        if cfg is None:
            return 2
    sys.stdout.write(render(cfg))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo
    return run_demo(Path(args.config), Path(args.workdir), args.port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diemcau-agent", description="diemcau room agent")
    p.add_argument("--version", action="version", version=f"diemcau-agent {__version__}")
    p.add_argument("--log-level", type=journal.level_arg,
                   default=os.environ.get("DIEMCAU_LOG", "INFO"),
                   help=f"{', '.join(journal.LEVEL_NAMES)} (default $DIEMCAU_LOG or INFO; the "
                        "site file's log_level wins when it has one)")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the room agent")
    r.add_argument("--config", required=True, help="site config YAML")
    r.add_argument("--simulate", action="store_true", help="mock pins: any Linux machine")
    r.add_argument("--broker", help="override the config's broker: mqtt://HOST:PORT")
    r.add_argument("--state-dir", help="where state, schedule cache and outbox live")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", help="validate a site config and list every problem")
    c.add_argument("path")
    c.add_argument("--boot-config", help="the Pi's boot config to check the relay pins in "
                                         "(default /boot/firmware/config.txt, if present)")
    c.add_argument("--model", choices=("pi4", "pi5"), help="board (default: this Pi's)")
    c.set_defaults(func=cmd_check_config)
    _install_commands(sub)

    s = sub.add_parser("schema", help="print the site config JSON Schema")
    s.set_defaults(func=cmd_schema)

    for name, about in (("status", "show the room's status"),
                        ("on", "switch the room on, in order"),
                        ("request-off", "ask to switch the room off, in order (refused while "
                                        "a test or meeting locks it, saying until when)"),
                        ("off", "the same as request-off"),
                        ("help", "ask the centre for help (as a double press of the button)"),
                        ("selftest", "outside any test or meeting: switch each device off and "
                                     "on again, in order, and report how each was confirmed"),
                        ("press", "simulated room: a short press of the button"),
                        ("hold", "simulated room: hold the button past its hold time")):
        q = sub.add_parser(name, help=about)
        q.add_argument("--state-dir", help=f"the agent's state directory ({DEFAULT_STATE})")
        q.add_argument("--lang", choices=text.LANGS,
                       help="vi or en (default: the room's site.language, else vi)")
        q.add_argument("--config", help=f"site config, for its language and support contacts "
                                        f"when the agent cannot be reached (default {SITE_FILE}"
                                        "; not needed otherwise)")
        q.add_argument("--json", action="store_true", help="the agent's reply as it is")
        q.set_defaults(func=cmd_local)

    lc = sub.add_parser("led-card", help="print the LED card (HTML, Vietnamese then English) "
                                         "to print and put next to the light")
    lc.add_argument("--config", help="site config: the centre's name and support contacts")
    lc.set_defaults(func=cmd_led_card)

    d = sub.add_parser("demo", help="a local broker and a simulated room, with a sample schedule")
    d.add_argument("--config", default="firmware_config/sites/sim-room.yaml")
    d.add_argument("--workdir", default="run/demo")
    d.add_argument("--port", type=int, default=18830)
    d.set_defaults(func=cmd_demo)
    return p


def _install_commands(sub: Any) -> None:
    """The field engineer's commands: adapters, udev-rules, boot-config, diagnose."""
    a = sub.add_parser("adapters", help="list the USB-serial adapters plugged in; --write "
                                        "records one as a device's adapter in a site file")
    a.add_argument("--write", metavar="SITE.yaml", help="site file to record adapters in")
    a.add_argument("--device", action="append", metavar="NAME=SERIAL_OR_TTY",
                   help="e.g. codec=A10KCODE or codec=ttyUSB0 (repeat for each device)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_adapters)
    u = sub.add_parser("udev-rules", help="print the udev rules naming the site's serial ports")
    u.add_argument("path", metavar="SITE.yaml")
    u.set_defaults(func=cmd_udev_rules)
    b = sub.add_parser("boot-config", help="print the site's block for /boot/firmware/config.txt")
    b.add_argument("path", metavar="SITE.yaml")
    b.add_argument("--model", choices=("pi4", "pi5", "any"), help="board (default: any)")
    b.set_defaults(func=cmd_boot_config)
    g = sub.add_parser("diagnose", help="write one archive for the support line (no secrets)")
    g.add_argument("--out", metavar="FILE.tar.gz")
    g.add_argument("--config", default="/etc/diemcau/site.yaml")
    g.add_argument("--state-dir", help=f"the agent's state directory ({DEFAULT_STATE})")
    g.add_argument("--boot-config", help="default /boot/firmware/config.txt")
    g.set_defaults(func=cmd_diagnose)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    journal.setup_logging(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
