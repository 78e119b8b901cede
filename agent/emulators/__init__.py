"""Device emulators on pseudo-terminals, for tests and ``--simulate``.

Example (what ``--simulate`` does per device)::

    emu = make_emulator("cisco_xapi", boot_s=20, link_dir=run_dir, link_name="ttyCODEC")
    emu.start()
    drv = build_driver("cisco_xapi", url=emu.url, baudrate=115200, settings={"login": False})
    relay_callback = emu.power          # the simulated relay switches the emulator's power
"""

from __future__ import annotations

from typing import Any

from agent.emulators.base import Emulator, Exchange
from agent.emulators.cisco import CiscoEmulator
from agent.emulators.extron import ExtronEmulator
from agent.emulators.generic import GenericEmulator
from agent.emulators.poly import PolyEmulator
from agent.emulators.visca import ViscaEmulator
from agent.emulators.yealink import YealinkEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "cisco_xapi": CiscoEmulator,
    "poly_group": PolyEmulator,
    "yealink_vc": YealinkEmulator,
    "sony_visca": ViscaEmulator,
    "extron_sis": ExtronEmulator,
    "generic_line": GenericEmulator,
}

__all__ = ["EMULATORS", "CiscoEmulator", "Emulator", "Exchange", "ExtronEmulator",
           "GenericEmulator", "PolyEmulator", "ViscaEmulator", "YealinkEmulator",
           "make_emulator"]


def make_emulator(driver_name: str, **opts: Any) -> Emulator:
    """An (unstarted) emulator for the device a driver of this name talks to."""
    try:
        cls = EMULATORS[driver_name]
    except KeyError:
        raise ValueError(f"no emulator for driver {driver_name!r}; choose one of "
                         f"{', '.join(sorted(EMULATORS))}") from None
    return cls(**opts)
