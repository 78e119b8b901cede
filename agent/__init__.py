"""diemcau room agent: keeps a commune video-conference room on, staffed and accountable."""

__version__ = "0.1.0"
