"""The room benches, tiny: ``bench/latency.py``, ``bench/footprint.py`` and ``bench/room.py``
each run end to end against a real Mosquitto, the real agent and mqtt-io 2.7, and print their
table in its shape. No figure is asserted (the machine is shared); the figures are the
scripts' to print (``bench/README.md``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import footprint, latency, room
from tests.campaigns.test_link_bytes_smoke import ROOM

NUMBER = re.compile(r"^(-|\d+(\.\d+)?)$")


def test_latency_prints_goal_ours_peer_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert latency.main(["--commands", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-5:] == ["goal", "diemcau", "mqtt-io", "2.7", "ratio"]
    for name, line in zip(("p50", "p95", "p99", "max"), lines[1:5], strict=True):
        cells = line.split()
        assert cells[0] == name
        figures = cells[-3:]
        assert all(re.match(r"^\d+\.\d\d$", f) for f in figures[:2]), line
        assert NUMBER.match(figures[2]), line
    assert lines[3].split()[1:3] == ["<=", "5"]
    assert re.match(r"^goal: diemcau p99 <= 5 ms: \d+\.\d\d ms -> (met|NOT met)$", lines[5])


def test_footprint_prints_every_figure_for_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert footprint.main(["--settle", "0.2", "--idle", "0.5", "--commands", "3",
                           "--minutes", "0.05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["diemcau", "mqtt-io"]
    labels = [line[:42].strip() for line in lines[1:]]
    assert labels == ["start -> online (s)", "RSS steady (MiB)", "anonymous (MiB)",
                      "file-backed (MiB)", "threads", "RSS peak, VmHWM (MiB)",
                      "CPU idle over 0.5 s (% core)", "CPU at 1 cmd/s, 0.05 min (% core)"]
    for line in lines[1:]:
        assert all(NUMBER.match(x) for x in line[42:].split()), line
        assert len(line[42:].split()) == 2, line


def test_room_prints_one_table_with_every_metric(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "room.yaml"
    site.write_text(ROOM)
    assert room.main(["--settle", "0.2", "--idle", "0.5", "--commands", "3", "--minutes",
                      "0.05", "--link-real-s", "1", "--link-site", str(site)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert tuple(cells[0]) == room.COLUMNS
    assert set("".join(cells[1])) <= {"-"}
    metrics = [c[0] for c in cells[2:]]
    assert metrics == ["latency p50 (ms)", "latency p95 (ms)", "latency p99 (ms)",
                       "latency max (ms)", "RSS steady (MiB)", "RSS peak, VmHWM (MiB)",
                       "CPU idle, 0.5 s (% core)", "CPU at 1 cmd/s, 0.05 min (% core)",
                       "start -> online (s)", "link bytes/day, plain (KB)"]
    goals = {c[0]: c[1] for c in cells[2:]}
    assert goals["latency p99 (ms)"] == "<= 5" and goals["RSS steady (MiB)"] == "<= 30"
    assert goals["CPU idle, 0.5 s (% core)"] == "<= 0.2"
    assert goals["link bytes/day, plain (KB)"] == "<= 300"
    for c in cells[2:]:
        assert len(c) == 5, c
        assert all(NUMBER.match(x) for x in c[2:]), c
        assert c[2] != "-" and c[3] != "-", c   # both peers measured every metric
    assert "load average" in out.splitlines()[-1]
