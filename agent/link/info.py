"""The retained ``info`` message: a room's static facts, and the centre's name for operators.

Published on connect only when it differs from the last one the room published (its digest is
kept on disk), so a reconnect over a metered 4G link costs nothing here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agent.config import SiteConfig
from agent.core.led import DEFAULT_CENTRE
from agent.link.topics import API_VERSION
from agent.link.wire import dumps

CENTRE_FALLBACK = DEFAULT_CENTRE


def centre_names(cfg: SiteConfig) -> tuple[str, str]:
    """The centre the room reports to, as operators name it: (Vietnamese, English), from
    ``site.centre`` (a generic name when the config does not say)."""
    return cfg.site.centre.vi, cfg.site.centre.en


def info_message(cfg: SiteConfig, agent_version: str, config_hash: str) -> dict[str, Any]:
    """The info message without its ``ts`` (``agent.contract.messages.Info``)."""
    return {
        "api": API_VERSION,
        "site": cfg.site.id,
        "name": cfg.site.name,
        "centre": cfg.site.centre.vi,
        "timezone": cfg.site.timezone,
        "agent_version": agent_version,
        "config_hash": config_hash,
        "devices": {n: {"role": d.role, "label": d.label or n, "driver": d.driver}
                    for n, d in cfg.devices.items()},
        "support": [{"name": c.name, "role": c.role, "role_en": c.role_en, "phone": c.phone}
                    for c in cfg.support],
    }


def info_digest(info: dict[str, Any]) -> str:
    """What makes two info messages the same: everything but ``ts``."""
    body = {k: v for k, v in info.items() if k != "ts"}
    return hashlib.sha256(dumps(body)).hexdigest()[:16]
