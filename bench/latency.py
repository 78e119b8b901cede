"""Command latency of a room agent beside mqtt-io 2.7: district command → relay → answer.

A district client publishes a ``power`` command (QoS 1) on the contract topic
``diemcau/v2/rooms/<site>/commands``; the room agent records its decision (events and reply in
the outbox, the room state file, both fsync'd on a real state directory, as on the Pi), moves
the relay (gpiozero mock pin) and publishes its reply and its retained state. A command's
latency runs from the publish to the later of the two arriving at the same client. mqtt-io 2.7
drives the same mock pin through ``mqio/output/camera/set`` (its state on
``mqio/output/camera``), on the same Mosquitto, in the same run. Commands alternate the camera
on and off, one at a time; the first ``--warmup`` are not counted.

Usage::

    .venv/bin/python bench/latency.py [--commands 1000] [--peers diemcau,mqtt-io]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.footprint import PEERS, Running, bench_broker, start, start_diemcau  # noqa: E402

GOAL_P99_MS = 5.0
WARMUP = 20


def run_commands(r: Running, n: int, warmup: int = WARMUP) -> list[float]:
    """Milliseconds from publish to the last of the command's answers, for ``n`` commands
    sent one at a time after ``warmup`` uncounted ones."""
    out = []
    for k in range(warmup + n):
        i = r.next_command()
        mark = r.watch.mark()
        t0 = r.send(i)
        t1 = r.done(i, mark)
        if k >= warmup:
            out.append((t1 - t0) * 1000)
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    if not s:
        return math.nan
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


STATS: tuple[tuple[str, Callable[[Sequence[float]], float]], ...] = (
    ("p50", lambda v: percentile(v, 50)),
    ("p95", lambda v: percentile(v, 95)),
    ("p99", lambda v: percentile(v, 99)),
    ("max", max),
)


def summary(lat: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of a run (ms)."""
    return {name: f(lat) if lat else math.nan for name, f in STATS}


def ratio(ours: float, peer: float) -> str:
    """ours ÷ peer, or '-' without a peer figure."""
    if not peer or math.isnan(peer) or math.isnan(ours):
        return "-"
    return f"{ours / peer:.2f}"


def table(results: dict[str, list[float]], out: Callable[[str], None] = print) -> None:
    """goal | diemcau | mqtt-io 2.7 | ratio (diemcau ÷ mqtt-io) for p50/p95/p99/max."""
    ours = summary(results.get("diemcau", []))
    peer = summary(results.get("mqtt-io", []))
    n = len(results.get("diemcau") or results.get("mqtt-io") or [])
    out(f"{'command -> relay -> reply+state (ms)':38}{'goal':>10}{'diemcau':>10}"
        f"{'mqtt-io 2.7':>13}{'ratio':>8}")
    for name, _ in STATS:
        goal = f"<= {GOAL_P99_MS:g}" if name == "p99" else ""
        out(f"{'  ' + name:38}{goal:>10}{ours[name]:>10.2f}{peer[name]:>13.2f}"
            f"{ratio(ours[name], peer[name]):>8}")
    if "diemcau" in results:
        met = ours["p99"] <= GOAL_P99_MS
        out(f"goal: diemcau p99 <= {GOAL_P99_MS:g} ms: {ours['p99']:.2f} ms -> "
            f"{'met' if met else 'NOT met'}")
    out(f"({n} commands each after {WARMUP} uncounted; ratio = diemcau / mqtt-io; diemcau's "
        "figure waits for its reply and its state, mqtt-io's for its output topic)")


def run(n: int, peers: Sequence[str] = PEERS) -> dict[str, list[float]]:
    """``n`` timed commands for every peer, one after the other on one broker."""
    results: dict[str, list[float]] = {}
    with bench_broker("dc-lat-") as (broker, work):
        for name in peers:
            r = start(name, broker, work / name)
            try:
                results[name] = run_commands(r, n)
            finally:
                r.stop()
    return results


def profile(n: int, out: Path, top: int = 30) -> dict[str, float]:
    """Run diemcau alone under cProfile (its main thread: the loop that decides and records)
    for ``n`` commands; its stats go to ``out`` and the top functions by cumulative time are
    printed. Returns the run's summary (slower than without the profiler)."""
    import pstats

    with bench_broker("dc-prof-") as (broker, work):
        r = start_diemcau(broker, work / "diemcau",
                          python_args=("-m", "cProfile", "-o", str(out)))
        try:
            lat = run_commands(r, n)
        finally:
            r.stop()
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(top)
    return summary(lat)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", type=int, default=1000, help="commands timed (1000)")
    ap.add_argument("--peers", default=",".join(PEERS), help="diemcau,mqtt-io")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="instead: diemcau alone under cProfile, its stats into FILE")
    args = ap.parse_args(argv)
    if args.profile:
        print(profile(args.commands, args.profile))
        return 0
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(peers) - set(PEERS):
        ap.error(f"peers are {', '.join(PEERS)}")
    table(run(args.commands, peers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
