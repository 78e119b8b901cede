"""The MQTT contract's typed parts, shared by the core and the link (``docs/mqtt-api.md``).

:mod:`agent.contract.events` defines every event kind a room publishes.
"""
