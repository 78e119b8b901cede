"""A targeted edit of a site file: one device's serial port, the rest of the file untouched.

The site file is written by people: comments, key order, flow or block style and blank lines
are theirs. :func:`set_serial_port` changes only the text of ``devices.<name>.serial.url`` and
``devices.<name>.serial.adapter`` (inserted if absent), found by PyYAML's node positions, then
checks that the result parses to exactly the old document with just those fields changed.

Example::

    text = set_serial_port(text, "codec", "/dev/diemcau-codec",
                           {"vendor_id": "0403", "product_id": "6001", "serial_number": "A1"})
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml

PLAIN = re.compile(r"^/[A-Za-z0-9._/-]+$")
BUNDLE_NOTE = "# From the room's provisioning bundle (diemcau-broker add-room), by the installer:"


class EditError(ValueError):
    """The edit cannot be made; nothing was changed."""


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return text if PLAIN.match(text) else json.dumps(text, ensure_ascii=False)


def flow_mapping(values: dict[str, Any]) -> str:
    """``{key: value, ...}`` with strings quoted (hex ids must stay strings)."""
    parts = []
    for k, v in values.items():
        shown = str(v) if isinstance(v, int) else json.dumps(str(v), ensure_ascii=False)
        parts.append(f"{k}: {shown}")
    return "{" + ", ".join(parts) + "}"


def _child(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def set_serial_port(text: str, device: str, url: str, adapter: dict[str, Any]) -> str:
    """``text`` with ``devices.<device>.serial`` given ``url`` and ``adapter``."""
    try:
        root = yaml.compose(text)
        before = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EditError(f"not valid YAML: {e}") from None
    devices = _child(root, "devices") if root is not None else None
    dev = _child(devices[1], device) if devices else None
    if dev is None:
        raise EditError(f"devices.{device}: no such device in the site file")
    serial = _child(dev[1], "serial")
    if serial is None or not isinstance(serial[1], yaml.MappingNode):
        raise EditError(f"devices.{device}.serial: the device has no serial port (a device "
                        "without a driver needs no adapter)")
    node = serial[1]
    edits: list[tuple[int, int, str]] = []
    url_pair = _child(node, "url")
    if url_pair is None:
        raise EditError(f"devices.{device}.serial.url: missing")
    edits.append((url_pair[1].start_mark.index, url_pair[1].end_mark.index, _scalar(url)))
    new_adapter = flow_mapping(adapter)
    existing = _child(node, "adapter")
    if existing is not None:
        edits.append((existing[1].start_mark.index, existing[1].end_mark.index, new_adapter))
    elif node.flow_style:
        close = node.end_mark.index - 1
        if text[close] != "}":
            raise EditError(f"devices.{device}.serial: cannot find the end of its {{...}}")
        edits.append((close, close, f", adapter: {new_adapter}"))
    else:
        last_value = node.value[-1][1]
        pos = last_value.end_mark.index
        if pos == 0 or text[pos - 1] != "\n":
            eol = text.find("\n", pos)
            pos = len(text) if eol < 0 else eol + 1
        indent = " " * node.value[0][0].start_mark.column
        prefix = "" if pos == 0 or text[pos - 1] == "\n" else "\n"
        edits.append((pos, pos, f"{prefix}{indent}adapter: {new_adapter}\n"))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    expected = copy.deepcopy(before)
    expected["devices"][device]["serial"]["url"] = url
    expected["devices"][device]["serial"]["adapter"] = adapter
    if yaml.safe_load(out) != expected:  # pragma: no cover - a bug here must not write a file
        raise EditError(f"devices.{device}.serial: the edit would change more than the port; "
                        "edit the file by hand")
    return out


def set_broker_section(text: str, broker_yaml: str) -> str:
    """``text`` (a site file) with its top-level ``broker:`` replaced by the one in
    ``broker_yaml`` (the ``broker.yaml`` of a ``diemcau-broker add-room`` bundle), or with it
    added after ``site:`` when it has none. Everything else is kept as written."""
    try:
        new = yaml.safe_load(broker_yaml)
        root = yaml.compose(text)
        before = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EditError(f"not valid YAML: {e}") from None
    if not isinstance(new, dict) or not isinstance(new.get("broker"), dict) or len(new) != 1:
        raise EditError("the bundle's broker.yaml must hold one 'broker:' mapping")
    if not isinstance(root, yaml.MappingNode) or not isinstance(before, dict):
        raise EditError("the site file must be a YAML mapping")
    section = yaml.safe_dump(new, sort_keys=False, allow_unicode=True)
    section = BUNDLE_NOTE + "\n" + section
    pair = _child(root, "broker")
    if pair is not None:
        start = pair[0].start_mark.index
        if text[:start].endswith(BUNDLE_NOTE + "\n"):
            start -= len(BUNDLE_NOTE) + 1
        end = pair[1].end_mark.index
        # A block mapping ends at the start of the next key's line; a flow one mid-line.
        eol = text.find("\n", end)
        end = end if end > 0 and text[end - 1] == "\n" else (len(text) if eol < 0 else eol + 1)
        out = text[:start] + section + text[end:]
    else:
        after = _child(root, "site")
        pos = after[1].end_mark.index if after is not None else 0
        if pos and text[pos - 1] != "\n":
            eol = text.find("\n", pos)
            pos = len(text) if eol < 0 else eol + 1
        out = text[:pos] + section + text[pos:]
    expected = dict(before)
    expected["broker"] = new["broker"]
    if yaml.safe_load(out) != expected:  # pragma: no cover - never write a surprise
        raise EditError("replacing the broker section would change more than it; edit the "
                        "site file by hand")
    return out
