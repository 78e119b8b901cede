"""Pins: relays, the status LED and the operator button, on gpiozero with an injected factory."""
