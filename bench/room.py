"""The room agent beside mqtt-io 2.7 in one table: latency, footprint, link bytes.

One command runs, on this machine:

* ``bench/footprint.py``'s measurement of each peer in one life of its process on one
  Mosquitto: start → online, RSS steady (after ``--settle``), CPU idle (``--idle`` s),
  ``--commands`` timed commands (``bench/latency.py``: publish → relay → reply and state),
  CPU at one command a second (``--minutes``), RSS peak (``VmHWM``);
* ``bench/link_bytes.py``'s day (``per_day``) for ``ours`` and ``mqtt-io`` on the plain
  transport (``--link-tls`` adds TLS) with an idle window of ``--link-real-s`` seconds (its
  quick option; 300 s or more for the figure);

and prints ONE table, ``metric | goal | diemcau | mqtt-io 2.7 | ratio`` (ratio = diemcau ÷
mqtt-io: below 1 is less time, memory, CPU or bytes than mqtt-io), with the load average at
the start and the end beside it (the machine is shared: note it with any figure).

Usage::

    .venv/bin/python bench/room.py                 # quick: 1 min at 1 cmd/s, 60 s link idle
    .venv/bin/python bench/room.py --minutes 10 --idle 60 --link-real-s 300   # the figures
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import footprint, latency  # noqa: E402

GOAL_RSS_MIB = 30.0
GOAL_CPU_IDLE_PCT = 0.2
GOAL_LINK_KB = {False: 300.0, True: 400.0}   # bench/link_bytes.py's goals (contract 2)
COLUMNS = ("metric", "goal", "diemcau", "mqtt-io 2.7", "ratio")


@dataclass(frozen=True)
class Row:
    """One line of the table: a metric, its goal (text, or '' for none), both figures."""

    metric: str
    goal: str
    ours: float
    peer: float
    fmt: str = "{:.2f}"


def cell(fmt: str, value: float) -> str:
    return "-" if value is None or math.isnan(value) else fmt.format(value)


def render(rows: list[Row], out: Callable[[str], None] = print) -> None:
    """The table, its columns separated by ``|`` (also valid Markdown)."""
    cells = [list(COLUMNS)] + [[r.metric, r.goal, cell(r.fmt, r.ours), cell(r.fmt, r.peer),
                                latency.ratio(r.ours, r.peer)] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    for n, c in enumerate(cells):
        out("| " + " | ".join(x.ljust(w) if i == 0 else x.rjust(w)
                              for i, (x, w) in enumerate(zip(c, widths, strict=True))) + " |")
        if n == 0:
            out("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def rows(figs: dict[str, footprint.Figures], link: dict[tuple[str, bool], float],
         opts: footprint.Options) -> list[Row]:
    """The table's rows from footprint's figures and link_bytes's totals (bytes a day)."""
    nan = math.nan
    ours = figs.get("diemcau", footprint.Figures("diemcau"))
    peer = figs.get("mqtt-io", footprint.Figures("mqtt-io"))
    lo, lp = latency.summary(ours.latency_ms), latency.summary(peer.latency_ms)
    out = [Row(f"latency {k} (ms)", f"<= {latency.GOAL_P99_MS:g}" if k == "p99" else "",
               lo[k], lp[k]) for k in ("p50", "p95", "p99", "max")]
    out += [
        Row("RSS steady (MiB)", f"<= {GOAL_RSS_MIB:g}", ours.rss_mib, peer.rss_mib, "{:.1f}"),
        Row("RSS peak, VmHWM (MiB)", "", ours.peak_mib, peer.peak_mib, "{:.1f}"),
        Row(f"CPU idle, {opts.idle_s:g} s (% core)", f"<= {GOAL_CPU_IDLE_PCT:g}",
            ours.cpu_idle_pct, peer.cpu_idle_pct, "{:.3f}"),
        Row(f"CPU at 1 cmd/s, {opts.minutes:g} min (% core)", "", ours.cpu_1cps_pct,
            peer.cpu_1cps_pct, "{:.3f}"),
        Row("start -> online (s)", "", ours.online_s, peer.online_s),
    ]
    for tls in (False, True):
        if ("ours", tls) in link or ("mqtt-io", tls) in link:
            out.append(Row(f"link bytes/day, {'TLS' if tls else 'plain'} (KB)",
                           f"<= {GOAL_LINK_KB[tls]:g}", link.get(("ours", tls), nan) / 1000,
                           link.get(("mqtt-io", tls), nan) / 1000, "{:.1f}"))
    return out


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from bench import link_bytes

    ap = footprint.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--link-real-s", type=float, default=60.0,
                    help="link bytes: real seconds of each idle window (60; 300 for the figure)")
    ap.add_argument("--link-tls", action="store_true", help="link bytes: TLS as well as plain")
    ap.add_argument("--link-site", type=Path, default=link_bytes.DEFAULT_SITE,
                    help="link bytes: the room's site config")
    ap.add_argument("--no-link", action="store_true", help="leave the link bytes out")
    args = ap.parse_args(argv)
    opts = footprint.options(args)
    start_load = load()
    print(f"room bench: {start_load}", flush=True)
    figs = footprint.run(opts)
    link: dict[tuple[str, bool], float] = {}
    if not args.no_link:
        peers = tuple(p for p, name in (("ours", "diemcau"), ("mqtt-io", "mqtt-io"))
                      if name in opts.peers)
        transports = (False, True) if args.link_tls else (False,)
        link, _ = link_bytes.per_day(
            link_bytes.Options(args.link_real_s, transports, peers, "auto", args.link_site),
            out=lambda line: None)
    print()
    render(rows(figs, link, opts))
    n = len(figs.get("diemcau", figs.get("mqtt-io", footprint.Figures(""))).latency_ms)
    print(f"\n{n} commands timed per peer (after {latency.WARMUP} uncounted); ratio = diemcau / "
          "mqtt-io; same machine, same Mosquitto; diemcau's latency waits for its reply and "
          "its state, mqtt-io's for its output topic")
    print(f"{start_load} at the start, {load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
