"""What ``SIGHUP`` (``systemctl reload diemcau-agent``) may change in a running agent.

The agent re-reads its site file and compares it field by field with the config it runs on.
Fields in :data:`LIVE` are applied at once; any other change (a pin, a device added or
removed, the broker, the site id …) needs a restart, and then **nothing** is applied: the agent
runs on with its old config and lists every such field, with the reason, in a
``config_reload_refused`` event. No value is ever quoted (a driver's settings may hold a
password), only field names.

Example::

    problems = reload_problems(running_cfg, new_cfg)    # [] → apply
    applied = changed_fields(running_cfg, new_cfg)      # ['timing.lead_min']
"""

from __future__ import annotations

from typing import Any

from agent.config import SiteConfig

LIVE = ("site.name", "site.district", "site.language", "timing.**", "devices.*.label",
        "devices.*.on_delay_s", "devices.*.self_help", "support.**", "log_level")
"""Fields a reload applies (``*`` one path segment, ``**`` any number): what the core and the
state message read afresh every time. Everything else is built into drivers, pins and the
link when the agent starts."""

RESTART = "restart the agent to apply it (sudo systemctl restart diemcau-agent)"

WHY = (
    ("site.id", "the site id is the room's identity (MQTT topics, broker user, certificate)"),
    ("site.timezone", "the schedule is read in the room's time zone from the start"),
    ("broker.**", "the broker connection (address, TLS, credentials, topics) is made at start"),
    ("devices.*.relay.**", "relay pins are claimed at start"),
    ("status_led.**", "LED pins are claimed at start"),
    ("button.**", "the button pin is claimed at start"),
    ("devices.*.**", "the device's serial driver and health poller are set up at start"),
    ("**", "it is read only at start"),
)


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_matches(path[i:], pattern[1:]) for i in range(len(path) + 1))
    return bool(path) and pattern[0] in ("*", path[0]) and _matches(path[1:], pattern[1:])


def _is(path: str, pattern: str) -> bool:
    return _matches(tuple(path.split(".")), tuple(pattern.split(".")))


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(_diff(old[key], new[key], path))
        return out
    return [] if old == new else [prefix]


def changed_fields(old: SiteConfig, new: SiteConfig) -> list[str]:
    """Dotted paths of every field that differs (a list, such as ``support``, as a whole)."""
    return _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "")


def reload_problems(old: SiteConfig, new: SiteConfig) -> list[str]:
    """Why ``new`` cannot replace ``old`` in a running agent, one line per field; [] if it can."""
    problems = []
    for path in changed_fields(old, new):
        parts = path.split(".")
        if any(_is(path, p) for p in LIVE):
            continue
        if parts[0] == "devices" and len(parts) == 2:
            what = "added" if parts[1] in new.devices else "removed"
            problems.append(f"{path}: device {what}; the devices are set up at start; {RESTART}")
            continue
        why = next(reason for pattern, reason in WHY if _is(path, pattern))
        problems.append(f"{path}: changed, but {why}; {RESTART}")
    return problems
