"""Putting a room's agent on its Raspberry Pi: what the installer and the field engineer use.

* :mod:`agent.install.adapters` — the USB-serial adapters plugged in, and writing one's
  identity into the site file (``diemcau-agent adapters``);
* :mod:`agent.install.udev` — the udev rules that give each adapter the name the site file
  uses (``diemcau-agent udev-rules``);
* :mod:`agent.install.bootcfg` — the ``config.txt`` block that holds the relays released from
  the first instant of boot (``diemcau-agent boot-config``) and the check ``check-config``
  makes of the one in place;
* :mod:`agent.install.yamledit` — a targeted edit of a site file that keeps everything else;
* :mod:`agent.install.pending` — restart the agent now, or once the room's lock has ended.
"""
