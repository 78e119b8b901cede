"""The retained ``info`` message: a room's static facts, and the centre's name for operators.

Published on connect only when it differs from the last one the room published (its digest is
kept on disk), so a reconnect over a metered 4G link costs nothing here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agent.config import SiteConfig
from agent.link.topics import API_VERSION
from agent.link.wire import dumps

CENTRE_FALLBACK = ("trung tâm", "the centre")


def centre_names(cfg: SiteConfig) -> tuple[str, str]:
    """The centre the room reports to, as operators name it: (Vietnamese, English).

    From ``site.centre`` (``{vi, en}``) when the config has it, else a generic name."""
    centre = getattr(cfg.site, "centre", None)
    if isinstance(centre, dict):
        vi, en = centre.get("vi"), centre.get("en")
    else:
        vi, en = getattr(centre, "vi", None), getattr(centre, "en", None)
    vi = vi or CENTRE_FALLBACK[0]
    return vi, en or (vi if vi != CENTRE_FALLBACK[0] else CENTRE_FALLBACK[1])


def info_message(cfg: SiteConfig, agent_version: str, config_hash: str) -> dict[str, Any]:
    """The info message without its ``ts`` (``agent.contract.messages.Info``)."""
    configured = getattr(cfg.site, "centre", None) is not None
    return {
        "api": API_VERSION,
        "site": cfg.site.id,
        "name": cfg.site.name,
        "centre": centre_names(cfg)[0] if configured else cfg.site.district,
        "timezone": cfg.site.timezone,
        "agent_version": agent_version,
        "config_hash": config_hash,
        "devices": {n: {"role": d.role, "label": d.label or n, "driver": d.driver}
                    for n, d in cfg.devices.items()},
        "support": [{"name": c.name, "role": c.role, "phone": c.phone} for c in cfg.support],
    }


def info_digest(info: dict[str, Any]) -> str:
    """What makes two info messages the same: everything but ``ts``."""
    body = {k: v for k, v in info.items() if k != "ts"}
    return hashlib.sha256(dumps(body)).hexdigest()[:16]
