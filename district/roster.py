"""Filling the roster from the broker's registry (``diemcau-broker``'s ``diemcau-broker.yaml``,
the same file ``diemcau-broker list`` reads).

New rooms are added at the end of the config's ``rooms:`` list as text, so the file keeps its
comments and layout; the result is validated before it is written (atomically).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from broker import provision
from district.config import ConfigError, ConsoleConfig, parse_config


@dataclass(frozen=True)
class ImportPlan:
    """What ``rooms import`` would change."""

    added: list[str]
    already: list[str]
    revoked_in_roster: list[str]
    """Rooms in the roster whose broker account is revoked (left alone, reported)."""
    new_text: str


def broker_rooms(broker_dir: Path) -> dict[str, bool]:
    """Site id → revoked, from a ``diemcau-broker`` directory; ``ProvisionError`` if it is not
    one."""
    settings = provision.Site(broker_dir).load()
    return {k: r.revoked for k, r in settings.rooms.items()}


def _entry(site: str, indent: int) -> str:
    pad = " " * indent
    # JSON strings are valid YAML scalars and quote anything odd.
    return f"{pad}- id: {site}\n{pad}  name: {json.dumps(site, ensure_ascii=False)}\n"


def plan_import(text: str, cfg: ConsoleConfig, rooms: dict[str, bool]) -> ImportPlan:
    """Append every active broker room not yet in the roster; its name is its id until someone
    writes the real one."""
    have = set(cfg.room_ids())
    added = sorted(s for s, revoked in rooms.items() if not revoked and s not in have)
    already = sorted(s for s, revoked in rooms.items() if not revoked and s in have)
    revoked = sorted(s for s, rv in rooms.items() if rv and s in have)
    if not added:
        return ImportPlan(added, already, revoked, text)
    root = yaml.compose(text)
    node = None
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if k.value == "rooms":
                node = v
    if node is None:
        body = "".join(_entry(s, 2) for s in added)
        sep = "" if text.endswith("\n") or not text else "\n"
        new = f"{text}{sep}rooms:\n{body}"
    elif isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        indent = node.start_mark.column
        body = "".join(_entry(s, indent) for s in added)
        end = node.end_mark.index
        # The block sequence ends at the start of the next key (or the end of the file):
        # insert just after the last item's line.
        head = text[:end]
        tail = text[end:]
        stripped = head.rstrip()
        new = stripped + "\n" + body + head[len(stripped) + 1:] + tail
    else:
        # An empty or flow-style list: replace it with a block list.
        body = "".join(_entry(s, 2) for s in added)
        start, end = node.start_mark.index, node.end_mark.index
        new = text[:start].rstrip(" ") + "\n" + body + text[end:].lstrip(" ").lstrip("\n")
    parse_config(new)  # must still be valid: raises ConfigError otherwise
    return ImportPlan(added, already, revoked, new)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, keeping its mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["ConfigError", "ImportPlan", "broker_rooms", "plan_import", "write_atomic"]
