"""stonewarmer's control core: probe, relay, PID, safety interlock, simulator."""

__version__ = "0.1.0"
