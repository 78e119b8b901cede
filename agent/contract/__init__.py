"""The MQTT contract's typed parts, shared by the core and the link (``docs/mqtt-api.md``).

:mod:`agent.contract.events` defines every event kind a room publishes;
:mod:`agent.contract.messages` the messages it publishes (state, info, host, replies, the event
envelope) as pydantic models, for checking and for the contract's JSON Schemas.
"""
